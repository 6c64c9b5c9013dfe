//! The fold behind [`Checker`](super::Checker): what the events so far say of every
//! stage-deployment and stage, and the rules checked at each event against it.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::report::{EventReport, Report};

use super::checks::{PipelineFacts, Violation};

/// States of a stage-deployment that hold its stage's lock (L5).
const HOLDING: &[&str] = &[
    "IN_PROGRESS",
    "CANCELLING",
    "ROLLING_BACK",
    "ROLLING_FORWARD",
];
/// States a stage-deployment ends in when it runs as its stage's current revision.
const SUCCESSES: &[&str] = &["SUCCEEDED", "ROLLED_BACK", "ROLLED_FORWARD"];
/// What a queued stage-deployment waits for (L6).
const QUEUED: &[&str] = &["LOCK", "TIME_WINDOW", "BLOCKER"];

#[derive(Debug, Default)]
struct Run {
    state: String,
    waiting: Option<String>,
    /// It held the stage's lock at some point.
    started: bool,
    /// It was retried (L11): a start from now on is a retry's, which ignores the window
    /// (a deployment cancelled while queued may be retried before it ever started).
    retried: bool,
}

impl Run {
    fn holds(&self) -> bool {
        HOLDING.contains(&self.state.as_str())
    }

    fn queued(&self) -> bool {
        self.state == "NOT_STARTED" && self.waiting.as_deref().is_some_and(|w| QUEUED.contains(&w))
    }
}

#[derive(Debug, Default)]
pub(crate) struct Fold {
    facts: PipelineFacts,
    last_revision: u64,
    runs: HashMap<(u64, String), Run>,
    holders: HashMap<String, BTreeSet<u64>>,
    queued: HashMap<String, BTreeSet<u64>>,
    blockers: HashMap<String, BTreeSet<String>>,
    /// The seq of the last removal of each (stage, blocker).
    removed: HashMap<(String, String), u64>,
    bypass: HashMap<String, u64>,
    /// (revision, stage) that ended SUCCEEDED, ROLLED_BACK or ROLLED_FORWARD.
    succeeded: HashSet<(u64, String)>,
    current: HashMap<String, u64>,
    synthesis_failed: HashSet<u64>,
    awaiting_pipeline: HashSet<u64>,
    built: HashSet<u64>,
    skipped_first: HashSet<u64>,
    patch_mode: bool,
    /// By stage: the seq of the last rollback requested there.
    rollback_requested: HashMap<String, u64>,
    /// By stage: the seq at which the running rollback started (ROLLING_BACK).
    rolling_back: HashMap<String, u64>,
    /// By stage: an alarm that must add (true) or remove (false) the ALARM blocker before the
    /// stage's next alarm change, and its seq.
    alarm_due: HashMap<String, (bool, u64)>,
    /// Stage-deployments whose next state must be CANCELLING or CANCELLED (an alarm fired
    /// while they ran), with the alarm's seq.
    cancel_due: HashMap<(u64, String), u64>,
    seen: HashSet<String>,
    found: Vec<Violation>,
}

impl Fold {
    pub(crate) fn new(facts: PipelineFacts) -> Self {
        Fold {
            facts,
            ..Fold::default()
        }
    }

    fn report(&mut self, rule: &str, seq: Option<u64>, message: String) {
        // A breach that lasts shows at every event after it: report it once.
        if self.seen.insert(format!("{rule}: {message}")) {
            self.found.push(Violation::new(rule, seq, message));
        }
    }

    fn previous_stage(&self, stage: &str) -> Option<Option<String>> {
        let stages = self.facts.stages.as_ref()?;
        let index = stages.iter().position(|s| s == stage)?;
        Some(index.checked_sub(1).map(|i| stages[i].clone()))
    }

    fn next_stage(&self, stage: &str) -> Option<String> {
        let stages = self.facts.stages.as_ref()?;
        let index = stages.iter().position(|s| s == stage)?;
        stages.get(index + 1).cloned()
    }

    fn is_first_stage(&self, stage: &str) -> bool {
        self.facts
            .stages
            .as_ref()
            .and_then(|s| s.first())
            .is_some_and(|first| first == stage)
    }

