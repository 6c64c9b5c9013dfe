//! `devramps plan`: synthesizes the deployment plan of one pipeline at one commit of a git
//! repository, as a push would (L3), without running anything.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use devramps_core::Error;
use devramps_core::backend::{SourceRepository, SourceRepositoryExt};
use devramps_core::expr::{Organization, PipelineInfo, Trigger};
use devramps_core::pipeline::{
    PIPELINE_DIR, PIPELINE_FILE, PipelineDefinition, check, validate_slug,
};
use devramps_core::plan::{Changes, Plan, SynthesisInput, synthesize};
use devramps_git::GitRepository;
use serde::Serialize;

use crate::output::{Format, Status, emit, usage_error};
use crate::plan_definition::{DefinitionReport, definition_changes};
use crate::report::{JsonDiagnostic, PipelineReport, json_diagnostics};

/// The long description of `devramps plan` (`--help`).
pub(crate) const LONG_ABOUT: &str = "Synthesize the deployment plan of one pipeline at one \
        commit, as a push would, without running anything.\n\n\
        The definition is read from `.devramps/<SLUG>/pipeline.yaml` at --commit (default HEAD) \
        in the git repository holding --repo (default `.`); the work tree and uncommitted \
        changes are not looked at. Without --pipeline, the only pipeline at that commit is \
        used; when there are several, choose one.\n\n\
        Which artifacts are rebuilt depends on the files changed between --base and --commit \
        (default base: the commit's first parent; a root commit has no previous build, so every \
        artifact is built; a parent missing from a shallow clone makes the changes unknown, so \
        every artifact is built). --changed gives the changed files instead (repository paths; \
        a missing leading `/` is added) and the history is not compared: every artifact counts \
        as built at --base, else at the first parent, else at the commit itself, so only the \
        given paths decide; `--changed` with no path means nothing changed.\n\n\
        trigger.branch is a branch whose tip is the commit (the tracked branch if it is one, \
        then the checked-out branch, then the first by name; remote-tracking branches when no \
        local one matches), else the tracked branch (`tracks`, default main). trigger.tag is a \
        tag pointing at the commit (the first by name), else empty. pipeline.name is the slug.\n\n\
        Text (the default) is a summary for people: the trigger, a table of artifact decisions \
        with the changed paths that caused them, then each stage with its account, region and \
        window and each step with what it waits for, `(skipped)` where the stage skips it, and \
        its parameters (secrets and step outputs as markers such as [SECRET:NAME]). JSON is the \
        stable interface: {pipeline, commit, revision, artifacts: [{id, name, type, per_stage, \
        decision, matched}], stages: [{name, account_id, region, deployment_time_window, steps: \
        [{name, id, type, after, skipped, params}]}]}.\n\n\
        With --base, the plan also shows what changed in the pipeline's definition since the \
        base commit, classified as lifecycle rule L18 does: DESTRUCTIVE when a stage, step or \
        artifact is removed or renamed or a stage's account_id or region changes, ADDITIVE for \
        any other change, NONE when only formatting or comments differ. Text has a \
        `Definition changes since <base>` section; JSON adds definition_changes: {base, \
        classification, changes: [{subject, kind, name, renamed_from?, detail, destructive}]}, \
        or {base, error} when the definition at the base is invalid. A pipeline without a \
        definition at the base is one ADDITIVE change {subject: pipeline, kind: added}.\n\n\
        An invalid definition is reported as `devramps validate` does, with paths relative to \
        the repository: in text on stdout, in JSON as {pipeline, commit, path, valid: false, \
        diagnostics: [{severity, code, message, path, line, column, help?}]}. Warnings of a \
        valid definition go to stderr, so stdout holds only the plan.\n\n\
        With --step-registry DIR (repeatable), CUSTOM:* params are checked against the \
        parameter schemas of the registries' step types as `devramps validate` does (E0220, \
        E0221); a violation makes the definition invalid.\n\n\
        Exit codes: 0 the plan was printed; 1 the definition is invalid or synthesis failed; 2 \
        --repo is not in a git repository, a revision is unknown, the commit has no (such) \
        pipeline or several without --pipeline, the definition cannot be read, a step registry \
        cannot be read, or a usage error.";

