//! Resolving templates and parameter values: literal values converted, the expressions of a
//! template evaluated, text rendered, and values resolved recursively with their errors.

use super::ast::{Expr, Part, Template};
use super::error::ExprError;
use super::eval::evaluate;
use super::parse::parse_template;
use super::scope::Scope;
use super::value::{ParamValue, TextPart};
use crate::source::{Value, ValueKind, ValueMap};

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
