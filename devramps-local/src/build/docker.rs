//! [`DockerBuilder`]: `DEVRAMPS:DOCKER:BUILD` (reference §3.2), the Dockerfile built in a
//! checkout and pushed to the destination registry by docker, podman or buildah.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use devramps_core::Result;
use devramps_core::backend::Runner;
use devramps_core::exec::{BuildRequest, ExecutionKey, LogEntry, Outcome, Outputs};
use devramps_core::pipeline::ArtifactType;
use devramps_git::GitRepository;
use serde_json::json;

use super::BuildOptions;
use super::dir::BuildDir;
use super::job::{Command, Jobs, Kind, Plan};
use super::params::{BuildParams, repo_path};
use super::registry::{ImageRef, RegistryMap};

/// What to install when no tool works.
const INSTALL_HINT: &str =
    "install buildah (Debian: apt-get install buildah) or podman, or start a docker daemon";
/// How long a tool's probe (`docker info`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// The file the push writes the image's digest to.
const DIGEST_FILE: &str = "image.digest";

/// A container image build tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tool {
    /// `docker` (needs a running daemon).
    Docker,
    /// `podman` (daemonless).
    Podman,
    /// `buildah` (daemonless).
    Buildah,
}

impl Tool {
    /// The order tools are tried in.
    pub const ALL: [Tool; 3] = [Tool::Docker, Tool::Podman, Tool::Buildah];

    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Docker => "docker",
            Tool::Podman => "podman",
            Tool::Buildah => "buildah",
        }
    }
}

/// How images are built and where they go; the default tries docker, podman and buildah and
/// reaches every registry as named, over HTTPS.
#[derive(Clone, Debug, Default)]
pub struct DockerOptions {
    /// The tool; `None` tries docker, podman and buildah in that order and takes the first
    /// that works.
    pub(crate) tool: Option<Tool>,
    /// Where registries are reached (a loopback registry for ECR's hosts).
    pub(crate) registries: RegistryMap,
    /// podman and buildah: `--storage-driver` (`vfs` works where overlay does not).
    pub(crate) storage_driver: Option<String>,
    /// podman and buildah: `--isolation` (`chroot` works inside containers).
    pub(crate) isolation: Option<String>,
    /// Where tools are looked for (`PATH`'s syntax); `None` for the process's `PATH`.
    pub(crate) search_path: Option<OsString>,
}

impl DockerOptions {
    /// Uses `tool` only.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tool = Some(tool);
        self
    }

    /// Sets where registries are reached.
    pub fn registries(mut self, registries: RegistryMap) -> Self {
        self.registries = registries;
        self
    }

    /// podman and buildah: `--storage-driver driver`.
    pub fn storage_driver(mut self, driver: impl Into<String>) -> Self {
        self.storage_driver = Some(driver.into());
        self
    }

    /// podman and buildah: `--isolation isolation`.
    pub fn isolation(mut self, isolation: impl Into<String>) -> Self {
        self.isolation = Some(isolation.into());
        self
    }

    /// Looks for tools in `path` (`PATH`'s syntax) instead of the process's `PATH`.
    pub fn search_path(mut self, path: impl Into<OsString>) -> Self {
        self.search_path = Some(path.into());
        self
    }

    /// The global flags of podman and buildah.
    fn global_flags(&self, tool: Tool) -> Vec<String> {
        match (tool, &self.storage_driver) {
            (Tool::Podman | Tool::Buildah, Some(driver)) => {
                vec!["--storage-driver".into(), driver.clone()]
            }
            _ => Vec::new(),
        }
    }
}

/// Builds `DEVRAMPS:DOCKER:BUILD` artifacts on this machine.
///
/// - `dockerfile` (a repository path) is built with the context `build_root` (default the
///   repository root) of a fresh export of the commit, each `args` entry `KEY=VALUE` passed as
///   `--build-arg KEY` with its value in the tool's environment (so it is not on a command
///   line), `params.env` and `envs` in that environment too.
/// - The image is tagged with the request's `destination.image_url` and pushed there (the
///   host mapped by [`DockerOptions::registries`]). Outputs: `image_url` and `image_tag` (as
///   the destination names them) and `image_digest` (`sha256:...`, from the push).
/// - The tool is [`DockerOptions::tool`], else the first of docker (`docker info` must
///   answer: a daemon runs), podman and buildah that works; when none does the build fails
///   with what to install.
/// - Runs like a bundle build: a process group, the timeout (`params.timeout_minutes`, else
///   [`BuildOptions::default_timeout`]), cancel, the bounded, redacted log, re-attaching.
#[derive(Clone, Debug)]
pub struct DockerBuilder {
    jobs: Jobs<Docker>,
}

/// The Docker kind of build.
#[derive(Clone, Debug)]
pub(crate) struct Docker {
    options: DockerOptions,
}