/// The examples shown after the help of `devramps plan`.
pub(crate) const AFTER_HELP: &str = "Examples:\n  \
        devramps plan                                   # HEAD against its parent\n  \
        devramps plan --pipeline api --commit v1.4.0 --base v1.3.0\n  \
        devramps plan --changed /services/api/main.rs   # what would this change rebuild?\n  \
        devramps plan --format json | jq '.artifacts[] | {id, decision}'";

/// Arguments of `devramps plan`.
#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// A folder of the git repository (its work tree, a folder inside it, or a bare
    /// repository).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) repo: PathBuf,

    /// The pipeline (its folder under `.devramps/`); needed when the commit has several.
    #[arg(long, value_name = "SLUG")]
    pub(crate) pipeline: Option<String>,

    /// The commit to plan: an id (full or abbreviated), a branch, a tag or any revision git
    /// understands.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub(crate) commit: String,

    /// The commit of the previous builds; the changed files are those between it and
    /// --commit. Default: the commit's first parent. When given, the plan also shows what
    /// changed in the definition since this commit.
    #[arg(long, value_name = "REV")]
    pub(crate) base: Option<String>,

    /// The changed files, instead of comparing commits (repository paths such as
    /// `/services/api/main.rs`; several may follow one --changed).
    #[arg(long, value_name = "PATH", num_args = 0..)]
    pub(crate) changed: Option<Vec<String>>,

    /// `trigger.revision`: the revision number of the deployment.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) revision: u64,

    /// Report format: `text` for people, `json` for tools (a stable interface).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,

    /// `organization.slug` (and `organization.name`).
    #[arg(long, value_name = "SLUG", default_value = "local")]
    pub(crate) org: String,

    /// `organization.cicd_account_id`.
    #[arg(long, value_name = "ID", default_value = "000000000000")]
    pub(crate) cicd_account_id: String,

    /// `organization.cicd_account_region`.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub(crate) cicd_region: String,

    #[arg(long = "step-registry", value_name = "DIR", help = crate::custom_params::HELP)]
    pub(crate) step_registries: Vec<PathBuf>,
}

/// Where the changed files of a plan came from, for the text summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChangeSource {
    /// The diff between `base` and the commit.
    Diff {
        /// The base commit.
        base: String,
        /// Whether it is the first parent (rather than `--base`).
        first_parent: bool,
        /// How many files changed.
        count: usize,
    },
    /// Given with `--changed`; the previous builds count as made at `base`.
    Given {
        /// The commit of the previous builds.
        base: String,
        /// How many paths were given.
        count: usize,
    },
    /// A root commit: nothing was built before.
    Root,
    /// The first parent is not in the repository (a shallow clone): changes unknown.
    MissingParent {
        /// The parent's id.
        parent: String,
    },
}

/// Everything a plan report shows besides the [`Plan`] itself.
#[derive(Clone, Debug)]
pub(crate) struct PlanContext {
    /// `trigger.*`.
    pub(crate) trigger: Trigger,
    /// `organization.*`.
    pub(crate) organization: Organization,
    /// Where the changed files came from.
    pub(crate) changes: ChangeSource,
    /// With `--base`: what changed in the definition since the base commit (L18).
    pub(crate) definition: Option<DefinitionReport>,
}

/// What came of reading the repository.
enum Outcome {
    /// A plan.
    Planned(Box<Plan>, Box<PlanContext>, PipelineReport),
    /// The definition is invalid or synthesis failed.
    Invalid {
        /// The diagnostics, with the source.
        report: PipelineReport,
        /// The planned commit.
        commit: String,
    },
}

