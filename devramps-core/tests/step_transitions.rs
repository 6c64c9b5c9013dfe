//! The step table (`lifecycle::STEP_TRANSITIONS`) against the machine: every (from, to) edge of
//! the table is taken by some history below, and every step change the machine records is an
//! edge of the table.

use std::collections::{BTreeMap, BTreeSet};

use devramps_core::backend::Outcome;
use devramps_core::lifecycle::{
    Actor, Command, Decide, Event, Input, Machine, Operate, Push, STEP_TRANSITIONS, StepState,
    WorkResult,
};
use jiff::{SignedDuration, Timestamp};

const STEPS: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: A, type: "CUSTOM:A" }
    - { name: B, type: "CUSTOM:B" }
  artifacts: {}
"#;

const GATE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - { name: A, type: "DEVRAMPS:APPROVAL:TEST", params: { testCommand: "make test" } }
  artifacts: {}
"#;

fn t0() -> Timestamp {
    "2026-01-05T17:00:00Z".parse().expect("ts")
}

fn push(definition: &str) -> Input {
    Input::Push(
        Push::new("main", "c1")
            .with_delivery("d-c1")
            .with_definition(Some(definition.into())),
    )
}

fn ok() -> WorkResult {
    WorkResult::Done(Outcome::Succeeded {
        outputs: BTreeMap::new(),
    })
}

fn fail() -> WorkResult {
    WorkResult::Done(Outcome::Failed {
        reason: "boom".into(),
    })
}

fn ask() -> WorkResult {
    WorkResult::Done(Outcome::ApprovalRequired { context: None })
}

/// One history: a machine, every event it recorded, and the commands still to answer.
struct History {
    machine: Machine,
    events: Vec<Event>,
    open: Vec<Command>,
}

impl History {
    /// Pushes `definition` and answers every command with `answer` (`None`: leave it open).
    fn new(definition: &str, answer: impl FnMut(&Command) -> Option<WorkResult>) -> Self {
        let mut h = History {
            machine: Machine::new("app"),
            events: Vec::new(),
            open: Vec::new(),
        };
        h.feed(push(definition), t0(), answer);
        h
    }

    fn feed(
        &mut self,
        input: Input,
        now: Timestamp,
        mut answer: impl FnMut(&Command) -> Option<WorkResult>,
    ) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let out = self.machine.handle(input, now);
            self.events.extend(out.records.into_iter().map(|r| r.event));
            for command in out.commands {
                if matches!(command, Command::Cancel { .. }) {
                    continue;
                }
                match answer(&command) {
                    Some(result) => inputs.push(Input::Work {
                        key: command.key().clone(),
                        result,
                    }),
                    None => self.open.push(command),
                }
            }
        }
    }

    /// Answers the open command of step `step` with `result`.
    fn answer(&mut self, step: &str, result: WorkResult, now: Timestamp) {
        let at = self
            .open
            .iter()
            .position(|c| matches!(c, Command::RunStep(w) if w.key.unit.step_key() == Some(step)))
            .unwrap_or_else(|| {
                panic!(
                    "step {step} does not run: {:?}\n{:#?}",
                    self.open, self.events
                )
            });
        let key = self.open.remove(at).key().clone();
        self.feed(Input::Work { key, result }, now, answer_all);
    }

    fn decide(&self, step: &str) -> Decide {
        Decide::new(1, "prod", step, Actor::User("ana".into()))
    }

    fn cancel(&self) -> Input {
        Input::Cancel(Operate::new(1, "prod", Actor::User("ana".into())))
    }
}

fn answer_all(_: &Command) -> Option<WorkResult> {
    Some(ok())
}

/// Leaves step `step` running; answers everything else.
fn hold(step: &'static str) -> impl FnMut(&Command) -> Option<WorkResult> {
    move |c| match c {
        Command::RunStep(w) if w.key.unit.step_key() == Some(step) => None,
        _ => Some(ok()),
    }
}

/// Every step change of `events`: (from, to) per step of each stage-deployment attempt.
fn step_edges(events: &[Event]) -> BTreeSet<(StepState, StepState)> {
    let mut last: BTreeMap<(u64, String, String), StepState> = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for e in events {
        if let Event::StepState {
            revision,
            stage,
            step,
            state,
            ..
        } = e
        {
            let from = last
                .insert((*revision, stage.clone(), step.clone()), *state)
                .unwrap_or(StepState::Pending);
            taken.insert((from, *state));
        }
    }
    taken
}

#[test]
fn every_edge_of_the_step_table_is_exercised_and_nothing_else_happens() {
    let later = t0() + SignedDuration::from_mins(1);
    let mut histories = Vec::new();
    // A succeeds, B fails (L10).
    let mut h = History::new(STEPS, hold("B"));
    h.answer("B", fail(), later);
    histories.push(h);
    // A fails: B is skipped (L10).
    let mut h = History::new(STEPS, hold("A"));
    h.answer("A", fail(), later);
    histories.push(h);
    // A times out (L10).
    let mut h = History::new(STEPS, hold("A"));
    h.feed(
        Input::Tick,
        t0() + SignedDuration::from_mins(61),
        answer_all,
    );
    histories.push(h);
    // A asks for a person, who approves; it runs again and succeeds (L16).
    let mut h = History::new(STEPS, hold("A"));
    h.answer("A", ask(), later);
    h.feed(Input::Approve(h.decide("A")), later, hold("A"));
    h.answer("A", ok(), later);
    histories.push(h);
    // A asks, and is rejected (L16).
    let mut h = History::new(STEPS, hold("A"));
    h.answer("A", ask(), later);
    h.feed(Input::Reject(h.decide("A")), later, answer_all);
    histories.push(h);
    // A asks, and the stage is cancelled (L12).
    let mut h = History::new(STEPS, hold("A"));
    h.answer("A", ask(), later);
    h.feed(h.cancel(), later, answer_all);
    histories.push(h);
    // A runs when the stage is cancelled; its work ends afterwards (L12).
    let mut h = History::new(STEPS, hold("A"));
    h.feed(h.cancel(), later, answer_all);
    h.answer("A", ok(), later);
    histories.push(h);
    // A failed test gate waits; approved, it passes (L16).
    let mut h = History::new(GATE, hold("A"));
    h.answer("A", fail(), later);
    h.feed(Input::Approve(h.decide("A")), later, answer_all);
    histories.push(h);

    let taken: BTreeSet<(StepState, StepState)> = histories
        .iter()
        .flat_map(|h| step_edges(&h.events))
        .collect();
    let mut missing = Vec::new();
    for (from, trigger, to, rule) in STEP_TRANSITIONS {
        if !taken.contains(&(*from, *to)) {
            missing.push(format!("{from:?} --{trigger:?} ({rule})--> {to:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "step edges never exercised: {missing:?}"
    );
    for (from, to) in &taken {
        assert!(
            STEP_TRANSITIONS
                .iter()
                .any(|(f, _, t, _)| f == from && t == to),
            "{from:?} -> {to:?} happened but is not in the step table"
        );
    }
}
