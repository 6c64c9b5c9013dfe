//! The fold of `deployment_accepted`: the deployment synthesized and its stages created, and
//! the definition in force moved on unless the change waits for a person (L18).

use super::*;

impl PipelineState {
    /// Applies a `deployment_accepted` record (any other record is ignored).
    pub(super) fn apply_accepted(&mut self, record: &Record) {
        let Event::DeploymentAccepted {
            revision,
            commit,
            branch,
            tag,
            delivery,
            definition,
            changed,
            organization,
            patch,
        } = &record.event
        else {
            return;
        };
        self.last_revision = *revision;
        self.newest_commit = Some(commit.clone());
        if let Some(d) = delivery {
            self.deliveries.insert(d.clone());
        }
        if *patch {
            self.patch_mode = true;
        }
        let text: Arc<str> = match &self.last_definition {
            Some(last) if **last == **definition => last.clone(),
            _ => Arc::from(definition.as_str()),
        };
        self.last_definition = Some(text.clone());
        let (pipeline, previous_builds) = self.synthesis_context();
        let accepted = Arc::new(Accepted {
            tag: tag.clone(),
            definition: text,
            changed: changed.clone(),
            organization: organization.clone(),
            pipeline,
            previous_builds,
        });
        let Synthesized {
            plan,
            errors,
            stages: stage_names,
            definition: parsed,
        } = synthesize_deployment(*revision, commit, branch, &accepted, &self.stage_order);
        // L18: a changed definition may wait for a person before it is in force.
        let unchanged = self.definition_text.as_deref() == Some(&*accepted.definition);
        let approval = match (&parsed, &self.definition) {
            (Some(new), Some(old)) if !unchanged => approval_needed(old, new),
            _ => None,
        };
        let awaiting = if approval.is_some() {
            parsed.clone()
        } else {
            None
        };
        if approval.is_none() && parsed.is_some() && !unchanged {
            self.definition = parsed;
            self.definition_text = Some(accepted.definition.clone());
        }
        if plan.is_some() && approval.is_none() {
            self.stage_order = stage_names.clone();
        }
        for name in &stage_names {
            self.stages.entry(name.clone()).or_default();
        }
        let stages = stage_names
            .iter()
            .map(|name| StageRun {
                name: name.clone(),
                state: StageState::NotStarted,
                waiting_for: Some(WaitingFor::PreviousStage),
                superseded_by: None,
                attempt: 0,
                phase: None,
                builds: BTreeMap::new(),
                steps: Vec::new(),
                started_at: None,
            })
            .collect();
        self.deployments.insert(
            *revision,
            Deployment {
                revision: *revision,
                commit: commit.clone(),
                branch: branch.clone(),
                plan: PlanCell::ready(plan),
                synthesis_errors: errors,
                superseded: false,
                patch: *patch,
                stages,
                accepted,
                approval,
                awaiting,
                unapproved: false,
            },
        );
    }
}