impl DockerBuilder {
    /// A builder exporting commits of `repo`, keeping its builds under `state_dir/builds/`.
    pub fn new(repo: Arc<GitRepository>, state_dir: impl Into<PathBuf>) -> Self {
        DockerBuilder {
            jobs: Jobs::new(
                Docker {
                    options: DockerOptions::default(),
                },
                Some(repo),
                BuildOptions::new(state_dir),
            ),
        }
    }

    /// Uses `tool` only.
    pub fn with_tool(self, tool: Tool) -> Self {
        self.with_kind(|o| o.tool = Some(tool))
    }

    /// Sets where registries are reached.
    pub fn with_registries(self, registries: RegistryMap) -> Self {
        self.with_kind(|o| o.registries = registries)
    }

    /// Replaces the Docker options.
    pub fn with_options(self, options: DockerOptions) -> Self {
        self.with_kind(|o| *o = options)
    }

    /// Replaces the build options (state directory, timeout, kept checkouts).
    pub fn with_build_options(self, options: BuildOptions) -> Self {
        DockerBuilder {
            jobs: self.jobs.map_options(|o| *o = options),
        }
    }

    /// The Docker options.
    pub fn options(&self) -> &DockerOptions {
        &self.jobs.kind().options
    }

    /// The tool a build would use now, or why none works (with what to install).
    pub async fn detect(&self) -> std::result::Result<Tool, String> {
        detect(&self.jobs.kind().options).await
    }

    fn with_kind(self, f: impl FnOnce(&mut DockerOptions)) -> Self {
        let mut options = self.jobs.kind().options.clone();
        f(&mut options);
        DockerBuilder {
            jobs: self.jobs.with_kind(Docker { options }),
        }
    }
}

/// The first tool of the options that works, or why none does.
async fn detect(options: &DockerOptions) -> std::result::Result<Tool, String> {
    let candidates: Vec<Tool> = options.tool.map_or_else(|| Tool::ALL.to_vec(), |t| vec![t]);
    let mut why = Vec::new();
    for tool in candidates {
        match probe(options, tool).await {
            Ok(()) => return Ok(tool),
            Err(e) => why.push(format!("{}: {e}", tool.program())),
        }
    }
    Err(format!(
        "no container build tool works here ({}); {INSTALL_HINT}",
        why.join("; ")
    ))
}

