//! What a saved plan changes, read from `terraform show -json PLAN`: each resource's address and
//! action, for the person who approves.
//!
//! Only `format_version` and `resource_changes[].address` / `.change.actions` are read; the rest
//! (prior state, configuration, the values before and after, which may be large and may hold
//! sensitive values) is skipped without being built in memory.

use std::fmt;

use devramps_core::exec::{ChangeAction, ResourceChange};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// Why the JSON of a plan could not be classified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanJsonError {
    /// Not the JSON of a plan (serde's message, with the line and column).
    #[error("the plan JSON of `terraform show -json` cannot be read: {0}")]
    Malformed(#[from] serde_json::Error),
    /// No `format_version`.
    #[error("the plan JSON of `terraform show -json` has no `format_version`")]
    NoFormatVersion,
    /// A `format_version` whose major this reader does not know.
    #[error(
        "the plan JSON of `terraform show -json` has format_version `{0}`, whose major version \
         is unknown (known: 0.x, written by Terraform 1.0 to 1.0.x, and 1.x, written by later \
         versions and OpenTofu)"
    )]
    UnknownFormat(String),
    /// A resource whose actions are not one of the known combinations.
    #[error("resource `{address}` has actions {actions:?}, which this reader does not know")]
    UnknownActions {
        /// The resource address.
        address: String,
        /// The actions as written.
        actions: Vec<String>,
    },
}

/// The resources a plan changes, in the plan's order, from the output of
/// `terraform show -json PLAN` (format version 0.x or 1.x).
///
/// `["create"]` is a creation, `["update"]` an update in place, `["delete"]` a destruction,
/// `["delete", "create"]` and `["create", "delete"]` a replacement; `["no-op"]` and `["read"]`
/// change nothing and are left out.
///
/// ```
/// use devramps_core::exec::{ChangeAction, ResourceChange};
/// use devramps_local::terraform::classify;
///
/// let json = br#"{"format_version": "1.2", "resource_changes": [
///     {"address": "aws_s3_bucket.site", "change": {"actions": ["delete", "create"]}},
///     {"address": "data.aws_caller_identity.me", "change": {"actions": ["read"]}}
/// ]}"#;
/// let changes = classify(json).unwrap();
/// assert_eq!(changes, [ResourceChange::new("aws_s3_bucket.site", ChangeAction::Replace)]);
/// ```
pub fn classify(json: &[u8]) -> Result<Vec<ResourceChange>, PlanJsonError> {
    let plan: PlanJson = serde_json::from_slice(json)?;
    match plan.format_version {
        Format::Missing => return Err(PlanJsonError::NoFormatVersion),
        Format::Unknown(version) => return Err(PlanJsonError::UnknownFormat(version)),
        Format::Known => {}
    }
    let mut changes = Vec::with_capacity(plan.resource_changes.len());
    for raw in plan.resource_changes {
        if let Some(action) = action_of(&raw.change.actions) {
            changes.push(ResourceChange::new(raw.address, action));
        } else if !matters_not(&raw.change.actions) {
            return Err(PlanJsonError::UnknownActions {
                address: raw.address,
                actions: raw.change.actions,
            });
        }
    }
    Ok(changes)
}

/// The action of a resource change, or `None` when it changes nothing or is unknown.
fn action_of(actions: &[String]) -> Option<ChangeAction> {
    match actions {
        [one] => match one.as_str() {
            "create" => Some(ChangeAction::Create),
            "update" => Some(ChangeAction::Update),
            "delete" => Some(ChangeAction::Delete),
            _ => None,
        },
        [a, b]
            if matches!(
                (a.as_str(), b.as_str()),
                ("delete", "create") | ("create", "delete")
            ) =>
        {
            Some(ChangeAction::Replace)
        }
        _ => None,
    }
}

/// Whether the actions change nothing (`no-op`, `read`).
fn matters_not(actions: &[String]) -> bool {
    matches!(actions, [one] if one == "no-op" || one == "read")
}

/// The parts of the plan JSON that are read.
struct PlanJson {
    format_version: Format,
    resource_changes: Vec<RawChange>,
}

/// What `format_version` said.
enum Format {
    Missing,
    Known,
    Unknown(String),
}

#[derive(Deserialize)]
struct RawChange {
    address: String,
    change: RawActions,
}

#[derive(Deserialize)]
struct RawActions {
    actions: Vec<String>,
}

/// Whether this reader knows the format: majors 0 and 1.
fn known_format(version: &str) -> bool {
    matches!(version.split('.').next(), Some("0" | "1"))
}

impl<'de> Deserialize<'de> for PlanJson {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PlanVisitor)
    }
}

struct PlanVisitor;

