//! The invariants the simulator checks after every step (L5: one holder of a stage's lock; L6:
//! one queued revision per stage, and no stage-deployment skipped after it started), kept
//! incrementally: each `stage_state` record updates the one stage-deployment it changed, and a
//! check looks only at the stages changed since the last one. A check costs what changed, not
//! a scan of every deployment and stage.
//!
//! Only `stage_state` records change what these invariants read (a stage-deployment's state,
//! what it waits for and its attempts); a new deployment's stage-deployments start
//! `NOT_STARTED` waiting for the previous stage, which breaks nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use devramps_core::lifecycle::{Event, PipelineState, Record, StageRun, StageState, WaitingFor};

/// The holders and queued revisions of every stage, and what changed since the last check.
#[derive(Debug, Default)]
pub(crate) struct Invariants {
    /// By stage: the revisions whose stage-deployment holds the stage's lock.
    holders: HashMap<String, BTreeSet<u64>>,
    /// By stage: the revisions queued for it.
    queued: HashMap<String, BTreeSet<u64>>,
    /// The stage-deployments changed since the last check, by stage.
    touched: HashMap<String, BTreeSet<u64>>,
}

/// Whether a stage-deployment is queued for its stage.
fn is_queued(run: &StageRun) -> bool {
    run.state == StageState::NotStarted
        && matches!(
            run.waiting_for,
            Some(WaitingFor::Lock | WaitingFor::TimeWindow | WaitingFor::Blocker)
        )
}

/// Puts `revision` in `set` or takes it out.
fn mark(set: &mut BTreeSet<u64>, revision: u64, member: bool) {
    if member {
        set.insert(revision);
    } else {
        set.remove(&revision);
    }
}

impl Invariants {
    /// The invariants of `state` (every stage-deployment counts as changed).
    pub(crate) fn of_state(state: &PipelineState) -> Self {
        let mut invariants = Invariants::default();
        let mut names = HashSet::new();
        for deployment in state.deployments.values() {
            names.clear();
            for run in &deployment.stages {
                // A stage is looked up by name: the first stage-deployment of that name counts.
                if names.insert(run.name.as_str()) {
                    invariants.update(deployment.revision, run);
                }
            }
        }
        invariants
    }

    /// Notes the stage-deployment `record` changed, once `state` has applied it.
    pub(crate) fn note(&mut self, state: &PipelineState, record: &Record) {
        if let Event::StageState {
            revision, stage, ..
        } = &record.event
            && let Some(run) = state.run(*revision, stage)
        {
            self.update(*revision, run);
        }
    }

    fn update(&mut self, revision: u64, run: &StageRun) {
        let stage = &run.name;
        if let Some(set) = self.holders.get_mut(stage) {
            mark(set, revision, run.state.holds_lock());
        } else if run.state.holds_lock() {
            self.holders
                .insert(stage.clone(), BTreeSet::from([revision]));
        }
        if let Some(set) = self.queued.get_mut(stage) {
            mark(set, revision, is_queued(run));
        } else if is_queued(run) {
            self.queued
                .insert(stage.clone(), BTreeSet::from([revision]));
        }
        match self.touched.get_mut(stage) {
            Some(set) => {
                set.insert(revision);
            }
            None => {
                self.touched
                    .insert(stage.clone(), BTreeSet::from([revision]));
            }
        }
    }

    /// The breaches among the stages changed since the last check, one message each, in the
    /// order a scan of the whole state gives them: by stage in the state's stage order, and in
    /// a stage the stage-deployments skipped after they started (by revision), then L5, then
    /// L6. A breach that lasts is found again each time its stage changes; callers report
    /// each message once.
    pub(crate) fn check(&mut self, state: &PipelineState) -> Vec<String> {
        let touched = std::mem::take(&mut self.touched);
        let mut found: Vec<(&str, Vec<String>)> = Vec::new();
        for (stage, revisions) in &touched {
            let mut breaches = Vec::new();
            for &revision in revisions {
                if let Some(run) = state.run(revision, stage)
                    && run.state == StageState::Skipped
                    && run.attempt > 0
                {
                    breaches.push(format!(
                        "L6: revision {revision} is SKIPPED in `{stage}` after it started there"
                    ));
                }
            }
            if let Some(holders) = self.holders.get(stage)
                && holders.len() > 1
            {
                breaches.push(format!(
                    "L5: stage `{stage}` is held by revisions {} at once",
                    list(holders)
                ));
            }
            if let Some(queued) = self.queued.get(stage)
                && queued.len() > 1
            {
                breaches.push(format!(
                    "L6: stage `{stage}` has revisions {} queued at once",
                    list(queued)
                ));
            }
            if !breaches.is_empty() {
                found.push((stage.as_str(), breaches));
            }
        }
        if found.len() > 1 {
            // Only then does the order of stages matter (and cost a look at every stage).
            let order: HashMap<&str, usize> = stage_names(state)
                .into_iter()
                .enumerate()
                .map(|(i, name)| (name, i))
                .collect();
            found.sort_by_key(|(stage, _)| order.get(stage).copied().unwrap_or(usize::MAX));
        }
        found.into_iter().flat_map(|(_, b)| b).collect()
    }
}

/// Every stage of the state: the newest definition's order, then stages only older
/// definitions had (in name order).
pub(crate) fn stage_names(state: &PipelineState) -> Vec<&str> {
    let ordered: HashSet<&str> = state.stage_order.iter().map(String::as_str).collect();
    let mut names: Vec<&str> = state.stage_order.iter().map(String::as_str).collect();
    names.extend(
        state
            .stages
            .keys()
            .map(String::as_str)
            .filter(|s| !ordered.contains(s)),
    );
    names
}

fn list(revisions: &BTreeSet<u64>) -> String {
    revisions
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The L5 and L6 breaches of `state`, one message each.
pub(crate) fn invariant_breaches(state: &PipelineState) -> Vec<String> {
    Invariants::of_state(state).check(state)
}

/// The L5 and L6 breaches of a pipeline's history: its records are folded one by one from an
/// empty state of pipeline `slug`, and the invariants the simulator checks (the report's
/// `violations`) are checked after each record. Each breach is reported once, at the first
/// record that shows it, as `seq N: <breach>`.
pub fn history_violations(slug: &str, records: &[Record]) -> Vec<String> {
    let mut state = PipelineState::new(slug);
    let mut invariants = Invariants::default();
    let mut seen = BTreeSet::new();
    let mut violations = Vec::new();
    for (seq, record) in (1_u64..).zip(records) {
        state.apply(record);
        invariants.note(&state, record);
        for breach in invariants.check(&state) {
            if seen.insert(breach.clone()) {
                violations.push(format!("seq {seq}: {breach}"));
            }
        }
    }
    violations
}
