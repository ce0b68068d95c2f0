//! The library's error type. AWS failures stay [`AwsError`] (what AWS said, never invented);
//! failures streamstack finds itself (a wait that ran out, a resource in a failed state, an
//! answer missing a field) have variants of their own that name the resource and what to do.

use std::time::Duration;

use crate::diagnostics::Diagnostics;
use crate::model::Address;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid; nothing was sent to AWS.
    #[error("{0}")]
    Spec(Diagnostics),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A resource with one of the stack's names that the stack does not own.
    #[error(transparent)]
    NotOurs(#[from] NotOursError),
    /// A wait ran out.
    #[error("{address}: gave up waiting for {what} after {}s", elapsed.as_secs())]
    Timeout {
        address: Address,
        what: String,
        elapsed: Duration,
    },
    /// A resource is in a state streamstack cannot work with (CREATING_FAILED, a missing
    /// dependency, a name taken by someone else); the message says what to do.
    #[error("{address}: {message}")]
    Resource { address: Address, message: String },
    /// An AWS answer lacked a field streamstack needs; acting on a guess could destroy something.
    #[error("{operation}: the answer has no {field}; refusing to guess")]
    Incomplete {
        operation: &'static str,
        field: &'static str,
    },
    /// Another run holds the stack's lock.
    #[error("{0}")]
    Locked(String),
    /// A saved plan no longer matches the spec or the live state.
    #[error("{0}")]
    StalePlan(String),
    /// Local configuration: no region, unreadable files, unusable options.
    #[error("{0}")]
    Config(String),
    /// A bug in streamstack: an invariant that should hold did not.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The AWS error, when this is one.
    pub fn aws(&self) -> Option<&AwsError> {
        match self {
            Error::Aws(e) => Some(e),
            _ => None,
        }
    }
    /// The AWS error code, when this is an AWS error that has one.
    pub fn code(&self) -> Option<&str> {
        self.aws().and_then(AwsError::code)
    }
    /// What AWS said (its message), or this error's own text.
    pub fn message(&self) -> String {
        match self.aws() {
            Some(a) => a.message().to_string(),
            None => self.to_string(),
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.aws().is_some_and(AwsError::is_not_found)
    }
    pub fn is_iam_propagation(&self) -> bool {
        self.aws().is_some_and(AwsError::is_iam_propagation)
    }
    /// The caller may not do this (`AccessDenied`, `AccessDeniedException`, or a 403 whose
    /// body named no code).
    pub fn is_access_denied(&self) -> bool {
        self.aws().is_some_and(|a| {
            matches!(a.code(), Some("AccessDenied" | "AccessDeniedException"))
                || (a.code().is_none() && a.status() == Some(403))
        })
    }
    /// Worth retrying: no answer, a 5xx, or throttling.
    pub fn is_transient(&self) -> bool {
        let Some(a) = self.aws() else {
            return false;
        };
        a.status().is_none_or(|s| s >= 500)
            || matches!(
                a.code(),
                Some(
                    "Throttling"
                        | "ThrottlingException"
                        | "ThrottledException"
                        | "RequestLimitExceeded"
                        | "RequestThrottled"
                        | "RequestThrottledException"
                        | "TooManyRequestsException"
                        | "SlowDown"
                        | "ProvisionedThroughputExceededException"
                )
            )
    }
    /// The request may have been carried out although it failed: no answer came, or a 5xx.
    pub fn may_have_acted(&self) -> bool {
        self.aws()
            .is_some_and(|a| a.status().is_none_or(|s| s >= 500))
    }
    /// An object that could not be read back (`check`).
    pub fn resource_read(bucket: &str, key: &str, e: impl std::fmt::Display) -> Self {
        Error::Config(format!("cannot read s3://{bucket}/{key}: {e}"))
    }
    pub fn resource(address: &Address, message: impl Into<String>) -> Self {
        Error::Resource {
            address: address.clone(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A resource that has one of the stack's physical names but is not tagged as the stack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOurs {
    pub address: Address,
    pub name: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOursError(pub Vec<NotOurs>);

impl std::fmt::Display for NotOursError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} resource(s) with this stack's names exist but are not tagged streamstack:stack as this stack's; \
             streamstack will not change or delete them:",
            self.0.len()
        )?;
        for n in &self.0 {
            writeln!(f, "  {} → {} ({})", n.address, n.name, n.id)?;
        }
        write!(
            f,
            "Rename them in the spec (name:) or remove the existing resources yourself."
        )
    }
}

impl std::error::Error for NotOursError {}

/// What went wrong talking to AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// AWS answered with an error.
    Service {
        /// The error code AWS sent (`ResourceInUseException`); `None` when the answer had none
        /// (a bare 404 from a wrong endpoint or a proxy, an unparseable body).
        code: Option<String>,
        message: Option<String>,
        status: u16,
        request_id: Option<String>,
    },
    /// The request got no usable answer (network, timeout, unparseable response).
    Transport(String),
}

