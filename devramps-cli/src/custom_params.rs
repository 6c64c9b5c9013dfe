//! `--step-registry DIR ...` of `devramps validate` and `devramps plan`: the registries'
//! `SYNTHESIZE-METADATA` gives each `CUSTOM:*` type's parameter JSON Schema; `params` that break
//! it are `E0220` at the offending value, a `CUSTOM:*` type no registry offers is `E0221`.
//!
//! The check reads the YAML tree itself (not the checked definition), so it runs even when the
//! definition has other errors. Values that are or hold a `${{ }}` expression are not judged:
//! their type and content are only known when the deployment resolves them.

use std::path::PathBuf;

use devramps_core::expr::has_expressions;
use devramps_core::pipeline::{Code, Diagnostic, Span, Value, ValueKind, parse_yaml, suggest};
use devramps_local::steps::{CatalogEntry, StepCatalog, StepRegistry, ViolationKind};

/// The `--step-registry` option's help.
pub(crate) const HELP: &str = "A step registry (a directory with a package.json whose \
    `start-step-registry` script speaks the step protocol); may be given several times. Its \
    SYNTHESIZE-METADATA gives the parameter schema of each CUSTOM:* type: params that break it \
    are E0220, a CUSTOM:* type no given registry offers is E0221.";

/// The step types of the registries in `dirs` (started with npm), or `None` when there are
/// none. `Err` is a message for exit code 2 that names the registry.
pub(crate) fn load(dirs: &[PathBuf]) -> Result<Option<StepCatalog>, String> {
    if dirs.is_empty() {
        return Ok(None);
    }
    let registries: Vec<StepRegistry> = dirs.iter().map(StepRegistry::npm).collect();
    StepCatalog::from_registries(&registries)
        .map(Some)
        .map_err(|e| format!("cannot read the step types of the step registries: {e}"))
}

/// Checks every `CUSTOM:*` step of the pipeline in `text` against `catalog`. Text that is not
/// YAML gives nothing (the structural check reports it).
pub(crate) fn check(text: &str, catalog: &StepCatalog) -> Vec<Diagnostic> {
    let Ok(root) = parse_yaml(text) else {
        return Vec::new();
    };
    let steps = root
        .as_map()
        .and_then(|m| m.get("pipeline"))
        .and_then(Value::as_map)
        .and_then(|m| m.get("steps"))
        .and_then(Value::as_list)
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if let Some(map) = step.as_map() {
            check_step(i, step.span, map, catalog, &mut out);
        }
    }
    out
}

/// Whether the core accepts `t` as a custom type (see `read_step_type`): others are already
/// reported as `E0204`.
fn is_custom(t: &str) -> bool {
    t.strip_prefix("CUSTOM:").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.'))
    })
}

/// Checks one step (the `index`-th, a mapping at `span`).
fn check_step(
    index: usize,
    span: Span,
    map: &devramps_core::pipeline::ValueMap,
    catalog: &StepCatalog,
    out: &mut Vec<Diagnostic>,
) {
    let Some(type_value) = map.get("type") else {
        return;
    };
    let Some(step_type) = type_value.as_str().filter(|t| is_custom(t)) else {
        return;
    };
    let name = map
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| format!("#{}", index + 1), |n| format!("`{n}`"));
    let Some(entry) = catalog.get(step_type) else {
        out.push(unknown_type(step_type, &name, type_value.span, catalog));
        return;
    };
    // Without params (or with `params:` empty) the step has none; params of another kind are
    // reported by the structural check (E0003).
    let empty = Value {
        kind: ValueKind::Map(Default::default()),
        span,
    };
    let (params, anchor) = match map.entry("params") {
        None => (&empty, span),
        Some((key, value)) if value.is_null() => (&empty, key.span),
        Some((key, value)) if value.as_map().is_some() => (value, key.span),
        Some(_) => return,
    };
    let context = Context {
        entry,
        name: &name,
        step_type,
    };
    for violation in entry.check(&params.to_json()) {
        let Some((node, node_anchor)) = resolve(params, anchor, &violation.path) else {
            continue;
        };
        let at = path_text(&violation.path);
        match &violation.kind {
            ViolationKind::Missing(key) => out.push(context.diagnostic(
                node_anchor,
                format!(
                    "{}: required parameter is missing",
                    path_text(&[violation.path.clone(), vec![key.clone()]].concat())
                ),
                None,
            )),
            ViolationKind::Unexpected(keys) => {
                let allowed = allowed_keys(entry, &violation.path);
                for key in keys {
                    let key_span = node
                        .as_map()
                        .and_then(|m| m.entry(key))
                        .map_or(node_anchor, |(k, _)| k.span);
                    let help = suggest(key, allowed.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or_else(|| {
                            (!allowed.is_empty())
                                .then(|| format!("allowed here: {}", allowed.join(", ")))
                        });
                    out.push(context.diagnostic(
                        key_span,
                        format!(
                            "{}: unknown parameter, not allowed by the schema",
                            path_text(&[violation.path.clone(), vec![key.clone()]].concat())
                        ),
                        help,
                    ));
                }
            }
            _ if holds_expression(node) => {}
            _ => out.push(context.diagnostic(
                node.span,
                format!("{at}: {}", violation.message),
                None,
            )),
        }
    }
}

