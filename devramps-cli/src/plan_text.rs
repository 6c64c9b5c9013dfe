//! The text form of a plan: a summary for people (the JSON form is the stable interface).
//! With `--base`, a `Definition changes since <base>` section (see `plan_definition`) comes
//! between the header and the artifacts.
//!
//! ```text
//! pipeline api
//!   commit    fdd587cf8baee1b8cb747bd16ae1b07d4d828544
//!   revision  1
//!   trigger   branch main, no tag
//!   changes   1 file changed since aea9484c9801 (first parent)
//!   org       local (CI/CD account 000000000000, us-east-1)
//!
//! artifacts
//!   DECISION  ARTIFACT                     TYPE                   WHY
//!   REBUILD   API Image (api-image)        DEVRAMPS:DOCKER:BUILD  changed: /services/api/main.rs
//!   REUSE     Web Bundle (web), per stage  DEVRAMPS:BUNDLE:BUILD  unchanged since aea9484c9801
//!
//! stage staging: account 111111111111, us-east-1, window NONE
//!   - Infrastructure (infra): DEVRAMPS:TERRAFORM:SYNTHESIZE
//!       source: /infra
//!       variables: {"env":"staging","replicas":1}
//!   - Deploy API (deploy): DEVRAMPS:ECS:DEPLOY, after infra
//!       cluster_name: [OUTPUT:infra/cluster_name]
//!   - Migrate (migrate): CUSTOM:DB:MIGRATE, after infra
//!       database_url: [STAGE_SECRET:DATABASE_URL]
//!   - Bake (bake): DEVRAMPS:APPROVAL:BAKE, after deploy, migrate (skipped)
//!       duration_minutes: 30
//! ```

use std::fmt::Write as _;

use devramps_core::plan::{ArtifactPlan, Decision, Plan, RebuildReason, StepPlan};
use serde_json::Value as Json;

use crate::plan::{ChangeSource, PlanContext};
use crate::render::clean;

/// How many matched paths are listed before `(+N more)`.
const MATCHED_SHOWN: usize = 3;

/// The text form of `plan`.
pub(crate) fn render(plan: &Plan, context: &PlanContext) -> String {
    let mut out = String::new();
    header(&mut out, plan, context);
    out.push('\n');
    if let Some(report) = &context.definition {
        crate::plan_definition::render(&mut out, report);
    }
    artifacts(&mut out, plan);
    for stage in &plan.stages {
        out.push('\n');
        let _ = writeln!(
            out,
            "stage {}: account {}, {}, window {}",
            clean(&stage.name),
            clean(&stage.account_id),
            clean(&stage.region),
            stage.deployment_time_window
        );
        for step in &stage.steps {
            self::step(&mut out, step);
        }
    }
    out
}

/// The first lines: what is planned, and from what.
fn header(out: &mut String, plan: &Plan, context: &PlanContext) {
    let trigger = &context.trigger;
    let tag = if trigger.tag.is_empty() {
        "no tag".to_owned()
    } else {
        format!("tag {}", clean(&trigger.tag))
    };
    let changes = match &context.changes {
        ChangeSource::Diff {
            base,
            first_parent,
            count,
        } => format!(
            "{} since {}{}",
            plural(*count, "file changed", "files changed"),
            short(base),
            if *first_parent { " (first parent)" } else { "" }
        ),
        ChangeSource::Given { base, count } => format!(
            "{} given with --changed (previous builds at {})",
            plural(*count, "path", "paths"),
            short(base)
        ),
        ChangeSource::Root => "none known: a root commit, every artifact is built".to_owned(),
        ChangeSource::MissingParent { parent } => format!(
            "unknown: the parent {} is not in the repository (a shallow clone?), every \
             artifact is built",
            short(parent)
        ),
    };
    let org = &context.organization;
    let _ = writeln!(out, "pipeline {}", clean(&plan.pipeline));
    let _ = writeln!(out, "  commit    {}", plan.commit);
    let _ = writeln!(out, "  revision  {}", plan.revision);
    let _ = writeln!(out, "  trigger   branch {}, {tag}", clean(&trigger.branch));
    let _ = writeln!(out, "  changes   {changes}");
    let _ = writeln!(
        out,
        "  org       {} (CI/CD account {}, {})",
        clean(&org.slug),
        clean(&org.cicd_account_id),
        clean(&org.cicd_account_region)
    );
}

