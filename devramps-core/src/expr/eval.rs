//! Evaluating expressions against a [`Scope`]: what can be known at synthesis is resolved,
//! secrets and step outputs become [`Deferred`] values, and every mistake is an [`ExprError`]
//! with the byte range of the offending name.

use super::artifact_ref::eval_artifact;
use super::ast::{Accessor, Expr, ExprKind, Ident};
use super::error::{ExprError, ExprErrorKind};
use super::scope::{ArtifactLocation, Scope};
use super::template::{literal, literal_map};
use super::value::{Deferred, ParamValue};
use crate::source::ValueKind;

/// The namespaces an expression can start with.
pub const NAMESPACES: &[&str] = &[
    "stage",
    "pipeline",
    "organization",
    "trigger",
    "vars",
    "steps",
];
/// The functions.
pub const FUNCTIONS: &[&str] = &["secret", "stage_secret"];
const STAGE_FIELDS: &[&str] = &["name", "account_id", "region", "artifacts", "secrets"];
const PIPELINE_FIELDS: &[&str] = &["name", "slug", "pre_mirror_artifacts"];
const ORG_FIELDS: &[&str] = &[
    "name",
    "slug",
    "cicd_account_id",
    "cicd_account_region",
    "secrets",
];
const TRIGGER_FIELDS: &[&str] = &["sha", "branch", "tag", "revision"];

/// Evaluates one expression.
pub fn evaluate(expr: &Expr, scope: &Scope<'_>) -> Result<ParamValue, ExprError> {
    match &expr.kind {
        ExprKind::Call(call) => {
            let name = &call.argument.name;
            if name.is_empty() {
                return Err(ExprError::new(
                    ExprErrorKind::BadFunction,
                    call.argument.range.clone(),
                    format!("`{}` needs the name of a secret", call.function.name),
                ));
            }
            match call.function.name.as_str() {
                "secret" => Ok(Deferred::Secret(name.clone()).into()),
                "stage_secret" => {
                    need_stage(scope, &call.function, "stage_secret(...)")?;
                    Ok(Deferred::StageSecret(name.clone()).into())
                }
                other => Err(ExprError::new(
                    ExprErrorKind::BadFunction,
                    call.function.range.clone(),
                    format!("unknown function `{other}`"),
                )
                .suggest(other, FUNCTIONS)),
            }
        }
        ExprKind::Path(path) => {
            let root = &path.root;
            let rest = path.accessors.as_slice();
            match root.name.as_str() {
                "stage" => eval_stage(root, rest, scope),
                "pipeline" => eval_pipeline(root, rest, scope),
                "organization" => eval_organization(root, rest, scope),
                "trigger" => {
                    let (field, rest) = field(root, rest, "trigger", TRIGGER_FIELDS)?;
                    let t = scope.trigger;
                    let value = match field.name.as_str() {
                        "sha" => ParamValue::from(t.sha.as_str()),
                        "branch" => ParamValue::from(t.branch.as_str()),
                        "tag" => ParamValue::from(t.tag.as_str()),
                        _ => ParamValue::Int(i64::try_from(t.revision).unwrap_or(i64::MAX)),
                    };
                    scalar(value, rest, format_args!("trigger.{}", field.name))
                }
                "vars" => eval_vars(root, rest, scope),
                "steps" => eval_steps(root, rest, scope),
                "secret" | "stage_secret" => Err(ExprError::new(
                    ExprErrorKind::BadFunction,
                    root.range.clone(),
                    format!("`{}` is a function", root.name),
                )
                .help(format!("write {}(\"NAME\")", root.name))),
                other => Err(ExprError::new(
                    ExprErrorKind::UnknownNamespace,
                    root.range.clone(),
                    format!("unknown namespace `{other}`"),
                )
                .suggest(other, NAMESPACES)),
            }
        }
    }
}

/// Reads the one accessor after `owner` that must name a field of `fields`.
fn field<'e>(
    owner: &Ident,
    rest: &'e [Accessor],
    owner_path: &str,
    fields: &[&str],
) -> Result<(&'e Ident, &'e [Accessor]), ExprError> {
    let Some((first, rest)) = rest.split_first() else {
        return Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            owner.range.clone(),
            format!("`{owner_path}` is an object; name one of its properties"),
        )
        .help(format!("for example `{owner_path}.{}`", fields[0])));
    };
    let key = first.key();
    if !fields.contains(&key.name.as_str()) {
        return Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            key.range.clone(),
            format!("`{owner_path}` has no property `{}`", key.name),
        )
        .suggest(&key.name, fields));
    }
    Ok((key, rest))
}

