//! `pipeline.steps` and the typed parameters of the built-in step types.

use super::super::diagnostic::{Code, Diagnostic, Sink, suggest};
use super::super::enums::{ApprovalPolicy, ArtifactType, BuiltinStep, TestType, YamlEnum};
use super::super::model::{
    BakeParams, EcsDeployParams, Step, StepParams, StepType, TerraformParams, TestGateParams,
};
use super::super::span::Spanned;
use super::super::value::{Value, ValueKind, ValueMap};
use super::{Obj, as_enum, as_string, check_positive_int, check_repo_path};

const STEP_KEYS: &[&str] = &["name", "id", "type", "params", "goes_after"];
const TERRAFORM_PARAMS: &[&str] = &["requires_approval", "source", "variables", "timeout"];
const ECS_DEPLOY_PARAMS: &[&str] = &[
    "cluster_name",
    "service_name",
    "reference_task_definition",
    "image_url",
    "timeout",
];
const BAKE_PARAMS: &[&str] = &["duration_minutes"];
const TEST_PARAMS: &[&str] = &[
    "testCommand",
    "timeout",
    "workingDirectory",
    "environmentVariables",
    "testType",
];

/// The steps (broken ones kept with placeholders) and whether all were read.
pub(crate) struct ReadSteps {
    pub(crate) steps: Vec<Step>,
    pub(crate) complete: bool,
}

pub(super) fn read_steps(pipeline: &Obj<'_>, sink: &mut Sink) -> ReadSteps {
    let mut out = ReadSteps {
        steps: Vec::new(),
        complete: false,
    };
    let Some(value) = pipeline.required("steps", sink) else {
        return out;
    };
    let ValueKind::List(items) = &value.kind else {
        sink.error(
            Code::WrongType,
            value.span,
            format!(
                "`steps` must be a list of steps, found {}",
                value.describe()
            ),
        );
        return out;
    };
    if items.is_empty() {
        sink.push(
            Diagnostic::new(
                Code::NoSteps,
                value.span,
                "a pipeline must have at least one step",
            )
            .with_help("add a step with `name` and `type`"),
        );
        return out;
    }
    out.complete = true;
    for (index, item) in items.iter().enumerate() {
        match read_step(item, index, sink) {
            Some((step, ok)) => {
                out.complete &= ok;
                out.steps.push(step);
            }
            None => out.complete = false,
        }
    }
    out
}

/// Reads a step; `false` when a required part is missing or invalid.
fn read_step(value: &Value, index: usize, sink: &mut Sink) -> Option<(Step, bool)> {
    let label = value
        .as_map()
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("step #{}", index + 1), |n| format!("step `{n}`"));
    let obj = Obj::new(value, label, sink)?;
    obj.check_keys(STEP_KEYS, sink);
    let name = obj.required_str("name", sink);
    if let Some(n) = &name
        && n.value.trim().is_empty()
    {
        sink.error(Code::InvalidString, n.span, "a step name must not be empty");
    }
    let id = obj.optional_str("id", sink);
    if let Some(id) = &id {
        check_step_id(id, sink);
    }
    let step_type = obj
        .required("type", sink)
        .and_then(|v| read_step_type(v, &obj.what, sink));
    let params = obj.optional_map("params", sink);
    let goes_after = obj.optional_str_list("goes_after", sink);
    let params_span = obj.map.entry("params").map_or(obj.span, |(k, _)| k.span);
    let typed = match &step_type {
        Some(t) => read_typed(t, &params, &obj.what, params_span, sink),
        None => StepParams::FreeForm,
    };
    if let Some(timeout) = params.get("timeout")
        && !matches!(typed, StepParams::Bake(_))
    {
        check_positive_int(
            timeout,
            &format!("`timeout` (minutes) of {}", obj.what),
            sink,
        );
    }
    let ok = name.is_some() && step_type.is_some();
    let step = Step {
        name: name.unwrap_or_default(),
        id,
        step_type: step_type.unwrap_or_else(|| Spanned::unspanned(StepType::Custom(String::new()))),
        params,
        typed,
        goes_after,
        span: value.span,
    };
    Some((step, ok))
}

