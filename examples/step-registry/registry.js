#!/usr/bin/env node
// A step registry written by hand against the DevRamps step protocol (reference §9.3), with no
// dependencies: what @devramps/sdk-typescript's StepRegistry.run does, in one small file.
//
//   node registry.js --input '<json>' [--output FILE] [--log-dir DIR] [--execution-id ID]
//
// It writes exactly one pretty-printed JSON result to the output file and never exits non-zero:
// the result file, not the exit status, carries the outcome.
'use strict';

const fs = require('fs');
const path = require('path');

// ---- The steps -------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const STEPS = [
  {
    stepType: 'CUSTOM:ECHO',
    name: 'Echo',
    shortDescription: 'Returns its message as output `message`.',
    paramsJsonSchema: {
      type: 'object',
      properties: {
        message: { type: 'string' },
        sleepMs: { type: 'integer', minimum: 0, description: 'Wait this long first.' },
        countFile: { type: 'string', description: 'Append a line here on every run.' },
      },
      required: ['message'],
      additionalProperties: false,
    },
    async run(params, approval, log) {
      if (params.countFile) fs.appendFileSync(params.countFile, `${process.pid}\n`);
      if (params.sleepMs) await sleep(params.sleepMs);
      log.info('echoing', { message: params.message });
      return { status: 'SUCCESS', data: { message: params.message } };
    },
  },
  {
    stepType: 'CUSTOM:WAIT',
    name: 'Wait',
    shortDescription: 'Triggers, then answers POLL_AGAIN `polls` times before SUCCESS.',
    paramsJsonSchema: {
      type: 'object',
      properties: {
        polls: { type: 'integer', minimum: 0 },
        retryAfterMs: { type: 'integer', minimum: 0 },
      },
      required: ['polls'],
      additionalProperties: false,
    },
    async trigger(params, approval, log) {
      log.info('triggered');
      return { status: 'TRIGGERED', pollingState: { polled: 0, startedAt: Date.now() } };
    },
    async poll(params, state, log) {
      const polled = state.polled + 1;
      log.info('polled', { polled });
      if (polled > params.polls) return { status: 'SUCCESS', data: { polled } };
      return {
        status: 'POLL_AGAIN',
        pollingState: { ...state, polled },
        retryAfterMs: params.retryAfterMs ?? 1000,
      };
    },
  },
  {
    stepType: 'CUSTOM:GATED',
    name: 'Gated change',
    shortDescription: 'Asks a person to approve `change`, then applies it.',
    paramsJsonSchema: {
      type: 'object',
      properties: { change: { type: 'string' } },
      required: ['change'],
      additionalProperties: false,
    },
    async prepare(params, log) {
      log.info('asking for approval', { change: params.change });
      return { status: 'APPROVAL_REQUIRED', approvalRequest: { context: `Apply ${params.change}?` } };
    },
    async run(params, approval, log) {
      log.info('applying', { change: params.change, approved: approval.approved });
      return { status: 'SUCCESS', data: { applied: params.change } };
    },
  },
];

// ---- The protocol ----------------------------------------------------------------------------

function parseArgs(argv) {
  const args = {
    output: '/tmp/step-output.json',
    logDir: '/tmp/step-logs',
    executionId: `exec-${Date.now()}`,
  };
  const names = { '--input': 'input', '--output': 'output', '--log-dir': 'logDir', '--execution-id': 'executionId' };
  for (let i = 0; i < argv.length; i++) {
    if (names[argv[i]] && i + 1 < argv.length) args[names[argv[i]]] = argv[++i];
  }
  return args;
}

function logger(args, stepType) {
  const write = (level, message, data) => {
    const line = { timestamp: new Date().toISOString(), level, message, stepType, executionId: args.executionId };
    if (data !== undefined) line.data = data;
    fs.mkdirSync(args.logDir, { recursive: true });
    fs.appendFileSync(path.join(args.logDir, `${args.executionId}.jsonl`), JSON.stringify(line) + '\n');
  };
  return { info: (m, d) => write('info', m, d), error: (m, d) => write('error', m, d) };
}

// The subset of JSON Schema the steps above use: type, properties, required,
// additionalProperties: false, minimum. Returns the problems found.
function validate(schema, value, where = 'params') {
  const typeOf = (v) => (Array.isArray(v) ? 'array' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : typeof v);
  const type = typeOf(value);
  if (schema.type && !(schema.type === type || (schema.type === 'number' && type === 'integer'))) {
    return [`${where}: expected ${schema.type}, got ${type}`];
  }
  const problems = [];
  if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${where}: must be >= ${schema.minimum}`);
  if (type === 'object') {
    for (const name of schema.required || []) {
      if (!(name in value)) problems.push(`${where}.${name}: required`);
    }
    for (const [name, v] of Object.entries(value)) {
      const sub = (schema.properties || {})[name];
      if (sub) problems.push(...validate(sub, v, `${where}.${name}`));
      else if (schema.additionalProperties === false) problems.push(`${where}.${name}: unknown parameter`);
    }
  }
  return problems;
}

const failed = (errorCode, error) => ({ status: 'FAILED', error, errorCode });

async function execute(input, args) {
  const step = STEPS.find((s) => s.stepType === input.type);
  if (!step) return failed('STEP_NOT_FOUND', `no step of type ${JSON.stringify(input.type)} in this registry`);
  const params = input.params ?? {};
  const problems = validate(step.paramsJsonSchema, params);
  if (problems.length) return failed('INVALID_PARAMS', problems.join('; '));
  const log = logger(args, step.stepType);
  const approval = input.approvalContext;
  const needsApproval = typeof step.prepare === 'function';
  try {
    if (typeof step.trigger === 'function' && typeof step.poll === 'function') {
      if (input.pollingState) return await step.poll(params, input.pollingState, log);
      if (needsApproval && !approval) return await step.prepare(params, log);
      return await step.trigger(params, approval, log);
    }
    if (needsApproval && !approval) return await step.prepare(params, log);
    return await step.run(params, approval, log);
  } catch (e) {
    log.error('step failed', { error: String(e && e.stack ? e.stack : e) });
    return failed('EXECUTION_ERROR', String(e && e.message ? e.message : e));
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let result;
  try {
    let input;
    try {
      input = JSON.parse(args.input);
    } catch (e) {
      input = undefined;
    }
    if (!input || typeof input !== 'object') {
      result = failed('REGISTRY_ERROR', `--input is not a JSON object: ${String(args.input).slice(0, 200)}`);
    } else if (input.job === 'SYNTHESIZE-METADATA') {
      const metadata = STEPS.map(({ stepType, name, shortDescription, paramsJsonSchema }) => ({
        name, stepType, shortDescription, paramsJsonSchema,
      }));
      result = { status: 'SUCCESS', data: { metadata } };
    } else if (input.job === 'EXECUTE') {
      result = await execute(input, args);
    } else {
      result = failed('REGISTRY_ERROR', `unknown job ${JSON.stringify(input.job)}`);
    }
  } catch (e) {
    result = failed('REGISTRY_ERROR', String(e && e.message ? e.message : e));
  }
  try {
    fs.writeFileSync(args.output, JSON.stringify(result, null, 2));
  } catch (e) {
    console.error(`could not write the result to ${args.output}: ${e.message}`);
  }
}

main();
