//! Pipeline-level changes: the settings, notifications, the promotion order of the stages and
//! the ephemeral environments. None of them is destructive (L18 names stages, steps and
//! artifacts only).

use super::super::model::{EphemeralEnvironment, PipelineDefinition, SlackNotifications};
use super::entities::entry;
use super::pairing::{Pairs, new_skip};
use super::values::{Fields, bracketed, text_set};
use super::{ChangeKind, ChangeSubject, DefinitionChange};

/// Records the pipeline-level changes.
pub(super) fn compare(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
    pairs: &Pairs,
    out: &mut Vec<DefinitionChange>,
) {
    let mut text = |name: &str, a: &str, b: &str| {
        Fields::new(out, ChangeSubject::Pipeline, name).text(name, Some(a), Some(b));
    };
    text("version", &old.version, &new.version);
    text(
        "cloud_provider",
        old.cloud_provider.as_str(),
        new.cloud_provider.as_str(),
    );
    text(
        "pipeline_updates_require_approval",
        old.pipeline_updates_require_approval.as_str(),
        new.pipeline_updates_require_approval.as_str(),
    );
    text("tracks", old.tracked_branch(), new.tracked_branch());

    let name = "stage_defaults.deployment_time_window";
    let window = |d: &PipelineDefinition| {
        d.stage_defaults
            .deployment_time_window
            .as_ref()
            .map(|w| w.as_str())
    };
    Fields::new(out, ChangeSubject::Pipeline, name).text(name, window(old), window(new));
    let name = "stage_defaults.infrastructure";
    Fields::new(out, ChangeSubject::Pipeline, name).value(
        name,
        old.stage_defaults.infrastructure.as_ref(),
        new.stage_defaults.infrastructure.as_ref(),
    );
    let name = "infrastructure_provider";
    Fields::new(out, ChangeSubject::Pipeline, name).text(
        name,
        old.infrastructure_provider.as_ref().map(|p| p.as_str()),
        new.infrastructure_provider.as_ref().map(|p| p.as_str()),
    );

    notifications(slack(old), slack(new), out);
    promotion_order(new, pairs, out);
    ephemeral_environments(old, new, pairs, out);
}

/// The Slack notifications of a definition.
fn slack(definition: &PipelineDefinition) -> Option<&SlackNotifications> {
    definition.notifications.as_ref()?.slack.as_ref()
}

/// `notifications.slack`: added, removed, or its channel and events.
fn notifications(
    old: Option<&SlackNotifications>,
    new: Option<&SlackNotifications>,
    out: &mut Vec<DefinitionChange>,
) {
    let name = "notifications.slack";
    let summary = |s: &SlackNotifications| format!("channel {}", s.channel.value);
    match (old, new) {
        (None, None) => {}
        (None, Some(b)) => out.push(entry(
            ChangeSubject::Pipeline,
            ChangeKind::Added,
            name,
            None,
            summary(b),
        )),
        (Some(a), None) => out.push(entry(
            ChangeSubject::Pipeline,
            ChangeKind::Removed,
            name,
            None,
            summary(a),
        )),
        (Some(a), Some(b)) => {
            let name = "notifications.slack.channel";
            Fields::new(out, ChangeSubject::Pipeline, name).text(
                name,
                Some(a.channel.as_str()),
                Some(b.channel.as_str()),
            );
            let events = |s: &SlackNotifications| {
                s.events
                    .iter()
                    .map(|e| e.as_str().to_owned())
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let name = "notifications.slack.events";
            Fields::new(out, ChangeSubject::Pipeline, name).set(
                name,
                Some(&events(a)),
                Some(&events(b)),
            );
        }
    }
}

/// `stages`: the promotion order of the stages both definitions have (a rename keeps a stage's
/// place; added and removed stages are their own changes).
fn promotion_order(new: &PipelineDefinition, pairs: &Pairs, out: &mut Vec<DefinitionChange>) {
    let before: Vec<&str> = pairs
        .stages
        .old_to_new
        .iter()
        .flatten()
        .map(|j| new.stages[*j].name.as_str())
        .collect();
    let after: Vec<&str> = new
        .stages
        .iter()
        .zip(&pairs.stages.new_to_old)
        .filter(|(_, o)| o.is_some())
        .map(|(s, _)| s.name.as_str())
        .collect();
    if before != after {
        let detail = format!(
            "promotion order {} -> {}",
            bracketed(before),
            bracketed(after)
        );
        Fields::new(out, ChangeSubject::Pipeline, "stages").push(detail, false);
    }
}

/// The environment called `name`.
fn find<'a>(list: &'a [EphemeralEnvironment], name: &str) -> Option<&'a EphemeralEnvironment> {
    list.iter().find(|e| e.name.value == name)
}

/// `ephemeral_environments.<name>`: added, removed, or their fields.
fn ephemeral_environments(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
    pairs: &Pairs,
    out: &mut Vec<DefinitionChange>,
) {
    let key = |e: &EphemeralEnvironment| format!("ephemeral_environments.{}", e.name.value);
    let summary =
        |e: &EphemeralEnvironment| format!("account {}, {}", e.account_id.value, e.region.value);
    for a in &old.ephemeral_environments {
        if find(&new.ephemeral_environments, &a.name).is_none() {
            let removed = entry(
                ChangeSubject::Pipeline,
                ChangeKind::Removed,
                &key(a),
                None,
                summary(a),
            );
            out.push(removed);
        }
    }
    for b in &new.ephemeral_environments {
        let name = key(b);
        let Some(a) = find(&old.ephemeral_environments, &b.name) else {
            out.push(entry(
                ChangeSubject::Pipeline,
                ChangeKind::Added,
                &name,
                None,
                summary(b),
            ));
            continue;
        };
        let mut fields = Fields::new(out, ChangeSubject::Pipeline, &name);
        fields.text(
            "account_id",
            Some(a.account_id.as_str()),
            Some(b.account_id.as_str()),
        );
        fields.text("region", Some(a.region.as_str()), Some(b.region.as_str()));
        fields.text(
            "on_release",
            Some(a.on_release.as_str()),
            Some(b.on_release.as_str()),
        );
        fields.map("vars", &a.vars, &b.vars);
        let (a_skip, b_skip) = (pairs.old_skip(old, &a.skip), new_skip(new, &b.skip));
        fields.set("skip", Some(&a_skip), Some(&b_skip));
        let triggers =
            |e: &EphemeralEnvironment| -> Vec<(&'static str, std::collections::BTreeSet<String>)> {
                e.triggers
                    .iter()
                    .map(|t| {
                        (
                            t.on.as_str(),
                            text_set(t.target_branches.iter().map(|b| &b.value)),
                        )
                    })
                    .collect()
            };
        if triggers(a) != triggers(b) {
            fields.push("triggers changed".to_owned(), false);
        }
        let release = |e: &EphemeralEnvironment| -> Vec<(&'static str, Option<f64>)> {
            e.release
                .iter()
                .map(|r| (r.on.as_str(), r.after_idle_hours.as_ref().map(|h| h.value)))
                .collect()
        };
        if release(a) != release(b) {
            fields.push("release changed".to_owned(), false);
        }
    }
}