/// The step a diagnostic is about.
struct Context<'a> {
    entry: &'a CatalogEntry,
    name: &'a str,
    step_type: &'a str,
}

impl Context<'_> {
    /// An `E0220` at `span`; `message` gets the step appended, `help` defaults to where the
    /// type is documented.
    fn diagnostic(&self, span: Span, message: String, help: Option<String>) -> Diagnostic {
        let diagnostic = Diagnostic::new(
            Code::CustomParamInvalid,
            span,
            format!("{message} (step {}, {})", self.name, self.step_type),
        );
        let help = help.or_else(|| {
            self.entry
                .metadata
                .documentation_url
                .as_ref()
                .map(|url| format!("`{}` is documented at {url}", self.step_type))
        });
        match help {
            Some(help) => diagnostic.with_help(help),
            None => diagnostic,
        }
    }
}

/// The `E0221` of a type no registry offers.
fn unknown_type(step_type: &str, name: &str, span: Span, catalog: &StepCatalog) -> Diagnostic {
    let offered: Vec<&str> = catalog
        .entries()
        .iter()
        .map(|e| e.pipeline_type.as_str())
        .collect();
    let help = match suggest(step_type, catalog.pipeline_types()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if offered.is_empty() => "the given step registries offer no step type".to_owned(),
        None => {
            let shown: Vec<&str> = offered.iter().copied().take(10).collect();
            let more = offered.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "the given step registries offer: {}{more}",
                shown.join(", ")
            )
        }
    };
    Diagnostic::new(
        Code::UnknownCustomStepType,
        span,
        format!("step type `{step_type}` of step {name} is not offered by any given step registry"),
    )
    .with_help(help)
}

/// The value at `path` under `params`, and where a problem of that map is shown: the key the
/// value is written under (`anchor` for `params` itself).
fn resolve<'a>(params: &'a Value, anchor: Span, path: &[String]) -> Option<(&'a Value, Span)> {
    let mut node = params;
    let mut at = anchor;
    for segment in path {
        match &node.kind {
            ValueKind::Map(map) => {
                let (key, value) = map.entry(segment)?;
                at = key.span;
                node = value;
            }
            ValueKind::List(items) => {
                node = items.get(segment.parse::<usize>().ok()?)?;
                at = node.span;
            }
            _ => return None,
        }
    }
    Some((node, at))
}

/// Whether `value` is or holds a string with a `${{ }}` expression.
fn holds_expression(value: &Value) -> bool {
    match &value.kind {
        ValueKind::String(s) => has_expressions(s),
        ValueKind::List(items) => items.iter().any(holds_expression),
        ValueKind::Map(map) => map
            .iter()
            .any(|(k, v)| has_expressions(k) || holds_expression(v)),
        _ => false,
    }
}

/// The keys the schema of `entry` defines (`properties`) for the map at `path`, when the
/// schema nests plain `properties` down to it.
fn allowed_keys(entry: &CatalogEntry, path: &[String]) -> Vec<String> {
    let mut schema = &entry.metadata.params_json_schema;
    for segment in path {
        schema = match schema.get("properties").and_then(|p| p.get(segment)) {
            Some(s) => s,
            None => match schema.get("items") {
                Some(items) if segment.parse::<usize>().is_ok() => items,
                _ => return Vec::new(),
            },
        };
    }
    schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `params.a.b[0]["odd key"]`.
fn path_text(path: &[String]) -> String {
    let mut out = String::from("params");
    for segment in path {
        let plain = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else if plain {
            out.push('.');
            out.push_str(segment);
        } else {
            out.push_str(&format!("[{}]", serde_json::Value::from(segment.as_str())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_yaml_access() {
        let path = ["a", "0", "odd key", "x_y-z"].map(String::from);
        assert_eq!(path_text(&path), r#"params.a[0]["odd key"].x_y-z"#);
        assert_eq!(path_text(&[]), "params");
    }

    #[test]
    fn custom_types_follow_the_core() {
        assert!(is_custom("CUSTOM:SCRIPT:DEPLOY"));
        assert!(is_custom("CUSTOM:cdn-invalidate"));
        assert!(!is_custom("CUSTOM:"));
        assert!(!is_custom("CUSTOM:a b"));
        assert!(!is_custom("DEVRAMPS:ECS:DEPLOY"));
    }
}
