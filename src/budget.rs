//! Rate budgets: streamstack keeps under AWS's documented control-plane request quotas itself,
//! so that real AWS never has to throttle it.
//!
//! Every AWS client of a client set (`Clients`, in the `aws` module) sends its requests through one
//! [`BudgetedHttpClient`], which holds one [`Budget`]: a token bucket per service and operation
//! with the quota AWS documents for it ([`quota`]). Discovery, apply and destroy share it, and so
//! do the SDK's own retries (each attempt goes through the HTTP connector). A request waits for
//! its token before it is sent; operations without a documented quota are not limited.
//!
//! The buckets run slightly under the documented figures (a burst of 80% of AWS's bucket and
//! 90% of its refill rate), so that the time requests spend in flight, which varies, never makes
//! AWS count more than its quota in a second.
//!
//! `--api-budget off` (or `STREAMSTACK_API_BUDGET=off`) turns the budgets off, for emulators that
//! have no quotas.
//!
//! The same connector holds the write gate ([`WriteGate`]): while a run holds its stack's lock,
//! every write request of the client set waits for the gate first (the lock checks its lease
//! there), so a run whose lock was taken over stops before its next write, whichever layer
//! makes it. Requests marked [`Ungated`] (the lock's own) pass straight through.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// Whether to keep to AWS's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BudgetMode {
    /// Keep to AWS's documented control-plane quotas (the default).
    #[default]
    Aws,
    /// No client-side limit (emulators such as moto have no quotas).
    Off,
}

impl std::str::FromStr for BudgetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aws" => Ok(BudgetMode::Aws),
            "off" => Ok(BudgetMode::Off),
            other => Err(format!("{other:?} is not an API budget (aws or off)")),
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub burst: f64,
    pub per_second: f64,
}

const fn q(burst: u32, per_second: u32) -> Option<Quota> {
    Some(Quota {
        burst: burst as f64,
        per_second: per_second as f64,
    })
}

/// AWS's documented request quota for `service:operation` (services as the SDK names them,
/// lowercase without spaces: `kinesis`, `firehose`, `ec2`, `cloudwatchlogs`, `ssm`), per account
/// and region; `None` where AWS documents none (IAM, S3's bucket calls, STS, the Tagging API) or
/// for data-plane calls, whose quotas are per shard or per delivery rather than per account.
pub fn quota(service: &str, operation: &str) -> Option<Quota> {
    match service {
        // Kinesis Data Streams quotas: 5 per second per account for most control operations.
        "kinesis" => match operation {
            "DescribeStreamSummary" => q(20, 20),
            "DescribeStream" => q(10, 10),
            "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "SubscribeToShard" => {
                None
            }
            "ListShards" => q(100, 100),
            _ => q(5, 5),
        },
        // Amazon Data Firehose: Create, Delete, Describe, List, UpdateDestination, the tag calls
        // and the encryption calls: 5 per second each (a hard quota).
        "firehose" => match operation {
            "PutRecord" | "PutRecordBatch" => None,
            _ => q(5, 5),
        },
        // EC2: a token bucket per API ("Request throttling for the Amazon EC2 API",
        // https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html).
        "ec2" => ec2_quota(operation),
        // CloudWatch Logs: per-operation TPS per account and Region ("CloudWatch Logs quotas",
        // https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html):
        // CreateLogGroup, DeleteLogGroup, DeleteLogStream, DescribeLogGroups and
        // DescribeLogStreams 5, CreateLogStream 50, GetLogEvents 10.
        "cloudwatchlogs" => match operation {
            "CreateLogStream" => q(50, 50),
            "GetLogEvents" => q(10, 10),
            _ => q(5, 5),
        },
        // Systems Manager Parameter Store, standard throughput: GetParameter, GetParameters and
        // GetParametersByPath share 40 TPS (one bucket: see `bucket_of`), PutParameter 3
        // ("AWS Systems Manager endpoints and quotas",
        // https://docs.aws.amazon.com/general/latest/gr/ssm.html#limits_ssm).
        "ssm" => match operation {
            "GetParameter" | "GetParameters" | "GetParametersByPath" => q(40, 40),
            "PutParameter" => q(3, 3),
            _ => q(10, 10),
        },
        _ => None,
    }
}