/// Runs `devramps plan`.
pub(crate) fn run(args: &PlanArgs) -> Status {
    match futures::executor::block_on(plan(args)) {
        Err(message) => {
            usage_error(&message);
            Status::Usage
        }
        Ok(Outcome::Invalid { report, commit }) => {
            let text = match args.format {
                Format::Text => {
                    crate::render::text(std::slice::from_ref(&report), crate::output::use_color())
                }
                Format::Json => invalid_json(&report, &commit),
            };
            emit(&text, Status::Invalid)
        }
        Ok(Outcome::Planned(plan, context, warnings)) => {
            if !warnings.diagnostics.is_empty() {
                eprint!("{}", crate::render::blocks(&warnings, false));
            }
            let text = match args.format {
                Format::Text => crate::plan_text::render(&plan, &context),
                Format::Json => match plan_json(&plan, context.definition.as_ref()) {
                    Ok(mut json) => {
                        json.push('\n');
                        json
                    }
                    Err(e) => {
                        usage_error(&format!("cannot print the plan: {e}"));
                        return Status::Usage;
                    }
                },
            };
            emit(&text, Status::Success)
        }
    }
}

/// The JSON form of a plan: the plan's own keys, then `definition_changes` when there is a
/// report (without one, exactly the plan).
fn plan_json(plan: &Plan, definition: Option<&DefinitionReport>) -> serde_json::Result<String> {
    /// A plan with its definition changes, as one object.
    #[derive(Serialize)]
    struct WithChanges<'a> {
        /// The plan's keys.
        #[serde(flatten)]
        plan: &'a Plan,
        /// What changed in the definition since the base commit.
        definition_changes: &'a DefinitionReport,
    }
    match definition {
        None => serde_json::to_string_pretty(plan),
        Some(definition_changes) => serde_json::to_string_pretty(&WithChanges {
            plan,
            definition_changes,
        }),
    }
}

/// Reads the repository and synthesizes the plan. `Err` is a message for exit code 2.
async fn plan(args: &PlanArgs) -> Result<Outcome, String> {
    let catalog = crate::custom_params::load(&args.step_registries)?;
    let repo = open(args)?;
    let commit = repo
        .resolve(&args.commit)
        .await
        .map_err(|e| revision_error(&repo, "--commit", &args.commit, &e))?;
    let slug = choose_pipeline(&repo, &commit, args.pipeline.as_deref()).await?;
    let path = format!("{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}");
    let text = repo
        .pipeline_text(&commit, &slug)
        .await
        .map_err(|e| format!("cannot read `{path}` at commit {commit}: {e}"))?;

    let checked = check(&text);
    let mut report = PipelineReport {
        path,
        slug: slug.clone(),
        source: Some(text),
        diagnostics: validate_slug(&slug).err().into_iter().collect(),
    };
    report.diagnostics.extend(checked.diagnostics);
    if let (Some(catalog), Some(text)) = (&catalog, &report.source) {
        report
            .diagnostics
            .extend(crate::custom_params::check(text, catalog));
        report
            .diagnostics
            .sort_by_key(|d| (d.span.offset, d.span.line, d.span.column));
    }
    let definition = match checked.definition {
        Some(definition) if report.is_valid() => definition,
        _ => return Ok(Outcome::Invalid { report, commit }),
    };

    let trigger = Trigger {
        branch: branch(&repo, &commit, &definition)?,
        tag: repo
            .tags_at(&commit)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .unwrap_or_default(),
        sha: commit.clone(),
        revision: args.revision,
    };
    let (previous_builds, changes, source) = changes(args, &repo, &commit, &definition).await?;
    let definition_report = match &args.base {
        Some(rev) => {
            let base = repo
                .resolve(rev)
                .await
                .map_err(|e| revision_error(&repo, "--base", rev, &e))?;
            Some(definition_changes(&repo, &base, &slug, &definition).await?)
        }
        None => None,
    };
    let organization = Organization {
        name: args.org.clone(),
        slug: args.org.clone(),
        cicd_account_id: args.cicd_account_id.clone(),
        cicd_account_region: args.cicd_region.clone(),
    };
    let input = SynthesisInput {
        pipeline: PipelineInfo::from_slug(slug),
        organization: organization.clone(),
        trigger: trigger.clone(),
        previous_builds,
        previous_stage_builds: Default::default(),
        changes,
    };
    let source_text = report.source.as_deref();
    match synthesize(&definition, source_text, &input) {
        Ok(plan) => {
            let context = PlanContext {
                trigger,
                organization,
                changes: source,
                definition: definition_report,
            };
            Ok(Outcome::Planned(Box::new(plan), Box::new(context), report))
        }
        Err(diagnostics) => {
            report.diagnostics.extend(diagnostics.0);
            Ok(Outcome::Invalid { report, commit })
        }
    }
}

