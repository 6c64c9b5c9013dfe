//! Parameter trees prepared once and resolved for many stages (synthesis resolves every step's
//! parameters in every stage).
//!
//! Preparing a tree parses its templates, turns its keys and literal values into shared
//! [`ParamValue`]s, and notes for each node whether it reads the stage (`stage.*` other than
//! secrets, `vars.*`) and which steps' outputs it reads. Resolving it for a stage then:
//!
//! - shares literal values and keys instead of copying them;
//! - resolves a node that does not read the stage once, for the first stage that needs it, and
//!   shares that value with the other stages. Such a node reads nothing that differs between
//!   stages, except whether a stage skips a step whose outputs it reads: a stage that does is
//!   resolved on its own, so that it reports its error;
//! - evaluates an expression that does not read step outputs once per stage ([`StageMemo`]),
//!   since its value is the same in every step of the stage.
//!
//! Errors are never shared: an expression that fails is evaluated again where it is used, so that
//! each error points at its own string.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::ast::{Expr, ExprKind, Part, Template};
use super::error::ExprError;
use super::eval::evaluate;
use super::parse::parse_template;
use super::scope::{Definition, Scope};
use super::template::{literal, literal_map, resolve_parts};
use super::value::ParamValue;
use crate::source::{Value, ValueKind, ValueMap};

/// Errors found while resolving, with the string each one is in.
pub(crate) type Failures<'v> = Vec<(&'v Value, ExprError)>;

/// A prepared parameter value.
#[derive(Debug)]
pub(crate) enum Prepared<'v> {
    /// A value without expressions, converted once.
    Literal(ParamValue),
    /// A string with expressions.
    Template(Box<TemplateNode<'v>>),
    /// A list with expressions inside.
    List(Box<Branch<'v, Prepared<'v>>>),
    /// A map with expressions inside.
    Map(Box<Branch<'v, (Arc<str>, Prepared<'v>)>>),
}

/// A string with expressions.
#[derive(Debug)]
pub(crate) struct TemplateNode<'v> {
    /// The string, for errors.
    value: &'v Value,
    /// Its parsed form, or why it does not parse.
    template: Result<Template, ExprError>,
    /// For each expression, in order: its slot in the [`StageMemo`], unless it reads step
    /// outputs (whose value depends on the step).
    slots: Vec<Option<usize>>,
    sharing: Sharing<'v>,
}

/// A list or map with expressions inside.
#[derive(Debug)]
pub(crate) struct Branch<'v, T> {
    children: Vec<T>,
    sharing: Sharing<'v>,
}

/// Whether a node's value is shared by the stages, and the shared value once known.
#[derive(Debug, Default)]
struct Sharing<'v> {
    /// The node reads the stage: it is resolved for each stage.
    per_stage: bool,
    /// The steps whose outputs the node reads.
    producers: Vec<usize>,
    /// The value and its errors, resolved for the first stage that skips none of `producers`.
    shared: OnceCell<(ParamValue, Failures<'v>)>,
}

impl<'v> Sharing<'v> {
    fn of<'a>(children: impl Iterator<Item = &'a Sharing<'v>>) -> Self
    where
        'v: 'a,
    {
        let mut sharing = Sharing::default();
        for child in children {
            sharing.per_stage |= child.per_stage;
            sharing.producers.extend_from_slice(&child.producers);
        }
        sharing.producers.sort_unstable();
        sharing.producers.dedup();
        sharing
    }

    /// Whether the value resolved for one stage holds in the current one.
    fn shareable(&self, skipped: &[bool]) -> bool {
        !self.per_stage
            && !self
                .producers
                .iter()
                .any(|&p| skipped.get(p).copied().unwrap_or(false))
    }

    /// The node's value, shared when it can be.
    fn resolve(
        &self,
        cx: &mut Resolver<'_, '_>,
        errors: &mut Failures<'v>,
        resolve: impl FnOnce(&mut Resolver<'_, '_>, &mut Failures<'v>) -> ParamValue,
    ) -> ParamValue {
        if !self.shareable(cx.skipped()) {
            return resolve(cx, errors);
        }
        let (value, failures) = self.shared.get_or_init(|| {
            let mut failures = Vec::new();
            let value = resolve(cx, &mut failures);
            (value, failures)
        });
        errors.extend(failures.iter().cloned());
        value.clone()
    }
}

impl<'v> Prepared<'v> {
    fn sharing(&self) -> Option<&Sharing<'v>> {
        match self {
            Prepared::Literal(_) => None,
            Prepared::Template(t) => Some(&t.sharing),
            Prepared::List(b) => Some(&b.sharing),
            Prepared::Map(b) => Some(&b.sharing),
        }
    }

