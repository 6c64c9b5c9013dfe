//! [`Coverage`]: what a set of random histories reached, for the summary of
//! `devramps simulate --random`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::report::Report;

/// What a set of runs reached: how many histories and events, which stage states and
/// transitions between them, and which operations were refused by which rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Histories run.
    pub histories: u64,
    /// Scenario events applied, over every history.
    pub events: u64,
    /// Log events recorded, over every history.
    pub log_events: u64,
    /// Deployments accepted, over every history.
    pub deployments: u64,
    /// How many times each stage state was entered.
    pub states: BTreeMap<String, u64>,
    /// How many times each transition between stage states happened (`NOT_STARTED` is the
    /// state a stage-deployment starts in).
    pub transitions: BTreeMap<(String, String), u64>,
    /// How many operations each rule refused, by (operation, rule).
    pub refused: BTreeMap<(String, String), u64>,
}

impl Coverage {
    /// Adds one run: `events` scenario events that gave `report`.
    pub fn add(&mut self, events: usize, report: &Report) {
        self.histories += 1;
        self.events += events as u64;
        self.log_events += report.events.len() as u64;
        self.deployments += report.deployments.len() as u64;
        let mut states: HashMap<(u64, &str), &str> = HashMap::new();
        for event in &report.events {
            match event.kind.as_str() {
                "stage_state" => {
                    let (Some(revision), Some(stage), Some(to)) = (
                        event.revision,
                        event.stage.as_deref(),
                        event.state.as_deref(),
                    ) else {
                        continue;
                    };
                    let from = states
                        .insert((revision, stage), to)
                        .unwrap_or("NOT_STARTED");
                    *self.states.entry(to.to_owned()).or_default() += 1;
                    if from != to {
                        *self
                            .transitions
                            .entry((from.to_owned(), to.to_owned()))
                            .or_default() += 1;
                    }
                }
                "refused" => {
                    // "`retry` refused (L11): why"
                    let reason = event.reason.as_deref().unwrap_or_default();
                    let operation = reason.split('`').nth(1).unwrap_or("?").to_owned();
                    let rule = reason
                        .split_once(" refused (")
                        .and_then(|(_, rest)| rest.split(')').next())
                        .unwrap_or("-")
                        .to_owned();
                    *self.refused.entry((operation, rule)).or_default() += 1;
                }
                _ => {}
            }
        }
    }

    /// The summary as `devramps simulate --random` prints it: the same coverage always gives
    /// the same text.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} histories, {} events, {} log events, {} deployments: no invariant broken",
            self.histories, self.events, self.log_events, self.deployments
        );
        let _ = writeln!(out, "stage states reached ({}):", self.states.len());
        for (state, n) in &self.states {
            let _ = writeln!(out, "  {state:<16} {n}");
        }
        let _ = writeln!(out, "transitions reached ({}):", self.transitions.len());
        for ((from, to), n) in &self.transitions {
            let _ = writeln!(out, "  {:<34} {n}", format!("{from} -> {to}"));
        }
        let total: u64 = self.refused.values().sum();
        let _ = writeln!(
            out,
            "operations refused ({total}; by rule id, `-` when nothing matched the operation):"
        );
        for ((operation, rule), n) in &self.refused {
            let _ = writeln!(out, "  {:<34} {n}", format!("{operation} by {rule}"));
        }
        out
    }
}
