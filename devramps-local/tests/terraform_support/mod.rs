//! The real Terraform of `tests/terraform.rs`: Terraform 1.0.3 from `DEVRAMPS_TEST_TERRAFORM`
//! and the test provider `devramps/devramps` (provider/devramps_provider.py, PyPI `tf` 1.2.0)
//! run by `DEVRAMPS_TEST_TF_PYTHON`, installed as an unpacked filesystem mirror named by a CLI
//! config file. `scripts/test` sets both variables (scripts/lib/terraform.sh,
//! `install_terraform`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use devramps_core::exec::{ExecutionKey, InfraRequest, StageTarget, TerraformState, Unit};
use devramps_core::expr::FinalValue;
use devramps_git::testing::TestRepo;
use devramps_local::terraform::TerraformRunner;

const HOW_TO_RUN: &str = "run the tests through `scripts/test` (it installs Terraform 1.0.3 \
    and the provider's Python), or `. scripts/lib/terraform.sh && install_terraform` first, \
    which exports DEVRAMPS_TEST_TERRAFORM and DEVRAMPS_TEST_TF_PYTHON";

/// Terraform and its CLI configuration.
#[derive(Debug)]
pub(crate) struct Tf {
    /// The Terraform binary.
    pub(crate) binary: PathBuf,
    /// The CLI config file (the provider's filesystem mirror).
    pub(crate) cli_config: PathBuf,
}

fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{name} is not set: {HOW_TO_RUN}"),
    }
}

/// Terraform, checked and announced once per test binary.
pub(crate) fn tf() -> &'static Tf {
    static TF: OnceLock<Tf> = OnceLock::new();
    TF.get_or_init(|| {
        let binary = env_path("DEVRAMPS_TEST_TERRAFORM");
        let python = env_path("DEVRAMPS_TEST_TF_PYTHON");
        let version = std::process::Command::new(&binary)
            .arg("version")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}; {HOW_TO_RUN}", binary.display()));
        let version = String::from_utf8_lossy(&version.stdout).into_owned();
        println!(
            "terraform tests run `{}`: {}",
            binary.display(),
            version.lines().next().unwrap_or("(no version)")
        );
        let provider_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/terraform_support/provider");
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("terraform-{}", std::process::id()));
        let package = base.join("mirror/registry.terraform.io/devramps/devramps/1.0.0/linux_amd64");
        std::fs::create_dir_all(&package).expect("create the mirror");
        let script = package.join("terraform-provider-devramps");
        let text = format!(
            "#!{}\nimport sys\nsys.dont_write_bytecode = True\nsys.path.insert(0, {:?})\nimport devramps_provider\ndevramps_provider.main()\n",
            python.display(),
            provider_dir.display().to_string()
        );
        std::fs::write(&script, text).expect("write the provider");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let cli_config = base.join("cli.tfrc");
        let config = format!(
            r#"disable_checkpoint = true
provider_installation {{
  filesystem_mirror {{
    path    = "{}"
    include = ["registry.terraform.io/devramps/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/devramps/*"]
  }}
}}
"#,
            base.join("mirror").display()
        );
        std::fs::write(&cli_config, config).expect("write the CLI config");
        Tf { binary, cli_config }
    })
}

/// A fixture root's `main.tf`.
pub(crate) fn root(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/terraform_support/roots")
        .join(name)
        .join("main.tf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A git repository whose commits hold fixture roots at `infra/main.tf`, and a state folder.
pub(crate) struct Setup {
    pub(crate) repo: TestRepo,
    pub(crate) state: tempfile::TempDir,
}

impl Setup {
    /// One commit for each fixture root named, in order.
    pub(crate) fn new(roots: &[&str]) -> Self {
        let mut repo = TestRepo::new();
        repo.write("README.md", "infrastructure\n");
        for name in roots {
            repo.write("infra/main.tf", &root(name));
            repo.commit(name);
        }
        Setup {
            repo,
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A runner of the test Terraform, with a short grace period.
    pub(crate) fn runner(&self) -> TerraformRunner {
        let tf = tf();
        TerraformRunner::new(Arc::new(self.repo.source()), self.state.path())
            .binary(&tf.binary)
            .env("TF_CLI_CONFIG_FILE", &tf.cli_config)
    }

    /// The request of step `step`, attempt `attempt`, for commit `commit` (1-based), with
    /// `variables`.
    pub(crate) fn request(
        &self,
        step: &str,
        attempt: u32,
        commit: usize,
        variables: FinalValue,
    ) -> InfraRequest {
        let key = ExecutionKey::new("app", 1, "staging", attempt, Unit::step(step));
        let target = StageTarget::new("app", "staging", "111111111111", "us-east-1");
        InfraRequest::new(key, target, "/infra", self.repo.c(commit), variables).with_state(
            TerraformState::new(
                "devramps-acme-terraform-state",
                format!("app/staging/{step}/terraform.tfstate"),
                "us-east-1",
            ),
        )
    }
}

/// The processes (not zombies) whose working folder is inside `dir`: Terraform and its
/// providers run in the checkout.
pub(crate) fn processes_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X");
        if cwd.starts_with(&dir) && !zombie {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    out
}

/// Every file under `dir` whose bytes contain `needle`, except Terraform's own state files
/// and saved plans.
pub(crate) fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let file_type = entry.file_type().expect("file type");
            if file_type.is_dir() {
                // Terraform's local state files.
                if path != dir.join("terraform/state") {
                    stack.push(path);
                }
            } else if file_type.is_file() && name != "plan.tfplan" {
                let bytes = std::fs::read(&path).expect("read");
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(path);
                }
            }
        }
    }
    out
}

/// Every log message of `key`, one a line.
pub(crate) async fn log_text(
    runner: &TerraformRunner,
    request: &devramps_core::exec::InfraRequest,
) -> String {
    let logs = runner.logs(&request.key).await.expect("logs");
    logs.iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Like [`files_containing`], state files included.
pub(crate) fn files_containing_all(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).expect("read");
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            out.push(entry);
        }
    }
    out
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        if entry.file_type().expect("type").is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// Waits until the log says the slow thing is being created.
pub(crate) async fn wait_for_applying(
    runner: &TerraformRunner,
    request: &devramps_core::exec::InfraRequest,
) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let log = log_text(runner, request).await;
        if log.contains("devramps_thing.slow: Creating...") {
            return;
        }
        assert!(
            Instant::now() < until,
            "terraform did not start applying: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no process runs in the state folder; returns how long it took.
pub(crate) async fn wait_for_no_process(dir: &std::path::Path, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let left = processes_in(dir);
        if left.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still running after {within:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
