//! [`ScriptedInfra`]: infrastructure synthesis with scripted plans and outputs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use devramps_core::backend::{
    ExecutionKey, InfraPlan, InfraRequest, InfrastructureSynthesizer, Outputs,
};
use devramps_core::{Error, Result};

use crate::script::{Match, lookup};

/// Resource counts of a scripted plan: (create, update, delete).
pub type PlanCounts = (u32, u32, u32);

#[derive(Debug, Default)]
struct State {
    plans: Vec<(Match, PlanCounts)>,
    outputs: Vec<(Match, Outputs)>,
    issued: BTreeMap<ExecutionKey, InfraPlan>,
    applied: BTreeMap<ExecutionKey, Outputs>,
    apply_log: Vec<ExecutionKey>,
}

/// An [`InfrastructureSynthesizer`] whose plans and outputs are scripted per execution
/// [`Match`] (for example `Match::step("terraform").in_stage("prod")`).
///
/// - `plan` returns the scripted counts (default: no changes) with the id
///   `plan:<execution key>`; planning the same key again returns the same plan.
/// - `apply` of the plan issued for the key returns the scripted outputs (default: none) and
///   records one apply; applying the same key again returns the same outputs without a second
///   apply. A plan that was not issued for the key fails with [`Error::Conflict`].
///
/// Clones share state.
#[derive(Clone, Debug, Default)]
pub struct ScriptedInfra {
    state: Arc<Mutex<State>>,
}

impl ScriptedInfra {
    /// Plans without changes and applies without outputs, until scripted.
    pub fn new() -> Self {
        ScriptedInfra::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scripts the plan of the selected executions.
    pub fn script_plan(&self, selector: Match, create: u32, update: u32, delete: u32) -> &Self {
        self.lock().plans.push((selector, (create, update, delete)));
        self
    }

    /// Scripts the outputs of the selected executions.
    pub fn script_outputs(&self, selector: Match, outputs: Outputs) -> &Self {
        self.lock().outputs.push((selector, outputs));
        self
    }

    /// The keys of every apply actually performed, in order.
    pub fn applied(&self) -> Vec<ExecutionKey> {
        self.lock().apply_log.clone()
    }

    /// The plans issued so far, by key.
    pub fn plans(&self) -> BTreeMap<ExecutionKey, InfraPlan> {
        self.lock().issued.clone()
    }
}

#[async_trait]
impl InfrastructureSynthesizer for ScriptedInfra {
    async fn plan(&self, request: &InfraRequest) -> Result<InfraPlan> {
        let mut state = self.lock();
        if let Some(plan) = state.issued.get(&request.key) {
            return Ok(plan.clone());
        }
        let (create, update, delete) = lookup(&state.plans, &request.key)
            .copied()
            .unwrap_or_default();
        let plan = InfraPlan::new(format!("plan:{}", request.key), create, update, delete);
        state.issued.insert(request.key.clone(), plan.clone());
        Ok(plan)
    }

    async fn apply(&self, request: &InfraRequest, plan: &InfraPlan) -> Result<Outputs> {
        let mut state = self.lock();
        if state.issued.get(&request.key) != Some(plan) {
            return Err(Error::Conflict {
                what: format!(
                    "plan `{}` was not issued for `{}`; plan again before applying",
                    plan.id, request.key
                ),
            });
        }
        if let Some(outputs) = state.applied.get(&request.key) {
            return Ok(outputs.clone());
        }
        let outputs = lookup(&state.outputs, &request.key)
            .cloned()
            .unwrap_or_default();
        state.applied.insert(request.key.clone(), outputs.clone());
        state.apply_log.push(request.key.clone());
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use devramps_core::backend::{StageTarget, Unit};
    use devramps_core::expr::FinalValue;
    use futures::executor::block_on;
    use serde_json::json;

    use super::*;

    fn request(stage: &str) -> InfraRequest {
        InfraRequest::new(
            ExecutionKey::new("api", 1, stage, 1, Unit::step("terraform")),
            StageTarget::new("api", stage, "1", "us-east-1"),
            "/infra",
            "c1",
            FinalValue::Plain(json!({})),
        )
    }

    #[test]
    fn scripted_plan_and_outputs_are_idempotent_per_key() {
        let infra = ScriptedInfra::new();
        let outputs = Outputs::from([("bucket".to_owned(), json!("b-1"))]);
        infra
            .script_plan(Match::step("terraform").in_stage("prod"), 1, 2, 0)
            .script_outputs(Match::step("terraform"), outputs.clone());
        block_on(async {
            let staging = infra.plan(&request("staging")).await.unwrap();
            assert!(!staging.has_changes(), "default plan has no changes");
            let prod = infra.plan(&request("prod")).await.unwrap();
            assert_eq!((prod.create, prod.update, prod.delete), (1, 2, 0));
            assert_eq!(infra.plan(&request("prod")).await.unwrap(), prod);
            assert_eq!(infra.apply(&request("prod"), &prod).await.unwrap(), outputs);
            assert_eq!(infra.apply(&request("prod"), &prod).await.unwrap(), outputs);
            assert_eq!(infra.applied().len(), 1);
            let err = infra.apply(&request("staging"), &prod).await.unwrap_err();
            assert!(matches!(err, Error::Conflict { .. }), "{err}");
        });
    }
}
