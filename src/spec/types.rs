//! The user's spec after templating and validation: plain, typed data.
//!
//! Field names follow docs/spec.md. Physical names are not resolved here (defaults depend on the
//! account and region); `crate::model` derives them.

use std::collections::BTreeMap;

use serde::Serialize;

/// A validated spec file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spec {
    /// Display name of the source (the path given on the command line).
    pub file: String,
    pub version: u32,
    pub stack: String,
    /// `region:` from the file, if any (the CLI and SDK chain fill it in otherwise).
    pub region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub expires_after: Option<Duration>,
    pub vars: BTreeMap<String, String>,
    pub buckets: BTreeMap<String, BucketSpec>,
    pub streams: BTreeMap<String, StreamSpec>,
    pub deliveries: BTreeMap<String, DeliverySpec>,
    pub hosts: BTreeMap<String, HostSpec>,
    /// `section.key` of entries that failed to decode (already reported); references to them
    /// are not reported again.
    #[serde(skip)]
    pub undecoded: std::collections::BTreeSet<String>,
}

impl Spec {
    /// Was `section.key` present in the file but not decoded (its errors already reported)?
    pub fn is_undecoded(&self, section: &str, key: &str) -> bool {
        self.undecoded.contains(&format!("{section}.{key}"))
            || self.undecoded.contains(&format!("{section}.*"))
    }
}

/// A duration written as `<n>s|m|h|d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Duration {
    pub seconds: u64,
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.seconds;
        if s % 86400 == 0 {
            write!(f, "{}d", s / 86400)
        } else if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketSpec {
    pub name: Option<String>,
    pub force_destroy: bool,
    pub versioning: bool,
    pub expire_after_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    OnDemand,
    Provisioned,
}

impl StreamMode {
    /// The Kinesis API's spelling.
    pub fn api_name(self) -> &'static str {
        match self {
            StreamMode::OnDemand => "ON_DEMAND",
            StreamMode::Provisioned => "PROVISIONED",
        }
    }
}

/// How the stream is encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamEncryption {
    /// KMS with the Kinesis-owned key `alias/aws/kinesis`.
    AwsManaged,
    None,
    /// KMS with a customer key (ARN, `alias/...` or key id).
    Kms(String),
}

