//! What kind of step a planned step is, decided once at synthesis from its type and resolved
//! parameters, so the lifecycle and the engine never compare type strings or re-read
//! parameters.

use crate::expr::ParamValue;
use crate::pipeline::{ApprovalPolicy, BuiltinStep, StepType, YamlEnum};

/// The longest bake honoured, in minutes (about 19 years): a larger number waits this long.
const MAX_BAKE_MINUTES: u64 = 10_000_000;

/// What a step does, as far as the lifecycle cares.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepKind {
    /// `DEVRAMPS:APPROVAL:BAKE`: waits, with no runner, until its time is up or a person
    /// approves early (L16).
    Bake {
        /// How long, in minutes (0 when `duration_minutes` did not resolve to a number).
        minutes: u64,
    },
    /// `DEVRAMPS:TERRAFORM:SYNTHESIZE`: the infrastructure phase; plan, then apply (L4).
    Terraform {
        /// Repository path of the Terraform root (empty when not resolved to text).
        source: String,
        /// When the plan waits for a person.
        requires_approval: ApprovalPolicy,
    },
    /// `DEVRAMPS:APPROVAL:TEST`: a failed run waits for a person instead of failing (L16).
    TestGate,
    /// Any other built-in type, run by the step runners.
    Devramps(BuiltinStep),
    /// A `CUSTOM:...` type, run by the step runners.
    Custom,
}

impl StepKind {
    /// The kind of a step of `step_type` whose resolved parameters are `params`.
    pub fn of(step_type: &StepType, params: &ParamValue) -> Self {
        let builtin = match step_type {
            StepType::Custom(_) => return StepKind::Custom,
            StepType::Builtin(builtin) => *builtin,
        };
        match builtin {
            BuiltinStep::ApprovalBake => StepKind::Bake {
                minutes: match params.get("duration_minutes") {
                    Some(ParamValue::Int(m)) => {
                        u64::try_from(*m).map_or(0, |m| m.min(MAX_BAKE_MINUTES))
                    }
                    _ => 0,
                },
            },
            BuiltinStep::TerraformSynthesize => StepKind::Terraform {
                source: params
                    .get("source")
                    .and_then(ParamValue::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                requires_approval: params
                    .get("requires_approval")
                    .and_then(ParamValue::as_str)
                    .and_then(ApprovalPolicy::parse)
                    .unwrap_or(ApprovalPolicy::DestructiveChangesOnly),
            },
            BuiltinStep::ApprovalTest => StepKind::TestGate,
            other => StepKind::Devramps(other),
        }
    }

    /// A bake.
    pub fn is_bake(&self) -> bool {
        matches!(self, StepKind::Bake { .. })
    }

    /// A Terraform step (the infrastructure phase).
    pub fn is_terraform(&self) -> bool {
        matches!(self, StepKind::Terraform { .. })
    }

    /// A test gate.
    pub fn is_test_gate(&self) -> bool {
        matches!(self, StepKind::TestGate)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn params(entries: &[(&str, ParamValue)]) -> ParamValue {
        ParamValue::Map(
            entries
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect(),
        )
    }

    fn text(s: &str) -> ParamValue {
        ParamValue::String(Arc::from(s))
    }

    #[test]
    fn kinds_come_from_the_type_and_the_resolved_parameters() {
        let bake = StepType::Builtin(BuiltinStep::ApprovalBake);
        let p = params(&[("duration_minutes", ParamValue::Int(15))]);
        assert_eq!(StepKind::of(&bake, &p), StepKind::Bake { minutes: 15 });
        let p = params(&[("duration_minutes", ParamValue::Int(-3))]);
        assert_eq!(StepKind::of(&bake, &p), StepKind::Bake { minutes: 0 });
        let p = params(&[("duration_minutes", ParamValue::Int(i64::MAX))]);
        assert_eq!(
            StepKind::of(&bake, &p),
            StepKind::Bake {
                minutes: MAX_BAKE_MINUTES
            }
        );
        let terraform = StepType::Builtin(BuiltinStep::TerraformSynthesize);
        let p = params(&[
            ("source", text("/infra")),
            ("requires_approval", text("ALWAYS")),
        ]);
        assert_eq!(
            StepKind::of(&terraform, &p),
            StepKind::Terraform {
                source: "/infra".into(),
                requires_approval: ApprovalPolicy::Always
            }
        );
        assert_eq!(
            StepKind::of(&terraform, &ParamValue::Null),
            StepKind::Terraform {
                source: String::new(),
                requires_approval: ApprovalPolicy::DestructiveChangesOnly
            }
        );
        let gate = StepType::Builtin(BuiltinStep::ApprovalTest);
        assert!(StepKind::of(&gate, &ParamValue::Null).is_test_gate());
        let ecs = StepType::Builtin(BuiltinStep::EcsDeploy);
        assert_eq!(
            StepKind::of(&ecs, &ParamValue::Null),
            StepKind::Devramps(BuiltinStep::EcsDeploy)
        );
        let custom = StepType::Custom("CUSTOM:SCRIPT:DEPLOY".into());
        assert_eq!(StepKind::of(&custom, &ParamValue::Null), StepKind::Custom);
    }
}
