// A step registry for the tests of `devramps run`, speaking the DevRamps step protocol
// (reference §9.3) by hand. CUSTOM:SLEEP appends its execution id to `params.marker` (so a test
// counts how often it really started), logs a line, sleeps `params.ms` and succeeds with
// `{slept: ms}`.
"use strict";
const fs = require("fs");
const path = require("path");

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const output = arg("--output", "/tmp/step-output.json");
const logDir = arg("--log-dir", "/tmp/step-logs");
const executionId = arg("--execution-id", "exec-" + Date.now());

function write(result) {
  fs.writeFileSync(output, JSON.stringify(result, null, 2));
}

function log(type, message) {
  fs.mkdirSync(logDir, { recursive: true });
  const line = { timestamp: new Date().toISOString(), level: "info", message, stepType: type, executionId };
  fs.appendFileSync(path.join(logDir, executionId + ".jsonl"), JSON.stringify(line) + "\n");
}

let input;
try {
  input = JSON.parse(arg("--input", ""));
} catch (e) {
  write({ status: "FAILED", error: "malformed input: " + e.message, errorCode: "REGISTRY_ERROR" });
  process.exit(0);
}

const schema = {
  type: "object",
  properties: { marker: { type: "string" }, ms: { type: "integer", minimum: 0 } },
  required: ["marker"],
  additionalProperties: false,
};

if (input.job === "SYNTHESIZE-METADATA") {
  write({ status: "SUCCESS", data: { metadata: [{ stepType: "CUSTOM:SLEEP", paramsJsonSchema: schema }] } });
} else if (input.job === "EXECUTE" && input.type === "CUSTOM:SLEEP") {
  const params = input.params || {};
  fs.appendFileSync(params.marker, executionId + "\n");
  log(input.type, "sleeping " + (params.ms || 0) + " ms");
  setTimeout(() => {
    log(input.type, "done");
    write({ status: "SUCCESS", data: { slept: params.ms || 0 } });
  }, params.ms || 0);
} else {
  write({ status: "FAILED", error: "no step " + input.type, errorCode: "STEP_NOT_FOUND" });
}
