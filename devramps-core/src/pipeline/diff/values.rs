//! Comparing values by meaning (no spans, no key order) and recording field changes.

use std::collections::BTreeSet;

use super::super::value::{Value, ValueKind, ValueMap};
use super::{ChangeKind, ChangeSubject, DefinitionChange};

/// What a missing optional field shows as.
const UNSET: &str = "(unset)";

/// Whether two values mean the same: spans and the key order of maps do not count.
pub(super) fn same_value(a: &Value, b: &Value) -> bool {
    match (&a.kind, &b.kind) {
        (ValueKind::Float(x), ValueKind::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (ValueKind::List(x), ValueKind::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (ValueKind::Map(x), ValueKind::Map(y)) => same_map(x, y),
        (x, y) => x == y,
    }
}

/// Whether two maps hold the same keys with the same values, in any order.
pub(super) fn same_map(a: &ValueMap, b: &ValueMap) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(&k.value).is_some_and(|w| same_value(v, w)))
}

/// Whether two optional values mean the same.
pub(super) fn same_option(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The keys whose value differs: those of `old` (in its order) that changed or went, then
/// those only in `new` (in its order).
pub(super) fn changed_keys(old: &ValueMap, new: &ValueMap) -> Vec<String> {
    let mut keys: Vec<String> = old
        .iter()
        .filter(|(k, v)| !new.get(&k.value).is_some_and(|w| same_value(v, w)))
        .map(|(k, _)| k.value.clone())
        .collect();
    keys.extend(
        new.iter()
            .filter(|(k, _)| old.get(&k.value).is_none())
            .map(|(k, _)| k.value.clone()),
    );
    keys
}

/// An optional text for a detail: the text, or `(unset)`.
pub(super) fn shown(value: Option<&str>) -> &str {
    value.unwrap_or(UNSET)
}

/// A set (or list) for a detail: `[a, b]`.
pub(super) fn bracketed<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// `Name (id)`, or `Name` when there is no id or it equals the name.
pub(super) fn labelled(name: &str, id: Option<&str>) -> String {
    match id {
        Some(id) if id != name => format!("{name} ({id})"),
        _ => name.to_owned(),
    }
}

/// Records the changed fields of one stage, step, artifact or pipeline setting.
pub(super) struct Fields<'a> {
    /// Where the changes go.
    out: &'a mut Vec<DefinitionChange>,
    /// What is compared.
    subject: ChangeSubject,
    /// Its name (see [`DefinitionChange::name`]).
    name: &'a str,
}

impl<'a> Fields<'a> {
    /// Records into `out` the changes of the `subject` called `name`.
    pub(super) fn new(
        out: &'a mut Vec<DefinitionChange>,
        subject: ChangeSubject,
        name: &'a str,
    ) -> Self {
        Fields { out, subject, name }
    }

    /// A changed field, described by `detail`.
    pub(super) fn push(&mut self, detail: String, destructive: bool) {
        self.out.push(DefinitionChange {
            subject: self.subject,
            kind: ChangeKind::Changed,
            name: self.name.to_owned(),
            renamed_from: None,
            stage: None,
            detail,
            destructive,
        });
    }

    /// `field old -> new` when the texts differ (`None` shows as `(unset)`).
    pub(super) fn text(&mut self, field: &str, old: Option<&str>, new: Option<&str>) {
        self.text_with(field, old, new, false);
    }

    /// Like [`Fields::text`], with the destructiveness given.
    pub(super) fn text_with(
        &mut self,
        field: &str,
        old: Option<&str>,
        new: Option<&str>,
        destructive: bool,
    ) {
        if old != new {
            let detail = format!("{field} {} -> {}", shown(old), shown(new));
            self.push(detail, destructive);
        }
    }

    /// `field changed: k1, k2` when the maps differ.
    pub(super) fn map(&mut self, field: &str, old: &ValueMap, new: &ValueMap) {
        let keys = changed_keys(old, new);
        if !keys.is_empty() {
            self.push(format!("{field} changed: {}", keys.join(", ")), false);
        }
    }

    /// `field changed` (or `field added` / `field removed`) when the values differ.
    pub(super) fn value(&mut self, field: &str, old: Option<&Value>, new: Option<&Value>) {
        let what = match (old, new) {
            (Some(_), None) => "removed",
            (None, Some(_)) => "added",
            _ if same_option(old, new) => return,
            _ => "changed",
        };
        self.push(format!("{field} {what}"), false);
    }

    /// `field [a] -> [a, b]` when the sets differ (`None` is unset, unlike an empty set).
    pub(super) fn set(
        &mut self,
        field: &str,
        old: Option<&BTreeSet<String>>,
        new: Option<&BTreeSet<String>>,
    ) {
        if old != new {
            let show = |set: Option<&BTreeSet<String>>| {
                set.map_or_else(
                    || UNSET.to_owned(),
                    |s| bracketed(s.iter().map(String::as_str)),
                )
            };
            let detail = format!("{field} {} -> {}", show(old), show(new));
            self.push(detail, false);
        }
    }
}

/// The texts of spanned strings as a set.
pub(super) fn text_set<'a>(items: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse_yaml;

    #[test]
    fn spans_and_key_order_do_not_count() {
        let a = parse_yaml("{a: 1, b: [x, {c: 2.5}]}").expect("valid YAML");
        let b = parse_yaml("b:\n  - x\n  - c: 2.5\na: 1\n").expect("valid YAML");
        assert!(same_value(&a, &b));
        let c = parse_yaml("{a: 1, b: [{c: 2.5}, x]}").expect("valid YAML");
        assert!(!same_value(&a, &c), "list order counts");
    }

    #[test]
    fn changed_keys_list_changed_removed_then_added() {
        let old = parse_yaml("{a: 1, b: 2, c: 3}").expect("valid YAML");
        let new = parse_yaml("{d: 4, c: 3, a: 9}").expect("valid YAML");
        let (Some(old), Some(new)) = (old.as_map(), new.as_map()) else {
            panic!("maps");
        };
        assert_eq!(changed_keys(old, new), ["a", "b", "d"]);
    }
}
