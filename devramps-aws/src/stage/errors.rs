//! AWS SDK failures as [`devramps_core::Error`]s that name the resource: missing resources as
//! [`Error::NotFound`], throttling and transient failures as [`Error::Unavailable`] (the engine
//! retries them), access denied and expired credentials as [`Error::Backend`] saying what to
//! check.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use devramps_core::Error;

/// Error codes that mean the resource does not exist.
const MISSING: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "ResourceNotFoundException",
    "NoSuchEntity",
];

/// Error codes worth trying again.
const TRANSIENT: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "LimitExceededException",
];

/// Error codes of refused or expired credentials.
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];
const EXPIRED: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired"];

/// How one kind of call's failures become errors: [`classify`]`("ecr", "DescribeRepositories")`.
#[derive(Clone, Copy, Debug)]
pub struct AwsFailure {
    service: &'static str,
    operation: &'static str,
}

/// The failures of `operation` on `service`.
pub fn classify(service: &'static str, operation: &'static str) -> AwsFailure {
    AwsFailure { service, operation }
}

impl AwsFailure {
    /// The error code of a service's answer (`None` for transport failures).
    pub fn code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
        match error {
            SdkError::ServiceError(context) => context.err().code(),
            _ => None,
        }
    }

    /// Whether `error` says the resource does not exist.
    pub fn is_missing<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
        match error {
            SdkError::ServiceError(context) => {
                context.raw().status().as_u16() == 404
                    || context.err().code().is_some_and(|c| MISSING.contains(&c))
            }
            _ => false,
        }
    }

    /// `error` of a call on `resource` (for example "ECR repository `x` (arn:...)") as an
    /// [`Error`].
    pub fn error<E>(&self, error: SdkError<E, HttpResponse>, resource: &str) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let operation = format!("{} {resource}", self.operation);
        let message = DisplayErrorContext(&error).to_string();
        match &error {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let code = context.err().code().unwrap_or("");
                if AwsFailure::is_missing(&error) {
                    Error::not_found(format!("{resource} ({} {code})", self.operation))
                } else if EXPIRED.contains(&code) {
                    Error::Backend {
                        backend: self.service.to_owned(),
                        operation,
                        message: format!(
                            "the credentials have expired ({code}): renew them (the stage \
                             roles' sessions are renewed by themselves; the base credentials \
                             come from the SDK's default chain)"
                        ),
                        source: Some(Box::new(error)),
                    }
                } else if status == 403 || DENIED.contains(&code) {
                    Error::Backend {
                        backend: self.service.to_owned(),
                        operation,
                        message: format!(
                            "access denied ({code}): check that the credentials may use it \
                             (the stage's deployment role, as the bootstrap creates it)"
                        ),
                        source: Some(Box::new(error)),
                    }
                } else if status >= 500 || status == 429 || TRANSIENT.contains(&code) {
                    Error::Unavailable {
                        backend: self.service.to_owned(),
                        operation,
                        message: format!("{status} {code}"),
                        retry_after: None,
                        source: Some(Box::new(error)),
                    }
                } else {
                    Error::Backend {
                        backend: self.service.to_owned(),
                        operation,
                        message,
                        source: Some(Box::new(error)),
                    }
                }
            }
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Error::Unavailable {
                backend: self.service.to_owned(),
                operation,
                message,
                retry_after: None,
                source: Some(Box::new(error)),
            },
            SdkError::DispatchFailure(dispatch)
                if dispatch.is_io() || dispatch.is_timeout() || dispatch.is_other() =>
            {
                Error::Unavailable {
                    backend: self.service.to_owned(),
                    operation,
                    message,
                    retry_after: None,
                    source: Some(Box::new(error)),
                }
            }
            _ => Error::Backend {
                backend: self.service.to_owned(),
                operation,
                message,
                source: Some(Box::new(error)),
            },
        }
    }
}
