//! The library's error type. AWS failures stay [`AwsError`] (what AWS said, never invented);
//! failures streamstack finds itself (a wait that ran out, a resource in a failed state, an
//! answer missing a field) have variants of their own that name the resource and what to do.

use std::time::Duration;

use crate::aws::AwsError;
use crate::diagnostics::Diagnostics;
use crate::model::Address;
use crate::plan::NotOursError;

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
