//! The changes of artifacts, stages and steps: removed, renamed, added, changed fields.

use std::collections::BTreeSet;

use super::super::graph::StepGraph;
use super::super::model::{Artifact, PipelineDefinition, Stage, Step};
use super::pairing::{Pairs, new_skip};
use super::values::{Fields, bracketed, labelled, text_set};
use super::{ChangeKind, ChangeSubject, DefinitionChange};

/// A step's written id.
fn step_id(step: &Step) -> Option<&str> {
    step.id.as_ref().map(|id| id.value.as_str())
}

/// A removed, added or renamed thing; removing or renaming a stage, step or artifact is
/// destructive (L18), anything else at the pipeline level is not.
pub(super) fn entry(
    subject: ChangeSubject,
    kind: ChangeKind,
    name: &str,
    renamed_from: Option<&str>,
    detail: String,
) -> DefinitionChange {
    DefinitionChange {
        subject,
        kind,
        name: name.to_owned(),
        renamed_from: renamed_from.map(str::to_owned),
        stage: None,
        detail,
        destructive: subject != ChangeSubject::Pipeline
            && matches!(kind, ChangeKind::Removed | ChangeKind::Renamed),
    }
}

/// The changes of the artifacts.
pub(super) fn artifacts(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
    pairs: &Pairs,
    out: &mut Vec<DefinitionChange>,
) {
    let pairing = &pairs.artifacts;
    let summary = |a: &Artifact| format!("{}: {}", a.name.value, a.artifact_type.value);
    let label = |a: &Artifact| labelled(&a.name.value, Some(&a.id.value));
    for i in pairing.removed() {
        let a = &old.artifacts[i];
        out.push(entry(
            ChangeSubject::Artifact,
            ChangeKind::Removed,
            &a.id,
            None,
            summary(a),
        ));
    }
    for (j, b) in new.artifacts.iter().enumerate() {
        let a = match pairing.new_to_old[j] {
            None => {
                let added = entry(
                    ChangeSubject::Artifact,
                    ChangeKind::Added,
                    &b.id,
                    None,
                    summary(b),
                );
                out.push(added);
                continue;
            }
            Some((i, renamed)) => {
                let a = &old.artifacts[i];
                if renamed {
                    let detail = format!("{} -> {}", label(a), label(b));
                    out.push(entry(
                        ChangeSubject::Artifact,
                        ChangeKind::Renamed,
                        &b.id,
                        Some(&a.id),
                        detail,
                    ));
                }
                a
            }
        };
        let mut fields = Fields::new(out, ChangeSubject::Artifact, &b.id.value);
        if !matches!(pairing.new_to_old[j], Some((_, true))) {
            fields.text("name", Some(a.name.as_str()), Some(b.name.as_str()));
        }
        fields.text(
            "type",
            Some(a.artifact_type.as_str()),
            Some(b.artifact_type.as_str()),
        );
        fields.text(
            "architecture",
            a.architecture.as_ref().map(|x| x.as_str()),
            b.architecture.as_ref().map(|x| x.as_str()),
        );
        fields.text(
            "host_size",
            Some(a.host_size.as_str()),
            Some(b.host_size.as_str()),
        );
        let per_stage = |x: &Artifact| if x.per_stage.value { "true" } else { "false" };
        fields.text("per_stage", Some(per_stage(a)), Some(per_stage(b)));
        let paths = |x: &Artifact| {
            x.rebuild_when_changed
                .as_ref()
                .map(|p| text_set(p.iter().map(|s| &s.value)))
        };
        fields.set("rebuild_when_changed", paths(a).as_ref(), paths(b).as_ref());
        let deps = |x: &Artifact| text_set(x.dependencies.iter().map(|s| &s.value));
        fields.set("dependencies", Some(&deps(a)), Some(&deps(b)));
        fields.map("envs", &a.envs, &b.envs);
        fields.map("params", &a.params, &b.params);
    }
}