    /// Resolves the value; errors go to `errors` (with `null` in place of the failed string).
    pub(crate) fn resolve(
        &self,
        cx: &mut Resolver<'_, '_>,
        errors: &mut Failures<'v>,
    ) -> ParamValue {
        match self {
            Prepared::Literal(v) => v.clone(),
            Prepared::Template(t) => t
                .sharing
                .resolve(cx, errors, |cx, errors| t.resolve(cx, errors)),
            Prepared::List(b) => b.sharing.resolve(cx, errors, |cx, errors| {
                ParamValue::List(b.children.iter().map(|c| c.resolve(cx, errors)).collect())
            }),
            Prepared::Map(b) => b.sharing.resolve(cx, errors, |cx, errors| {
                ParamValue::Map(
                    b.children
                        .iter()
                        .map(|(k, c)| (Arc::clone(k), c.resolve(cx, errors)))
                        .collect(),
                )
            }),
        }
    }

    /// Resolves a map of parameters whose entries stand alone: an entry with errors is left out
    /// and its errors go to `errors`.
    pub(crate) fn resolve_entries(
        &self,
        cx: &mut Resolver<'_, '_>,
        errors: &mut Failures<'v>,
    ) -> ParamValue {
        let Prepared::Map(b) = self else {
            return self.resolve(cx, errors);
        };
        let shareable = b.sharing.shareable(cx.skipped());
        if shareable
            && let Some((value, failures)) = b.sharing.shared.get()
            && failures.is_empty()
        {
            return value.clone();
        }
        // The entries gather in a buffer that is reused, so that the map is allocated once.
        let mut entries = std::mem::take(&mut cx.entries);
        let mut failed = false;
        for (key, child) in &b.children {
            let before = errors.len();
            let value = child.resolve(cx, errors);
            if errors.len() == before {
                entries.push((Arc::clone(key), value));
            } else {
                failed = true;
            }
        }
        let value = ParamValue::Map(entries.drain(..).collect());
        cx.entries = entries;
        if shareable && !failed {
            let _ = b.sharing.shared.set((value.clone(), Vec::new()));
        }
        value
    }
}

impl<'v> TemplateNode<'v> {
    fn resolve(&self, cx: &mut Resolver<'_, '_>, errors: &mut Failures<'v>) -> ParamValue {
        let template = match &self.template {
            Ok(t) => t,
            Err(e) => {
                errors.push((self.value, e.clone()));
                return ParamValue::Null;
            }
        };
        let mut buffer = std::mem::take(&mut cx.buffer);
        let scope = &cx.scope;
        let memo = &mut *cx.memo;
        let resolved = resolve_parts(template, &mut buffer, |i, expr| {
            let slot = self.slots.get(i).copied().flatten();
            if let Some(v) = slot.and_then(|s| memo.values.get(s)?.as_ref()) {
                return Ok(v.clone());
            }
            let value = evaluate(expr, scope)?;
            if let Some(memoized) = slot.and_then(|s| memo.values.get_mut(s)) {
                *memoized = Some(value.clone());
            }
            Ok(value)
        });
        cx.buffer = buffer;
        resolved.unwrap_or_else(|errs| {
            errors.extend(errs.into_iter().map(|e| (self.value, e)));
            ParamValue::Null
        })
    }
}

/// The values of expressions in one stage, by slot (see [`Preparer`]).
#[derive(Debug, Default)]
pub(crate) struct StageMemo {
    values: Vec<Option<ParamValue>>,
}

impl StageMemo {
    /// Forgets every value, for a new stage.
    pub(crate) fn clear(&mut self) {
        self.values.iter_mut().for_each(|v| *v = None);
    }
}

/// What resolving needs: the scope (set for each step or artifact), the stage's memo, and a
/// buffer to render text in.
#[derive(Debug)]
pub(crate) struct Resolver<'m, 's> {
    /// Where expressions are evaluated.
    pub(crate) scope: Scope<'s>,
    memo: &'m mut StageMemo,
    /// Where text is rendered.
    buffer: String,
    /// Where the entries of a map of parameters gather.
    entries: Vec<(Arc<str>, ParamValue)>,
}

impl<'m, 's> Resolver<'m, 's> {
    /// Resolves in `scope` with a stage's `memo` (the scopes given later must be of the same
    /// stage).
    pub(crate) fn new(scope: Scope<'s>, memo: &'m mut StageMemo) -> Self {
        Resolver {
            scope,
            memo,
            buffer: String::new(),
            entries: Vec::new(),
        }
    }

