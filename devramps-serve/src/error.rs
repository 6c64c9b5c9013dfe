//! Errors as JSON problem details (RFC 9457): `application/problem+json` with `type`, `title`,
//! `status` and `detail`; a refusal by the lifecycle rules adds `rule` and `reason`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use devramps_core::Error;
use serde_json::{Map, Value, json};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer: a status and a problem-details body.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub detail: String,
    /// Extension members (`rule`, `reason`, ...).
    pub extra: Map<String, Value>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            status,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: no such pipeline, stage, step or route.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: credentials valid, role too weak.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, detail)
    }

    /// 409 for an operation the lifecycle rules refuse: `rule` and `reason` as members.
    pub fn refused(operation: &str, rule: &str, reason: &str) -> Self {
        let mut p = Problem::new(
            StatusCode::CONFLICT,
            format!("{operation} refused by {rule}: {reason}"),
        );
        p.extra.insert("rule".into(), Value::from(rule));
        p.extra.insert("reason".into(), Value::from(reason));
        p
    }

    /// With one more extension member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(map) = body.as_object_mut() {
            map.extend(self.extra.clone());
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match &e {
            Error::Refused {
                operation,
                rule,
                reason,
            } => Problem::refused(operation, rule, reason),
            Error::NotFound { .. } => Problem::not_found(e.to_string()),
            Error::Conflict { .. } => Problem::new(StatusCode::CONFLICT, e.to_string()),
            Error::Invalid(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            Error::Unavailable { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            Error::NotSupported { .. } => Problem::new(StatusCode::NOT_IMPLEMENTED, e.to_string()),
            _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// The answer of a handler.
pub(crate) type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_409_problem_with_the_rule_and_the_reason() {
        let p: Problem = Error::Refused {
            operation: "retry".into(),
            rule: "L11".into(),
            reason: "the stage succeeded".into(),
        }
        .into();
        assert_eq!(p.status, StatusCode::CONFLICT);
        let body = p.body();
        assert_eq!(body["status"], 409);
        assert_eq!(body["rule"], "L11");
        assert_eq!(body["reason"], "the stage succeeded");
        assert_eq!(body["title"], "Conflict");
    }
}