/// EC2's request token bucket of an API (bucket size, refill per second), from the tables of
/// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html#throttling-limits-rate-based
fn ec2_quota(operation: &str) -> Option<Quota> {
    match operation {
        // Uncategorized actions, each with its own figures.
        "RunInstances" | "StartInstances" => q(5, 2),
        "TerminateInstances" => q(100, 5),
        "CreateTags" | "DeleteTags" => q(100, 10),
        "AssociateIamInstanceProfile"
        | "DisassociateIamInstanceProfile"
        | "ModifyInstanceMetadataOptions" => q(100, 5),
        // Unfiltered and unpaginated non-mutating actions: 50 / 10 when called without a
        // filter or pagination (100 / 20 with one). A request's bucket is charged by name
        // here, so these keep the smaller one either way.
        "DescribeInstances"
        | "DescribeInstanceStatus"
        | "DescribeNetworkInterfaces"
        | "DescribeSecurityGroups"
        | "DescribeSnapshots"
        | "DescribeSpotInstanceRequests"
        | "DescribeVolumes" => q(50, 10),
        // Resource-intensive actions (AuthorizeSecurityGroupIngress,
        // RevokeSecurityGroupIngress, ...): 50 / 5, like the mutating ones.
        // Non-mutating actions: 100 / 20.
        op if ["Describe", "Get", "List", "Search"]
            .iter()
            .any(|p| op.starts_with(p)) =>
        {
            q(100, 20)
        }
        // Mutating actions (CreateSecurityGroup, DeleteSecurityGroup,
        // ModifyInstanceAttribute, ...) and the resource-intensive ones: 50 / 5.
        _ => q(50, 5),
    }
}

/// The bucket a request of `service:operation` is charged to: the operation's own, except where
/// AWS counts several operations against one quota (SSM's parameter reads share 40 TPS).
fn bucket_of(service: &str, operation: &str) -> (String, String) {
    let shared = match (service, operation) {
        ("ssm", "GetParameter" | "GetParameters" | "GetParametersByPath") => "GetParameter*",
        (_, op) => op,
    };
    (service.to_string(), shared.to_string())
}

/// The bucket streamstack itself keeps for a documented quota: under it, for the jitter of
/// requests in flight.
fn own_share(quota: Quota) -> Quota {
    Quota {
        burst: (quota.burst * 0.8).floor().max(1.0),
        per_second: quota.per_second * 0.9,
    }
}

#[derive(Debug)]
struct Bucket {
    quota: Quota,
    /// Tokens left at `at`; negative when requests are queued for tokens not yet refilled.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(quota: Quota, now: Instant) -> Bucket {
        Bucket {
            quota,
            tokens: quota.burst,
            at: now,
        }
    }

    /// Takes a token, and says how long to wait before using it (zero when one was there).
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.quota.per_second).min(self.quota.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.quota.per_second)
        }
    }
}

/// The token buckets of one process (one per service and operation with a quota), and a count
/// of the writes sent.
#[derive(Debug, Default)]
pub struct Budget {
    mode: BudgetMode,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    writes: AtomicU64,
    gate: Mutex<Option<Arc<dyn WriteGate>>>,
}

/// What every write request waits for while it is set ([`Budget::set_gate`]): `Err` refuses the
/// request with [`GateClosed`], before it is sent.
pub trait WriteGate: Send + Sync + std::fmt::Debug {
    fn before_write(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GateClosed>> + Send>>;
}

/// A write refused by the [`WriteGate`] (why, for the user); the request was never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateClosed(pub String);

impl std::fmt::Display for GateClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GateClosed {}

/// On a request: it is the lock's own, which neither waits for the gate nor counts as a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ungated;

/// Whether an operation changes something (by AWS's naming: reads describe, get, list, head).
pub fn is_write(operation: &str) -> bool {
    !["Describe", "Get", "List", "Head"]
        .iter()
        .any(|p| operation.starts_with(p))
}

impl Budget {
    pub fn new(mode: BudgetMode) -> Budget {
        Budget {
            mode,
            buckets: Mutex::default(),
            writes: AtomicU64::new(0),
            gate: Mutex::default(),
        }
    }

    /// Sets (or, with `None`, removes) the gate every write waits for.
    pub fn set_gate(&self, gate: Option<Arc<dyn WriteGate>>) {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner()) = gate;
    }

    fn gate(&self) -> Option<Arc<dyn WriteGate>> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many writes these clients have sent, the lock's aside ([`Ungated`], which change no
    /// resource): what was read before a change may be stale after it.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    fn count(&self, operation: &str) {
        if is_write(operation) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn mode(&self) -> BudgetMode {
        self.mode
    }

