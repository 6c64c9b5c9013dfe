//! Evaluating expressions against a [`Scope`]: what can be known at synthesis is resolved,
//! secrets and step outputs become [`Deferred`] values, and every mistake is an [`ExprError`]
//! with the byte range of the offending name.

use std::ops::Range;

use super::artifact_ref::eval_artifact;
use super::ast::{Accessor, Expr, ExprKind, Ident, Part, Template};
use super::parse::{SyntaxError, parse_template};
use super::scope::{ArtifactLocation, Scope};
use super::value::{Deferred, ParamValue, TextPart};
use crate::source::{Code, Value, ValueKind, ValueMap, suggest};

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

/// What kind of mistake an [`ExprError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// `${{` without `}}`.
    Unterminated,
    /// Any other syntax error.
    Syntax,
    /// The first name is not a namespace or function.
    UnknownNamespace,
    /// A property that the object does not have.
    UnknownProperty,
    /// `stage.artifacts[...]` names no artifact.
    UnknownArtifact,
    /// `vars.x` where the stage has no variable `x`.
    UnknownVariable,
    /// An unknown function, or a wrong argument.
    BadFunction,
    /// `steps.x.y` that does not name an earlier step of the same stage.
    BadStepReference,
    /// A namespace that this place cannot use (for example `vars` in an artifact built once).
    NotAvailable,
}

impl ExprErrorKind {
    /// The diagnostic code.
    pub fn code(self) -> Code {
        match self {
            ExprErrorKind::Unterminated => Code::ExprUnterminated,
            ExprErrorKind::Syntax => Code::ExprSyntax,
            ExprErrorKind::UnknownNamespace => Code::ExprUnknownNamespace,
            ExprErrorKind::UnknownProperty => Code::ExprUnknownProperty,
            ExprErrorKind::UnknownArtifact => Code::ExprUnknownArtifact,
            ExprErrorKind::UnknownVariable => Code::ExprUnknownVariable,
            ExprErrorKind::BadFunction => Code::ExprBadFunction,
            ExprErrorKind::BadStepReference => Code::ExprBadStepReference,
            ExprErrorKind::NotAvailable => Code::ExprNotAvailable,
        }
    }
}

/// A mistake in an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    /// What kind.
    pub kind: ExprErrorKind,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Byte range in the string that holds the expression.
    pub range: Range<usize>,
}

impl ExprError {
    pub(super) fn new(
        kind: ExprErrorKind,
        range: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        ExprError {
            kind,
            message: message.into(),
            help: None,
            range,
        }
    }

    pub(super) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(super) fn suggest(self, word: &str, candidates: &[&str]) -> Self {
        match suggest(word, candidates.iter().copied()) {
            Some(s) => self.help(format!("did you mean `{s}`?")),
            None if candidates.is_empty() => self,
            None => {
                let list = candidates.join("`, `");
                self.help(format!("available: `{list}`"))
            }
        }
    }
}

impl From<SyntaxError> for ExprError {
    fn from(e: SyntaxError) -> Self {
        ExprError {
            kind: if e.unterminated {
                ExprErrorKind::Unterminated
            } else {
                ExprErrorKind::Syntax
            },
            message: e.message,
            help: e.help,
            range: e.range,
        }
    }
}

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

/// Converts a literal value (stage variables) into a parameter value.
pub fn literal(value: &Value) -> ParamValue {
    match &value.kind {
        ValueKind::Null => ParamValue::Null,
        ValueKind::Bool(b) => ParamValue::Bool(*b),
        ValueKind::Int(i) => ParamValue::Int(*i),
        ValueKind::Float(x) => ParamValue::Float(*x),
        ValueKind::String(s) => ParamValue::from(s.as_str()),
        ValueKind::List(items) => ParamValue::List(items.iter().map(literal).collect()),
        ValueKind::Map(m) => literal_map(m),
    }
}

/// [`literal`] of a map.
pub(crate) fn literal_map(map: &ValueMap) -> ParamValue {
    ParamValue::Map(
        map.iter()
            .map(|(k, v)| (k.value.as_str().into(), literal(v)))
            .collect(),
    )
}

