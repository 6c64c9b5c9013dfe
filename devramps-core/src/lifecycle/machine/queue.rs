//! Queues and starts (L5–L8): a revision joining a stage's queue and superseding older ones,
//! what a queued revision waits for, starting it, abandoning later stages, and the loop that
//! does everything that can be done now.

use super::*;
use crate::lifecycle::state::StageKey;

impl Run<'_> {
    /// `revision` becomes ready for `stage` (L6): older queued revisions are superseded.
    pub(super) fn join_queue(&mut self, revision: u64, stage: &str) {
        if let Some(old) = self.state().runtime(stage).queued
            && old != revision
        {
            // Only the newest survives: an older revision arriving late (a roll-forward that
            // promotes, L14) is superseded by the newer one already waiting.
            let (loser, winner) = if old < revision {
                (old, revision)
            } else {
                (revision, old)
            };
            self.set_stage(
                Actor::System,
                loser,
                stage,
                Trigger::Supersede,
                StageDetail {
                    superseded_by: Some(winner),
                    reason: Some(format!("superseded by revision {winner}")),
                    ..StageDetail::default()
                },
            );
            self.abandon_after(loser, stage, &format!("superseded by revision {winner}"));
            if loser == revision {
                return;
            }
        }
        // A deployment waiting for approval of its definition is superseded too (L18).
        let waiting: Vec<u64> = self
            .state()
            .awaiting_approval
            .range(..revision)
            .copied()
            .filter(|r| {
                self.state()
                    .deployments
                    .get(r)
                    .and_then(|d| d.stages.first())
                    .is_some_and(|s| s.name == stage)
            })
            .collect();
        for old in waiting {
            self.set_stage(
                Actor::System,
                old,
                stage,
                Trigger::Supersede,
                StageDetail {
                    superseded_by: Some(revision),
                    reason: Some(format!("superseded by revision {revision}")),
                    ..StageDetail::default()
                },
            );
            self.abandon_after(old, stage, &format!("superseded by revision {revision}"));
        }
        // Ready for the first stage, but the definition change waits for a person (L18).
        if self.awaits_pipeline_approval(revision, stage) {
            return;
        }
        match self.blocked_by(revision, stage) {
            // Free to go: it starts at once (L7).
            None => self.set_stage(
                Actor::System,
                revision,
                stage,
                Trigger::Start,
                StageDetail::default(),
            ),
            Some(waiting) => self.wait(revision, stage, waiting),
        }
    }

    /// Why a queued `revision` cannot start in `stage` now (L7), or `None` when it can.
    fn blocked_by(&self, revision: u64, stage: &str) -> Option<WaitingFor> {
        let runtime = self.state().runtime(stage);
        // An emergency waiting for the lock goes first (L13, L14).
        if runtime.running.is_some() || runtime.emergency.is_some() {
            return Some(WaitingFor::Lock);
        }
        // A bypass lets its revision past blockers and the window, never past the lock (L9).
        if runtime.bypass == Some(revision) {
            return None;
        }
        if !runtime.blockers.is_empty() {
            return Some(WaitingFor::Blocker);
        }
        let window = self.window(revision, stage);
        if !window.is_open(self.now) {
            return Some(WaitingFor::TimeWindow);
        }
        None
    }

    fn window(&self, revision: u64, stage: &str) -> TimeWindow {
        self.state()
            .deployments
            .get(&revision)
            .and_then(|d| d.plan_stage(stage))
            .map_or(TimeWindow::None, |(_, s)| s.deployment_time_window)
    }

    /// Marks every later stage of `revision` `NOT_STARTED` / `NEVER`.
    pub(super) fn abandon_after(&mut self, revision: u64, stage: &str, reason: &str) {
        let Some(deployment) = self.state().deployments.get(&revision) else {
            return;
        };
        let later: Vec<String> = deployment
            .stages
            .iter()
            .skip_while(|s| s.name != stage)
            .skip(1)
            .filter(|s| {
                s.state == StageState::NotStarted && s.waiting_for != Some(WaitingFor::Never)
            })
            .map(|s| s.name.clone())
            .collect();
        for s in later {
            self.set_stage(
                Actor::System,
                revision,
                &s,
                Trigger::Abandon,
                StageDetail::never(reason),
            );
        }
    }

    // ----- driving (L4, L5, L7, L8, L10) -----

    /// Does everything that can be done now, until nothing changes. Each round drives the
    /// stages in promotion order (then any stage only older definitions had); idle stages (no
    /// queued or running revision, no emergency) can start nothing, so a round visits only
    /// the busy ones, including those that become busy during the round.
    pub(super) fn advance(&mut self) {
        for _ in 0..10_000 {
            let before = self.out.records.len() + self.out.commands.len();
            let mut cursor: Option<StageKey> = None;
            while let Some(key) = self.state().index.next_busy(cursor.as_ref()).cloned() {
                let stage = key.1.as_str();
                self.try_start(stage);
                if let Some(revision) = self.state().runtime(stage).running {
                    self.progress(revision, stage);
                }
                cursor = Some(key);
            }
            if self.out.records.len() + self.out.commands.len() == before {
                return;
            }
        }
    }

    /// Starts the queued deployment of `stage` when the lock is free, the window open and no
    /// blocker active (L7); otherwise records what it waits for.
    fn try_start(&mut self, stage: &str) {
        if self.start_emergency(stage) {
            return;
        }
        let Some(revision) = self.state().runtime(stage).queued else {
            return;
        };
        match self.blocked_by(revision, stage) {
            None => self.set_stage(
                Actor::System,
                revision,
                stage,
                Trigger::Start,
                StageDetail::default(),
            ),
            Some(waiting) => {
                let current = self
                    .state()
                    .run(revision, stage)
                    .and_then(|r| r.waiting_for);
                if current != Some(waiting) {
                    self.wait(revision, stage, waiting);
                }
            }
        }
    }

    /// Records that the queued `revision` waits for `waiting` in `stage` (L7).
    pub(super) fn wait(&mut self, revision: u64, stage: &str, waiting: WaitingFor) {
        self.emit(
            Actor::System,
            Event::StageState {
                revision,
                stage: stage.to_owned(),
                state: StageState::NotStarted,
                waiting_for: Some(waiting),
                superseded_by: None,
                attempt: None,
                reason: None,
            },
        );
    }
}