/// Whether `tool` is installed and answers (`docker info` needs the daemon).
async fn probe(options: &DockerOptions, tool: Tool) -> std::result::Result<(), String> {
    let Some(program) = find_program(options, tool.program()) else {
        return Err("not installed (not found on PATH)".into());
    };
    let mut command = tokio::process::Command::new(&program);
    command
        .args(options.global_flags(tool))
        .arg("info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PROBE_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("`{} info` did not answer within 30 s", tool.program()))?
        .map_err(|e| format!("cannot run `{}`: {e}", program.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default().to_owned();
    Err(format!(
        "`{} info` failed ({}): {last}",
        tool.program(),
        output.status
    ))
}

/// `name` in the options' search path (else `PATH`), if it is an executable file there.
fn find_program(options: &DockerOptions, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = options
        .search_path
        .clone()
        .or_else(|| std::env::var_os("PATH"))?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `text` quoted for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Docker {
    /// The build-and-push script of `tool`.
    fn script(
        &self,
        tool: Tool,
        program: &str,
        dockerfile: &str,
        context: &str,
        args: &[String],
        push: &ImageRef,
    ) -> String {
        let o = &self.options;
        let mut global: Vec<String> = vec![quote(program)];
        global.extend(o.global_flags(tool).iter().map(|f| quote(f)));
        let g = global.join(" ");
        let target = quote(&push.to_string());
        let build_args: String = args
            .iter()
            .map(|k| format!(" --build-arg {}", quote(k)))
            .collect();
        let isolation = match (&o.isolation, tool) {
            (Some(i), Tool::Podman | Tool::Buildah) => format!(" --isolation {}", quote(i)),
            _ => String::new(),
        };
        let tls = if o.registries.is_insecure() && tool != Tool::Docker {
            " --tls-verify=false"
        } else {
            ""
        };
        let digest = quote(DIGEST_FILE);
        let (df, ctx) = (quote(dockerfile), quote(context));
        match tool {
            Tool::Buildah => format!(
                "{g} bud{isolation} -f {df} -t {target}{build_args} {ctx}\n\
                 {g} push{tls} --digestfile \"$DEVRAMPS_BUILD_DIR\"/{digest} {target} docker://{target}\n"
            ),
            Tool::Podman => format!(
                "{g} build{isolation} -f {df} -t {target}{build_args} {ctx}\n\
                 {g} push{tls} --digestfile \"$DEVRAMPS_BUILD_DIR\"/{digest} {target} docker://{target}\n"
            ),
            Tool::Docker => {
                let repo = quote(&format!("{}/{}@", push.host, push.repository));
                format!(
                    "{g} build -f {df} -t {target}{build_args} {ctx}\n\
                     {g} push {target}\n\
                     {g} image inspect --format '{{{{range .RepoDigests}}}}{{{{println .}}}}{{{{end}}}}' {target} \
                     | while read -r d; do case \"$d\" in {repo}*) echo \"${{d#*@}}\";; esac; done \
                     | head -n 1 > \"$DEVRAMPS_BUILD_DIR\"/{digest}\n"
                )
            }
        }
    }
}

#[async_trait]
impl Kind for Docker {
    fn artifact_type(&self) -> ArtifactType {
        ArtifactType::DockerBuild
    }

    fn needs_checkout(&self) -> bool {
        true
    }

    async fn plan(
        &self,
        request: &BuildRequest,
        params: &BuildParams,
        dir: &BuildDir,
    ) -> std::result::Result<Plan, String> {
        let invalid = |why: String| format!("invalid build parameters: {why}");
        let dockerfile = params.required_text("dockerfile").map_err(invalid)?;
        let dockerfile_path = repo_path("dockerfile", &dockerfile).map_err(invalid)?;
        let context = match params.text("build_root").map_err(invalid)? {
            Some(root) => repo_path("build_root", &root).map_err(invalid)?,
            None => PathBuf::new(),
        };
        let mut env = params.env.clone();
        let mut names = Vec::new();
        for arg in params.texts("args").map_err(invalid)? {
            let Some((name, value)) = arg.split_once('=') else {
                return Err(invalid(format!(
                    "`args` entry `{name}` is not `KEY=VALUE`",
                    name = arg.split('=').next().unwrap_or_default()
                )));
            };
            if name.is_empty() || name.contains('\0') || value.contains('\0') {
                return Err(invalid(format!("`args` entry `{name}` is not `KEY=VALUE`")));
            }
            env.retain(|(n, _)| n != name);
            env.push((name.to_owned(), value.to_owned()));
            names.push(name.to_owned());
        }
        let minutes = params.minutes("timeout_minutes").map_err(invalid)?;
        let checkout = dir.checkout();
        if !checkout.join(&dockerfile_path).is_file() {
            return Err(format!(
                "`dockerfile` `{dockerfile}` is not a file of commit {}",
                request.commit
            ));
        }
        if !checkout.join(&context).is_dir() {
            return Err(format!(
                "`build_root` `{}` is not a folder of commit {}",
                context.display(),
                request.commit
            ));
        }
        let image_url = &request.destination.image_url;
        if image_url.is_empty() {
            return Err("the build request names no destination image (`image_url`)".into());
        }
        let image = ImageRef::parse(image_url)?;
        let push = self.options.registries.resolve(&image);
        let tool = detect(&self.options).await?;
        let program = find_program(&self.options, tool.program())
            .map_or_else(|| tool.program().to_owned(), |p| p.display().to_string());
        let context = if context.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            context.display().to_string()
        };
        let script = self.script(
            tool,
            &program,
            &dockerfile_path.display().to_string(),
            &context,
            &names,
            &push,
        );
        env.push(("DEVRAMPS_BUILD_DIR".into(), dir.dir.display().to_string()));
        let tag = if request.destination.image_tag.is_empty() {
            image.reference.clone()
        } else {
            request.destination.image_tag.clone()
        };
        Ok(Plan::Command(Command {
            script,
            env,
            timeout_minutes: minutes,
            finish: json!({
                "image_url": image_url,
                "image_tag": tag,
                "pushed_to": push.to_string(),
                "tool": tool.program(),
            }),
        }))
    }

    async fn finish(
        &self,
        finish: &serde_json::Value,
        dir: &BuildDir,
    ) -> std::result::Result<Outputs, String> {
        let pushed = finish["pushed_to"].as_str().unwrap_or_default();
        let digest = std::fs::read_to_string(dir.file(DIGEST_FILE)).unwrap_or_default();
        let digest = digest.trim();
        if !digest.starts_with("sha256:") {
            return Err(format!(
                "the push to `{pushed}` reported no image digest (got `{digest}`)"
            ));
        }
        let mut outputs = Outputs::new();
        for name in ["image_url", "image_tag"] {
            outputs.insert(name.into(), finish[name].clone());
        }
        outputs.insert("image_digest".into(), digest.into());
        Ok(outputs)
    }
}

#[async_trait]
impl Runner<BuildRequest> for DockerBuilder {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        self.jobs.start(request).await
    }
    async fn wait(&self, key: &ExecutionKey) -> Result<Outcome> {
        self.jobs.wait(key).await
    }
    async fn cancel(&self, key: &ExecutionKey) -> Result<()> {
        self.jobs.cancel(key).await
    }
    async fn logs(&self, key: &ExecutionKey) -> Result<Vec<LogEntry>> {
        self.jobs.logs(key).await
    }
}