impl<'de> Visitor<'de> for PlanVisitor {
    type Value = PlanJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the JSON object of a Terraform plan")
    }

    /// Reads the fields in the order written. Terraform writes `format_version` first: an
    /// unknown version is then known before `resource_changes`, whose shape it may change, is
    /// read (the rest is skipped without being read into values).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PlanJson, A::Error> {
        let mut plan = PlanJson {
            format_version: Format::Missing,
            resource_changes: Vec::new(),
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "format_version" => {
                    let version: String = map.next_value()?;
                    plan.format_version = if known_format(&version) {
                        Format::Known
                    } else {
                        Format::Unknown(version)
                    };
                }
                "resource_changes" if !matches!(plan.format_version, Format::Unknown(_)) => {
                    plan.resource_changes = map
                        .next_value::<Option<Vec<RawChange>>>()?
                        .unwrap_or_default();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A plan as Terraform 1.0.3 writes it (format 0.2), cut down: a creation, an update, a
    /// replacement in both orders, a destruction, a no-op and a read.
    fn plan_0_2() -> String {
        let change = |address: &str, actions: &str| {
            format!(
                r#"{{"address":"{address}","mode":"managed","type":"devramps_thing","name":"x",
                "provider_name":"registry.terraform.io/devramps/devramps",
                "change":{{"actions":{actions},"before":null,"after":{{"name":"p1-a","size":1,
                "nested":[{{"deep":{{"deeper":[1,2,"}}"]}}}}]}},"after_unknown":{{"id":true}},
                "before_sensitive":false,"after_sensitive":{{}}}}}}"#
            )
        };
        format!(
            r#"{{"format_version":"0.2","terraform_version":"1.0.3",
            "variables":{{"prefix":{{"value":"p1"}}}},
            "planned_values":{{"outputs":{{"token":{{"sensitive":true,"value":"tok"}}}}}},
            "resource_changes":[{},{},{},{},{},{},{}],
            "output_changes":{{}},"configuration":{{"root_module":{{}}}}}}"#,
            change("devramps_thing.a", r#"["create"]"#),
            change("devramps_thing.b", r#"["update"]"#),
            change("devramps_thing.c", r#"["delete","create"]"#),
            change("module.m.devramps_thing.d[0]", r#"["create","delete"]"#),
            change("devramps_thing.e", r#"["delete"]"#),
            change("devramps_thing.f", r#"["no-op"]"#),
            change("data.devramps_thing.g", r#"["read"]"#),
        )
    }

    #[test]
    fn a_1_0_3_plan_reads_each_action_and_skips_no_ops_and_reads() {
        let changes = classify(plan_0_2().as_bytes()).unwrap();
        assert_eq!(
            changes,
            [
                ResourceChange::new("devramps_thing.a", ChangeAction::Create),
                ResourceChange::new("devramps_thing.b", ChangeAction::Update),
                ResourceChange::new("devramps_thing.c", ChangeAction::Replace),
                ResourceChange::new("module.m.devramps_thing.d[0]", ChangeAction::Replace),
                ResourceChange::new("devramps_thing.e", ChangeAction::Delete),
            ]
        );
    }

    #[test]
    fn a_1_x_plan_reads_the_same_and_ignores_newer_fields() {
        let json = plan_0_2()
            .replace(r#""format_version":"0.2""#, r#""format_version":"1.2""#)
            .replace(
                r#""output_changes":{}"#,
                r#""resource_drift":[{"address":"x","change":{"actions":["update"]}}],
                   "relevant_attributes":[],"timestamp":"2024-01-01T00:00:00Z","applyable":true,
                   "output_changes":{}"#,
            );
        let changes = classify(json.as_bytes()).unwrap();
        assert_eq!(changes.len(), 5);
        assert_eq!(changes[2].action, ChangeAction::Replace);
    }

    /// Real `show -json` outputs of one plan (two things renamed: both replaced) by
    /// Terraform 1.0.3 (format 0.2) and 1.11.4 (format 1.2), with the tests' provider.
    #[test]
    fn real_plans_of_two_terraform_versions_read_the_same() {
        for (json, version) in [
            (
                &include_bytes!("testdata/show-json-terraform-1.0.3.json")[..],
                "0.2",
            ),
            (
                &include_bytes!("testdata/show-json-terraform-1.11.4.json")[..],
                "1.2",
            ),
        ] {
            let text = String::from_utf8_lossy(json);
            assert!(text.starts_with(&format!(r#"{{"format_version":"{version}""#)));
            assert_eq!(
                classify(json).unwrap(),
                [
                    ResourceChange::new("devramps_thing.a", ChangeAction::Replace),
                    ResourceChange::new("devramps_thing.b", ChangeAction::Replace),
                ],
                "format {version}"
            );
        }
    }

    #[test]
    fn a_plan_without_changes_has_none() {
        assert!(classify(br#"{"format_version":"0.2"}"#).unwrap().is_empty());
        assert!(
            classify(br#"{"format_version":"1.0","resource_changes":null}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unknown_major_is_named_before_the_changes_are_read() {
        // The changes of format 2 may be shaped differently: they are not read.
        let json = br#"{"format_version":"2.0","resource_changes":{"new":"shape"}}"#;
        let e = classify(json).unwrap_err();
        assert!(
            matches!(&e, PlanJsonError::UnknownFormat(v) if v == "2.0"),
            "{e}"
        );
        assert!(e.to_string().contains("format_version `2.0`"), "{e}");
        let e = classify(br#"{"resource_changes":[]}"#).unwrap_err();
        assert!(matches!(e, PlanJsonError::NoFormatVersion), "{e}");
    }

    #[test]
    fn malformed_json_says_where() {
        let e =
            classify(b"{\"format_version\": \"0.2\",\n \"resource_changes\": [{]}").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PlanJsonError::Malformed(_)), "{text}");
        assert!(text.contains("line 2 column"), "{text}");
        let e = classify(br#"{"format_version":"1.0","resource_changes":[{"address":"a"}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("missing field `change`"), "{e}");
        assert!(classify(b"[]").is_err());
        assert!(classify(b"").is_err());
    }

    #[test]
    fn unknown_actions_are_named() {
        let json = br#"{"format_version":"1.9","resource_changes":[
            {"address":"x.y","change":{"actions":["forget"]}}]}"#;
        let e = classify(json).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"resource `x.y` has actions ["forget"], which this reader does not know"#
        );
    }
}
