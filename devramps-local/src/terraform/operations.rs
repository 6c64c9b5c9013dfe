//! `plan` and `apply`, step by step (see the [module docs](super)).

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use devramps_core::exec::{InfraPlan, InfraRequest, Outputs};
use devramps_core::{Error, Result};

use super::folder::{self, Applied, KeyDir, Summary};
use super::hcl::RootScan;
use super::run::{self, Command, Context, Failed, Redactor, Running};
use super::stop;
use super::values::{SENSITIVE, file_sha256, hcl_escape, read_outputs, tf_vars};
use super::{
    BACKEND, StateBackend, TerraformRunner, classify, io_error, root_dir, secrets, variable_names,
};

/// The file that replaces the root's backend with a local state file.
const OVERRIDE_FILE: &str = "devramps_backend_override.tf";

impl TerraformRunner {
    /// `plan`: the saved summary, or a new saved plan.
    pub(super) async fn plan_once(&self, request: &InfraRequest) -> Result<InfraPlan> {
        let key = &request.key;
        let dir = KeyDir::new(&self.config.state_dir, key);
        let lock = self.lock_of(&dir);
        let _held = lock.lock().await;
        let saved = dir
            .read_summary()
            .map_err(|e| io_error(key, "read the saved plan", &e))?;
        if let Some(summary) = saved {
            return Ok(summary.plan);
        }
        let redactor = self.redactor(&dir);
        redactor.learn(secrets(&request.variables), "[REDACTED]");
        let registration = self.register(&dir);
        std::fs::create_dir_all(&dir.dir)
            .map_err(|e| io_error(key, "create the Terraform folder", &e))?;
        stop::stop_leftover(&dir, self.config.grace)
            .await
            .map_err(|e| io_error(key, "stop an earlier run's terraform", &e))?;
        dir.clear_partial_plan()
            .map_err(|e| io_error(key, "clear an unfinished plan", &e))?;
        let ctx = self.context(&dir, &redactor, &registration.running);
        let result = self.plan_fresh(request, &dir, &ctx).await;
        match result {
            Ok(plan) => Ok(plan),
            Err(message) => {
                let message = redactor.redact(&message);
                run::log(&ctx, "error", &format!("plan failed: {message}"));
                if !self.config.keep_failed {
                    self.remove_checkout(&dir);
                }
                Err(Error::backend(
                    BACKEND,
                    format!("plan `{}` for `{key}`", request.source),
                    message,
                ))
            }
        }
    }

