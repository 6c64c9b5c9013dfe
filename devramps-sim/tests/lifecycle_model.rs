//! Model-based test of the lifecycle, on the public strategies and checks of
//! `devramps_sim::random` (one machinery with `devramps simulate --random`): random histories
//! of a three-stage pipeline with windows, a bake, a skip list, an alarm and a smaller
//! definition (a destructive update, L18) run through the real engine on the in-memory
//! backends; every lifecycle rule of `Checker` is checked after every event, and failures
//! shrink to a minimal history. Beside them, what the earlier model test checked that the
//! report's checks do not:
//!
//! - L2: every push that must be accepted is, and nothing else (a model of the triggers);
//! - L19: the log alone rebuilds the state, also through snapshots cut anywhere in it.
//!
//! CI runs 64 cases. To search harder:
//! `PROPTEST_CASES=10000 cargo test -p devramps-sim --test lifecycle_model --release`.

use std::collections::HashSet;
use std::sync::Arc;

use devramps_core::backend::{DynDeploymentLock, DynEventStore, EventStoreExt};
use devramps_core::lifecycle::{Machine, PipelineState, Record};
use devramps_memory::{InMemoryEventStore, InMemoryLock};
use devramps_sim::random::{Checker, Histories, HistoryConfig};
use devramps_sim::{Action, Scenario, simulate_with_store};
use proptest::prelude::*;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
  stage_defaults: { deployment_time_window: PACIFIC_WORKING_HOURS }
  stages:
    - { name: staging, account_id: "111111111111", region: us-east-1, deployment_time_window: NONE }
    - { name: qa, account_id: "111111111111", region: us-east-2, deployment_time_window: NONE, skip: [bake] }
    - { name: prod, account_id: "222222222222", region: us-west-2, auto_rollback_alarm_name: prod-alarm }
  steps:
    - { name: Deploy, id: deploy, type: "CUSTOM:DEPLOY" }
    - { name: Check, id: check, type: "CUSTOM:CHECK" }
    - { name: Bake, id: bake, type: "DEVRAMPS:APPROVAL:BAKE", params: { duration_minutes: 20 } }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/src]
      params: { dockerfile: /Dockerfile }
"#;

/// `PIPELINE` without its `check` step: moving to it is destructive and waits for a person
/// (L18); moving back is additive.
fn smaller_pipeline() -> String {
    PIPELINE.replace(
        "    - { name: Check, id: check, type: \"CUSTOM:CHECK\" }\n",
        "",
    )
}

/// How many deployments the scenario's pushes and patches must create (L2, L17): a push to
/// the tracked branch with a delivery not seen before, whose commit is not the newest
/// accepted one, outside patch mode; every patch. `None` for a push to another branch that
/// breaks the pipeline file: the spec does not say which definition's `tracks` decides then
/// (the engine accepts it, and its synthesis fails).
fn expected_deployments(scenario: &Scenario) -> Option<u64> {
    let mut deliveries = HashSet::new();
    let (mut newest, mut patch_mode, mut accepted) = (None::<String>, false, 0);
    for event in &scenario.events {
        match &event.action {
            Action::Push(push)
                if push.branch.is_some()
                    && push.changed.iter().any(|c| c.ends_with("pipeline.yaml")) =>
            {
                return None;
            }
            Action::Push(push) if !push.deleted => {
                let new = push
                    .delivery
                    .as_ref()
                    .is_none_or(|d| deliveries.insert(d.clone()));
                if push.branch.is_none()
                    && new
                    && newest.as_ref() != Some(&push.commit)
                    && !patch_mode
                {
                    accepted += 1;
                    newest = Some(push.commit.clone());
                }
            }
            Action::Patch { commit, .. } => {
                accepted += 1;
                newest = Some(commit.clone());
                patch_mode = true;
            }
            Action::ReleasePatch => patch_mode = false,
            _ => {}
        }
    }
    Some(accepted)
}

/// A snapshot of the first records plus the rest gives the state of a full replay, also from
/// a snapshot of a state itself loaded from a snapshot.
fn check_snapshots(slug: &str, records: &[Record]) -> Result<(), TestCaseError> {
    let replayed: PipelineState = Machine::replay(slug, records).state().clone();
    let n = records.len();
    let (first, second) = (n / 2, 3 * n / 4);
    let snapshot = Machine::replay(slug, &records[..first])
        .snapshot()
        .expect("a state saves");
    let mut loaded = Machine::from_snapshot(slug, &snapshot).expect("its snapshot loads");
    loaded.apply(&records[first..second]);
    let again = loaded.snapshot().expect("a loaded state saves");
    let mut chained = Machine::from_snapshot(slug, &again).expect("it loads");
    chained.apply(&records[second..]);
    loaded.apply(&records[second..]);
    prop_assert_eq!(
        loaded.state(),
        &replayed,
        "snapshot at {} + tail == replay of {}",
        first,
        n
    );
    prop_assert_eq!(
        chained.state(),
        &replayed,
        "snapshots at {} and {} + tail",
        first,
        second
    );
    Ok(())
}

fn histories() -> BoxedStrategy<Scenario> {
    let config = HistoryConfig {
        max_events: 40,
        definitions: vec![smaller_pipeline()],
        ..HistoryConfig::default()
    };
    Histories::new(PIPELINE, config)
        .expect("the pipeline is valid")
        .strategy()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64),
        max_shrink_iters: 4096,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_lifecycle_keeps_its_invariants(scenario in histories()) {
        let store = Arc::new(InMemoryEventStore::new());
        let lock: DynDeploymentLock = Arc::new(InMemoryLock::new());
        let report = simulate_with_store(&scenario, PIPELINE, store.clone() as DynEventStore, lock)
            .expect("an empty store");
        let violations = Checker::check_report(&scenario, PIPELINE, &report);
        prop_assert!(violations.is_empty(), "{:?}", violations);
        if let Some(expected) = expected_deployments(&scenario) {
            prop_assert_eq!(report.deployments.len() as u64, expected, "L2");
        }

        let records: Vec<Record> = futures::executor::block_on(store.read_all(&scenario.slug))
            .expect("the log reads")
            .into_iter()
            .map(|e| Record::from_stored(&scenario.slug, e).expect("records parse"))
            .collect();
        // The report shows the whole log (and the simulator's own refusals of names it
        // cannot resolve, which are not the engine's).
        prop_assert!(records.len() <= report.events.len(), "the report shows the whole log");
        check_snapshots(&scenario.slug, &records)?;
    }
}
