//! The DevRamps step protocol (reference §9.3) as data: the input of an `EXECUTE` job, the
//! result file read into an [`Outcome`], and the JSON Lines a step logs.

use devramps_core::backend::{LogEntry, Outcome, StepRequest};
use serde_json::{Map, Value, json};

/// How much of a bad result file a failure reason quotes.
const QUOTE: usize = 200;

/// The `--input` JSON of an `EXECUTE` job for `request` (secrets in clear: it goes to the
/// step's process only).
pub(crate) fn execute_input(request: &StepRequest) -> Value {
    let mut input = json!({
        "job": "EXECUTE",
        "type": request.step_type,
        "params": request.params.expose_json(),
    });
    if request.approved {
        input["approvalContext"] = json!({ "approved": true });
    }
    if let Some(polling) = &request.polling {
        input["pollingState"] = polling.state.clone();
    }
    input
}

/// `text` quoted for a failure reason: at most [`QUOTE`] characters, with the length when
/// cut.
pub(crate) fn quote(text: &str) -> String {
    let count = text.chars().count();
    if count <= QUOTE {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTE).collect();
    format!("{head:?}... ({} bytes in all)", text.len())
}

/// Reads a result file's bytes into the step's outcome, or says what is wrong with it.
pub(crate) fn parse_result(bytes: &[u8]) -> Result<Outcome, String> {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        return Err("the step wrote an empty result file".to_owned());
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the step's result is not JSON ({e}): {}", quote(&text)))?;
    let Some(result) = value.as_object() else {
        return Err(format!(
            "the step's result is not a JSON object: {}",
            quote(&text)
        ));
    };
    let malformed = |what: &str| format!("malformed step result ({what}): {}", quote(&text));
    match result.get("status").and_then(Value::as_str) {
        Some("SUCCESS") => match result.get("data") {
            None | Some(Value::Null) => Ok(Outcome::Succeeded {
                outputs: Default::default(),
            }),
            Some(Value::Object(data)) => Ok(Outcome::Succeeded {
                outputs: data.clone().into_iter().collect(),
            }),
            Some(_) => Err(malformed("`data` of SUCCESS is not an object")),
        },
        Some("FAILED") => Ok(Outcome::Failed {
            reason: failure_reason(result),
        }),
        Some("APPROVAL_REQUIRED") => Ok(Outcome::ApprovalRequired {
            context: approval_context(result),
        }),
        Some(status @ ("TRIGGERED" | "POLL_AGAIN")) => {
            let Some(state) = result.get("pollingState").filter(|s| !s.is_null()) else {
                return Err(malformed(&format!("{status} without `pollingState`")));
            };
            let retry_after_ms = match result.get("retryAfterMs") {
                None | Some(Value::Null) => None,
                Some(ms) => Some(ms.as_u64().ok_or_else(|| {
                    malformed("`retryAfterMs` is not a non-negative whole number")
                })?),
            };
            Ok(Outcome::PollLater {
                polling_state: state.clone(),
                retry_after_ms,
            })
        }
        Some(other) => Err(format!(
            "the step's result has an unknown status {}: {}",
            quote(other),
            quote(&text)
        )),
        None => Err(malformed("no string `status`")),
    }
}

/// `<errorCode>: <error>` of a `FAILED` result.
fn failure_reason(result: &Map<String, Value>) -> String {
    let error = match result.get("error") {
        Some(Value::String(error)) => error.clone(),
        None | Some(Value::Null) => "the step failed without an error message".to_owned(),
        Some(other) => other.to_string(),
    };
    match result.get("errorCode").and_then(Value::as_str) {
        Some(code) => format!("{code}: {error}"),
        None => error,
    }
}

/// `approvalRequest.context`, or the `message` of SDK versions before 0.1.7.
fn approval_context(result: &Map<String, Value>) -> Option<String> {
    let request = result.get("approvalRequest")?.as_object()?;
    let context = request.get("context").or_else(|| request.get("message"))?;
    match context {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// One line of a step's JSON Lines log (`{timestamp, level, message, data?, ...}`); a line
/// that is not such an object is kept as it is, at level `text`.
pub(crate) fn log_entry(line: &str) -> Option<LogEntry> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
        return Some(LogEntry::new("text", line));
    };
    let text = |field: &str| record.get(field).and_then(Value::as_str);
    let message = match record.get("message") {
        Some(Value::String(message)) => message.clone(),
        Some(other) => other.to_string(),
        None => line.to_owned(),
    };
    let mut entry = LogEntry::new(text("level").unwrap_or("info"), message);
    if let Some(timestamp) = text("timestamp") {
        entry = entry.with_timestamp(timestamp);
    }
    if let Some(data) = record.get("data").filter(|d| !d.is_null()) {
        entry = entry.with_data(data.clone());
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_status_maps_to_its_outcome() {
        let ok = |s: &str| parse_result(s.as_bytes()).unwrap();
        assert_eq!(
            ok(r#"{"status":"SUCCESS","data":{"url":"x"}}"#),
            Outcome::Succeeded {
                outputs: [("url".to_owned(), json!("x"))].into_iter().collect()
            }
        );
        assert_eq!(
            ok(r#"{"status":"SUCCESS"}"#),
            Outcome::Succeeded {
                outputs: Default::default()
            }
        );
        assert_eq!(
            ok(r#"{"status":"FAILED","error":"boom","errorCode":"EXECUTION_ERROR"}"#),
            Outcome::Failed {
                reason: "EXECUTION_ERROR: boom".to_owned()
            }
        );
        assert_eq!(
            ok(r#"{"status":"APPROVAL_REQUIRED","approvalRequest":{"context":"look"}}"#),
            Outcome::ApprovalRequired {
                context: Some("look".to_owned())
            }
        );
        assert_eq!(
            ok(r#"{"status":"TRIGGERED","pollingState":{"id":1}}"#),
            Outcome::PollLater {
                polling_state: json!({"id": 1}),
                retry_after_ms: None
            }
        );
        assert_eq!(
            ok(r#"{"status":"POLL_AGAIN","pollingState":{"id":1},"retryAfterMs":50}"#),
            Outcome::PollLater {
                polling_state: json!({"id": 1}),
                retry_after_ms: Some(50)
            }
        );
    }

    #[test]
    fn bad_results_say_what_was_found_bounded() {
        let err = |s: &str| parse_result(s.as_bytes()).unwrap_err();
        assert!(err("  \n").contains("empty"));
        let long = format!("not json {}", "x".repeat(10_000));
        let e = err(&long);
        assert!(e.contains("not JSON") && e.contains("not json xx"), "{e}");
        assert!(e.len() < 500, "bounded: {e}");
        let e = err(r#"{"status":"DONE"}"#);
        assert!(e.contains("unknown status \"DONE\""), "{e}");
        assert!(err("[1]").contains("not a JSON object"));
        assert!(err(r#"{"status":"TRIGGERED"}"#).contains("without `pollingState`"));
        assert!(err(r#"{"status":"SUCCESS","data":3}"#).contains("`data`"));
    }

    #[test]
    fn log_lines_are_read_leniently() {
        let e =
            log_entry(r#"{"timestamp":"t","level":"error","message":"m","data":{"a":1}}"#).unwrap();
        assert_eq!(
            e,
            LogEntry::new("error", "m")
                .with_timestamp("t")
                .with_data(json!({"a": 1}))
        );
        assert_eq!(log_entry("plain"), Some(LogEntry::new("text", "plain")));
        assert_eq!(log_entry("   "), None);
    }
}