/// The artifacts table: decision, artifact, type, why.
fn artifacts(out: &mut String, plan: &Plan) {
    out.push_str("artifacts\n");
    if plan.artifacts.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let mut rows = vec![[
        "DECISION".to_owned(),
        "ARTIFACT".to_owned(),
        "TYPE".to_owned(),
        "WHY".to_owned(),
    ]];
    for artifact in &plan.artifacts {
        let decision = match artifact.decision {
            Decision::Rebuild => "REBUILD",
            Decision::Reuse => "REUSE",
        };
        let mut name = labelled(&artifact.name, Some(&artifact.id));
        if artifact.per_stage {
            name.push_str(", per stage");
        }
        rows.push([
            decision.to_owned(),
            name,
            artifact.artifact_type.to_string(),
            why(artifact),
        ]);
    }
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    for row in &rows {
        let _ = writeln!(
            out,
            "  {:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
}

/// Why an artifact is rebuilt or reused.
fn why(artifact: &ArtifactPlan) -> String {
    match artifact.reason {
        RebuildReason::NoPreviousBuild => "no previous build".to_owned(),
        RebuildReason::NoRebuildWhenChanged => "always built (no rebuild_when_changed)".to_owned(),
        RebuildReason::ChangesUnknown => "changes unknown".to_owned(),
        RebuildReason::PathsChanged => {
            let shown: Vec<String> = artifact
                .matched
                .iter()
                .take(MATCHED_SHOWN)
                .map(|p| clean(p).into_owned())
                .collect();
            let more = artifact.matched.len().saturating_sub(MATCHED_SHOWN);
            let mut text = format!("changed: {}", shown.join(", "));
            if more > 0 {
                let _ = write!(text, " (+{more} more)");
            }
            text
        }
        RebuildReason::Unchanged => format!("unchanged since {}", short(&artifact.build_commit)),
    }
}

/// One step: its name, type, what it waits for, whether skipped, then its parameters.
fn step(out: &mut String, step: &StepPlan) {
    let mut line = format!(
        "  - {}: {}",
        labelled(&step.name, step.id.as_deref()),
        clean(&step.step_type)
    );
    if !step.after.is_empty() {
        let after: Vec<String> = step.after.iter().map(|a| clean(a).into_owned()).collect();
        let _ = write!(line, ", after {}", after.join(", "));
    }
    if step.skipped {
        line.push_str(" (skipped)");
    }
    let _ = writeln!(out, "{line}");
    match step.params.to_json() {
        Json::Object(params) => {
            for (key, value) in &params {
                let _ = writeln!(out, "      {}: {}", clean(key), compact(value));
            }
        }
        Json::Null => {}
        other => {
            let _ = writeln!(out, "      {}", compact(&other));
        }
    }
}

/// A parameter value on one line: text as it is (markers such as `[SECRET:N]` included),
/// quoted when it holds line breaks or control characters or is empty; anything else as
/// compact JSON.
fn compact(value: &Json) -> String {
    match value {
        Json::String(text) if !text.is_empty() && !text.chars().any(char::is_control) => {
            text.clone()
        }
        other => other.to_string(),
    }
}

/// `Name (id)`, or `Name` when there is no id or it equals the name.
fn labelled(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) if id != name => format!("{} ({})", clean(name), clean(id)),
        _ => clean(name).into_owned(),
    }
}

/// The first 12 characters of a commit id.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// `1 file changed`, `3 files changed`.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_compact_and_text_stays_readable() {
        assert_eq!(compact(&Json::from("[SECRET:KEY]")), "[SECRET:KEY]");
        assert_eq!(compact(&Json::from("a\nb")), "\"a\\nb\"");
        assert_eq!(compact(&Json::from("")), "\"\"");
        assert_eq!(compact(&Json::from(3)), "3");
        assert_eq!(
            compact(&serde_json::json!({"env": "staging", "replicas": 1})),
            "{\"env\":\"staging\",\"replicas\":1}"
        );
    }

    #[test]
    fn labels_and_short_ids() {
        assert_eq!(labelled("Bake", Some("bake")), "Bake (bake)");
        assert_eq!(labelled("deploy", Some("deploy")), "deploy");
        assert_eq!(labelled("Deploy", None), "Deploy");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
