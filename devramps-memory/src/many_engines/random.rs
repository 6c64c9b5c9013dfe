//! What a random history picks: the seeded generator, and the steps and stage-deployments
//! worth acting on in a state.

use devramps_core::lifecycle::{PipelineState, StageState, StepState, WaitingFor};

use super::STAGES;

/// xorshift64*: deterministic per seed.
#[derive(Debug)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    pub(super) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Steps waiting for a person or baking, as (revision, stage, step).
pub(super) fn answerable(state: &PipelineState) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for d in state.active_deployments() {
        let Some(plan) = d.plan() else { continue };
        for (stage, run) in plan.stages.iter().zip(&d.stages) {
            for (step, s) in stage.steps.iter().zip(&run.steps) {
                let baking =
                    s.state == StepState::Running && step.step_type == "DEVRAMPS:APPROVAL:BAKE";
                if s.state == StepState::WaitingApproval || baking {
                    out.push((d.revision, stage.name.clone(), step.key().to_owned()));
                }
            }
        }
    }
    out
}

/// A (revision, stage) worth operating on: `kind` 0 retry, 1 cancel, 2 rollback, 3
/// roll-forward; sometimes anything (to be refused).
pub(super) fn target(state: &PipelineState, kind: usize, rng: &mut Rng) -> (u64, String) {
    let fits = |revision: u64, run: &devramps_core::lifecycle::StageRun| match kind {
        0 => matches!(
            run.state,
            StageState::Failed | StageState::TimedOut | StageState::Cancelled
        ),
        1 => run.state.holds_lock() || run.waiting_for.is_some_and(|w| w != WaitingFor::Never),
        2 => state.stage(&run.name).deployed.contains(&revision),
        _ => run.state != StageState::NotStarted || run.waiting_for != Some(WaitingFor::Never),
    };
    let candidates: Vec<(u64, String)> = state
        .deployments
        .values()
        .flat_map(|d| {
            d.stages
                .iter()
                .filter(|r| fits(d.revision, r))
                .map(|r| (d.revision, r.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    match rng.pick(&candidates) {
        Some(t) if rng.chance(85) => t.clone(),
        _ => (
            1 + rng.below(state.last_revision.max(1) as usize) as u64,
            STAGES[rng.below(STAGES.len())].to_owned(),
        ),
    }
}
