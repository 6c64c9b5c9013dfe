//! Helpers shared by the integration tests: running the real `devramps` binary and building
//! repository folders.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Output};

/// A valid pipeline with every kind of section (`shared/fixtures/pipelines/api.yaml`).
pub const API_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/pipelines/api.yaml"
);
/// The smallest valid pipeline (`shared/fixtures/pipelines/minimal.yaml`).
pub const MINIMAL_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/pipelines/minimal.yaml"
);

/// A pipeline with three errors, at known places:
/// line 6 column 13 `E0104` (stage name), line 7 column 19 `E0105` (unquoted account id),
/// line 9 column 7 `E0005` (`varz`, did you mean `vars`?).
pub const INVALID: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: Prod_1
      account_id: 111111111111
      region: us-east-1
      varz: {}
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
  artifacts: {}
"#;

/// A valid pipeline with one warning: line 14 column 9 `W0210` (unknown bake parameter).
pub const WARNING_ONLY: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
  steps:
    - name: Bake
      type: DEVRAMPS:APPROVAL:BAKE
      params:
        duration_minutes: 30
        colour: blue
  artifacts: {}
"#;

/// The text of a fixture file.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(path).expect("fixture is readable")
}

/// Writes `contents` to `root/relative`, creating folders.
pub fn write(root: &Path, relative: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create folders");
    std::fs::write(path, contents).expect("write file");
}

/// Runs `devramps args...` in `cwd`.
pub fn devramps(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devramps"))
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .output()
        .expect("the devramps binary runs")
}

/// The exit code (the binary never dies from a signal or a panic in these tests).
pub fn code(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("exited normally, not by a signal")
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Stdout parsed as JSON.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}):\n{}", stdout(output));
    })
}

/// The test step registry (`tests/run_registry`, Node): `CUSTOM:SLEEP` and friends.
pub fn registry() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/run_registry").to_owned()
}

/// Fails, saying how to get them, unless `npm` and `node` run (the step registries need them).
pub fn need_node() {
    let ok = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests run step registries with npm and node: install Node.js (Debian: `apt-get \
         install nodejs npm`); .ci/run does"
    );
}

/// The base URL a `devramps serve` child prints (`... listening on http://...`), read from its
/// piped stdout within a minute; the rest of its stdout is drained on a thread.
pub fn listening_base(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("devramps serve says where it listens");
    line.split("listening on ")
        .nth(1)
        .expect("a `listening on` line")
        .trim()
        .to_owned()
}