    /// Which steps the stage skips, by index (none outside step parameters).
    fn skipped(&self) -> &'s [bool] {
        self.scope.step.map_or(&[], |s| s.skipped)
    }
}

/// Prepares parameter trees; expressions with the same text share a [`StageMemo`] slot.
#[derive(Debug)]
pub(crate) struct Preparer<'d> {
    definition: &'d dyn Definition,
    /// The slot of each expression, by its text (as written between `${{` and `}}`).
    slots: HashMap<&'d str, usize>,
}

impl<'d> Preparer<'d> {
    /// A preparer for a definition's parameters; `steps.<step>` is looked up in `definition`.
    pub(crate) fn new(definition: &'d dyn Definition) -> Self {
        Preparer {
            definition,
            slots: HashMap::new(),
        }
    }

    /// A memo for one stage, with room for every expression prepared so far.
    pub(crate) fn memo(&self) -> StageMemo {
        StageMemo {
            values: vec![None; self.slots.len()],
        }
    }

    /// Prepares a map of parameters.
    pub(crate) fn prepare_map(&mut self, map: &'d ValueMap) -> Prepared<'d> {
        let children: Vec<(Arc<str>, Prepared<'d>)> = map
            .iter()
            .map(|(k, v)| (Arc::from(k.value.as_str()), self.prepare(v)))
            .collect();
        if children
            .iter()
            .all(|(_, c)| matches!(c, Prepared::Literal(_)))
        {
            return Prepared::Literal(literal_map(map));
        }
        let sharing = Sharing::of(children.iter().filter_map(|(_, c)| c.sharing()));
        Prepared::Map(Box::new(Branch { children, sharing }))
    }

    /// Prepares a value.
    pub(crate) fn prepare(&mut self, value: &'d Value) -> Prepared<'d> {
        match &value.kind {
            ValueKind::String(s) if s.contains("${{") => self.prepare_template(value, s),
            ValueKind::List(items) => {
                let children: Vec<Prepared<'d>> = items.iter().map(|i| self.prepare(i)).collect();
                if children.iter().all(|c| matches!(c, Prepared::Literal(_))) {
                    return Prepared::Literal(literal(value));
                }
                let sharing = Sharing::of(children.iter().filter_map(Prepared::sharing));
                Prepared::List(Box::new(Branch { children, sharing }))
            }
            ValueKind::Map(m) => self.prepare_map(m),
            _ => Prepared::Literal(literal(value)),
        }
    }

    fn prepare_template(&mut self, value: &'d Value, text: &'d str) -> Prepared<'d> {
        let template = match parse_template(text) {
            Ok(t) if t.is_literal() => {
                // Only escaped `$${{`: the text as it reads.
                let text: String = t
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(text) => text.as_str(),
                        Part::Expr(_) => "",
                    })
                    .collect();
                return Prepared::Literal(ParamValue::from(text));
            }
            Ok(t) => Ok(t),
            Err(e) => Err(ExprError::from(e)),
        };
        let mut sharing = Sharing::default();
        let mut slots = Vec::new();
        if let Ok(t) = &template {
            for expr in t.exprs() {
                let reads = self.reads(expr);
                sharing.per_stage |= reads.stage;
                match reads.step {
                    Some(producer) => {
                        sharing.producers.extend(producer);
                        slots.push(None);
                    }
                    None => {
                        let next = self.slots.len();
                        let written = text.get(expr.range.clone());
                        slots.push(written.map(|w| *self.slots.entry(w).or_insert(next)));
                    }
                }
            }
            sharing.producers.sort_unstable();
            sharing.producers.dedup();
        }
        Prepared::Template(Box::new(TemplateNode {
            value,
            template,
            slots,
            sharing,
        }))
    }

    /// What an expression reads: whether the stage, and whether (and which) step outputs.
    fn reads(&self, expr: &Expr) -> Reads {
        let ExprKind::Path(path) = &expr.kind else {
            // `secret("N")` and `stage_secret("N")`: the same in every stage and step.
            return Reads::default();
        };
        let first = path.accessors.first().map(|a| a.key().name.as_str());
        match path.root.name.as_str() {
            "stage" => Reads {
                stage: first != Some("secrets"),
                step: None,
            },
            "vars" => Reads {
                stage: true,
                step: None,
            },
            "steps" => Reads {
                stage: false,
                step: Some(first.and_then(|target| self.definition.step(target))),
            },
            _ => Reads::default(),
        }
    }
}

/// What an expression reads (see [`Preparer::reads`]).
#[derive(Default)]
struct Reads {
    /// Something that differs between stages.
    stage: bool,
    /// Step outputs (`Some`), of this step when it exists.
    step: Option<Option<usize>>,
}