/// Step ids appear in expressions (`steps.<id>.<output>`): letters, digits, `_` and `-`.
fn check_step_id(id: &Spanned<String>, sink: &mut Sink) {
    let valid = !id.value.is_empty()
        && id
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        sink.push(
            Diagnostic::new(
                Code::InvalidStepId,
                id.span,
                format!(
                    "step id `{}` may only use letters, digits, `_` and `-`",
                    id.value
                ),
            )
            .with_help("ids are used in expressions such as `${{ steps.infra.cluster }}`"),
        );
    }
}

fn read_step_type(value: &Value, owner: &str, sink: &mut Sink) -> Option<Spanned<StepType>> {
    let text = as_string(value, &format!("`type` of {owner}"), sink)?;
    let t = text.value.as_str();
    if let Some(rest) = t.strip_prefix("CUSTOM:") {
        let valid = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'));
        if valid {
            return Some(Spanned::new(StepType::Custom(t.to_owned()), text.span));
        }
        sink.push(
            Diagnostic::new(
                Code::InvalidStepType,
                text.span,
                format!("custom step type `{t}` of {owner} is malformed"),
            )
            .with_help("custom types look like `CUSTOM:SCRIPT:DEPLOY`"),
        );
        return None;
    }
    if let Some(builtin) = BuiltinStep::parse(t) {
        return Some(Spanned::new(StepType::Builtin(builtin), text.span));
    }
    if t.starts_with("DEVRAMPS:") {
        let help = if ArtifactType::parse(t).is_some() {
            "this is an artifact type: declare it under `artifacts`, not as a step".to_owned()
        } else if t.starts_with("DEVRAMPS:MIRROR:") {
            "artifact mirroring is done by every stage automatically; remove this step".to_owned()
        } else {
            let spellings = BuiltinStep::spellings();
            match suggest(t, spellings.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("built-in types: {}", spellings.join(", ")),
            }
        };
        sink.push(
            Diagnostic::new(
                Code::UnknownStepType,
                text.span,
                format!("unknown built-in step type `{t}` in {owner}"),
            )
            .with_help(help),
        );
        return None;
    }
    let upper = t.to_ascii_uppercase();
    let help = if upper.starts_with("DEVRAMPS:") || upper.starts_with("CUSTOM:") {
        format!("step types are written in capitals: `{upper}`")
    } else {
        "use a built-in `DEVRAMPS:<SERVICE>:<ACTION>` type or a `CUSTOM:<TYPE>` step".to_owned()
    };
    sink.push(
        Diagnostic::new(
            Code::InvalidStepType,
            text.span,
            format!("step type `{t}` of {owner} is neither `DEVRAMPS:...` nor `CUSTOM:...`"),
        )
        .with_help(help),
    );
    None
}

/// Parameters of a step or artifact type, read with the type's known keys.
pub(super) struct Params<'a> {
    pub(super) map: &'a ValueMap,
    pub(super) owner: String,
    pub(super) span: super::super::span::Span,
}

impl<'a> Params<'a> {
    /// Reports parameters the type does not define (warnings: the catalogue is not complete).
    pub(super) fn check_known(&self, known: &[&str], sink: &mut Sink) {
        let obj = Obj {
            map: self.map,
            span: self.span,
            what: format!("the params of {}", self.owner),
        };
        obj.check_keys_as(known, Code::UnknownParam, sink);
    }