    /// How long a request of `service:operation` made now must wait for its turn (the turn is
    /// taken: call once per request).
    pub fn reserve(&self, service: &str, operation: &str) -> Duration {
        self.reserve_at(service, operation, Instant::now())
    }

    fn reserve_at(&self, service: &str, operation: &str, now: Instant) -> Duration {
        if self.mode == BudgetMode::Off {
            return Duration::ZERO;
        }
        let Some(quota) = quota(service, operation) else {
            return Duration::ZERO;
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        buckets
            .entry(bucket_of(service, operation))
            .or_insert_with(|| Bucket::new(own_share(quota), now))
            .reserve(now)
    }
}

/// The operation a request belongs to, put on the request by the call log's interceptor so the
/// connector can charge the right bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationName {
    pub service: String,
    pub operation: String,
}

/// An HTTP client that waits for the [`Budget`] before handing each request to `inner`.
#[derive(Debug, Clone)]
pub struct BudgetedHttpClient {
    inner: SharedHttpClient,
    budget: Arc<Budget>,
}

impl BudgetedHttpClient {
    pub fn new(inner: SharedHttpClient, budget: Arc<Budget>) -> BudgetedHttpClient {
        BudgetedHttpClient { inner, budget }
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }
}

impl HttpClient for BudgetedHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            budget: Arc::clone(&self.budget),
        })
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    budget: Arc<Budget>,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let ungated = request.extension::<Ungated>().is_some();
        let (wait, gate) = match request.extension::<OperationName>() {
            Some(op) if !ungated => {
                self.budget.count(&op.operation);
                let gate = is_write(&op.operation)
                    .then(|| self.budget.gate())
                    .flatten();
                (self.budget.reserve(&op.service, &op.operation), gate)
            }
            Some(op) => (self.budget.reserve(&op.service, &op.operation), None),
            None => (Duration::ZERO, None),
        };
        if wait.is_zero() && gate.is_none() {
            return self.inner.call(request);
        }
        if let Some(op) = request
            .extension::<OperationName>()
            .filter(|_| !wait.is_zero())
        {
            // The call's own log line (`-> 200 in N ms`) counts this wait too.
            tracing::info!(
                target: "streamstack::aws",
                "{}:{} waits {} ms for its turn in the request budget",
                op.service,
                op.operation,
                wait.as_millis()
            );
        }
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            if let Some(gate) = gate {
                // A user error: the SDK does not retry it, and the request is never sent.
                gate.before_write()
                    .await
                    .map_err(|closed| ConnectorError::user(Box::new(closed)))?;
            }
            tokio::time::sleep(wait).await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `n` tokens of an operation's bucket at `at`.
    fn take(budget: &Budget, service: &str, op: &str, at: Instant, n: usize) {
        for _ in 0..n {
            budget.reserve_at(service, op, at);
        }
    }

    #[test]
    fn modes_parse_and_anything_else_is_refused() {
        assert_eq!("aws".parse::<BudgetMode>(), Ok(BudgetMode::Aws));
        assert_eq!("OFF".parse::<BudgetMode>(), Ok(BudgetMode::Off));
        assert!("none".parse::<BudgetMode>().is_err());
    }

    #[test]
    fn documented_quotas_and_no_limit_where_aws_documents_none() {
        assert_eq!(quota("kinesis", "DescribeStreamSummary"), q(20, 20));
        assert_eq!(quota("kinesis", "DescribeStream"), q(10, 10));
        assert_eq!(quota("kinesis", "ListTagsForStream"), q(5, 5));
        assert_eq!(quota("kinesis", "CreateStream"), q(5, 5));
        assert_eq!(quota("kinesis", "PutRecords"), None);
        assert_eq!(quota("firehose", "DescribeDeliveryStream"), q(5, 5));
        assert_eq!(quota("firehose", "UpdateDestination"), q(5, 5));
        assert_eq!(quota("firehose", "PutRecordBatch"), None);
        assert_eq!(quota("ec2", "RunInstances"), q(5, 2));
        assert_eq!(quota("ec2", "DescribeInstances"), q(50, 10));
        assert_eq!(quota("iam", "GetRole"), None);
        assert_eq!(quota("sts", "GetCallerIdentity"), None);
    }

    /// The figures AWS publishes (see `quota`'s sources), bucket size and refill per second.
    #[test]
    fn buckets_have_the_sizes_and_rates_aws_publishes() {
        for (service, op, burst, rate) in [
            ("ec2", "DescribeInstances", 50, 10),
            ("ec2", "DescribeSecurityGroups", 50, 10),
            ("ec2", "DescribeSubnets", 100, 20),
            ("ec2", "DescribeImages", 100, 20),
            ("ec2", "CreateSecurityGroup", 50, 5),
            ("ec2", "DeleteSecurityGroup", 50, 5),
            ("ec2", "ModifyInstanceAttribute", 50, 5),
            ("ec2", "AuthorizeSecurityGroupIngress", 50, 5),
            ("ec2", "RevokeSecurityGroupIngress", 50, 5),
            ("ec2", "CreateTags", 100, 10),
            ("ec2", "DeleteTags", 100, 10),
            ("ec2", "AssociateIamInstanceProfile", 100, 5),
            ("ec2", "ModifyInstanceMetadataOptions", 100, 5),
            ("ec2", "RunInstances", 5, 2),
            ("ec2", "TerminateInstances", 100, 5),
            ("cloudwatchlogs", "DescribeLogGroups", 5, 5),
            ("cloudwatchlogs", "CreateLogGroup", 5, 5),
            ("cloudwatchlogs", "DeleteLogGroup", 5, 5),
            ("cloudwatchlogs", "DeleteLogStream", 5, 5),
            ("cloudwatchlogs", "GetLogEvents", 10, 10),
            ("ssm", "GetParameter", 40, 40),
            ("ssm", "GetParameters", 40, 40),
            ("ssm", "GetParametersByPath", 40, 40),
        ] {
            assert_eq!(quota(service, op), q(burst, rate), "{service}:{op}");
        }
    }

    /// SSM's three parameter reads draw from one bucket; EC2's APIs each from their own.
    #[test]
    fn ssm_parameter_reads_share_one_bucket() {
        let budget = Budget::new(BudgetMode::Aws);
        let t0 = Instant::now();
        // Our share of the 40: a burst of 32. Spread over the three calls, the 33rd waits.
        for i in 0..32 {
            let op = ["GetParameter", "GetParameters", "GetParametersByPath"][i % 3];
            assert!(budget.reserve_at("ssm", op, t0).is_zero(), "{i}");
        }
        for op in ["GetParameter", "GetParameters", "GetParametersByPath"] {
            assert!(!budget.reserve_at("ssm", op, t0).is_zero(), "{op}");
        }
        assert!(budget.reserve_at("ssm", "PutParameter", t0).is_zero());
        take(&budget, "ec2", "CreateTags", t0, 80);
        assert!(budget.reserve_at("ec2", "DeleteTags", t0).is_zero());
    }

    /// Over any window of `len` seconds, at most what AWS's own bucket would allow passes:
    /// burst + rate × len.
    #[test]
    fn a_burst_then_the_refill_rate_and_never_more_than_aws_allows() {
        let budget = Budget::new(BudgetMode::Aws);
        let t0 = Instant::now();
        // 30 describes at once (a classroom's deliveries): each gets its own turn.
        let mut turns: Vec<f64> = (0..30)
            .map(|_| {
                budget
                    .reserve_at("firehose", "DescribeDeliveryStream", t0)
                    .as_secs_f64()
            })
            .collect();
        turns.sort_by(f64::total_cmp);
        // A burst of 4 (80% of AWS's 5) goes at once, then one every 1/4.5 s.
        assert_eq!(turns.iter().filter(|t| **t == 0.0).count(), 4);
        let last = turns[29];
        assert!((last - 26.0 / 4.5).abs() < 1e-6, "{last}");
        for (i, start) in turns.iter().enumerate() {
            for len in [0.5, 1.0, 2.0, 5.0] {
                let within = turns[i..].iter().filter(|t| **t < start + len).count() as f64;
                assert!(
                    within <= 5.0 + 5.0 * len,
                    "{within} in {len} s from {start}"
                );
            }
        }
    }

    #[test]
    fn operations_have_buckets_of_their_own_and_off_never_waits() {
        let budget = Budget::new(BudgetMode::Aws);
        let t0 = Instant::now();
        take(&budget, "kinesis", "ListTagsForStream", t0, 4);
        assert!(!budget
            .reserve_at("kinesis", "ListTagsForStream", t0)
            .is_zero());
        assert!(budget.reserve_at("kinesis", "CreateStream", t0).is_zero());
        assert!(budget.reserve_at("iam", "GetRole", t0).is_zero());
        let off = Budget::new(BudgetMode::Off);
        for _ in 0..100 {
            assert!(off
                .reserve_at("firehose", "CreateDeliveryStream", t0)
                .is_zero());
        }
    }

    /// A connector that answers 200 to everything and counts what reached it.
    #[derive(Debug, Default, Clone)]
    struct Sent(Arc<AtomicU64>);

    impl HttpConnector for Sent {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            let response = aws_smithy_runtime_api::http::Response::new(
                200u16.try_into().expect("status"),
                aws_smithy_types::body::SdkBody::empty(),
            );
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    /// A gate that refuses while `closed` is set, counting the writes it saw.
    #[derive(Debug, Default)]
    struct Gate {
        closed: std::sync::atomic::AtomicBool,
        asked: AtomicU64,
    }

    impl WriteGate for Gate {
        fn before_write(
            &self,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GateClosed>> + Send>>
        {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let closed = self.closed.load(Ordering::SeqCst);
            Box::pin(async move {
                if closed {
                    Err(GateClosed("taken over".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn request(service: &str, operation: &str, ungated: bool) -> HttpRequest {
        let mut r = HttpRequest::get("http://localhost/").expect("request");
        r.add_extension(OperationName {
            service: service.into(),
            operation: operation.into(),
        });
        if ungated {
            r.add_extension(Ungated);
        }
        r
    }

    #[tokio::test]
    async fn writes_are_counted_and_gated_but_reads_and_the_lock_are_not() {
        let budget = Arc::new(Budget::new(BudgetMode::Off));
        let sent = Sent::default();
        let connector = BudgetedConnector {
            inner: SharedHttpConnector::new(sent.clone()),
            budget: Arc::clone(&budget),
        };
        let gate = Arc::new(Gate::default());
        budget.set_gate(Some(Arc::clone(&gate) as Arc<dyn WriteGate>));
        let calls = [
            ("firehose", "DescribeDeliveryStream", false),
            ("s3", "HeadBucket", false),
            ("iam", "ListRoleTags", false),
            ("s3", "PutObject", true),
            ("s3", "DeleteObject", true),
        ];
        for (service, op, ungated) in calls {
            assert!(connector.call(request(service, op, ungated)).await.is_ok());
        }
        assert_eq!(budget.writes(), 0);
        assert_eq!(
            gate.asked.load(Ordering::SeqCst),
            0,
            "reads and the lock pass"
        );
        for op in ["TagDeliveryStream", "DeleteLogGroup"] {
            assert!(connector.call(request("firehose", op, false)).await.is_ok());
        }
        assert_eq!(budget.writes(), 2);
        assert_eq!(gate.asked.load(Ordering::SeqCst), 2);
        assert_eq!(sent.0.load(Ordering::SeqCst), 7);
        // A closed gate refuses a write before it is sent; the lock's own still go.
        gate.closed.store(true, Ordering::SeqCst);
        let refused = connector
            .call(request("kinesis", "CreateStream", false))
            .await;
        let Err(refused) = refused else {
            panic!("a closed gate let a write through");
        };
        assert!(refused.is_user(), "not retried by the SDK: {refused:?}");
        let why = std::error::Error::source(&refused).map(|s| s.to_string());
        assert_eq!(why.as_deref(), Some("taken over"));
        assert!(connector
            .call(request("s3", "PutObject", true))
            .await
            .is_ok());
        assert!(connector
            .call(request("kinesis", "DescribeStream", false))
            .await
            .is_ok());
        assert_eq!(
            sent.0.load(Ordering::SeqCst),
            9,
            "the refused write was never sent"
        );
        budget.set_gate(None);
        assert!(connector
            .call(request("kinesis", "CreateStream", false))
            .await
            .is_ok());
    }

    #[test]
    fn tokens_come_back_at_the_refill_rate() {
        let budget = Budget::new(BudgetMode::Aws);
        let t0 = Instant::now();
        take(&budget, "firehose", "TagDeliveryStream", t0, 4);
        // One second later, 4.5 tokens have come back: 4 go at once, the fifth waits.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..4 {
            assert!(budget
                .reserve_at("firehose", "TagDeliveryStream", t1)
                .is_zero());
        }
        assert!(!budget
            .reserve_at("firehose", "TagDeliveryStream", t1)
            .is_zero());
    }
}