impl StreamEncryption {
    /// The KMS key id sent to Kinesis, if encrypted.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            StreamEncryption::AwsManaged => Some(crate::model::AWS_MANAGED_KINESIS_KEY),
            StreamEncryption::None => None,
            StreamEncryption::Kms(k) => Some(k),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSpec {
    pub name: Option<String>,
    pub mode: StreamMode,
    pub shards: Option<u32>,
    pub retention_hours: u32,
    pub encryption: StreamEncryption,
    /// `usage:` for the cost estimate.
    pub usage: Option<UsageSpec>,
}

/// Where a delivery reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySource {
    /// Firehose reads this stream key.
    Stream(String),
    /// Producers (the agent) write to Firehose directly.
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Compression {
    #[serde(rename = "UNCOMPRESSED")]
    Uncompressed,
    #[serde(rename = "GZIP")]
    Gzip,
    #[serde(rename = "ZIP")]
    Zip,
    #[serde(rename = "Snappy")]
    Snappy,
    #[serde(rename = "HADOOP_SNAPPY")]
    HadoopSnappy,
}

impl Compression {
    pub const ALL: [(&'static str, Compression); 5] = [
        ("UNCOMPRESSED", Compression::Uncompressed),
        ("GZIP", Compression::Gzip),
        ("ZIP", Compression::Zip),
        ("Snappy", Compression::Snappy),
        ("HADOOP_SNAPPY", Compression::HadoopSnappy),
    ];
    /// The Firehose API's spelling.
    pub fn api_name(self) -> &'static str {
        Compression::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("UNCOMPRESSED")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Buffering {
    pub size_mb: u32,
    pub interval_seconds: u32,
}

impl Default for Buffering {
    /// Firehose's own defaults for S3 destinations.
    fn default() -> Self {
        Buffering {
            size_mb: 5,
            interval_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliverySpec {
    pub name: Option<String>,
    pub from: DeliverySource,
    pub to: String,
    pub prefix: Option<String>,
    pub error_prefix: Option<String>,
    pub buffering: Buffering,
    pub compression: Compression,
    /// Firehose logs delivery errors to a CloudWatch Logs group; `None` = off.
    pub error_logging: Option<ErrorLogging>,
}

/// The retention values CloudWatch Logs accepts (`PutRetentionPolicy`), in days.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ErrorLogging {
    pub retention_days: u32,
}

impl Default for ErrorLogging {
    fn default() -> Self {
        ErrorLogging { retention_days: 14 }
    }
}

/// The machine image of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Image {
    /// Latest Amazon Linux 2023, x86_64.
    Al2023,
    /// Latest Amazon Linux 2023, arm64.
    Al2023Arm64,
    /// A literal AMI id.
    Ami(String),
    /// An SSM parameter holding an AMI id.
    Ssm(String),
}

impl Image {
    /// The SSM parameter that resolves the image, if it is resolved through SSM.
    pub fn ssm_parameter(&self) -> Option<String> {
        match self {
            Image::Al2023 => {
                Some("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".into())
            }
            Image::Al2023Arm64 => {
                Some("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64".into())
            }
            Image::Ami(_) => None,
            Image::Ssm(p) => Some(p.clone()),
        }
    }
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Image::Al2023 => write!(f, "al2023"),
            Image::Al2023Arm64 => write!(f, "al2023-arm64"),
            Image::Ami(id) => write!(f, "{id}"),
            Image::Ssm(p) => write!(f, "ssm:{p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ssh {
    pub key_name: Option<String>,
    /// CIDR blocks allowed to reach port 22.
    pub from: Vec<String>,
}

/// How the agent turns lines into records (`dataProcessingOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One record per line, unchanged.
    Lines,
    /// One JSON object per line, sent unchanged.
    Json,
    /// CSV lines converted to JSON with the given field names (CSVTOJSON).
    Csv { fields: Vec<String> },
    /// Apache common log → JSON (LOGTOJSON COMMONAPACHELOG).
    ApacheLog,
    /// Apache combined log → JSON (LOGTOJSON COMBINEDAPACHELOG).
    ApacheCombined,
    /// Apache error log → JSON (LOGTOJSON APACHEERRORLOG).
    ApacheError,
    /// Syslog → JSON (LOGTOJSON SYSLOG).
    Syslog,
    /// RFC 3339 syslog → JSON (LOGTOJSON RFC3339SYSLOG).
    Rfc3339Syslog,
}

impl Format {
    /// The names accepted in the spec.
    pub const NAMES: [&'static str; 8] = [
        "lines",
        "json",
        "csv",
        "apache_log",
        "apache_combined",
        "apache_error",
        "syslog",
        "rfc3339_syslog",
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub files: String,
    pub to: String,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampleData {
    pub file: String,
    pub records: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSpec {
    /// Empty on an external host (it has no instance).
    pub instance_type: String,
    pub image: Image,
    pub subnet: Option<String>,
    pub ssh: Option<Ssh>,
    pub flows: Vec<Flow>,
    pub sample_data: Option<SampleData>,
    /// An existing instance this host adopts (`streamstack adopt`), instead of launching one.
    pub instance_id: Option<String>,
    /// Where the host runs: an EC2 instance streamstack launches, or a machine of the user's.
    pub platform: Platform,
    /// How an external host's agent authenticates (`None` on EC2: the instance profile).
    pub credentials: Option<HostCredentials>,
    /// `usage:` for the cost estimate.
    pub usage: Option<UsageSpec>,
}

/// `hosts.KEY.platform`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// An EC2 instance with an instance profile (the default).
    #[default]
    Ec2,
    /// A machine outside EC2 (a data centre, a laptop, another cloud): no instance, no
    /// security group, no instance profile; its agent authenticates as an IAM user.
    External,
}

impl Platform {
    pub const NAMES: [&'static str; 2] = ["ec2", "external"];
}

/// `hosts.KEY.credentials`: how an external host's agent gets AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCredentials {
    /// An IAM user of the stack with one access key, written only to `apply --credentials-dir`.
    AccessKey,
}

impl HostCredentials {
    pub const NAMES: [&'static str; 1] = ["access_key"];
}

/// `usage:` of a stream or a host: what the cost estimate cannot know (unset: the lab's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageSpec {
    /// Records written per hour (streams).
    pub records_per_hour: Option<u64>,
    /// Bytes per record (streams).
    pub record_bytes: Option<u64>,
    /// How many consumers read each record (streams; the delivery is one).
    pub reads_per_record: Option<u64>,
    /// The root volume's size in GB (hosts).
    pub volume_gb: Option<u64>,
}