/// The changes of the stages (their promotion order is a pipeline setting).
pub(super) fn stages(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
    pairs: &Pairs,
    out: &mut Vec<DefinitionChange>,
) {
    let pairing = &pairs.stages;
    let summary = |s: &Stage| format!("account {}, {}", s.account_id.value, s.region.value);
    for i in pairing.removed() {
        let s = &old.stages[i];
        out.push(entry(
            ChangeSubject::Stage,
            ChangeKind::Removed,
            &s.name,
            None,
            summary(s),
        ));
    }
    for (j, b) in new.stages.iter().enumerate() {
        let Some((i, renamed)) = pairing.new_to_old[j] else {
            out.push(entry(
                ChangeSubject::Stage,
                ChangeKind::Added,
                &b.name,
                None,
                summary(b),
            ));
            continue;
        };
        let a = &old.stages[i];
        if renamed {
            let detail = format!("{} -> {}", a.name.value, b.name.value);
            out.push(entry(
                ChangeSubject::Stage,
                ChangeKind::Renamed,
                &b.name,
                Some(&a.name),
                detail,
            ));
        }
        let mut fields = Fields::new(out, ChangeSubject::Stage, &b.name.value);
        fields.text_with(
            "account_id",
            Some(a.account_id.as_str()),
            Some(b.account_id.as_str()),
            true,
        );
        fields.text_with(
            "region",
            Some(a.region.as_str()),
            Some(b.region.as_str()),
            true,
        );
        fields.text(
            "deployment_time_window",
            a.deployment_time_window.as_ref().map(|w| w.as_str()),
            b.deployment_time_window.as_ref().map(|w| w.as_str()),
        );
        fields.map("vars", &a.vars, &b.vars);
        let (a_skip, b_skip) = (pairs.old_skip(old, &a.skip), new_skip(new, &b.skip));
        fields.set("skip", Some(&a_skip), Some(&b_skip));
        fields.text(
            "auto_rollback_alarm_name",
            a.auto_rollback_alarm_name.as_ref().map(|x| x.as_str()),
            b.auto_rollback_alarm_name.as_ref().map(|x| x.as_str()),
        );
        fields.value(
            "infrastructure",
            a.infrastructure.as_ref(),
            b.infrastructure.as_ref(),
        );
    }
}

/// The changes of the steps.
pub(super) fn steps(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
    pairs: &Pairs,
    out: &mut Vec<DefinitionChange>,
) {
    let pairing = &pairs.steps;
    let label = |s: &Step| labelled(&s.name.value, step_id(s));
    let summary = |s: &Step| format!("{}: {}", label(s), s.step_type.as_str());
    for i in pairing.removed() {
        let s = &old.steps[i];
        out.push(entry(
            ChangeSubject::Step,
            ChangeKind::Removed,
            s.key(),
            None,
            summary(s),
        ));
    }
    let (old_graph, new_graph) = (StepGraph::of(old), StepGraph::of(new));
    for (j, b) in new.steps.iter().enumerate() {
        let Some((i, renamed)) = pairing.new_to_old[j] else {
            out.push(entry(
                ChangeSubject::Step,
                ChangeKind::Added,
                b.key(),
                None,
                summary(b),
            ));
            continue;
        };
        let a = &old.steps[i];
        let mut fields = if renamed {
            let detail = format!("{} -> {}", label(a), label(b));
            out.push(entry(
                ChangeSubject::Step,
                ChangeKind::Renamed,
                b.key(),
                Some(a.key()),
                detail,
            ));
            Fields::new(out, ChangeSubject::Step, b.key())
        } else {
            let mut fields = Fields::new(out, ChangeSubject::Step, b.key());
            fields.text("name", Some(a.name.as_str()), Some(b.name.as_str()));
            fields.text("id", step_id(a), step_id(b));
            fields
        };
        fields.text(
            "type",
            Some(a.step_type.as_str()),
            Some(b.step_type.as_str()),
        );
        fields.map("params", &a.params, &b.params);
        let before = pairs.old_after(&old_graph, i);
        let after: BTreeSet<String> = new_graph
            .predecessors(j)
            .into_iter()
            .map(|p| new.steps[p].key().to_owned())
            .collect();
        if before != after {
            let show = |set: &BTreeSet<String>| bracketed(set.iter().map(String::as_str));
            fields.push(
                format!("runs after {} -> {}", show(&before), show(&after)),
                false,
            );
        }
    }
}