/// Resolves a parsed template. A template that is one whole expression keeps the value's type;
/// otherwise the result is text (with deferred parts when there are any).
pub fn resolve_template(
    template: &Template,
    scope: &Scope<'_>,
) -> Result<ParamValue, Vec<ExprError>> {
    resolve_parts(template, &mut String::new(), |_, expr| {
        evaluate(expr, scope)
    })
}

/// [`resolve_template`] with the expressions evaluated by `eval` (given each expression's
/// position among the template's expressions) and text rendered in `buffer` (left empty).
pub(crate) fn resolve_parts(
    template: &Template,
    buffer: &mut String,
    mut eval: impl FnMut(usize, &Expr) -> Result<ParamValue, ExprError>,
) -> Result<ParamValue, Vec<ExprError>> {
    if let Some(expr) = template.as_single_expr() {
        return eval(0, expr).map_err(|e| vec![e]);
    }
    buffer.clear();
    let text = buffer;
    let mut parts: Vec<TextPart> = Vec::new();
    let mut errors = Vec::new();
    let mut position = 0;
    for part in &template.parts {
        let expr = match part {
            Part::Text(t) => {
                text.push_str(t);
                continue;
            }
            Part::Expr(e) => e,
        };
        let value = eval(position, expr);
        position += 1;
        match value {
            Ok(ParamValue::Deferred(d)) => {
                if !text.is_empty() {
                    parts.push(TextPart::Literal(text.as_str().to_owned()));
                    text.clear();
                }
                parts.push(TextPart::Deferred(std::sync::Arc::unwrap_or_clone(d)));
            }
            Ok(ParamValue::Text(inner)) => {
                for p in inner.iter() {
                    match p {
                        TextPart::Literal(t) => text.push_str(t),
                        deferred => {
                            if !text.is_empty() {
                                parts.push(TextPart::Literal(text.as_str().to_owned()));
                                text.clear();
                            }
                            parts.push(deferred.clone());
                        }
                    }
                }
            }
            Ok(v) => v.render_into(text),
            Err(err) => errors.push(err),
        }
    }
    let result = if !errors.is_empty() {
        Err(errors)
    } else if parts.is_empty() {
        Ok(ParamValue::from(text.as_str()))
    } else {
        if !text.is_empty() {
            parts.push(TextPart::Literal(text.as_str().to_owned()));
        }
        Ok(ParamValue::Text(parts.into()))
    };
    text.clear();
    result
}

/// Resolves a string that may hold expressions.
pub fn resolve_str(text: &str, scope: &Scope<'_>) -> Result<ParamValue, Vec<ExprError>> {
    let template = parse_template(text).map_err(|e| vec![ExprError::from(e)])?;
    resolve_template(&template, scope)
}

/// Resolves a parameter value recursively (map keys are literal). Errors come with the value
/// (string) they were found in, so callers can point at the file.
pub fn resolve_value<'v>(
    value: &'v Value,
    scope: &Scope<'_>,
) -> Result<ParamValue, Vec<(&'v Value, ExprError)>> {
    let mut errors = Vec::new();
    let resolved = resolve_into(value, scope, &mut errors);
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn resolve_into<'v>(
    value: &'v Value,
    scope: &Scope<'_>,
    errors: &mut Vec<(&'v Value, ExprError)>,
) -> ParamValue {
    match &value.kind {
        ValueKind::String(s) if s.contains("${{") => match resolve_str(s, scope) {
            Ok(v) => v,
            Err(errs) => {
                errors.extend(errs.into_iter().map(|e| (value, e)));
                ParamValue::Null
            }
        },
        ValueKind::List(items) => ParamValue::List(
            items
                .iter()
                .map(|i| resolve_into(i, scope, errors))
                .collect(),
        ),
        ValueKind::Map(m) => ParamValue::Map(
            m.iter()
                .map(|(k, v)| (k.value.as_str().into(), resolve_into(v, scope, errors)))
                .collect(),
        ),
        _ => literal(value),
    }
}