    fn context<'a>(
        &'a self,
        dir: &'a KeyDir,
        redactor: &'a Arc<Redactor>,
        running: &'a Arc<Running>,
    ) -> Context<'a> {
        Context {
            binary: &self.config.binary,
            env: &self.config.env,
            grace: self.config.grace,
            dir,
            redactor,
            running,
        }
    }

    /// Exports, checks the root, runs `init`, `plan` and `show`, and saves the summary.
    async fn plan_fresh(
        &self,
        request: &InfraRequest,
        dir: &KeyDir,
        ctx: &Context<'_>,
    ) -> std::result::Result<InfraPlan, String> {
        let checkout = dir.checkout();
        let repo = self.config.repo.clone();
        let (commit, to) = (request.commit.clone(), checkout.clone());
        tokio::task::spawn_blocking(move || repo.export(&commit, to))
            .await
            .map_err(|e| format!("the export of commit {} stopped: {e}", request.commit))?
            .map_err(|e| e.to_string())?;
        let root = root_dir(&checkout, &request.source)?;
        let inside = match (root.canonicalize(), checkout.canonicalize()) {
            (Ok(root), Ok(checkout)) => root.is_dir() && root.starts_with(checkout),
            _ => false,
        };
        if !inside {
            return Err(format!(
                "the Terraform root `{}` is not a folder of commit {}",
                request.source, request.commit
            ));
        }
        let scan = RootScan::read(&root)
            .map_err(|e| format!("cannot read the Terraform root `{}`: {e}", request.source))?;
        scan.check_backend(&request.source)?;
        scan.check_variables(&request.source, &variable_names(request)?)?;
        let vars = tf_vars(request)?;
        let mut init: Vec<OsString> =
            vec!["init".into(), "-input=false".into(), "-no-color".into()];
        init.extend(self.backend_setup(request, &root)?);
        let failed = |f: Failed| f.0;
        let cwd = root.as_path();
        run::run(ctx, command("init", init, cwd, Vec::new(), false))
            .await
            .map_err(failed)?;
        let plan_file = dir.plan_file();
        let mut out = OsString::from("-out=");
        out.push(&plan_file);
        let plan = vec![
            "plan".into(),
            "-input=false".into(),
            "-no-color".into(),
            out,
        ];
        run::run(ctx, command("plan", plan, cwd, vars, false))
            .await
            .map_err(failed)?;
        let show = vec![
            "show".into(),
            "-no-color".into(),
            "-json".into(),
            plan_file.clone().into(),
        ];
        let json = run::run(ctx, command("show", show, cwd, Vec::new(), true))
            .await
            .map_err(failed)?;
        let changes = classify(&json).map_err(|e| e.to_string())?;
        let sha256 = file_sha256(&plan_file)
            .map_err(|e| format!("cannot read the saved plan `{}`: {e}", plan_file.display()))?;
        let id = format!("{}@{}", dir.name, &sha256[..16]);
        let plan = InfraPlan::of_changes(id, changes);
        let summary = Summary {
            plan: plan.clone(),
            sha256,
            commit: request.commit.clone(),
            source: request.source.clone(),
        };
        dir.write_summary(&summary)
            .map_err(|e| format!("cannot save the plan's summary: {e}"))?;
        run::log(
            ctx,
            "info",
            &format!(
                "saved plan {}: {} to create, {} to update, {} to destroy",
                plan.id, plan.create, plan.update, plan.delete
            ),
        );
        Ok(plan)
    }

    /// Prepares the state backend: writes the local override, or returns `init`'s
    /// `-backend-config` arguments.
    fn backend_setup(
        &self,
        request: &InfraRequest,
        root: &Path,
    ) -> std::result::Result<Vec<OsString>, String> {
        let state = &request.state;
        match &self.config.backend {
            StateBackend::Local => {
                let key = if state.key.is_empty() {
                    let k = &request.key;
                    format!("{}/{}/{}/terraform.tfstate", k.pipeline, k.stage, k.unit)
                } else {
                    state.key.clone()
                };
                let path = self
                    .config
                    .state_dir
                    .join("terraform")
                    .join("state")
                    .join(folder::safe_path(&key));
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        format!("cannot create the state folder `{}`: {e}", parent.display())
                    })?;
                }
                let text = format!(
                    "# Written by devramps: the state of this run is a local file.\n\
                     terraform {{\n  backend \"local\" {{\n    path = \"{}\"\n  }}\n}}\n",
                    hcl_escape(&path.to_string_lossy())
                );
                std::fs::write(root.join(OVERRIDE_FILE), text)
                    .map_err(|e| format!("cannot write `{OVERRIDE_FILE}`: {e}"))?;
                Ok(Vec::new())
            }
            StateBackend::S3 { endpoint } => {
                if state.bucket.is_empty() || state.key.is_empty() {
                    return Err("the S3 state backend needs the state bucket and key (the \
                                plan's naming), and the request has none"
                        .to_owned());
                }
                let mut settings = vec![
                    format!("bucket={}", state.bucket),
                    format!("key={}", state.key),
                ];
                if !state.region.is_empty() {
                    settings.push(format!("region={}", state.region));
                }
                if let Some(endpoint) = endpoint {
                    settings.push(format!("endpoint={endpoint}"));
                    settings.push("force_path_style=true".to_owned());
                    settings.push("skip_credentials_validation=true".to_owned());
                }
                Ok(settings
                    .into_iter()
                    .map(|s| OsString::from(format!("-backend-config={s}")))
                    .collect())
            }
        }
    }

    /// `apply`: the recorded outputs, or the saved plan applied.
    pub(super) async fn apply_once(
        &self,
        request: &InfraRequest,
        plan: &InfraPlan,
    ) -> Result<Outputs> {
        let key = &request.key;
        let dir = KeyDir::new(&self.config.state_dir, key);
        let lock = self.lock_of(&dir);
        let _held = lock.lock().await;
        let fail = |message: String| {
            Error::backend(
                BACKEND,
                format!("apply `{}` for `{key}`", request.source),
                message,
            )
        };
        let io = |what: &str, e: std::io::Error| io_error(key, what, &e);
        let not_saved =
            |saved: &str| fail(format!("plan {} is not the saved plan {saved}", plan.id));
        if let Some(applied) = dir.read_applied().map_err(|e| io("read the apply", e))? {
            if applied.plan_id != plan.id {
                return Err(not_saved(&applied.plan_id));
            }
            return Ok(applied.outputs);
        }
        if let Some(failed) = dir.read_failed().map_err(|e| io("read the apply", e))? {
            return Err(fail(failed.error.unwrap_or_default()));
        }
        let Some(summary) = dir
            .read_summary()
            .map_err(|e| io("read the saved plan", e))?
        else {
            return Err(not_saved(
                "(none: no plan was saved for this key; plan first)",
            ));
        };
        if summary.plan.id != plan.id {
            return Err(not_saved(&summary.plan.id));
        }
        let redactor = self.redactor(&dir);
        redactor.learn(secrets(&request.variables), "[REDACTED]");
        let record_failure = |message: String| -> Error {
            let message = redactor.redact(&message);
            let failed = Applied {
                plan_id: plan.id.clone(),
                outputs: Outputs::new(),
                error: Some(message.clone()),
            };
            if let Err(e) = dir.write_failed(&failed) {
                tracing::warn!(folder = %dir.dir.display(), error = %e, "cannot record the failed apply");
            }
            if !self.config.keep_failed {
                self.remove_checkout(&dir);
            }
            fail(message)
        };
        if dir.applying().exists() {
            // Started by an earlier run of the runner (the engine stopped). If it still runs,
            // wait for it (a cancel interrupts it) rather than take the folder from under it;
            // its result is not known either way.
            let leftover = stop::leftover(&dir).map_err(|e| io("read the running pid", e))?;
            if let Some(pgid) = leftover {
                let registration = self.register(&dir);
                registration.running.adopt(pgid);
                let ctx = self.context(&dir, &redactor, &registration.running);
                run::log(
                    &ctx,
                    "info",
                    &format!(
                        "an apply started before the engine stopped still runs (process group \
                         {pgid}): waiting for it to end"
                    ),
                );
                stop::wait_for_group(pgid).await;
            }
            return Err(record_failure(format!(
                "an earlier apply of plan {} was interrupted before it ended (the engine \
                 stopped); its result is unknown and the state may be partial: retry the stage \
                 (a new plan reconciles it)",
                plan.id
            )));
        }
        match file_sha256(&dir.plan_file()) {
            Ok(sha) if sha == summary.sha256 => {}
            Ok(_) => {
                return Err(record_failure(
                    "the saved plan file changed after it was planned".to_owned(),
                ));
            }
            Err(e) => return Err(record_failure(format!("cannot read the saved plan: {e}"))),
        }
        let root = root_dir(&dir.checkout(), &summary.source).map_err(fail)?;
        std::fs::write(dir.applying(), format!("{}\n", plan.id))
            .map_err(|e| io("record the apply's start", e))?;
        let registration = self.register(&dir);
        let ctx = self.context(&dir, &redactor, &registration.running);
        let failed = |f: Failed| f.0;
        let applied = async {
            let apply = vec![
                "apply".into(),
                "-input=false".into(),
                "-no-color".into(),
                dir.plan_file().into(),
            ];
            run::run(&ctx, command("apply", apply, &root, Vec::new(), false))
                .await
                .map_err(failed)?;
            let output = vec!["output".into(), "-no-color".into(), "-json".into()];
            let json = run::run(&ctx, command("output", output, &root, Vec::new(), true))
                .await
                .map_err(failed)?;
            read_outputs(&json)
        }
        .await;
        match applied {
            Ok((outputs, sensitive)) => {
                redactor.learn(sensitive, SENSITIVE);
                if let Err(e) = dir.redact_log(|text| redactor.redact(text)) {
                    tracing::warn!(folder = %dir.dir.display(), error = %e, "cannot redact the Terraform log");
                }
                run::log(&ctx, "info", &format!("applied plan {}", plan.id));
                let record = Applied {
                    plan_id: plan.id.clone(),
                    outputs: outputs.clone(),
                    error: None,
                };
                dir.write_applied(&record)
                    .map_err(|e| io("record the outputs", e))?;
                self.remove_checkout(&dir);
                Ok(outputs)
            }
            Err(message) => {
                run::log(
                    &ctx,
                    "error",
                    &format!("apply failed: {}", redactor.redact(&message)),
                );
                Err(record_failure(message))
            }
        }
    }

    /// Removes the checkout; a failure is only logged.
    fn remove_checkout(&self, dir: &KeyDir) {
        if let Err(e) = folder::remove_dir(&dir.checkout()) {
            tracing::warn!(folder = %dir.dir.display(), error = %e, "cannot remove the Terraform checkout");
        }
    }
}

fn command<'a>(
    name: &'static str,
    args: Vec<OsString>,
    cwd: &'a Path,
    env: Vec<(String, String)>,
    capture: bool,
) -> Command<'a> {
    Command {
        name,
        args,
        cwd,
        env,
        capture,
    }
}