    pub(crate) fn observe(&mut self, event: &EventReport) -> Vec<Violation> {
        let seq = Some(event.seq);
        match event.kind.as_str() {
            "deployment_accepted" => self.accepted(event),
            "synthesis_failed" => {
                if let Some(revision) = event.revision {
                    self.synthesis_failed.insert(revision);
                }
            }
            "build_started" => {
                if let Some(revision) = event.revision {
                    self.built.insert(revision);
                    if self.synthesis_failed.contains(&revision) {
                        self.report(
                            "L3",
                            seq,
                            format!("revision {revision} is built after its synthesis failed"),
                        );
                    }
                    // Unless a roll-forward runs it there (L14: every phase, builds too).
                    let rolled_forward = self
                        .facts
                        .stages
                        .as_ref()
                        .and_then(|s| s.first())
                        .is_some_and(|first| {
                            self.runs
                                .get(&(revision, first.clone()))
                                .is_some_and(|r| r.started)
                        });
                    if self.skipped_first.contains(&revision) && !rolled_forward {
                        self.report(
                            "L6",
                            seq,
                            format!("revision {revision} is built after it was SKIPPED in the first stage"),
                        );
                    }
                }
            }
            "stage_state" => self.stage_state(event),
            "blocker_added" | "blocker_removed" => {
                if let (Some(stage), Some(reason)) = (&event.stage, &event.reason) {
                    let blocker = reason.split(':').next().unwrap_or_default().to_owned();
                    if event.kind == "blocker_added" {
                        if blocker == "ALARM"
                            && self.alarm_due.get(stage).is_some_and(|(add, _)| *add)
                        {
                            self.alarm_due.remove(stage);
                        }
                        self.blockers
                            .entry(stage.clone())
                            .or_default()
                            .insert(blocker);
                    } else {
                        if blocker == "ALARM"
                            && self.alarm_due.get(stage).is_some_and(|(add, _)| !*add)
                        {
                            self.alarm_due.remove(stage);
                        }
                        if let Some(set) = self.blockers.get_mut(stage) {
                            set.remove(&blocker);
                        }
                        self.removed.insert((stage.clone(), blocker), event.seq);
                    }
                }
            }
            "bypassed" => {
                if let (Some(stage), Some(revision)) = (&event.stage, event.revision) {
                    self.bypass.insert(stage.clone(), revision);
                }
            }
            "emergency_requested" => self.emergency(event),
            "alarm_state" => self.alarm(event),
            "patch_released" => self.patch_mode = false,
            "pipeline_approval_required" => {
                if let Some(revision) = event.revision {
                    self.awaiting_pipeline.insert(revision);
                }
            }
            "pipeline_approved" | "pipeline_rejected" => {
                if let Some(revision) = event.revision {
                    self.awaiting_pipeline.remove(&revision);
                }
            }
            _ => {}
        }
        std::mem::take(&mut self.found)
    }

