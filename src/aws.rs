//! AWS access: client construction (region chain, profile, endpoint override, S3 path-style) and
//! error classes. Errors stay typed (service error with code and message, or transport error)
//! until they are shown to the user.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How to reach AWS, from the global flags.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// `--endpoint-url` or `AWS_ENDPOINT_URL`: every client goes there.
    pub endpoint_url: Option<String>,
}

/// One client per service, all on the same configuration.
#[derive(Clone)]
pub struct Clients {
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub region: String,
}

impl Clients {
    /// Builds clients from the SDK's configuration chain plus the overrides in `opts`.
    pub async fn new(opts: &AwsOptions) -> Result<Clients, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::adaptive().with_max_attempts(5));
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p);
        }
        let endpoint = opts
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        Clients::from_sdk_config(&conf, endpoint.is_some())
    }

    /// Clients over an existing SDK configuration; `custom_endpoint` turns on S3 path-style.
    pub fn from_sdk_config(
        conf: &aws_config::SdkConfig,
        custom_endpoint: bool,
    ) -> Result<Clients, AwsError> {
        let region = conf.region().map(|r| r.to_string()).ok_or_else(|| {
            AwsError::config("no AWS region: set region: in the spec, --region, or AWS_REGION")
        })?;
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(custom_endpoint)
            .build();
        Ok(Clients {
            sts: aws_sdk_sts::Client::new(conf),
            iam: aws_sdk_iam::Client::new(conf),
            ec2: aws_sdk_ec2::Client::new(conf),
            kinesis: aws_sdk_kinesis::Client::new(conf),
            firehose: aws_sdk_firehose::Client::new(conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            ssm: aws_sdk_ssm::Client::new(conf),
            region,
        })
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
        out.account
            .ok_or_else(|| AwsError::config("STS returned no account id"))
    }
}

/// What went wrong talking to AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// AWS answered with an error code.
    Service { code: String, message: String },
    /// The request did not get an answer (network, timeout, unparseable response).
    Transport(String),
    /// Local configuration (no region, no credentials...).
    Config(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// `service:Operation`, e.g. `kinesis:CreateStream`.
    pub operation: String,
    pub kind: AwsErrorKind,
}

impl AwsError {
    pub fn config(msg: &str) -> Self {
        AwsError {
            operation: String::new(),
            kind: AwsErrorKind::Config(msg.to_string()),
        }
    }

    /// A failure found by streamstack itself while working with a service (bad response shape,
    /// a resource in a terminal failed state...).
    pub fn other(operation: &str, code: &str, message: impl Into<String>) -> Self {
        AwsError {
            operation: operation.to_string(),
            kind: AwsErrorKind::Service {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }

    pub fn from_sdk<E>(operation: &str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let kind = match &e {
            SdkError::ServiceError(ctx) => {
                let err = ctx.err();
                let code = err.code().unwrap_or("Unknown").to_string();
                let status = ctx.raw().status().as_u16();
                let code = if code == "Unknown" && status == 404 {
                    "NotFound".to_string()
                } else {
                    code
                };
                AwsErrorKind::Service {
                    code,
                    message: err.message().unwrap_or("").to_string(),
                }
            }
            other => match other.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => AwsErrorKind::Service {
                    code: "NotFound".into(),
                    message: String::new(),
                },
                _ => AwsErrorKind::Transport(error_chain(&e)),
            },
        };
        AwsError {
            operation: operation.to_string(),
            kind,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            AwsErrorKind::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match &self.kind {
            AwsErrorKind::Service { message, .. } => message,
            AwsErrorKind::Transport(m) | AwsErrorKind::Config(m) => m,
        }
    }

    /// The resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "ResourceNotFoundException"
                    | "NoSuchEntity"
                    | "NoSuchBucket"
                    | "NotFound"
                    | "InvalidGroup.NotFound"
                    | "InvalidInstanceID.NotFound"
                    | "NoSuchTagSet"
                    | "NoSuchLifecycleConfiguration"
                    | "ServerSideEncryptionConfigurationNotFoundError"
                    | "NoSuchPublicAccessBlockConfiguration"
                    | "ParameterNotFound"
            )
        )
    }

    /// IAM changes have not reached the service yet (aws-domain.md §4.1); retrying helps.
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AwsErrorKind::Service { code, message } if message.is_empty() => {
                write!(f, "{}: {code}", self.operation)
            }
            AwsErrorKind::Service { code, message } => {
                write!(f, "{}: {code}: {message}", self.operation)
            }
            AwsErrorKind::Transport(m) => write!(f, "{}: could not reach AWS: {m}", self.operation),
            AwsErrorKind::Config(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for AwsError {}

/// Shorthand for mapping an SDK result.
pub trait Ctx<T> {
    fn op(self, operation: &str) -> Result<T, AwsError>;
}

impl<T, E> Ctx<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn op(self, operation: &str) -> Result<T, AwsError> {
        self.map_err(|e| AwsError::from_sdk(operation, e))
    }
}

/// Exponential backoff with a ceiling, for retries of eventual-consistency errors.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1 << attempt.min(5));
    Duration::from_millis(ms.min(10_000))
}
