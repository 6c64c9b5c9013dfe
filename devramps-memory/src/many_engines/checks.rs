//! The checks of a merged log: the lifecycle invariants at every prefix ([`check_log`]) and
//! the replay of the observed inputs ([`check_journal`]).

use std::collections::BTreeMap;

use devramps_core::lifecycle::{
    Event, Input, Machine, PipelineState, Record, StageState, TRANSITIONS, WaitingFor,
};

use super::{SLUG, STAGES};
use crate::ObservedAppend;

/// Checks L1 (revisions 1..n in order), L5 (one holder of each stage's lock), L6 (one queued
/// revision per stage) and the transition table, at every prefix of `log` (a log of
/// [`PIPELINE`]).
///
/// # Panics
///
/// At the first violation, naming the rule and the sequence number.
pub fn check_log(log: &[Record]) {
    let mut state = PipelineState::new(SLUG);
    let mut last: BTreeMap<(u64, String), StageState> = BTreeMap::new();
    let mut revisions = 0;
    for (i, record) in log.iter().enumerate() {
        let seq = i + 1;
        match &record.event {
            Event::DeploymentAccepted { revision, .. } => {
                revisions += 1;
                assert_eq!(*revision, revisions, "L1: revisions in order at seq {seq}");
            }
            Event::StageState {
                revision,
                stage,
                state: to,
                ..
            } => {
                let from = last
                    .insert((*revision, stage.clone()), *to)
                    .unwrap_or(StageState::NotStarted);
                let edge = (from == StageState::NotStarted && *to == StageState::NotStarted)
                    || TRANSITIONS.iter().any(|(f, _, t)| *f == from && t == to);
                assert!(
                    edge,
                    "seq {seq}: revision {revision} in {stage} went {from:?} -> {to:?}, not an \
                     edge of TRANSITIONS"
                );
            }
            _ => {}
        }
        state.apply(record);
        for stage in STAGES {
            let holders: Vec<u64> = state
                .deployments
                .values()
                .filter(|d| d.stage(stage).is_some_and(|s| s.state.holds_lock()))
                .map(|d| d.revision)
                .collect();
            assert!(
                holders.len() <= 1,
                "L5 at seq {seq}: {stage} is held by {holders:?}"
            );
            let queued: Vec<u64> = state
                .deployments
                .values()
                .filter(|d| {
                    d.stage(stage).is_some_and(|s| {
                        s.state == StageState::NotStarted
                            && matches!(
                                s.waiting_for,
                                Some(
                                    WaitingFor::Lock | WaitingFor::TimeWindow | WaitingFor::Blocker
                                )
                            )
                    })
                })
                .map(|d| d.revision)
                .collect();
            assert!(
                queued.len() <= 1,
                "L6 at seq {seq}: {stage} queues {queued:?}"
            );
        }
    }
    let numbers: Vec<u64> = state.deployments.keys().copied().collect();
    assert_eq!(numbers, (1..=revisions).collect::<Vec<_>>(), "L1: 1..n");
}

/// Checks that replaying the observed inputs in log order through one machine gives `log`,
/// record for record, and its state; that the observed appends cover the log without gap or
/// overlap; and that holder-only inputs (work results, timers) were recorded under a lease,
/// with fencing tokens that never go back and each belong to one instance (L21).
///
/// # Panics
///
/// At the first append that breaks one of these.
pub fn check_journal(entries: &[ObservedAppend], log: &[Record]) {
    let mut entries = entries.to_vec();
    entries.sort_by_key(|e| e.first_seq);
    let mut machine = Machine::new(SLUG);
    let mut seq = 1;
    let mut highest = 0;
    let mut owners: BTreeMap<u64, &str> = BTreeMap::new();
    for e in &entries {
        assert_eq!(
            e.first_seq, seq as u64,
            "the journal covers the log without gaps"
        );
        let mut records = Vec::new();
        for input in &e.inputs {
            records.extend(machine.handle(input.clone(), e.now).records);
        }
        assert_eq!(
            records, e.records,
            "replaying the inputs {} fed at seq {seq} gives its records",
            e.instance
        );
        let end = seq + records.len();
        assert_eq!(
            &log[seq - 1..end - 1],
            &records[..],
            "the log at seq {seq} holds the records of {}",
            e.instance
        );
        let holder_only = e
            .inputs
            .iter()
            .any(|i| matches!(i, Input::Work { .. } | Input::Tick));
        assert!(
            !holder_only || e.fencing_token.is_some(),
            "L21: {} recorded work results or timers at seq {seq} without a lease",
            e.instance
        );
        if let Some(token) = e.fencing_token {
            assert!(token >= highest, "L21: token {token} after {highest}");
            highest = token;
            let owner = owners.entry(token).or_insert(&e.instance);
            assert_eq!(
                *owner, e.instance,
                "L21: token {token} used by two instances"
            );
        }
        seq = end;
    }
    assert_eq!(seq - 1, log.len(), "every record was journaled");
    assert_eq!(
        machine.state(),
        Machine::replay(SLUG, log).state(),
        "replaying the inputs gives the log's state"
    );
}