/// An AWS call that failed, exactly as AWS (or the network) reported it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    /// `service:Operation`, e.g. `kinesis:CreateStream`.
    pub operation: String,
    pub failure: Failure,
}

impl AwsError {
    /// The service part of the operation (`kinesis`).
    pub fn service(&self) -> &str {
        self.operation.split(':').next().unwrap_or_default()
    }

    /// A bare error of `operation` with a code (for tests and the error classes).
    pub fn service_error(operation: &str, code: Option<&str>, status: u16) -> Self {
        AwsError {
            operation: operation.to_string(),
            failure: Failure::Service {
                code: code.map(str::to_string),
                message: None,
                status,
                request_id: None,
            },
        }
    }

    pub fn code(&self) -> Option<&str> {
        match &self.failure {
            Failure::Service { code, .. } => code.as_deref(),
            Failure::Transport(_) => None,
        }
    }

    pub fn message(&self) -> &str {
        match &self.failure {
            Failure::Service { message, .. } => message.as_deref().unwrap_or_default(),
            Failure::Transport(m) => m,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.failure {
            Failure::Service { status, .. } => Some(*status),
            Failure::Transport(_) => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match &self.failure {
            Failure::Service { request_id, .. } => request_id.as_deref(),
            Failure::Transport(_) => None,
        }
    }

    /// The resource does not exist: one of the codes this service uses for that, as the
    /// service's model documents them. A 404 without a code is *not* "gone" (a wrong endpoint
    /// or a proxy answers that way too), nor is another service's code.
    pub fn is_not_found(&self) -> bool {
        let Some(code) = self.code() else {
            return false;
        };
        match self.service() {
            "kinesis" | "firehose" | "logs" | "tagging" => code == "ResourceNotFoundException",
            "iam" => code == "NoSuchEntity",
            "ssm" => code == "ParameterNotFound",
            "ec2" => matches!(
                code,
                "InvalidGroup.NotFound"
                    | "InvalidInstanceID.NotFound"
                    | "InvalidSubnetID.NotFound"
                    | "InvalidAssociationID.NotFound"
            ),
            "s3" => match code {
                // HEAD answers have no body: S3's SDK names a 404 "NotFound".
                "NotFound" => self.operation.starts_with("s3:Head"),
                other => matches!(
                    other,
                    "NoSuchBucket"
                        | "NoSuchKey"
                        | "NoSuchTagSet"
                        | "NoSuchLifecycleConfiguration"
                        | "ServerSideEncryptionConfigurationNotFoundError"
                        | "NoSuchPublicAccessBlockConfiguration"
                ),
            },
            _ => false,
        }
    }

    /// IAM changes have not reached the service yet (docs/aws-facts.md#iam-propagation);
    /// retrying helps.
    pub fn is_iam_propagation(&self) -> bool {
        let m = self.message();
        match self.code() {
            Some("InvalidArgumentException") => [
                "unable to assume role",
                "Access was denied",
                "is not authorized to",
                "Verify that the IAM role has access",
            ]
            .iter()
            .any(|p| m.contains(p)),
            Some("InvalidParameterValue") => {
                m.contains("Invalid IAM Instance Profile")
                    || m.contains("has no associated IAM Roles")
            }
            // moto answers an unknown profile with NoSuchEntity on RunInstances.
            Some("NoSuchEntity") => self.operation == "ec2:RunInstances",
            _ => false,
        }
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.failure {
            Failure::Service {
                code,
                message,
                status,
                request_id,
            } => {
                write!(f, "{}: ", self.operation)?;
                match (code, message.as_deref().filter(|m| !m.is_empty())) {
                    (Some(c), Some(m)) => write!(f, "{c}: {m}")?,
                    (Some(c), None) => write!(f, "{c}")?,
                    (None, Some(m)) => write!(f, "{m}")?,
                    (None, None) => write!(f, "HTTP {status} without an error code")?,
                }
                write!(f, " (HTTP {status}")?;
                if let Some(id) = request_id {
                    write!(f, ", request id {id}")?;
                }
                write!(f, ")")
            }
            Failure::Transport(m) => write!(f, "{}: could not reach AWS: {m}", self.operation),
        }
    }
}