/// A scalar result: no accessor may follow.
/// `path` names the value in the error, and is formatted only then.
pub(super) fn scalar(
    value: ParamValue,
    rest: &[Accessor],
    path: std::fmt::Arguments<'_>,
) -> Result<ParamValue, ExprError> {
    match rest.first() {
        None => Ok(value),
        Some(a) => Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            a.key().range.clone(),
            format!(
                "`{path}` is a value, not an object: it has no property `{}`",
                a.key().name
            ),
        )),
    }
}

fn need_stage<'s>(
    scope: &Scope<'s>,
    at: &Ident,
    what: &str,
) -> Result<super::scope::StageScope<'s>, ExprError> {
    scope.stage.ok_or_else(|| {
        ExprError::new(
            ExprErrorKind::NotAvailable,
            at.range.clone(),
            format!(
                "`{what}` differs per stage, but {} is built once for all stages",
                scope.owner
            ),
        )
        .help("set `per_stage: true` on the artifact to build it for each stage")
    })
}

fn eval_stage(root: &Ident, rest: &[Accessor], scope: &Scope<'_>) -> Result<ParamValue, ExprError> {
    let stage = need_stage(scope, root, "stage")?;
    let (field, rest) = field(root, rest, "stage", STAGE_FIELDS)?;
    match field.name.as_str() {
        "name" => scalar(
            ParamValue::from(stage.name),
            rest,
            format_args!("stage.name"),
        ),
        "account_id" => scalar(
            ParamValue::from(stage.account_id),
            rest,
            format_args!("stage.account_id"),
        ),
        "region" => scalar(
            ParamValue::from(stage.region),
            rest,
            format_args!("stage.region"),
        ),
        "secrets" => {
            secret_key(field, rest, "stage.secrets").map(|n| Deferred::StageSecret(n).into())
        }
        _ => eval_artifact(field, rest, "stage.artifacts", scope, |artifact, _| {
            Ok(stage.artifacts.get(artifact.key).unwrap_or(&EMPTY_LOCATION))
        }),
    }
}

/// Where an artifact is when no location is known (static checks).
static EMPTY_LOCATION: ArtifactLocation = ArtifactLocation {
    image_url: String::new(),
    image_tag: String::new(),
    s3_url: String::new(),
    s3_bucket: String::new(),
    s3_key: String::new(),
};

/// `pipeline.name`, `pipeline.slug`, and `pipeline.pre_mirror_artifacts[...]`: where a shared
/// artifact is in the CI/CD account, before it is mirrored to the stages.
fn eval_pipeline(
    root: &Ident,
    rest: &[Accessor],
    scope: &Scope<'_>,
) -> Result<ParamValue, ExprError> {
    let (field, rest) = field(root, rest, "pipeline", PIPELINE_FIELDS)?;
    let value = match field.name.as_str() {
        "name" => &scope.pipeline.name,
        "slug" => &scope.pipeline.slug,
        _ => {
            let path = "pipeline.pre_mirror_artifacts";
            return eval_artifact(field, rest, path, scope, |artifact, key| {
                if scope.definition.artifact_per_stage(artifact.key) {
                    return Err(ExprError::new(
                        ExprErrorKind::NotAvailable,
                        key.range.clone(),
                        format!(
                            "artifact `{}` is built for each stage and never mirrored: it has \
                             no copy in the CI/CD account",
                            artifact.name
                        ),
                    )
                    .help(format!("use `stage.artifacts[\"{}\"]`", artifact.name)));
                }
                Ok(scope
                    .pre_mirror_artifacts
                    .get(artifact.key)
                    .unwrap_or(&EMPTY_LOCATION))
            });
        }
    };
    scalar(
        ParamValue::from(value.as_str()),
        rest,
        format_args!("pipeline.{}", field.name),
    )
}

fn secret_key(field: &Ident, rest: &[Accessor], path: &str) -> Result<String, ExprError> {
    match rest {
        [key] if !key.key().name.is_empty() => Ok(key.key().name.clone()),
        [] => Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            field.range.clone(),
            format!("`{path}` needs a secret name: `{path}[\"NAME\"]`"),
        )),
        [key] => Err(ExprError::new(
            ExprErrorKind::BadFunction,
            key.key().range.clone(),
            "a secret name must not be empty",
        )),
        [_, extra, ..] => Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            extra.key().range.clone(),
            "a secret is text: it has no properties",
        )),
    }
}

fn eval_organization(
    root: &Ident,
    rest: &[Accessor],
    scope: &Scope<'_>,
) -> Result<ParamValue, ExprError> {
    let (field, rest) = field(root, rest, "organization", ORG_FIELDS)?;
    let org = scope.organization;
    let value = match field.name.as_str() {
        "name" => &org.name,
        "slug" => &org.slug,
        "cicd_account_id" => &org.cicd_account_id,
        "cicd_account_region" => &org.cicd_account_region,
        _ => {
            return secret_key(field, rest, "organization.secrets")
                .map(|n| Deferred::Secret(n).into());
        }
    };
    scalar(
        ParamValue::from(value.as_str()),
        rest,
        format_args!("organization.{}", field.name),
    )
}