/// Opens the repository holding `--repo`.
fn open(args: &PlanArgs) -> Result<GitRepository, String> {
    open_repo(&args.repo)
}

/// Opens the git repository holding `dir`, or says why not (with help).
pub(crate) fn open_repo(dir: &std::path::Path) -> Result<GitRepository, String> {
    if !dir.exists() {
        return Err(format!("`{}` does not exist", dir.display()));
    }
    GitRepository::discover(dir).map_err(|e| match e {
        Error::NotFound { .. } => format!(
            "`{}` is not in a git repository (no `.git` in it or in the folders above)\n  \
             help: pass the repository's folder with --repo DIR, or create one with `git init`",
            dir.display()
        ),
        other => format!(
            "cannot open the git repository at `{}`: {other}",
            dir.display()
        ),
    })
}

/// The message for a revision given with `option` that cannot be resolved.
pub(crate) fn revision_error(repo: &GitRepository, option: &str, rev: &str, e: &Error) -> String {
    match e {
        Error::NotFound { .. } if rev == "HEAD" => format!(
            "the repository at `{}` has no commits yet (HEAD does not name a commit)\n  \
             help: commit first, or name a commit with {option}",
            repo.path().display()
        ),
        Error::NotFound { .. } => format!(
            "unknown revision `{rev}` ({option}) in the repository at `{}`\n  \
             help: give a commit id, a branch or a tag; `git log --oneline --all` lists commits",
            repo.path().display()
        ),
        other => format!("cannot resolve `{rev}` ({option}): {other}"),
    }
}

/// The slug of the pipeline to plan: `--pipeline`, else the only one at the commit.
pub(crate) async fn choose_pipeline(
    repo: &GitRepository,
    commit: &str,
    wanted: Option<&str>,
) -> Result<String, String> {
    let slugs = repo
        .pipeline_slugs(commit)
        .await
        .map_err(|e| format!("cannot list the pipelines at commit {commit}: {e}"))?;
    let looked = format!("{PIPELINE_DIR}/*/{PIPELINE_FILE}");
    let available = if slugs.is_empty() {
        String::new()
    } else {
        format!(
            "\n  help: the pipelines at this commit are: {}",
            slugs.join(", ")
        )
    };
    match (wanted, slugs.as_slice()) {
        (Some(slug), _) if slugs.iter().any(|s| s == slug) => Ok(slug.to_owned()),
        (Some(slug), _) => Err(format!(
            "no pipeline `{slug}` at commit {commit} (no `{PIPELINE_DIR}/{slug}/{PIPELINE_FILE}`)\
             {available}"
        )),
        (None, []) => Err(format!(
            "no pipeline at commit {commit} (looked for `{looked}`)"
        )),
        (None, [one]) => Ok(one.clone()),
        (None, _) => Err(format!(
            "the commit {commit} has {} pipelines: {}\n  help: choose one with --pipeline SLUG",
            slugs.len(),
            slugs.join(", ")
        )),
    }
}

