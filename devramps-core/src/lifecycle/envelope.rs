//! The stored form of a [`Record`]: its JSON with a format version `v`, so that a log written
//! by one release is read by the next (or refused, by an older one, with a clear error).
//!
//! Version 1 is the record as [`Record`] serializes it, plus `"v": 1`. A stored record without
//! `v` (written before the field existed) reads as version 1.

use serde_json::{Map, Value};

use super::record::Record;
use crate::backend::StoredEvent;
use crate::error::{Error, Result};

/// The format version of the records this release writes, and the newest it reads.
pub const RECORD_VERSION: u64 = 1;

/// The name of the version field of a stored record.
const VERSION_FIELD: &str = "v";

impl Record {
    /// The record as it is stored: its JSON with `"v"` ([`RECORD_VERSION`]) first.
    pub fn to_stored(&self) -> Result<Value> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::backend("engine", "serialize a record", e.to_string())
        };
        match serde_json::to_value(self).map_err(|e| failed(&e))? {
            Value::Object(fields) => {
                let mut stored = Map::with_capacity(fields.len() + 1);
                stored.insert(VERSION_FIELD.to_owned(), Value::from(RECORD_VERSION));
                stored.extend(fields);
                Ok(Value::Object(stored))
            }
            other => Err(failed(&format!(
                "a record serialized as {other}, not an object"
            ))),
        }
    }

    /// Reads the stored record `event` of `pipeline`. A record without a version reads as
    /// version 1; a newer version than this release reads (or a version that is not a
    /// positive integer) is an error naming the record's sequence number.
    pub fn from_stored(pipeline: &str, event: StoredEvent) -> Result<Record> {
        let StoredEvent { seq, mut payload } = event;
        let operation = || format!("read record {seq} of `{pipeline}`");
        let version = match payload.as_object_mut() {
            Some(fields) => fields.shift_remove(VERSION_FIELD),
            None => None,
        };
        match version {
            None => {}
            Some(v) => match v.as_u64() {
                Some(1..=RECORD_VERSION) => {}
                Some(n) if n > RECORD_VERSION => {
                    return Err(Error::backend(
                        "engine",
                        operation(),
                        format!(
                            "the record has format version {n}, newer than this release reads \
                             (up to {RECORD_VERSION}): upgrade devramps to read this log"
                        ),
                    ));
                }
                _ => {
                    return Err(Error::backend(
                        "engine",
                        operation(),
                        format!("the record's format version `{v}` is not a positive integer"),
                    ));
                }
            },
        }
        serde_json::from_value(payload)
            .map_err(|e| Error::backend("engine", operation(), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::lifecycle::{Actor, Event};

    fn record() -> Record {
        Record {
            at: "2026-01-05T17:00:00Z".parse().unwrap(),
            actor: Actor::System,
            event: Event::PatchReleased {
                reason: Some("done".into()),
            },
        }
    }

    fn stored(payload: Value) -> StoredEvent {
        StoredEvent { seq: 7, payload }
    }

    #[test]
    fn a_stored_record_carries_its_version_first_and_reads_back() {
        let value = record().to_stored().unwrap();
        let fields: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(fields.first().map(|s| s.as_str()), Some("v"));
        assert_eq!(value["v"], json!(RECORD_VERSION));
        // Apart from `v`, the stored form is the record's own JSON.
        let mut without = value.clone();
        without.as_object_mut().unwrap().shift_remove("v");
        assert_eq!(without, serde_json::to_value(record()).unwrap());
        assert_eq!(Record::from_stored("app", stored(value)).unwrap(), record());
    }

    #[test]
    fn a_record_without_a_version_reads_as_version_1() {
        let old = serde_json::to_value(record()).unwrap();
        assert!(old.get("v").is_none());
        assert_eq!(Record::from_stored("app", stored(old)).unwrap(), record());
    }

    #[test]
    fn a_newer_version_is_an_error_naming_the_seq_and_the_version() {
        let mut value = record().to_stored().unwrap();
        value["v"] = json!(RECORD_VERSION + 1);
        let message = Record::from_stored("app", stored(value))
            .unwrap_err()
            .to_string();
        assert!(message.contains("record 7 of `app`"), "{message}");
        assert!(
            message.contains(&format!("version {}", RECORD_VERSION + 1)),
            "{message}"
        );
    }

    #[test]
    fn a_version_that_is_not_a_positive_integer_is_an_error() {
        for bad in [json!(0), json!("1"), json!(-1), json!(1.5)] {
            let mut value = record().to_stored().unwrap();
            value["v"] = bad.clone();
            let err = Record::from_stored("app", stored(value))
                .unwrap_err()
                .to_string();
            assert!(err.contains("record 7"), "{bad}: {err}");
        }
    }
}
