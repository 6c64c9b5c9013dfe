//! The definition and synthesis side of the fold: whether a definition change waits for a
//! person (L18), what synthesis takes from the state, and the re-synthesis of a released plan
//! for a roll-forward (L14).

use super::*;

/// Whether replacing the definition `old` (in force) by `new` waits for a person (L18): the
/// policy of the definition in force decides, so a change cannot switch its own approval off.
/// Returns the classification and the changes when it does.
pub(super) fn approval_needed(
    old: &PipelineDefinition,
    new: &PipelineDefinition,
) -> Option<(String, Vec<String>)> {
    let policy = old.pipeline_updates_require_approval.value;
    if policy == ApprovalPolicy::Never {
        return None;
    }
    let changes = diff_definitions(old, new);
    let waits = match policy {
        ApprovalPolicy::Always => !changes.is_empty(),
        _ => changes.is_destructive(),
    };
    waits.then(|| {
        let lines = changes
            .changes
            .iter()
            .map(|c| {
                let mark = if c.destructive { " (destructive)" } else { "" };
                format!(
                    "{} {} `{}`{mark}: {}",
                    c.kind.as_str(),
                    c.subject.as_str(),
                    c.name,
                    c.detail
                )
            })
            .collect();
        (changes.classification().as_str().to_owned(), lines)
    })
}

impl PipelineState {
    /// `pipeline.*` as synthesis takes it.
    pub(in crate::lifecycle) fn pipeline_info(&self) -> PipelineInfo {
        self.pipeline
            .clone()
            .unwrap_or_else(|| PipelineInfo::from_slug("app"))
    }

    /// `pipeline.*` and the previous builds, as synthesis takes them now; shared with the
    /// newest deployment when they are the same.
    pub(super) fn synthesis_context(&self) -> (Arc<PipelineInfo>, Arc<BTreeMap<String, String>>) {
        let pipeline = self.pipeline_info();
        let builds = crate::lifecycle::accepted::pack_builds(
            self.previous_builds(),
            self.previous_stage_builds(),
        );
        let last = self.deployments.values().next_back().map(|d| &d.accepted);
        let pipeline = match last {
            Some(a) if *a.pipeline == pipeline => a.pipeline.clone(),
            _ => Arc::new(pipeline),
        };
        let builds = match last {
            Some(a) if *a.previous_builds == builds => a.previous_builds.clone(),
            _ => Arc::new(builds),
        };
        (pipeline, builds)
    }

    /// A roll-forward to a deployment whose plan was released synthesizes it again (L14).
    pub(super) fn restore_plan(&mut self, revision: u64) {
        let Some(d) = self.deployments.get(&revision) else {
            return;
        };
        if d.plan.exists() || !d.superseded {
            return;
        }
        // With the previous builds of now, which the deployment's plan then depends on.
        let (pipeline, previous_builds) = self.synthesis_context();
        let Some(d) = self.deployments.get(&revision) else {
            return;
        };
        let accepted = Arc::new(Accepted {
            pipeline,
            previous_builds,
            ..Accepted::clone(&d.accepted)
        });
        let plan =
            synthesize_deployment(revision, &d.commit, &d.branch, &accepted, &self.stage_order)
                .plan;
        if let Some(d) = self.deployments.get_mut(&revision) {
            d.plan = PlanCell::ready(plan);
            d.accepted = accepted;
            d.superseded = false;
        }
    }
}
