//! [`StepCatalog`]: the step types of several registries, by the type pipelines write, with
//! their compiled parameter schemas.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jsonschema::error::ValidationErrorKind;

use super::{MetadataError, StepMetadata, quote, synthesize_metadata};
use crate::steps::StepRegistry;

/// The step types offered by a set of registries, each under the type a pipeline writes.
///
/// A registry's `stepType` is matched as written (`CUSTOM:SCRIPT:DEPLOY`, what the SDK's
/// scaffolder registers). A `stepType` without the `CUSTOM:` prefix (the documentation's
/// `cdn-invalidate`) is offered as `CUSTOM:` + the type upper-cased (`CUSTOM:CDN-INVALIDATE`,
/// as the documentation uses it) and as `CUSTOM:` + the type as written
/// (`CUSTOM:cdn-invalidate`). Pipeline types are compared exactly (case-sensitively) with
/// these.
///
/// A pipeline type offered twice (by two registries, or twice by one) is an error
/// ([`MetadataError::DuplicateType`]): which registry would run the step would otherwise
/// depend on the order the registries were given in.
#[derive(Debug, Default)]
pub struct StepCatalog {
    /// Every step type, in the order added.
    entries: Vec<CatalogEntry>,
    /// Pipeline type (canonical or alias) → index into `entries`.
    by_type: BTreeMap<String, usize>,
}

/// One step type of a [`StepCatalog`]: its metadata, the registry offering it and its
/// compiled parameter schema.
pub struct CatalogEntry {
    /// What the registry says about the type.
    pub metadata: StepMetadata,
    /// The registry's directory.
    pub registry: PathBuf,
    /// The type as pipelines write it (`CUSTOM:...`).
    pub pipeline_type: String,
    /// The compiled `paramsJsonSchema`.
    validator: jsonschema::Validator,
}

impl fmt::Debug for CatalogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogEntry")
            .field("pipeline_type", &self.pipeline_type)
            .field("registry", &self.registry)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// One way a step's `params` break the schema of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamViolation {
    /// Where, as the keys and list indices from `params` down to the offending value (the
    /// decoded segments of the JSON pointer; empty for `params` itself). For
    /// [`ViolationKind::Missing`] and [`ViolationKind::Unexpected`] it is the map concerned.
    pub path: Vec<String>,
    /// What kind of problem.
    pub kind: ViolationKind,
    /// What is wrong, as the validator says it (cut to a few hundred characters), for example
    /// `"x" is not of type "integer"`.
    pub message: String,
}

/// The kind of a [`ParamViolation`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// A required key is missing from the map at the path.
    Missing(String),
    /// Keys the schema does not allow in the map at the path.
    Unexpected(Vec<String>),
    /// The value at the path breaks the schema (wrong type, not in the enum, out of range, ...).
    Invalid,
}

impl StepCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        StepCatalog::default()
    }

    /// The step types of `registries`, each asked with [`synthesize_metadata`] in turn.
    ///
    /// # Errors
    ///
    /// The first registry that cannot be read, a schema that is not valid, or a type offered
    /// twice.
    pub fn from_registries(registries: &[StepRegistry]) -> Result<Self, MetadataError> {
        let mut catalog = StepCatalog::new();
        for registry in registries {
            let metadata = synthesize_metadata(registry)?;
            catalog.add(registry.dir(), metadata)?;
        }
        Ok(catalog)
    }

    /// Adds the step types `metadata` of the registry in `registry`, compiling their schemas.
    /// Nothing is added when an error is returned.
    ///
    /// # Errors
    ///
    /// [`MetadataError::InvalidSchema`] when a `paramsJsonSchema` is not a valid JSON Schema
    /// (schemas that refer to other documents are refused: nothing is fetched);
    /// [`MetadataError::DuplicateType`] when a pipeline type is already offered.
    pub fn add(
        &mut self,
        registry: &Path,
        metadata: Vec<StepMetadata>,
    ) -> Result<(), MetadataError> {
        let mut new_entries = Vec::with_capacity(metadata.len());
        let mut new_keys: BTreeMap<String, usize> = BTreeMap::new();
        for step in metadata {
            let invalid = |problem: String| MetadataError::InvalidSchema {
                registry: registry.to_path_buf(),
                step_type: step.step_type.clone(),
                problem: quote(&problem),
            };
            let schema = &step.params_json_schema;
            if let Err(e) = jsonschema::meta::validate(schema) {
                return Err(invalid(e.to_string()));
            }
            let validator =
                jsonschema::validator_for(schema).map_err(|e| invalid(e.to_string()))?;
            let (pipeline_type, aliases) = pipeline_types(&step.step_type);
            let index = self.entries.len() + new_entries.len();
            for key in std::iter::once(&pipeline_type).chain(&aliases) {
                let first = match (self.by_type.get(key), new_keys.get(key)) {
                    (Some(&i), _) => Some(self.entries[i].registry.clone()),
                    (None, Some(_)) => Some(registry.to_path_buf()),
                    (None, None) => None,
                };
                if let Some(first) = first {
                    return Err(MetadataError::DuplicateType {
                        pipeline_type: key.clone(),
                        first,
                        second: registry.to_path_buf(),
                    });
                }
                new_keys.insert(key.clone(), index);
            }
            new_entries.push(CatalogEntry {
                metadata: step,
                registry: registry.to_path_buf(),
                pipeline_type,
                validator,
            });
        }
        self.entries.extend(new_entries);
        self.by_type.extend(new_keys);
        Ok(())
    }

    /// The step type a pipeline writes as `pipeline_type` (`CUSTOM:...`), if offered.
    pub fn get(&self, pipeline_type: &str) -> Option<&CatalogEntry> {
        self.by_type.get(pipeline_type).map(|&i| &self.entries[i])
    }

    /// Every step type, in the order added.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Every type a pipeline may write (canonical types and their aliases), sorted.
    pub fn pipeline_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// How many step types the catalog holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no step type.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl CatalogEntry {
    /// Every way `params` (a step's parameters as JSON) break this type's schema, in the
    /// validator's order.
    pub fn check(&self, params: &serde_json::Value) -> Vec<ParamViolation> {
        self.validator
            .iter_errors(params)
            .map(|error| {
                let path = decode_pointer(error.instance_path().as_str());
                let kind = match error.kind() {
                    ValidationErrorKind::Required { property } => ViolationKind::Missing(
                        property
                            .as_str()
                            .map_or_else(|| property.to_string(), str::to_owned),
                    ),
                    ValidationErrorKind::AdditionalProperties { unexpected }
                    | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                        ViolationKind::Unexpected(unexpected.clone())
                    }
                    _ => ViolationKind::Invalid,
                };
                ParamViolation {
                    path,
                    kind,
                    message: quote(&error.to_string()),
                }
            })
            .collect()
    }
}

