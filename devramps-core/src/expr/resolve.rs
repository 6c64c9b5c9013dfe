//! The late resolution of deferred values, just before a step runs: step outputs are filled in
//! from the outputs of finished steps and secrets from a secret source.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

use super::value::{Deferred, ParamValue, SecretString, TextPart};

/// A parameter value ready for a step. Secrets stay wrapped: `Debug`, `Display` and
/// `Serialize` show `[REDACTED]` in their place; [`FinalValue::expose_json`] gives the real
/// value to the code that hands it to the step runner.
#[derive(Clone, PartialEq)]
pub enum FinalValue {
    /// A value without secrets.
    Plain(serde_json::Value),
    /// A secret, or text that contains one.
    Secret(SecretString),
    /// A list holding secrets.
    List(Vec<FinalValue>),
    /// A map holding secrets.
    Map(Vec<(String, FinalValue)>),
}

impl FinalValue {
    /// The value with secrets in clear, for the step runner only.
    pub fn expose_json(&self) -> serde_json::Value {
        match self {
            FinalValue::Plain(v) => v.clone(),
            FinalValue::Secret(s) => serde_json::Value::String(s.expose().to_owned()),
            FinalValue::List(items) => items.iter().map(FinalValue::expose_json).collect(),
            FinalValue::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// The value with every secret replaced by `[REDACTED]`: safe to log or store.
    pub fn redacted_json(&self) -> serde_json::Value {
        match self {
            FinalValue::Plain(v) => v.clone(),
            FinalValue::Secret(_) => serde_json::Value::String("[REDACTED]".to_owned()),
            FinalValue::List(items) => items.iter().map(FinalValue::redacted_json).collect(),
            FinalValue::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.redacted_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    /// Whether the value holds a secret.
    pub fn has_secret(&self) -> bool {
        match self {
            FinalValue::Plain(_) => false,
            FinalValue::Secret(_) => true,
            FinalValue::List(items) => items.iter().any(FinalValue::has_secret),
            FinalValue::Map(entries) => entries.iter().any(|(_, v)| v.has_secret()),
        }
    }
}

impl fmt::Debug for FinalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted_json())
    }
}

impl fmt::Display for FinalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted_json())
    }
}

impl Serialize for FinalValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted_json().serialize(serializer)
    }
}

/// Why a deferred value could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The secret does not exist (for example it was deleted: reference scenario 27).
    #[error("secret `{0}` does not exist")]
    MissingSecret(String),
    /// The stage secret does not exist in this stage.
    #[error("stage secret `{0}` does not exist in this stage")]
    MissingStageSecret(String),
    /// The step finished without that output.
    #[error("step `{step}` has no output `{field}`")]
    MissingOutput {
        /// The producing step.
        step: String,
        /// The output.
        field: String,
    },
}

/// The values deferred values resolve to: outputs of finished steps of the stage, and the
/// secrets the step needs (fetched by the caller from its secret source, see
/// [`ParamValue::deferred`]).
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// Outputs by step key (id, else name), then output name.
    pub outputs: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Organization secrets by name.
    pub secrets: BTreeMap<String, SecretString>,
    /// The current stage's secrets by name.
    pub stage_secrets: BTreeMap<String, SecretString>,
}

enum Piece {
    Plain(serde_json::Value),
    Secret(SecretString),
}

impl Resolution {
    fn piece(&self, deferred: &Deferred) -> Result<Piece, ResolveError> {
        match deferred {
            Deferred::Secret(n) => self
                .secrets
                .get(n)
                .cloned()
                .map(Piece::Secret)
                .ok_or_else(|| ResolveError::MissingSecret(n.clone())),
            Deferred::StageSecret(n) => self
                .stage_secrets
                .get(n)
                .cloned()
                .map(Piece::Secret)
                .ok_or_else(|| ResolveError::MissingStageSecret(n.clone())),
            Deferred::Output { step, field } => self
                .outputs
                .get(step)
                .and_then(|o| o.get(field))
                .cloned()
                .map(Piece::Plain)
                .ok_or_else(|| ResolveError::MissingOutput {
                    step: step.clone(),
                    field: field.clone(),
                }),
        }
    }

    /// Resolves every deferred value of `value`. A whole-value output keeps its JSON type;
    /// inside text it is rendered as text. Text that contains a secret becomes a secret.
    pub fn resolve(&self, value: &ParamValue) -> Result<FinalValue, ResolveError> {
        Ok(match value {
            ParamValue::Deferred(d) => match self.piece(d)? {
                Piece::Plain(v) => FinalValue::Plain(v),
                Piece::Secret(s) => FinalValue::Secret(s),
            },
            ParamValue::Text(parts) => {
                let mut text = String::new();
                let mut secret = false;
                for part in parts.iter() {
                    match part {
                        TextPart::Literal(t) => text.push_str(t),
                        TextPart::Deferred(d) => match self.piece(d)? {
                            Piece::Plain(serde_json::Value::String(s)) => text.push_str(&s),
                            Piece::Plain(v) => text.push_str(&v.to_string()),
                            Piece::Secret(s) => {
                                secret = true;
                                text.push_str(s.expose());
                            }
                        },
                    }
                }
                if secret {
                    FinalValue::Secret(SecretString::new(text))
                } else {
                    FinalValue::Plain(serde_json::Value::String(text))
                }
            }
            ParamValue::List(items) => {
                let items = items
                    .iter()
                    .map(|i| self.resolve(i))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.iter().any(FinalValue::has_secret) {
                    FinalValue::List(items)
                } else {
                    FinalValue::Plain(items.iter().map(FinalValue::expose_json).collect())
                }
            }
            ParamValue::Map(entries) => {
                let entries = entries
                    .iter()
                    .map(|(k, v)| Ok((k.to_string(), self.resolve(v)?)))
                    .collect::<Result<Vec<_>, ResolveError>>()?;
                if entries.iter().any(|(_, v)| v.has_secret()) {
                    FinalValue::Map(entries)
                } else {
                    FinalValue::Plain(
                        entries
                            .iter()
                            .map(|(k, v)| (k.clone(), v.expose_json()))
                            .collect::<serde_json::Map<_, _>>()
                            .into(),
                    )
                }
            }
            other => FinalValue::Plain(other.to_json()),
        })
    }
}
