//! Reading fields of a JSON body by path, with errors that name the path.

use serde_json::Value;

use super::WebhookError;

/// A parsed body and its event type (for errors).
pub(super) struct Json<'a> {
    event: &'a str,
    value: Value,
}

impl<'a> Json<'a> {
    /// Parses `body`; a syntax error gives serde_json's line and column.
    pub(super) fn parse(event: &'a str, body: &[u8]) -> Result<Self, WebhookError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Json {
            event: event.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if !value.is_object() {
            return Err(WebhookError::Field {
                event: event.to_owned(),
                path: "$".to_owned(),
                expected: "object",
            });
        }
        Ok(Json { event, value })
    }

    fn error(&self, path: &str, expected: &'static str) -> WebhookError {
        WebhookError::Field {
            event: self.event.to_owned(),
            path: path.to_owned(),
            expected,
        }
    }

    /// The value at a dotted path; `None` when absent or `null` (a missing parent object
    /// too, but a parent that is not an object is an error).
    fn at(&self, path: &str) -> Result<Option<&Value>, WebhookError> {
        let mut here = &self.value;
        let mut walked = String::new();
        for key in path.split('.') {
            match here {
                Value::Object(map) => match map.get(key) {
                    Some(Value::Null) | None => return Ok(None),
                    Some(next) => here = next,
                },
                _ => return Err(self.error(&walked, "object")),
            }
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(key);
        }
        Ok(Some(here))
    }

    /// A string that may be absent or `null`.
    pub(super) fn opt_str(&self, path: &str) -> Result<Option<&str>, WebhookError> {
        match self.at(path)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(path, "string")),
        }
    }

    /// A string that must be there.
    pub(super) fn str(&self, path: &str) -> Result<&str, WebhookError> {
        self.opt_str(path)?
            .ok_or_else(|| self.error(path, "string"))
    }

    /// A boolean; absent or `null` reads as `false`.
    pub(super) fn flag(&self, path: &str) -> Result<bool, WebhookError> {
        match self.at(path)? {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(path, "boolean")),
        }
    }

    /// A non-negative integer that may be absent or `null`.
    pub(super) fn opt_u64(&self, path: &str) -> Result<Option<u64>, WebhookError> {
        match self.at(path)? {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(path, "non-negative integer")),
        }
    }

    /// A non-negative integer that must be there.
    pub(super) fn u64(&self, path: &str) -> Result<u64, WebhookError> {
        self.opt_u64(path)?
            .ok_or_else(|| self.error(path, "non-negative integer"))
    }
}