/// The type pipelines write for a registry's `step_type`, and its aliases.
fn pipeline_types(step_type: &str) -> (String, Vec<String>) {
    if step_type.starts_with("CUSTOM:") {
        return (step_type.to_owned(), Vec::new());
    }
    let canonical = format!("CUSTOM:{}", step_type.to_uppercase());
    let as_written = format!("CUSTOM:{step_type}");
    let aliases = if as_written == canonical {
        Vec::new()
    } else {
        vec![as_written]
    };
    (canonical, aliases)
}

/// The segments of a JSON pointer (`/a/0/b~1c` → `a`, `0`, `b/c`).
fn decode_pointer(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer
        .strip_prefix('/')
        .unwrap_or(pointer)
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(step_type: &str, schema: serde_json::Value) -> StepMetadata {
        StepMetadata {
            name: None,
            step_type: step_type.into(),
            short_description: None,
            long_description: None,
            yaml_example: None,
            params_json_schema: schema,
            documentation_url: None,
        }
    }

    #[test]
    fn short_types_are_offered_prefixed_upper_cased_and_as_written() {
        let mut catalog = StepCatalog::new();
        catalog
            .add(
                Path::new("/a"),
                vec![
                    step("cdn-invalidate", json!({"type": "object"})),
                    step("CUSTOM:SCRIPT:DEPLOY", json!({"type": "object"})),
                ],
            )
            .expect("valid");
        let types: Vec<&str> = catalog.pipeline_types().collect();
        assert_eq!(
            types,
            [
                "CUSTOM:CDN-INVALIDATE",
                "CUSTOM:SCRIPT:DEPLOY",
                "CUSTOM:cdn-invalidate"
            ]
        );
        let entry = catalog.get("CUSTOM:cdn-invalidate").expect("alias");
        assert_eq!(entry.pipeline_type, "CUSTOM:CDN-INVALIDATE");
        assert_eq!(entry.metadata.step_type, "cdn-invalidate");
        assert!(catalog.get("CUSTOM:Cdn-Invalidate").is_none());
        assert!(catalog.get("cdn-invalidate").is_none());
    }

    #[test]
    fn a_type_offered_twice_is_refused_and_nothing_is_added() {
        let mut catalog = StepCatalog::new();
        catalog
            .add(Path::new("/a"), vec![step("x", json!({}))])
            .expect("first");
        let e = catalog
            .add(
                Path::new("/b"),
                vec![step("y", json!({})), step("CUSTOM:X", json!({}))],
            )
            .expect_err("duplicate");
        assert_eq!(
            e.to_string(),
            "step type `CUSTOM:X` is offered by the step registry `/a` and again by `/b`: give \
             only one of them"
        );
        assert_eq!(catalog.len(), 1);
        assert!(catalog.get("CUSTOM:Y").is_none());
    }

    #[test]
    fn violations_name_their_path_and_kind() {
        let mut catalog = StepCatalog::new();
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "must": {},
                "a/b": {"type": "array", "items": {"enum": ["x", "y"]}}
            },
            "required": ["must"],
            "additionalProperties": false
        });
        catalog
            .add(Path::new("/a"), vec![step("t", schema)])
            .expect("valid");
        let entry = catalog.get("CUSTOM:T").expect("offered");
        let mut found = entry.check(&json!({"n": "3", "a/b": ["x", "z"], "extra": 1}));
        found.sort_by_key(|v| (v.path.clone(), format!("{:?}", v.kind)));
        let summary: Vec<(Vec<String>, ViolationKind)> = found
            .iter()
            .map(|v| (v.path.clone(), v.kind.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (vec![], ViolationKind::Missing("must".into())),
                (vec![], ViolationKind::Unexpected(vec!["extra".into()])),
                (vec!["a/b".into(), "1".into()], ViolationKind::Invalid),
                (vec!["n".into()], ViolationKind::Invalid),
            ]
        );
        let n = found.iter().find(|v| v.path == ["n"]).expect("n");
        assert_eq!(n.message, r#""3" is not of type "integer""#);
        assert!(entry.check(&json!({"must": 1, "n": 2})).is_empty());
    }

    #[test]
    fn invalid_and_remote_schemas_are_refused() {
        for schema in [
            json!({"type": "no-such-type"}),
            json!({"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json"}}}),
            json!(42),
        ] {
            let e = StepCatalog::new()
                .add(Path::new("/a"), vec![step("t", schema.clone())])
                .expect_err(&schema.to_string());
            assert!(
                matches!(&e, MetadataError::InvalidSchema { step_type, .. } if step_type == "t"),
                "{schema}: {e}"
            );
        }
    }
}