fn eval_vars(root: &Ident, rest: &[Accessor], scope: &Scope<'_>) -> Result<ParamValue, ExprError> {
    let stage = need_stage(scope, root, "vars")?;
    let Some((first, rest)) = rest.split_first() else {
        return Ok(literal_map(stage.vars));
    };
    let key = first.key();
    let Some(mut value) = stage.vars.get(&key.name) else {
        let names: Vec<&str> = stage.vars.iter().map(|(k, _)| k.value.as_str()).collect();
        return Err(ExprError::new(
            ExprErrorKind::UnknownVariable,
            key.range.clone(),
            format!("stage `{}` has no variable `{}`", stage.name, key.name),
        )
        .suggest(&key.name, &names));
    };
    if rest.is_empty() {
        return Ok(literal(value));
    }
    let mut path = format!("vars.{}", key.name);
    for a in rest {
        let k = a.key();
        value = match &value.kind {
            ValueKind::Map(m) => m.get(&k.name).ok_or_else(|| {
                let names: Vec<&str> = m.iter().map(|(k, _)| k.value.as_str()).collect();
                ExprError::new(
                    ExprErrorKind::UnknownVariable,
                    k.range.clone(),
                    format!("`{path}` of stage `{}` has no key `{}`", stage.name, k.name),
                )
                .suggest(&k.name, &names)
            })?,
            _ => {
                return Err(ExprError::new(
                    ExprErrorKind::UnknownProperty,
                    k.range.clone(),
                    format!(
                        "`{path}` of stage `{}` is {}, not a map",
                        stage.name,
                        value.describe()
                    ),
                ));
            }
        };
        path.push('.');
        path.push_str(&k.name);
    }
    Ok(literal(value))
}

fn eval_steps(root: &Ident, rest: &[Accessor], scope: &Scope<'_>) -> Result<ParamValue, ExprError> {
    let Some(step_scope) = scope.step else {
        return Err(ExprError::new(
            ExprErrorKind::NotAvailable,
            root.range.clone(),
            format!(
                "{} cannot use step outputs: artifacts are built before any step runs",
                scope.owner
            ),
        ));
    };
    let (target, field) = match rest {
        [target, field] => (target.key(), field.key()),
        [target] => {
            return Err(ExprError::new(
                ExprErrorKind::BadStepReference,
                target.key().range.clone(),
                format!(
                    "`steps.{}` needs an output name: `steps.{}.<output>`",
                    target.key().name,
                    target.key().name
                ),
            ));
        }
        [] => {
            return Err(ExprError::new(
                ExprErrorKind::BadStepReference,
                root.range.clone(),
                "`steps` needs a step and an output: `steps.<step>.<output>`",
            ));
        }
        [_, _, extra, ..] => {
            return Err(ExprError::new(
                ExprErrorKind::BadStepReference,
                extra.key().range.clone(),
                "a step output is read as `steps.<step>.<output>`; nothing can follow",
            ));
        }
    };
    let found = scope.definition.step(&target.name);
    let Some(index) = found else {
        let names: Vec<&str> = scope.definition.step_names();
        return Err(ExprError::new(
            ExprErrorKind::BadStepReference,
            target.range.clone(),
            format!("`steps.{}` names no step", target.name),
        )
        .suggest(&target.name, &names));
    };
    let producer = scope.definition.step_at(index).unwrap_or_default();
    let current = scope
        .definition
        .step_at(step_scope.index)
        .unwrap_or_default();
    if index == step_scope.index {
        return Err(ExprError::new(
            ExprErrorKind::BadStepReference,
            target.range.clone(),
            format!("step `{}` cannot use its own outputs", current.name),
        ));
    }
    if !step_scope.ancestors.get(index).copied().unwrap_or(false) {
        return Err(ExprError::new(
            ExprErrorKind::BadStepReference,
            target.range.clone(),
            format!(
                "step `{}` uses outputs of `{}`, which does not finish before it starts",
                current.name, producer.name
            ),
        )
        .help(format!(
            "add `{}` to the `goes_after` of `{}`",
            producer.key, current.name
        )));
    }
    if step_scope.skipped.get(index).copied().unwrap_or(false) {
        let stage = scope.stage.map_or("this stage", |s| s.name);
        return Err(ExprError::new(
            ExprErrorKind::BadStepReference,
            target.range.clone(),
            format!(
                "step `{}` uses outputs of `{}`, which stage `{stage}` skips",
                current.name, producer.name
            ),
        )
        .help(format!(
            "remove `{}` from the stage's `skip`, or stop using its outputs",
            producer.key
        )));
    }
    Ok(Deferred::Output {
        step: producer.key.to_owned(),
        field: field.name.clone(),
    }
    .into())
}
