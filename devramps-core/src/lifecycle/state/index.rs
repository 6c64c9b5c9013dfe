//! Indexes derived from the fold, so that the machine's per-input work does not grow with the
//! number of stages: each stage's place in the promotion order, and the stages that have
//! something to do (a queued or running revision, or an emergency waiting for the lock).
//! Kept up to date by [`PipelineState::apply`]; never stored (a snapshot rebuilds them).

use super::*;

/// Where a stage sorts when the machine drives the stages: its place in the promotion order,
/// then (for stages only older definitions had) its name.
pub(in crate::lifecycle) type StageKey = (usize, String);

/// The stage indexes of a [`PipelineState`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(in crate::lifecycle) struct StageIndex {
    /// Each stage of `stage_order` by name: its position.
    position: BTreeMap<String, usize>,
    /// The stages with a queued or running revision or a waiting emergency, in driving order.
    busy: BTreeSet<StageKey>,
}

impl StageRuntime {
    /// Whether the machine has anything to drive in this stage: a queued or running revision,
    /// or an emergency waiting for the lock. An idle stage can start nothing by itself.
    fn is_busy(&self) -> bool {
        self.queued.is_some() || self.running.is_some() || self.emergency.is_some()
    }
}

impl StageIndex {
    /// The index of `stages` driven in `order`.
    pub(in crate::lifecycle) fn build(
        order: &[String],
        stages: &BTreeMap<String, StageRuntime>,
    ) -> Self {
        let position = order
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let mut index = StageIndex {
            position,
            busy: BTreeSet::new(),
        };
        for (name, runtime) in stages {
            index.update(name, runtime);
        }
        index
    }

    fn key(&self, stage: &str) -> StageKey {
        let position = self.position.get(stage).copied().unwrap_or(usize::MAX);
        (position, stage.to_owned())
    }

    /// Records whether `stage`, now `runtime`, is busy.
    pub(super) fn update(&mut self, stage: &str, runtime: &StageRuntime) {
        let key = self.key(stage);
        if runtime.is_busy() {
            self.busy.insert(key);
        } else {
            self.busy.remove(&key);
        }
    }

    /// The first busy stage after `after` in driving order (the first of all for `None`):
    /// stages in promotion order, then the stages only older definitions had, by name.
    pub(in crate::lifecycle) fn next_busy(&self, after: Option<&StageKey>) -> Option<&StageKey> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.busy.range((from, Unbounded)).next()
    }
}

impl PipelineState {
    /// Brings the indexes up to date after `record` was applied.
    pub(super) fn reindex(&mut self, record: &Record) {
        match &record.event {
            // These may change the promotion order (and create stages).
            Event::DeploymentAccepted { .. } | Event::PipelineApproved { .. } => {
                self.index = StageIndex::build(&self.stage_order, &self.stages);
            }
            Event::StageState { stage, .. } | Event::EmergencyRequested { stage, .. } => {
                if let Some(runtime) = self.stages.get(stage) {
                    self.index.update(stage, runtime);
                }
            }
            _ => {}
        }
    }

    /// The runtime of `stage`, borrowed when known (default when unknown): what
    /// [`PipelineState::stage`] gives, without copying its history.
    pub(in crate::lifecycle) fn runtime(&self, stage: &str) -> std::borrow::Cow<'_, StageRuntime> {
        match self.stages.get(stage) {
            Some(runtime) => std::borrow::Cow::Borrowed(runtime),
            None => std::borrow::Cow::Owned(StageRuntime::default()),
        }
    }
}