    /// A required parameter: present and not null.
    pub(super) fn required(&self, key: &str, sink: &mut Sink) -> Option<&'a Value> {
        let value = self.map.get(key).filter(|v| !v.is_null());
        if value.is_none() {
            sink.push(
                Diagnostic::new(
                    Code::MissingParam,
                    self.span,
                    format!("{} is missing required parameter `{key}`", self.owner),
                )
                .with_help(format!("add `{key}` under `params`")),
            );
        }
        value
    }

    /// An optional parameter.
    pub(super) fn optional(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional map parameter.
    pub(super) fn map(&self, key: &str, sink: &mut Sink) -> ValueMap {
        match self.optional(key) {
            Some(Value {
                kind: ValueKind::Map(m),
                ..
            }) => m.clone(),
            Some(v) => {
                sink.error(
                    Code::WrongType,
                    v.span,
                    format!(
                        "parameter `{key}` of {} must be a map, found {}",
                        self.owner,
                        v.describe()
                    ),
                );
                ValueMap::default()
            }
            None => ValueMap::default(),
        }
    }

    /// A required string parameter (an expression counts as a string).
    pub(super) fn required_string(&self, key: &str, sink: &mut Sink) -> Option<&'a Value> {
        let value = self.required(key, sink)?;
        self.string_like(key, value, sink)
    }

    /// Checks that a parameter is text (numbers and booleans are refused).
    pub(super) fn string_like(
        &self,
        key: &str,
        value: &'a Value,
        sink: &mut Sink,
    ) -> Option<&'a Value> {
        match value.kind {
            ValueKind::String(_) => Some(value),
            _ => {
                as_string(value, &format!("parameter `{key}` of {}", self.owner), sink);
                None
            }
        }
    }
}

fn read_typed(
    step_type: &Spanned<StepType>,
    params: &ValueMap,
    owner: &str,
    span: super::super::span::Span,
    sink: &mut Sink,
) -> StepParams {
    let StepType::Builtin(builtin) = step_type.value else {
        return StepParams::FreeForm;
    };
    let p = Params {
        map: params,
        owner: format!("{owner} ({})", builtin.as_str()),
        span,
    };
    let missing = || Value::unspanned(ValueKind::Null);
    match builtin {
        BuiltinStep::TerraformSynthesize => {
            p.check_known(TERRAFORM_PARAMS, sink);
            let source = p.required_string("source", sink).and_then(|v| {
                as_string(v, "", sink).inspect(|s| check_repo_path(s, "Terraform `source`", sink))
            });
            let requires_approval = p
                .optional("requires_approval")
                .and_then(|v| {
                    as_enum::<ApprovalPolicy>(v, &format!("`requires_approval` of {owner}"), sink)
                })
                .unwrap_or_else(|| Spanned::unspanned(ApprovalPolicy::DestructiveChangesOnly));
            StepParams::Terraform(TerraformParams {
                requires_approval,
                source: source.unwrap_or_default(),
                variables: p.map("variables", sink),
            })
        }
        BuiltinStep::EcsDeploy => {
            p.check_known(ECS_DEPLOY_PARAMS, sink);
            let mut get = |key| {
                p.required_string(key, sink)
                    .cloned()
                    .unwrap_or_else(missing)
            };
            StepParams::EcsDeploy(EcsDeployParams {
                cluster_name: get("cluster_name"),
                service_name: get("service_name"),
                reference_task_definition: get("reference_task_definition"),
                image_url: get("image_url"),
            })
        }
        BuiltinStep::ApprovalBake => {
            p.check_known(BAKE_PARAMS, sink);
            let duration = p.required("duration_minutes", sink);
            if let Some(d) = duration {
                check_positive_int(d, &format!("`duration_minutes` of {owner}"), sink);
            }
            StepParams::Bake(BakeParams {
                duration_minutes: duration.cloned().unwrap_or_else(missing),
            })
        }
        BuiltinStep::ApprovalTest => {
            p.check_known(TEST_PARAMS, sink);
            let test_command = p.required_string("testCommand", sink).cloned();
            let working_directory = p
                .optional("workingDirectory")
                .and_then(|v| p.string_like("workingDirectory", v, sink))
                .cloned();
            let test_type = p
                .optional("testType")
                .and_then(|v| as_enum::<TestType>(v, &format!("`testType` of {owner}"), sink))
                .unwrap_or_else(|| Spanned::unspanned(TestType::Generic));
            StepParams::TestGate(TestGateParams {
                test_command: test_command.unwrap_or_else(missing),
                timeout: p.optional("timeout").cloned(),
                working_directory,
                environment_variables: p.map("environmentVariables", sink),
                test_type,
            })
        }
        _ => StepParams::FreeForm,
    }
}