/// `trigger.branch`: a branch whose tip is the commit, else the tracked branch.
fn branch(
    repo: &GitRepository,
    commit: &str,
    definition: &PipelineDefinition,
) -> Result<String, String> {
    let tracked = definition.tracked_branch();
    let mut candidates = repo.branches_at(commit).map_err(|e| e.to_string())?;
    if candidates.is_empty() {
        candidates = repo.remote_branches_at(commit).map_err(|e| e.to_string())?;
    }
    let head = repo.head_branch();
    let chosen = candidates
        .iter()
        .find(|b| *b == tracked)
        .or_else(|| {
            candidates
                .iter()
                .find(|b| Some(b.as_str()) == head.as_deref())
        })
        .or_else(|| candidates.first());
    Ok(chosen.map_or_else(|| tracked.to_owned(), Clone::clone))
}

/// The previous builds and changed paths synthesis decides from, and where they came from.
async fn changes(
    args: &PlanArgs,
    repo: &GitRepository,
    commit: &str,
    definition: &PipelineDefinition,
) -> Result<(BTreeMap<String, String>, Changes, ChangeSource), String> {
    let built_at = |base: &str| -> BTreeMap<String, String> {
        definition
            .artifacts
            .iter()
            .map(|a| (a.id.value.clone(), base.to_owned()))
            .collect()
    };
    let base = match &args.base {
        Some(rev) => Some(
            repo.resolve(rev)
                .await
                .map_err(|e| revision_error(repo, "--base", rev, &e))?,
        ),
        None => None,
    };
    let parent = || async {
        repo.first_parent(commit)
            .await
            .map_err(|e| format!("cannot read the parent of commit {commit}: {e}"))
    };

    if let Some(given) = &args.changed {
        let paths = normalize(given);
        let base = match base {
            Some(base) => base,
            None => parent().await?.unwrap_or_else(|| commit.to_owned()),
        };
        let source = ChangeSource::Given {
            base: base.clone(),
            count: paths.len(),
        };
        return Ok((built_at(&base), Changes::since(base, paths), source));
    }
    let (base, first_parent) = match base {
        Some(base) => (base, false),
        None => match parent().await? {
            Some(parent) => (parent, true),
            None => return Ok((BTreeMap::new(), Changes::unknown(), ChangeSource::Root)),
        },
    };
    match repo.changed_paths(&base, commit).await {
        Ok(paths) => {
            let source = ChangeSource::Diff {
                base: base.clone(),
                first_parent,
                count: paths.len(),
            };
            Ok((built_at(&base), Changes::since(base, paths), source))
        }
        Err(Error::NotFound { .. }) if first_parent => Ok((
            built_at(&base),
            Changes::unknown(),
            ChangeSource::MissingParent { parent: base },
        )),
        Err(e) => Err(format!("cannot compare commit {base} with {commit}: {e}")),
    }
}

/// `--changed` paths as repository paths: a leading `/`, no trailing one, sorted, once each.
fn normalize(paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = paths
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(|p| format!("/{p}"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The JSON report of an invalid definition (keys in this order).
#[derive(Debug, Serialize)]
struct JsonInvalid<'a> {
    /// The slug.
    pipeline: &'a str,
    /// The planned commit.
    commit: &'a str,
    /// The definition's path in the repository.
    path: &'a str,
    /// Always `false`.
    valid: bool,
    /// Every problem, as in `devramps validate`.
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

/// The JSON report of an invalid definition, pretty-printed, ending with a newline.
fn invalid_json(report: &PipelineReport, commit: &str) -> String {
    let json = JsonInvalid {
        pipeline: &report.slug,
        commit,
        path: &report.path,
        valid: false,
        diagnostics: json_diagnostics(report),
    };
    let mut text = serde_json::to_string_pretty(&json)
        .unwrap_or_else(|_| String::from("{\"valid\":false,\"diagnostics\":[]}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_get_one_leading_slash_and_are_sorted_once() {
        let given = [
            "services/api/".to_owned(),
            "/b".to_owned(),
            "b".to_owned(),
            "/".to_owned(),
        ];
        assert_eq!(normalize(&given), ["/b", "/services/api"]);
    }
}