    fn accepted(&mut self, event: &EventReport) {
        let Some(revision) = event.revision else {
            return;
        };
        if revision != self.last_revision + 1 {
            self.report(
                "L1",
                Some(event.seq),
                format!(
                    "revision {revision} is accepted after revision {}",
                    self.last_revision
                ),
            );
        }
        self.last_revision = self.last_revision.max(revision);
        let patch = event
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("patch deployment"));
        if patch {
            self.patch_mode = true;
        } else if self.patch_mode {
            self.report(
                "L17",
                Some(event.seq),
                format!("revision {revision} is accepted from a push in patch mode"),
            );
        }
    }

    fn stage_state(&mut self, event: &EventReport) {
        let (Some(revision), Some(stage), Some(to)) = (event.revision, &event.stage, &event.state)
        else {
            return;
        };
        let seq = Some(event.seq);
        let key = (revision, stage.clone());
        let waiting = event.reason.as_deref().and_then(|r| {
            r.strip_prefix("waiting for ")
                .map(|w| w.split(':').next().unwrap_or(w).to_owned())
        });
        let (from, was_started, was_retried, held) = match self.runs.get(&key) {
            Some(run) => (run.state.clone(), run.started, run.retried, run.holds()),
            None => (String::new(), false, false, false),
        };
        let holds = HOLDING.contains(&to.as_str());
        let starts = holds && !held;

        if let Some(alarm) = self.cancel_due.remove(&key)
            && to != "CANCELLING"
            && to != "CANCELLED"
        {
            self.report(
                "L15",
                Some(alarm),
                format!(
                    "the alarm of `{stage}` fired while revision {revision} ran there, \
                     which then went {to} instead of being cancelled"
                ),
            );
        }
        if to == "SKIPPED" {
            if was_started {
                self.report(
                    "L6",
                    seq,
                    format!("revision {revision} is SKIPPED in `{stage}` after it started there"),
                );
            }
            if self.is_first_stage(stage) {
                self.skipped_first.insert(revision);
                if self.built.contains(&revision) {
                    self.report(
                        "L6",
                        seq,
                        format!(
                            "revision {revision} is SKIPPED in the first stage after it was built"
                        ),
                    );
                }
            }
        }
        let retry = matches!(from.as_str(), "FAILED" | "TIMED_OUT" | "CANCELLED")
            && (to == "IN_PROGRESS" || to == "NOT_STARTED");
        if retry {
            let newer: Vec<u64> = self
                .runs
                .iter()
                .filter(|((r, s), run)| {
                    *r > revision && s == stage && (run.started || run.queued())
                })
                .map(|((r, _), _)| *r)
                .collect();
            if let Some(newer) = newer.iter().min() {
                self.report(
                    "L11",
                    seq,
                    format!(
                        "revision {revision} is retried in `{stage}` although revision {newer} \
                         has started or is queued there"
                    ),
                );
            }
        }
        if starts {
            self.start(
                event,
                revision,
                stage,
                to,
                was_started || was_retried || retry,
            );
        }
        if to == "ROLLED_BACK" {
            self.rolled_back(event.seq, stage);
        }

        // Apply.
        let run = self.runs.entry(key).or_default();
        run.state = to.clone();
        run.waiting = if to == "NOT_STARTED" { waiting } else { None };
        run.started |= holds;
        run.retried |= retry;
        let (run_holds, run_queued) = (run.holds(), run.queued());
        let holders = self.holders.entry(stage.clone()).or_default();
        if run_holds {
            holders.insert(revision);
        } else {
            holders.remove(&revision);
        }
        if holders.len() > 1 {
            let list = list(holders);
            self.report(
                "L5",
                seq,
                format!("stage `{stage}` is held by revisions {list} at once"),
            );
        }
        let queued = self.queued.entry(stage.clone()).or_default();
        if run_queued {
            queued.insert(revision);
        } else {
            queued.remove(&revision);
        }
        if queued.len() > 1 {
            let list = list(queued);
            self.report(
                "L6",
                seq,
                format!("stage `{stage}` has revisions {list} queued at once"),
            );
        }
        if SUCCESSES.contains(&to.as_str()) {
            self.succeeded.insert((revision, stage.clone()));
            self.current.insert(stage.clone(), revision);
        }
        if to == "ROLLING_BACK" {
            self.rolling_back.insert(stage.clone(), event.seq);
        }
    }

    /// A stage-deployment takes its stage's lock.
    fn start(&mut self, event: &EventReport, revision: u64, stage: &str, to: &str, again: bool) {
        let seq = Some(event.seq);
        let bypassed = self.bypass.get(stage) == Some(&revision);
        if self.awaiting_pipeline.contains(&revision) {
            self.report(
                "L18",
                seq,
                format!("revision {revision} starts in `{stage}` while its definition waits for approval"),
            );
        }
        if to == "IN_PROGRESS" {
            let blockers = self.blockers.get(stage).filter(|b| !b.is_empty());
            if let Some(blockers) = blockers
                && !bypassed
            {
                let names: Vec<&str> = blockers.iter().map(String::as_str).collect();
                self.report(
                    "L9",
                    seq,
                    format!(
                        "revision {revision} starts in `{stage}` while it is blocked ({})",
                        names.join(", ")
                    ),
                );
            }
            if !again
                && !bypassed
                && let Some(window) = self.facts.windows.get(stage)
                && !window.is_open(event.at)
            {
                self.report(
                    "L8",
                    seq,
                    format!(
                        "revision {revision} starts in `{stage}` at {} outside its window {}",
                        crate::report::format_time(event.at),
                        window.as_str()
                    ),
                );
            }
            if bypassed {
                self.bypass.remove(stage);
            }
        }
        if (to == "IN_PROGRESS" || to == "ROLLING_FORWARD")
            && let Some(Some(previous)) = self.previous_stage(stage)
            && !self.succeeded.contains(&(revision, previous.clone()))
        {
            self.report(
                "L10",
                seq,
                format!(
                    "revision {revision} starts in `{stage}` ({to}) without having succeeded \
                     in `{previous}`"
                ),
            );
        }
    }

    fn emergency(&mut self, event: &EventReport) {
        let (Some(revision), Some(stage), Some(reason)) =
            (event.revision, &event.stage, &event.reason)
        else {
            return;
        };
        let seq = Some(event.seq);
        if reason.starts_with("rollback") {
            self.rollback_requested.insert(stage.clone(), event.seq);
            if !self.succeeded.contains(&(revision, stage.clone())) {
                self.report(
                    "L13",
                    seq,
                    format!(
                        "rollback of `{stage}` to revision {revision}, which never succeeded there"
                    ),
                );
            }
        } else if reason.starts_with("roll-forward") {
            if let Some(current) = self.current.get(stage)
                && revision <= *current
            {
                self.report(
                    "L14",
                    seq,
                    format!(
                        "roll-forward of `{stage}` to revision {revision}, not newer than its \
                         current revision {current}"
                    ),
                );
            }
            match self.previous_stage(stage) {
                Some(Some(previous)) if !self.succeeded.contains(&(revision, previous.clone())) => {
                    self.report(
                        "L14",
                        seq,
                        format!(
                            "roll-forward of `{stage}` to revision {revision}, which has not \
                             succeeded in `{previous}`"
                        ),
                    );
                }
                Some(None)
                    if self.synthesis_failed.contains(&revision)
                        || self.awaiting_pipeline.contains(&revision) =>
                {
                    self.report(
                        "L14",
                        seq,
                        format!(
                            "roll-forward of `{stage}` to revision {revision}, which has not \
                             passed synthesis"
                        ),
                    );
                }
                _ => {}
            }
        }
    }

    /// A rollback of `stage` ended ROLLED_BACK: the ROLLBACK blocker is on the stage and the
    /// next one (or was removed since the rollback began).
    fn rolled_back(&mut self, seq: u64, stage: &str) {
        let began = [
            self.rollback_requested.get(stage),
            self.rolling_back.get(stage),
        ]
        .into_iter()
        .flatten()
        .copied()
        .min()
        .unwrap_or(0);
        let mut stages = vec![stage.to_owned()];
        stages.extend(self.next_stage(stage));
        for blocked in stages {
            let active = self
                .blockers
                .get(&blocked)
                .is_some_and(|b| b.contains("ROLLBACK"));
            let removed = self
                .removed
                .get(&(blocked.clone(), "ROLLBACK".to_owned()))
                .is_some_and(|at| *at > began);
            if !active && !removed {
                self.report(
                    "L13",
                    Some(seq),
                    format!(
                        "the rollback of `{stage}` ended without a ROLLBACK blocker on `{blocked}`"
                    ),
                );
            }
        }
        self.rollback_requested.remove(stage);
    }

    fn alarm(&mut self, event: &EventReport) {
        let (Some(stage), Some(state)) = (&event.stage, &event.state) else {
            return;
        };
        self.alarm_overdue(stage);
        let firing = state == "ALARM";
        let holder = self
            .holders
            .get(stage)
            .and_then(|h| h.iter().next().copied());
        let active = self
            .blockers
            .get(stage)
            .is_some_and(|b| b.contains("ALARM"));
        match holder {
            None if firing && !active => {
                self.alarm_due.insert(stage.clone(), (true, event.seq));
            }
            Some(revision) if firing => {
                let running = self
                    .runs
                    .get(&(revision, stage.clone()))
                    .is_some_and(|r| r.state == "IN_PROGRESS");
                if running {
                    self.cancel_due.insert((revision, stage.clone()), event.seq);
                }
            }
            _ if !firing && active => {
                self.alarm_due.insert(stage.clone(), (false, event.seq));
            }
            _ => {}
        }
    }

    /// Reports an alarm change of `stage` whose blocker change has not come.
    fn alarm_overdue(&mut self, stage: &str) {
        if let Some((add, seq)) = self.alarm_due.remove(stage) {
            let message = if add {
                format!("the alarm of idle `{stage}` fired but no ALARM blocker was added")
            } else {
                format!("the alarm of `{stage}` returned to OK but its ALARM blocker stayed")
            };
            self.report("L15", Some(seq), message);
        }
    }

    pub(crate) fn finish(&mut self, report: &Report) -> Vec<Violation> {
        let stages: Vec<String> = self.alarm_due.keys().cloned().collect();
        for stage in stages {
            self.alarm_overdue(&stage);
        }
        for (stage, summary) in report.stages.iter() {
            let expected = self.current.get(stage).copied();
            if summary.current_revision != expected {
                self.report(
                    "L1",
                    None,
                    format!(
                        "stage `{stage}` reports revision {} as current, but its log says {}",
                        show(summary.current_revision),
                        show(expected)
                    ),
                );
            }
        }
        for execution in &report.executions {
            if execution.starts > 1 {
                self.report(
                    "L20",
                    None,
                    format!(
                        "execution {} was started {} times",
                        execution.key, execution.starts
                    ),
                );
            }
        }
        std::mem::take(&mut self.found)
    }
}

fn show(revision: Option<u64>) -> String {
    revision.map_or_else(|| "none".to_owned(), |r| r.to_string())
}

fn list(revisions: &BTreeSet<u64>) -> String {
    let items: Vec<String> = revisions.iter().map(u64::to_string).collect();
    items.join(" and ")
}
