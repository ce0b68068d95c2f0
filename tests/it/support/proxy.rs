//! The realism proxy: an HTTP/1.1 reverse proxy in front of moto that makes it behave like AWS
//! *in time*, and counts the calls made through it.
//!
//! moto applies every change at once: streams and delivery streams are `ACTIVE` as soon as they
//! are created, deletions are immediate, a just-created IAM role or instance profile is usable
//! straight away and instances are `running` on the first DescribeInstances. Real AWS is
//! eventually consistent (docs/aws-facts.md#iam-propagation and the lifecycle sections after
//! it), and the waiting and retry paths of the engine can only be tested if something
//! reproduces that.
//!
//! **Windows are counted in events, not seconds.** Each [`ProxyConfig`] count `K` turns one
//! behaviour on (0 = plain passthrough): after the call that opens it, the window answers the
//! next `K` calls it affects, and then the proxy answers as moto does. Every answer the window
//! gives counts, refusals included, so a client that only retries a refused call gets through
//! as surely as one that polls. An emulated transition is thus exactly as long on a busy
//! machine as on an idle one, and a test can assert how many times it was seen (see
//! [`Call::emulated`] and [`Proxy::emulated`]):
//!
//! | field (`u32`) | opened by a successful ... | the next `K` calls it affects, each answered ... |
//! |---|---|---|
//! | `stream_creating` | Kinesis CreateStream | DescribeStream[Summary] of the stream: `CREATING`; its updates: `ResourceInUseException` |
//! | `stream_updating` | retention/shard-count/encryption/mode change | DescribeStream[Summary]: `UPDATING`; updates: `ResourceInUseException` |
//! | `stream_deleting` | Kinesis DeleteStream | DescribeStream[Summary]: `DELETING` (synthesised: moto already forgot the stream); CreateStream of the name: `ResourceInUseException` |
//! | `delivery_creating` | Firehose CreateDeliveryStream | DescribeDeliveryStream: `CREATING`; DeleteDeliveryStream/UpdateDestination: `ResourceInUseException` |
//! | `delivery_deleting` | Firehose DeleteDeliveryStream | DescribeDeliveryStream: `DELETING` (synthesised); CreateDeliveryStream of the name: `ResourceInUseException` |
//! | `role_propagation` | IAM CreateRole, PutRolePolicy, AttachRolePolicy, UpdateAssumeRolePolicy (each one starts the count again) | Firehose CreateDeliveryStream/UpdateDestination naming the role (`RoleARN`): `InvalidArgumentException: Firehose is unable to assume role ...` |
//! | `profile_propagation` | IAM CreateInstanceProfile, AddRoleToInstanceProfile (each starts it again) | EC2 RunInstances naming the profile: `InvalidParameterValue ... Invalid IAM Instance Profile name` |
//! | `instance_pending` | EC2 RunInstances | DescribeInstances/DescribeInstanceStatus answers that list the instance: it is `pending` (0), not `running` |
//! | `instance_shutting_down` | EC2 TerminateInstances | answers that list it: `shutting-down` (32), not `terminated` |
//! | `group_invisible` | EC2 CreateSecurityGroup | DescribeSecurityGroups answers that would list the group: without it (eventual consistency) |
//! | `policy_stale` | IAM PutRolePolicy replacing an earlier document of that policy (each one starts it again) | GetRolePolicy of the policy: the earlier document (eventual consistency) |
//!
//! Time is left only where AWS's behaviour *is* about time: the request quotas (token buckets
//! refilled per second), whose clock a test can stop and move by hand ([`Proxy::freeze_clock`],
//! [`Proxy::advance_clock`]). A proxy with quotas runs its thread at a high priority (nice -15,
//! where allowed), so that a saturated machine does not make it see, late and all at once,
//! requests that came one by one.
//!
//! AWS rules moto lacks, always on:
//! - RunInstances with a `ClientToken` seen before gets the first answer again (moto ignores the
//!   token and would start a second instance);
//! - UpdateShardCount beyond 2× or below ½× the open shard count is refused with AWS's
//!   `InvalidArgumentException`;
//! - DeleteSecurityGroup of a group an instance still uses is refused with `DependencyViolation`.
//!
//! Faults, on demand: [`Proxy::fail_times`] / [`Proxy::fail_times_with_status`] answer a call
//! with an error in its service's own wire format (JSON `__type`, query `ErrorResponse`, EC2
//! `Response/Errors`, S3 `Error`); [`Proxy::drop_responses`] forwards a call to moto and then
//! closes the connection unanswered (the call happened, the client never heard: a lost answer).
//! [`Proxy::refuse_every_second_record`] takes a PutRecords/PutRecordBatch only in part, as AWS
//! can: the odd records are refused in the answer and never reach moto.
//!
//! Holds, for tests that must act while a client is *inside* a call (kill it, race a second
//! client against it): [`Proxy::hold`], [`Proxy::hold_after`] and [`Proxy::hold_nth`] keep a
//! request at the proxy, not yet forwarded, until the [`Hold`] is released (or dropped);
//! [`Hold::wait_held`] waits for it to arrive. No wall-clock guess of "the client is busy now"
//! is needed.
//!
//! Not emulated: `instance-state-name` filters (moto filters on its own state), Stop/Start,
//! Kinesis tagging during CREATING, anything keyed by region (state is keyed by name only).
//!
//! One content fix is always on: DescribeDeliveryStream answers get the S3 destination defaults
//! AWS fills in (`CompressionFormat`, `BufferingHints`, `EncryptionConfiguration`) when moto left
//! them out; moto only echoes what was sent, and the Rust SDK fails to parse a destination
//! without `CompressionFormat`.
//!
//! State is kept per proxy and keyed by resource name (one proxy per test, one account per proxy).
//!
//! **Account isolation**: when `ProxyConfig::account_id` is set, the proxy adds the header
//! `x-moto-account-id: <id>` to every forwarded request, so moto keeps all state of that proxy in
//! its own account. This works for every SDK client without touching the client; a test that
//! creates its own proxy with [`super::moto::unique_account_id`] is isolated from all other tests
//! sharing the same moto server (no `/moto-api/reset` needed).
//!
//! **Accounting**: every request received is recorded as a [`Call`]: the service from the SigV4
//! credential scope, the action from `X-Amz-Target` (JSON protocols), the `Action` form field
//! (query protocols: IAM, EC2, STS) or, for S3 (REST, path-style), `METHOD [key] [?flags]`
//! (e.g. `PUT`, `GET ?tagging`, `PUT key`, `POST ?delete`, `GET /` for ListBuckets).
//!
//! Bodies are forwarded byte for byte (including `aws-chunked` S3 uploads) and the signed headers
//! are left alone (moto does not check signatures). When a response body is rewritten, its
//! `content-length` is recomputed and `x-amz-crc32`/`content-md5` are dropped. A request the proxy
//! cannot classify is simply forwarded; parsing never panics.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// The windows to emulate, each a count of calls (all zero by default = passthrough; see the
/// table in the module docs), and the moto account to use.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    /// Sent as `x-moto-account-id` on every request (see the module docs).
    pub account_id: Option<String>,
    /// Describes of a new stream answered `CREATING`.
    pub stream_creating: u32,
    /// Describes of an updated stream answered `UPDATING`.
    pub stream_updating: u32,
    /// Describes of a deleted stream answered `DELETING`.
    pub stream_deleting: u32,
    /// Describes of a new delivery stream answered `CREATING`.
    pub delivery_creating: u32,
    /// Describes of a deleted delivery stream answered `DELETING`.
    pub delivery_deleting: u32,
    /// Firehose creates/updates naming a new or changed role that are refused.
    pub role_propagation: u32,
    /// RunInstances naming a new or changed instance profile that are refused.
    pub profile_propagation: u32,
    /// Describes listing a new instance that show it `pending`.
    pub instance_pending: u32,
    /// Describes listing a terminated instance that show it `shutting-down`.
    pub instance_shutting_down: u32,
    /// DescribeSecurityGroups answers that leave a new group out.
    pub group_invisible: u32,
    /// GetRolePolicy answers that still give the document an inline policy had before its
    /// last PutRolePolicy (IAM is eventually consistent).
    pub policy_stale: u32,
    /// Enforce AWS's per-operation request quotas (see the module docs).
    pub quotas: bool,
    /// IAM users (access key id, secret) whose form requests are signed again the way moto
    /// checks them when it enforces IAM ([`super::resign`]).
    pub resign: Vec<(String, String)>,
    /// Service Quotas and refused AssumeRole for fleets ([`super::fleet_emulation`]).
    pub fleet: super::fleet_emulation::FleetEmulation,
}

impl ProxyConfig {
    /// Passthrough in the given moto account.
    pub fn account(account_id: impl Into<String>) -> Self {
        Self {
            account_id: Some(account_id.into()),
            ..Self::default()
        }
    }

    /// Every window set to `k` calls ("slow AWS").
    pub fn all_windows(k: u32) -> Self {
        Self {
            account_id: None,
            stream_creating: k,
            stream_updating: k,
            stream_deleting: k,
            delivery_creating: k,
            delivery_deleting: k,
            role_propagation: k,
            profile_propagation: k,
            instance_pending: k,
            instance_shutting_down: k,
            group_invisible: k,
            policy_stale: k,
            quotas: false,
            resign: Vec::new(),
            fleet: Default::default(),
        }
    }

    /// AWS's request quotas enforced, in the given moto account.
    pub fn with_quotas(account_id: impl Into<String>) -> Self {
        Self {
            quotas: true,
            ..Self::account(account_id)
        }
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// SigV4 service name (`kinesis`, `firehose`, `iam`, `ec2`, `s3`, `sts`, ...) or `unknown`.
    pub service: String,
    /// `CreateStream`, `RunInstances`, `PUT ?tagging`, ...
    pub action: String,
    pub is_write: bool,
    /// HTTP status returned to the client (including the proxy's own refusals).
    pub status: u16,
    /// What the proxy answered instead of moto's plain answer, if anything (one of
    /// [`EMULATED`]): a window's state or refusal, an AWS rule, an injected fault.
    pub emulated: Option<&'static str>,
    /// A call on the stack locks' bucket (`streamstack-locks-ACCOUNT-REGION`, path-style).
    pub lock: bool,
}

/// Every [`Call::emulated`] label:
/// - `CREATING`, `UPDATING`, `DELETING`: a stream or delivery describe answered in that state;
/// - `in-use`: a stream or delivery call refused with `ResourceInUseException` during a window;
/// - `role-propagation`, `profile-propagation`: refused because IAM has not propagated yet;
/// - `pending`, `shutting-down`: an instance describe that showed an instance in that state;
/// - `policy-stale`: a GetRolePolicy answered with the policy's document before its last
///   PutRolePolicy;
/// - `group-invisible`: a DescribeSecurityGroups answer that left a new group out;
/// - `throttled`: beyond a request quota; `injected`: [`Proxy::fail`] and friends;
/// - `dropped`: forwarded, then left unanswered ([`Proxy::drop_responses`]);
/// - `token-replay`: RunInstances answered from an earlier call with the same ClientToken;
/// - `reshard-rule`, `group-in-use`: refused by an AWS rule moto lacks;
/// - `partial`: a PutRecords/PutRecordBatch of which every second record was refused
///   ([`Proxy::refuse_every_second_record`]).
pub const EMULATED: &[&str] = &[
    "CREATING",
    "UPDATING",
    "DELETING",
    "in-use",
    "role-propagation",
    "profile-propagation",
    "pending",
    "shutting-down",
    "group-invisible",
    "throttled",
    "injected",
    "dropped",
    "token-replay",
    "reshard-rule",
    "group-in-use",
    "partial",
    "policy-stale",
    "pricing",
];

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.action)
    }
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    endpoint: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream` (e.g. the moto endpoint).
    ///
    /// The proxy runs on its own thread and runtime, so it serves requests from async tests, from
    /// blocking tests and from child processes (the CLI binary) alike.
    pub fn start(upstream: &str, config: ProxyConfig) -> std::io::Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            account_id: config.account_id.clone(),
            config,
            client: Client::builder(TokioExecutor::new()).build_http(),
            state: Mutex::default(),
            clock: Mutex::default(),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let urgent = shared.config.quotas;
        let server = serve(listener, Arc::clone(&shared), stopped);
        std::thread::Builder::new()
            .name(format!("realism-proxy-{port}"))
            .spawn(move || {
                if urgent {
                    raise_this_threads_priority();
                }
                runtime.block_on(server)
            })?;
        Ok(Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
            shutdown: Some(shutdown),
        })
    }

    /// `http://127.0.0.1:PORT`, to be used as the SDK `endpoint_url`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The fleet emulation this proxy answers with ([`super::fleet_emulation`]).
    pub fn config_fleet(&self) -> &super::fleet_emulation::FleetEmulation {
        &self.shared.config.fleet
    }

    pub fn account_id(&self) -> Option<&str> {
        self.shared.account_id.as_deref()
    }

    /// All calls so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// The calls that are not reads.
    pub fn write_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.is_write).collect()
    }

    /// `service:Action` of every write so far.
    pub fn write_call_names(&self) -> Vec<String> {
        self.write_calls().iter().map(Call::to_string).collect()
    }

    /// The writes other than the stack lock's (an S3 object in the lock bucket that `apply` and
    /// `destroy` take and release around whatever they do, even when they then change nothing).
    pub fn resource_writes(&self) -> Vec<Call> {
        self.write_calls().into_iter().filter(|c| !c.lock).collect()
    }

    /// The writes on the lock bucket (`s3:PUT key`, `s3:DELETE key`, ...), in arrival order.
    pub fn lock_writes(&self) -> Vec<Call> {
        self.write_calls().into_iter().filter(|c| c.lock).collect()
    }

    /// `service:Action` of every call so far (handy for assertions).
    pub fn call_names(&self) -> Vec<String> {
        self.calls().iter().map(Call::to_string).collect()
    }

    /// The calls of `service:Action` so far, in arrival order.
    pub fn calls_of(&self, call: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.to_string() == call)
            .collect()
    }

    /// How many answers so far were emulated as `label` (one of [`EMULATED`]).
    pub fn emulated(&self, label: &str) -> usize {
        assert!(
            EMULATED.contains(&label),
            "unknown emulated label {label:?}"
        );
        self.calls()
            .iter()
            .filter(|c| c.emulated == Some(label))
            .count()
    }

    /// From now on, keeps the request body of every `call` (`service:Action`).
    pub fn record_bodies(&self, call: &str) {
        self.shared
            .state()
            .bodies
            .entry(call.to_string())
            .or_default();
    }

    /// The request bodies of `call` kept since [`Proxy::record_bodies`], oldest first.
    pub fn bodies_of(&self, call: &str) -> Vec<String> {
        let state = self.shared.state();
        let bodies = state
            .bodies
            .get(call)
            .map(Vec::as_slice)
            .unwrap_or_default();
        bodies
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    pub fn reset_calls(&self) {
        self.shared.state().calls.clear();
        self.shared.state().timed.clear();
    }

    /// The Kinesis calls of `service:Action` so far, with their arrival time and shard.
    pub fn timed_calls_of(&self, call: &str) -> Vec<super::timed::Timed> {
        let state = self.shared.state();
        state
            .timed
            .iter()
            .filter(|t| t.call == call)
            .cloned()
            .collect()
    }

    /// Holds the next request of `service:Action` (e.g. `kinesis:CreateStream`) at the proxy,
    /// before it is forwarded, until the returned [`Hold`] is released or dropped.
    pub fn hold(&self, call: &str) -> Hold {
        self.hold_on(HoldOn::Call(call.to_owned()))
    }

    /// Holds the first request of `service:Action` `call` that arrives after a request of
    /// `first` got a successful answer (both counted from now on): e.g. the first
    /// DescribeDeliveryStream after the CreateDeliveryStream, however many came before it.
    pub fn hold_after(&self, first: &str, call: &str) -> Hold {
        self.hold_on(HoldOn::After {
            first: first.to_owned(),
            seen: false,
            call: call.to_owned(),
        })
    }

    /// Holds the `n`-th request (1 = the next one) that reaches the proxy from now on, whatever
    /// it is, until the returned [`Hold`] is released or dropped.
    pub fn hold_nth(&self, n: usize) -> Hold {
        assert!(n >= 1, "hold_nth counts from 1");
        let at = self.shared.state().arrivals + n;
        self.hold_on(HoldOn::Arrival(at))
    }

    fn hold_on(&self, on: HoldOn) -> Hold {
        let (release, released) = tokio::sync::watch::channel(false);
        let gate = Arc::new(Gate {
            held: Mutex::new(None),
            arrived: std::sync::Condvar::new(),
            release,
            released,
        });
        self.shared.state().holds.push((on, Arc::clone(&gate)));
        Hold { gate }
    }

    /// Stops the clock of the request quotas ([`ProxyConfig::quotas`]): token buckets refill only
    /// by [`Proxy::advance_clock`] from now on, so a test of the quotas does not depend on how
    /// fast the machine sends its calls.
    pub fn freeze_clock(&self) {
        let mut clock = self.shared.clock();
        clock.get_or_insert_with(Instant::now);
    }

    /// Moves the frozen quota clock forward by `by` (see [`Proxy::freeze_clock`]).
    pub fn advance_clock(&self, by: Duration) {
        let mut clock = self.shared.clock();
        let now = clock.expect("advance_clock needs freeze_clock first");
        *clock = Some(now + by);
    }

    /// The calls answered with a throttling error because they went beyond AWS's request quotas
    /// (with `ProxyConfig::quotas`), since the proxy started.
    pub fn throttled(&self) -> Vec<Call> {
        self.shared.state().throttled.clone()
    }

    /// From now on, answer every `service:Action` call (e.g. `firehose:CreateDeliveryStream`)
    /// with an error of the given code, until [`Proxy::clear_failures`]. JSON-protocol services
    /// get a JSON error, the others EC2's XML shape.
    pub fn fail(&self, call: &str, code: &str) {
        self.inject(call, code, StatusCode::BAD_REQUEST, None);
    }

    /// Answers the next `times` calls of `service:Action` with an error of the given code (e.g.
    /// `ThrottlingException`), then lets them through again.
    pub fn fail_times(&self, call: &str, code: &str, times: u32) {
        self.inject(call, code, StatusCode::BAD_REQUEST, Some(times));
    }

    /// As [`Proxy::fail_times`] with an HTTP status (503 for `ServiceUnavailable`, say). Every
    /// error is in the service's own wire format: JSON `__type` (Kinesis, Firehose, Logs, SSM),
    /// query `ErrorResponse` (IAM, STS), EC2 `Response/Errors`, S3 `Error`.
    pub fn fail_times_with_status(&self, call: &str, code: &str, status: u16, times: u32) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        self.inject(call, code, status, Some(times));
    }

    fn inject(&self, call: &str, code: &str, status: StatusCode, times: Option<u32>) {
        let injected = Injected {
            code: code.to_owned(),
            status,
        };
        self.shared
            .state()
            .failures
            .insert(call.to_owned(), (injected, times));
    }

    /// Forwards the next `times` calls of `service:Action` to moto, then drops the connection
    /// without answering: the call happened, the client does not know it (a lost response).
    pub fn drop_responses(&self, call: &str, times: u32) {
        self.shared.state().drops.insert(call.to_owned(), times);
    }

    /// The next `times` calls of `kinesis:PutRecords` or `firehose:PutRecordBatch` (`call`)
    /// with two records or more are taken only in part, as AWS can: the records at odd
    /// positions are refused (Kinesis `ProvisionedThroughputExceededException`, Firehose
    /// `ServiceUnavailableException`) and not forwarded, the others reach moto; the answer
    /// lists each record's outcome in order, and its failed count, as AWS's does.
    pub fn refuse_every_second_record(&self, call: &str, times: u32) {
        self.shared.state().partial.insert(call.to_owned(), times);
    }

    pub fn clear_failures(&self) {
        self.shared.state().failures.clear();
    }
}

/// What a [`Hold`] waits for.
enum HoldOn {
    /// The next request of this `service:Action`.
    Call(String),
    /// The request that arrives as the proxy's n-th (counting every request since it started).
    Arrival(usize),
    /// The next request of `call` once a request of `first` was answered with success.
    After {
        first: String,
        seen: bool,
        call: String,
    },
}

impl HoldOn {
    fn matches(&self, call: &str, arrival: usize) -> bool {
        match self {
            HoldOn::Call(c) => c == call,
            HoldOn::Arrival(n) => *n == arrival,
            HoldOn::After { seen, call: c, .. } => *seen && c == call,
        }
    }

    /// Takes note of a request answered with `status`.
    fn answered(&mut self, call: &str, status: u16) {
        if let HoldOn::After { first, seen, .. } = self {
            *seen |= first == call && (200..300).contains(&status);
        }
    }
}

struct Gate {
    /// `service:Action` of the request being held, once one arrived.
    held: Mutex<Option<String>>,
    arrived: std::sync::Condvar,
    release: tokio::sync::watch::Sender<bool>,
    released: tokio::sync::watch::Receiver<bool>,
}

/// A request kept at the proxy (see [`Proxy::hold`]); released when dropped.
pub struct Hold {
    gate: Arc<Gate>,
}

impl Hold {
    /// Waits until the held request has arrived and returns its `service:Action`; `None` if
    /// `timeout` passed first or `stop()` said to give up (checked every 50 ms: e.g. "the
    /// client exited without making that call").
    pub fn wait_held(&self, timeout: Duration, mut stop: impl FnMut() -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut held = self
            .gate
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(call) = held.as_ref() {
                return Some(call.clone());
            }
            let now = Instant::now();
            if now >= deadline || stop() {
                return None;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            held = self
                .gate
                .arrived
                .wait_timeout(held, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Is a request held right now?
    pub fn is_held(&self) -> bool {
        self.gate
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }

    /// Lets the held request (if any, and any later one) go on to moto.
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.gate.release.send(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Makes the calling thread win the CPU over ordinary work (nice -15), best effort (root only):
/// a proxy that judges request rates must see requests when they come, not when a saturated
/// machine lets it run, or it would see bursts the client never sent.
pub fn raise_this_threads_priority() {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = me.file_name().and_then(|t| t.to_str()) else {
        return;
    };
    let _ = std::process::Command::new("renice")
        .args(["-n", "-15", "-p", tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move {
                    match shared.handle(req).await {
                        Some(response) => Ok(response),
                        // A lost response: upstream acted, the client never hears back.
                        None => Err(std::io::Error::other("realism proxy: response dropped")),
                    }
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = Full<Bytes>;

/// Kinesis actions that put a stream into UPDATING (and are refused unless it is ACTIVE).
const STREAM_UPDATES: &[&str] = &[
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
    "UpdateShardCount",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "UpdateStreamMode",
];
/// IAM actions after which a role needs time before Firehose can assume it.
const ROLE_CHANGES: &[&str] = &[
    "CreateRole",
    "PutRolePolicy",
    "AttachRolePolicy",
    "UpdateAssumeRolePolicy",
];
const PROFILE_CHANGES: &[&str] = &["CreateInstanceProfile", "AddRoleToInstanceProfile"];
const DEFAULT_ACCOUNT: &str = "123456789012";

struct Shared {
    upstream: String,
    account_id: Option<String>,
    config: ProxyConfig,
    client: Client<HttpConnector, Body>,
    state: Mutex<State>,
    /// The quota clock, when a test froze it ([`Proxy::freeze_clock`]).
    clock: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, Phase>,
    deliveries: HashMap<String, Phase>,
    delivery_types: HashMap<String, String>,
    /// Role/profile name -> how many more calls naming it are refused.
    roles: HashMap<String, u32>,
    profiles: HashMap<String, u32>,
    instances: HashMap<String, Phase>,
    calls: Vec<Call>,
    /// Requests received so far (for [`Proxy::hold_nth`]).
    arrivals: usize,
    /// Requests to hold when they arrive.
    holds: Vec<(HoldOn, Arc<Gate>)>,
    /// `service:Action` → the injected error and how many more times to answer with it
    /// (`None`: until cleared).
    failures: HashMap<String, (Injected, Option<u32>)>,
    /// `service:Action` → how many more of its answers to drop after upstream acted.
    drops: HashMap<String, u32>,
    /// `service:Action` → how many more batches to take only in part.
    partial: HashMap<String, u32>,
    /// RunInstances ClientToken → the answer given for it (EC2's idempotency; moto ignores it).
    tokens: HashMap<String, Bytes>,
    /// Stream name → open shard count, as last seen (for the ½×–2× reshard rule).
    shards: HashMap<String, u64>,
    /// Instance id → the security groups it uses (for DependencyViolation).
    instance_groups: HashMap<String, Vec<String>>,
    /// Group id → how many more DescribeSecurityGroups answers leave it out.
    new_groups: HashMap<String, u32>,
    /// (role, policy) → the document of its last PutRolePolicy.
    policies: HashMap<(String, String), String>,
    /// (role, policy) → the document before the last PutRolePolicy, and how many more
    /// GetRolePolicy answers give it.
    stale_policies: HashMap<(String, String), (String, u32)>,
    /// `service:Action` → its token bucket: tokens left as of an instant.
    quota_buckets: HashMap<String, (f64, Instant)>,
    /// Calls refused for going beyond a quota.
    throttled: Vec<Call>,
    /// `service:Action` → the request bodies of those calls, for calls asked for with
    /// [`Proxy::record_bodies`].
    bodies: HashMap<String, Vec<Bytes>>,
    /// Kinesis calls with their arrival time and shard ([`Proxy::timed_calls_of`]).
    timed: Vec<super::timed::Timed>,
}

/// AWS's documented request quota of an operation, as a token bucket `(burst, per second)`;
/// `None`: not enforced here.
fn aws_quota(service: &str, action: &str) -> Option<(f64, f64)> {
    match (service, action) {
        ("kinesis", "DescribeStreamSummary") => Some((20.0, 20.0)),
        ("kinesis", "DescribeStream") => Some((10.0, 10.0)),
        (
            "kinesis",
            "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "ListShards",
        ) => None,
        ("kinesis", _) => Some((5.0, 5.0)),
        ("firehose", "PutRecord" | "PutRecordBatch") => None,
        ("firehose", _) => Some((5.0, 5.0)),
        // https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html: a bucket
        // per API; the describes below get the smaller one when called without a filter or
        // pagination, which the proxy assumes.
        ("ec2", "RunInstances" | "StartInstances") => Some((5.0, 2.0)),
        ("ec2", "TerminateInstances") => Some((100.0, 5.0)),
        ("ec2", "CreateTags" | "DeleteTags") => Some((100.0, 10.0)),
        (
            "ec2",
            "AssociateIamInstanceProfile"
            | "DisassociateIamInstanceProfile"
            | "ModifyInstanceMetadataOptions",
        ) => Some((100.0, 5.0)),
        (
            "ec2",
            "DescribeInstances"
            | "DescribeInstanceStatus"
            | "DescribeNetworkInterfaces"
            | "DescribeSecurityGroups"
            | "DescribeSnapshots"
            | "DescribeSpotInstanceRequests"
            | "DescribeVolumes",
        ) => Some((50.0, 10.0)),
        ("ec2", a) if a.starts_with("Describe") => Some((100.0, 20.0)),
        ("ec2", _) => Some((50.0, 5.0)),
        _ => None,
    }
}

/// moto's answer to the even records of a partly refused batch ([`Shared::partial_batch`]), made
/// the answer to all `total`: the odd ones refused, in order, and counted as failed.
fn merge_batch(service: &str, body: &[u8], total: usize) -> Option<Bytes> {
    let (list, failed_count, code) = match service {
        "kinesis" => (
            "Records",
            "FailedRecordCount",
            "ProvisionedThroughputExceededException",
        ),
        _ => (
            "RequestResponses",
            "FailedPutCount",
            "ServiceUnavailableException",
        ),
    };
    let mut answer: Value = serde_json::from_slice(body).ok()?;
    let mut taken = answer.get(list)?.as_array()?.clone().into_iter();
    let refused = json!({"ErrorCode": code, "ErrorMessage": "Rate exceeded (realism proxy)"});
    let mut all = Vec::new();
    for i in 0..total {
        all.push(if i % 2 == 0 {
            taken.next()?
        } else {
            refused.clone()
        });
    }
    let failed = answer
        .get(failed_count)
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + total as u64 / 2;
    answer[list] = Value::Array(all);
    answer[failed_count] = json!(failed);
    Some(Bytes::from(serde_json::to_vec(&answer).ok()?))
}

/// An error the proxy answers with instead of moto.
#[derive(Clone)]
struct Injected {
    code: String,
    status: StatusCode,
}

/// A state that overrides what moto reports, for `left` more answers.
#[derive(Clone, Copy)]
struct Phase {
    status: &'static str,
    left: u32,
}

/// The state of `key` now, if a window is open (without counting an answer).
fn current(map: &HashMap<String, Phase>, key: &str) -> Option<&'static str> {
    map.get(key).filter(|p| p.left > 0).map(|p| p.status)
}

/// The state to answer for `key`, if a window is open; counts the answer.
fn take(map: &mut HashMap<String, Phase>, key: &str) -> Option<&'static str> {
    let phase = map.get_mut(key).filter(|p| p.left > 0)?;
    phase.left -= 1;
    Some(phase.status)
}

/// Opens a window of `k` answers (none when `k` is 0).
fn begin(map: &mut HashMap<String, Phase>, key: String, status: &'static str, k: u32) {
    if k > 0 {
        map.insert(key, Phase { status, left: k });
    }
}

/// Counts one refusal of each name in `names` that still has refusals left; the first such
/// name, if any.
fn refuse_one<'n>(left: &mut HashMap<String, u32>, names: &[&'n str]) -> Option<&'n str> {
    let mut first = None;
    for name in names {
        if let Some(n) = left.get_mut(*name).filter(|n| **n > 0) {
            *n -= 1;
            first = first.or(Some(*name));
        }
    }
    first
}

/// What the proxy understood of a request.
struct Op {
    service: String,
    region: String,
    action: String,
    is_write: bool,
    /// On the lock bucket ([`Call::lock`]).
    lock: bool,
    /// Parsed body of JSON-protocol requests (`Null` otherwise).
    json: Value,
    /// Form fields of query-protocol requests.
    form: HashMap<String, String>,
}

impl Op {
    fn field(&self, name: &str) -> Option<&str> {
        self.json.get(name).and_then(Value::as_str)
    }

    fn stream_name(&self) -> Option<String> {
        let from_arn = || {
            self.field("StreamARN")
                .and_then(|a| a.split_once(":stream/"))
                .map(|(_, n)| n)
        };
        self.field("StreamName")
            .or_else(from_arn)
            .map(str::to_owned)
    }

    fn delivery_name(&self) -> Option<String> {
        self.field("DeliveryStreamName").map(str::to_owned)
    }
}

impl Gate {
    /// Keeps the request `call` here until the hold is released (at once if it already is).
    async fn pass(&self, call: &str) {
        let mut released = self.released.clone();
        if *released.borrow() {
            return;
        }
        *self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(call.to_owned());
        self.arrived.notify_all();
        let _ = released.wait_for(|r| *r).await;
    }
}

/// An answer and what in it the proxy emulated ([`Call::emulated`]).
type Answer = (Response<Body>, Option<&'static str>);

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn clock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The quota clock: frozen by a test, or the wall clock.
    fn now(&self) -> Instant {
        self.clock().unwrap_or_else(Instant::now)
    }

    fn account(&self) -> &str {
        self.account_id.as_deref().unwrap_or(DEFAULT_ACCOUNT)
    }

    async fn handle(&self, req: Request<Incoming>) -> Option<Response<Body>> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return Some(plain(
                    StatusCode::BAD_GATEWAY,
                    format!("proxy: reading request: {e}"),
                ))
            }
        };
        let op = classify(&parts, &body);
        let key = format!("{}:{}", op.service, op.action);
        let gate = {
            let mut state = self.state();
            if let Some(bodies) = state.bodies.get_mut(&key) {
                bodies.push(body.clone());
            }
            state.arrivals += 1;
            if op.service == "kinesis" {
                state.timed.push(super::timed::Timed {
                    call: key.clone(),
                    at: Instant::now(),
                    shard: super::timed::shard_of(&op.json),
                });
            }
            let arrival = state.arrivals;
            let at = state
                .holds
                .iter()
                .position(|(on, _)| on.matches(&key, arrival));
            at.map(|i| state.holds.remove(i).1)
        };
        if let Some(gate) = gate {
            gate.pass(&key).await;
        }
        let authorization = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let fleet = (self.config.fleet).answer(
            &op.service,
            &op.action,
            &op.json,
            &op.form,
            authorization.unwrap_or_default(),
        );
        let fleet = fleet.map(|(status, content_type, body)| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            (with_type(plain(status, body), content_type), Some("fleet"))
        });
        let (response, emulated) = match fleet.or_else(|| self.intercept(&op)) {
            Some(refusal) => refusal,
            None => {
                // A batch taken only in part reaches moto without its refused records.
                let partial = self.partial_batch(&key, &op);
                let sent = partial.as_ref().map_or(body, |(kept, _)| kept.clone());
                match self.forward(&parts, sent).await {
                    Ok(upstream) => match partial {
                        Some((_, total)) if upstream.status.is_success() => {
                            let merged = merge_batch(&op.service, &upstream.body, total);
                            (upstream.into_response(merged), Some("partial"))
                        }
                        _ => {
                            let fleet = &self.config.fleet;
                            fleet.observe(&op.service, &op.action, &op.form, &upstream.body);
                            self.observe(&op, upstream)
                        }
                    },
                    Err(e) => (
                        plain(
                            StatusCode::BAD_GATEWAY,
                            format!("proxy: upstream {}: {e}", self.upstream),
                        ),
                        None,
                    ),
                }
            }
        };
        let dropped = response.status().is_success() && {
            let mut state = self.state();
            match state.drops.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        let mut state = self.state();
        let status = response.status().as_u16();
        for (on, _) in &mut state.holds {
            on.answered(&key, status);
        }
        state.calls.push(Call {
            service: op.service,
            action: op.action,
            is_write: op.is_write,
            status,
            emulated: if dropped { Some("dropped") } else { emulated },
            lock: op.lock,
        });
        drop(state);
        (!dropped).then_some(response)
    }

    /// With [`Proxy::refuse_every_second_record`] pending for `key`: the request body with only
    /// the records at even positions, and how many records the client sent.
    fn partial_batch(&self, key: &str, op: &Op) -> Option<(Bytes, usize)> {
        let mut state = self.state();
        let left = state.partial.get_mut(key).filter(|n| **n > 0)?;
        let mut json = op.json.clone();
        let records = json.get_mut("Records")?.as_array_mut()?;
        let total = records.len();
        if total < 2 {
            return None;
        }
        *records = records.iter().step_by(2).cloned().collect();
        *left -= 1;
        Some((Bytes::from(serde_json::to_vec(&json).ok()?), total))
    }

    /// Answers a request itself when AWS would refuse it or moto no longer knows the resource.
    fn intercept(&self, op: &Op) -> Option<Answer> {
        let mut guard = self.state();
        let state = &mut *guard;
        let key = format!("{}:{}", op.service, op.action);
        if let Some((injected, remaining)) = state.failures.get_mut(&key) {
            let message = format!("injected failure of {}:{}", op.service, op.action);
            let response = service_error(&op.service, &injected.code, &message, injected.status);
            match remaining {
                Some(0) => {
                    state.failures.remove(&key);
                }
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        state.failures.remove(&key);
                    }
                    return Some((response, Some("injected")));
                }
                None => return Some((response, Some("injected"))),
            }
        }
        // moto has no Price List API: recorded answers (support/pricing.rs).
        if op.service == "pricing" && op.action.ends_with("GetProducts") {
            let answer = super::pricing::get_products(&op.json);
            return Some((json_ok(answer), Some(super::pricing::LABEL)));
        }
        if let Some(refusal) = self.quota(op, state) {
            return Some((refusal, Some("throttled")));
        }
        if let Some(refusal) = self.aws_rules(op, state) {
            return Some(refusal);
        }
        let account = self.account();
        let in_use = |message: String| {
            (
                json_error("ResourceInUseException", &message),
                Some("in-use"),
            )
        };
        // Every answer a window gives counts as one of its calls, refusals included: a client
        // that only retries a refused call gets through as surely as one that polls.
        match (op.service.as_str(), op.action.as_str()) {
            ("kinesis", action) => {
                let name = op.stream_name()?;
                let status = current(&state.streams, &name)?;
                let answer = match action {
                    "DescribeStream" | "DescribeStreamSummary" if status == "DELETING" => {
                        let body = deleting_stream(action, &name, &op.region, account);
                        (json_ok(body), Some("DELETING"))
                    }
                    "CreateStream" if status == "DELETING" => {
                        in_use(format!("Stream {name} under account {account} already exists."))
                    }
                    _ if STREAM_UPDATES.contains(&action) => in_use(format!(
                        "Stream {name} under account {account} not ACTIVE, instead in state {status}"
                    )),
                    _ => return None,
                };
                take(&mut state.streams, &name);
                Some(answer)
            }
            ("firehose", action) => {
                let name = op.delivery_name()?;
                let prefix = format!("Firehose {name} under account {account}");
                let windowed = match (action, current(&state.deliveries, &name)) {
                    ("DescribeDeliveryStream", Some("DELETING")) => {
                        let kind = state.delivery_types.get(&name);
                        let kind = kind.map_or("DirectPut", String::as_str);
                        let body = deleting_delivery(&name, kind, &op.region, account);
                        Some((json_ok(body), Some("DELETING")))
                    }
                    ("CreateDeliveryStream", Some("DELETING")) => {
                        Some(in_use(format!("{prefix} already exists.")))
                    }
                    ("UpdateDestination" | "DeleteDeliveryStream", Some("CREATING")) => Some(
                        in_use(format!("{prefix} is CREATING; wait until it is ACTIVE.")),
                    ),
                    _ => None,
                };
                if let Some(answer) = windowed {
                    take(&mut state.deliveries, &name);
                    return Some(answer);
                }
                match action {
                    "CreateDeliveryStream" | "UpdateDestination" => {
                        let mut arns = Vec::new();
                        collect_role_arns(&op.json, &mut arns);
                        arns.sort();
                        arns.dedup();
                        let roles: Vec<&str> = arns
                            .iter()
                            .map(|arn| arn.rsplit('/').next().unwrap_or_default())
                            .collect();
                        let role = refuse_one(&mut state.roles, &roles)?;
                        let arn = arns
                            .iter()
                            .find(|arn| arn.rsplit('/').next() == Some(role))?;
                        let message = format!(
                            "Firehose is unable to assume role {arn}. {}",
                            "Please check the role provided."
                        );
                        Some((
                            json_error("InvalidArgumentException", &message),
                            Some("role-propagation"),
                        ))
                    }
                    _ => None,
                }
            }
            ("ec2", "RunInstances") => {
                let (value, param, what) = match op.form.get("IamInstanceProfile.Name") {
                    Some(name) => (name.as_str(), "name", "name"),
                    None => (
                        op.form.get("IamInstanceProfile.Arn")?.as_str(),
                        "arn",
                        "ARN",
                    ),
                };
                let profile = value.rsplit('/').next().unwrap_or_default();
                refuse_one(&mut state.profiles, &[profile])?;
                let message = format!(
                    "Value ({value}) for parameter iamInstanceProfile.{param} is invalid. {}",
                    format_args!("Invalid IAM Instance Profile {what}")
                );
                Some((
                    ec2_error("InvalidParameterValue", &message),
                    Some("profile-propagation"),
                ))
            }
            _ => None,
        }
    }

    /// A throttling error when `op` goes beyond its quota (with `ProxyConfig::quotas`).
    fn quota(&self, op: &Op, state: &mut State) -> Option<Response<Body>> {
        if !self.config.quotas {
            return None;
        }
        let (burst, per_second) = aws_quota(&op.service, &op.action)?;
        let now = self.now();
        let key = format!("{}:{}", op.service, op.action);
        let (tokens, at) = state.quota_buckets.entry(key).or_insert((burst, now));
        let refilled = now.saturating_duration_since(*at).as_secs_f64() * per_second;
        *tokens = (*tokens + refilled).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return None;
        }
        state.throttled.push(Call {
            service: op.service.clone(),
            action: op.action.clone(),
            is_write: op.is_write,
            status: 400,
            emulated: Some("throttled"),
            lock: op.lock,
        });
        let account = self.account();
        Some(match op.service.as_str() {
            "kinesis" => {
                let name = op.stream_name().unwrap_or_default();
                json_error(
                    "LimitExceededException",
                    &format!("Rate exceeded for stream {name} under account {account}."),
                )
            }
            "firehose" => json_error("ThrottlingException", "Rate exceeded"),
            _ => {
                let mut response = ec2_error("RequestLimitExceeded", "Request limit exceeded.");
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
            }
        })
    }

    async fn forward(&self, parts: &Parts, body: Bytes) -> Result<Upstream, String> {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{}{path}", self.upstream)
            .parse()
            .map_err(|e| format!("bad uri: {e}"))?;
        let resigned = super::resign::resign(parts, &body, &self.config.resign);
        let body = resigned
            .as_ref()
            .map_or(body, |(b, _)| Bytes::from(b.clone()));
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) && name != CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some((_, auth)) = resigned {
            headers.insert(hyper::header::AUTHORIZATION, auth);
        }
        if !body.is_empty() || parts.headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        if let Some(account) = self
            .account_id
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert("x-moto-account-id", account);
        }
        let response = self.client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Upstream {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// AWS behaviours moto lacks: ClientToken idempotency, the ½×–2× reshard rule, a group in
    /// use refused with DependencyViolation.
    fn aws_rules(&self, op: &Op, state: &mut State) -> Option<Answer> {
        match (op.service.as_str(), op.action.as_str()) {
            ("ec2", "RunInstances") => {
                let token = op.form.get("ClientToken")?;
                let body = state.tokens.get(token)?.clone();
                let response = plain(StatusCode::OK, String::from_utf8_lossy(&body).into_owned());
                Some((
                    with_type(response, "text/xml;charset=UTF-8"),
                    Some("token-replay"),
                ))
            }
            ("kinesis", "UpdateShardCount") => {
                let name = op.stream_name()?;
                let target = op.json.get("TargetShardCount").and_then(Value::as_u64)?;
                let current = *state.shards.get(&name)?;
                let refusal = if target > current * 2 {
                    format!("UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}")
                } else if target < current.div_ceil(2) {
                    format!("UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}")
                } else {
                    return None;
                };
                Some((
                    json_error("InvalidArgumentException", &refusal),
                    Some("reshard-rule"),
                ))
            }
            ("ec2", "DeleteSecurityGroup") => {
                let group = op.form.get("GroupId")?;
                let user = state
                    .instance_groups
                    .iter()
                    .find(|(_, groups)| groups.contains(group))?;
                Some((
                    ec2_error(
                        "DependencyViolation",
                        &format!("resource {group} has a dependent object ({})", user.0),
                    ),
                    Some("group-in-use"),
                ))
            }
            _ => None,
        }
    }

    /// Records what [`Shared::aws_rules`] needs from a forwarded call that succeeded.
    fn remember(&self, op: &Op, body: &Bytes, state: &mut State) {
        let xml = || String::from_utf8_lossy(body).into_owned();
        let numbered = |prefix: &str| -> Vec<String> {
            let mut v: Vec<(&String, &String)> = op
                .form
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .collect();
            v.sort();
            v.into_iter().map(|(_, v)| v.clone()).collect()
        };
        match (op.service.as_str(), op.action.as_str()) {
            ("ec2", "RunInstances") => {
                if let Some(token) = op.form.get("ClientToken") {
                    state.tokens.insert(token.clone(), body.clone());
                }
                let groups = numbered("SecurityGroupId.");
                for (id, _) in instance_states(&xml()) {
                    state.instance_groups.insert(id, groups.clone());
                }
            }
            ("ec2", "ModifyInstanceAttribute") => {
                let groups = numbered("GroupId.");
                if let (Some(id), false) = (op.form.get("InstanceId"), groups.is_empty()) {
                    state.instance_groups.insert(id.clone(), groups);
                }
            }
            ("ec2", "TerminateInstances") => {
                for id in numbered("InstanceId.") {
                    state.instance_groups.remove(&id);
                }
            }
            ("ec2", "CreateSecurityGroup") if self.config.group_invisible > 0 => {
                if let Some(id) = xml_value(&xml(), "groupId") {
                    state.new_groups.insert(id, self.config.group_invisible);
                }
            }
            ("kinesis", "CreateStream") => {
                if let Some(name) = op.stream_name() {
                    let n = op
                        .json
                        .get("ShardCount")
                        .and_then(Value::as_u64)
                        .unwrap_or(4);
                    state.shards.insert(name, n);
                }
            }
            ("kinesis", "UpdateShardCount") => {
                if let (Some(name), Some(n)) = (
                    op.stream_name(),
                    op.json.get("TargetShardCount").and_then(Value::as_u64),
                ) {
                    state.shards.insert(name, n);
                }
            }
            ("kinesis", "DescribeStreamSummary") => {
                let open = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["StreamDescriptionSummary"]["OpenShardCount"].as_u64());
                if let (Some(name), Some(n)) = (op.stream_name(), open) {
                    state.shards.insert(name, n);
                }
            }
            _ => {}
        }
    }

    /// Updates the emulated state from a forwarded call and rewrites what moto says if needed.
    /// The `policy_stale` window: PutRolePolicy replacing a document opens it; a GetRolePolicy
    /// inside it gets the earlier document (its answer rewritten).
    fn stale_policy(&self, op: &Op, body: &[u8], state: &mut State) -> Option<Bytes> {
        let key = (
            op.form.get("RoleName")?.clone(),
            op.form.get("PolicyName")?.clone(),
        );
        match op.action.as_str() {
            "PutRolePolicy" => {
                let doc = op.form.get("PolicyDocument")?.clone();
                let before = state.policies.insert(key.clone(), doc.clone());
                if let Some(before) = before.filter(|b| *b != doc && self.config.policy_stale > 0) {
                    let k = self.config.policy_stale;
                    state.stale_policies.insert(key, (before, k));
                }
                None
            }
            "GetRolePolicy" => {
                let (before, left) = state.stale_policies.get_mut(&key)?;
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let xml = String::from_utf8_lossy(body);
                let (open, close) = ("<PolicyDocument>", "</PolicyDocument>");
                let start = xml.find(open)? + open.len();
                let end = start + xml[start..].find(close)?;
                let encoded = percent_encoding::utf8_percent_encode(
                    before,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                Some(Bytes::from(format!(
                    "{}{encoded}{}",
                    &xml[..start],
                    &xml[end..]
                )))
            }
            _ => None,
        }
    }

    fn observe(&self, op: &Op, upstream: Upstream) -> Answer {
        if !upstream.status.is_success() {
            return (upstream.into_response(None), None);
        }
        let cfg = &self.config;
        let mut guard = self.state();
        let state = &mut *guard;
        self.remember(op, &upstream.body, state);
        let mut rewritten = None;
        let mut emulated = None;
        if op.service == "iam" {
            if let Some(stale) = self.stale_policy(op, &upstream.body, state) {
                rewritten = Some(stale);
                emulated = Some("policy-stale");
            }
        }
        match (op.service.as_str(), op.action.as_str()) {
            ("kinesis", action) => {
                let Some(name) = op.stream_name() else {
                    return (upstream.into_response(None), None);
                };
                match action {
                    "CreateStream" => {
                        begin(&mut state.streams, name, "CREATING", cfg.stream_creating)
                    }
                    "DeleteStream" => {
                        begin(&mut state.streams, name, "DELETING", cfg.stream_deleting)
                    }
                    a if STREAM_UPDATES.contains(&a) => {
                        begin(&mut state.streams, name, "UPDATING", cfg.stream_updating)
                    }
                    "DescribeStream" | "DescribeStreamSummary" => {
                        if let Some(status) = take(&mut state.streams, &name) {
                            let outer = if action == "DescribeStream" {
                                "StreamDescription"
                            } else {
                                "StreamDescriptionSummary"
                            };
                            rewritten =
                                set_json_status(&upstream.body, outer, "StreamStatus", status);
                            emulated = Some(status);
                        }
                    }
                    _ => {}
                }
            }
            ("firehose", action) => {
                let Some(name) = op.delivery_name() else {
                    return (upstream.into_response(None), None);
                };
                match action {
                    "CreateDeliveryStream" => {
                        let kind = op.field("DeliveryStreamType").unwrap_or("DirectPut");
                        state.delivery_types.insert(name.clone(), kind.to_owned());
                        begin(
                            &mut state.deliveries,
                            name,
                            "CREATING",
                            cfg.delivery_creating,
                        );
                    }
                    "DeleteDeliveryStream" => begin(
                        &mut state.deliveries,
                        name,
                        "DELETING",
                        cfg.delivery_deleting,
                    ),
                    "DescribeDeliveryStream" => {
                        let status = take(&mut state.deliveries, &name);
                        rewritten = describe_delivery_stream(&upstream.body, status);
                        emulated = status;
                    }
                    _ => {}
                }
            }
            ("iam", action) if ROLE_CHANGES.contains(&action) && cfg.role_propagation > 0 => {
                if let Some(role) = op.form.get("RoleName") {
                    state.roles.insert(role.clone(), cfg.role_propagation);
                }
            }
            ("iam", action) if PROFILE_CHANGES.contains(&action) && cfg.profile_propagation > 0 => {
                if let Some(profile) = op.form.get("InstanceProfileName") {
                    state
                        .profiles
                        .insert(profile.clone(), cfg.profile_propagation);
                }
            }
            ("ec2", "RunInstances") => {
                for (id, _) in instance_states(&String::from_utf8_lossy(&upstream.body)) {
                    begin(&mut state.instances, id, "pending", cfg.instance_pending);
                }
            }
            ("ec2", "TerminateInstances") => {
                let ids = op
                    .form
                    .iter()
                    .filter(|(key, _)| key.starts_with("InstanceId."));
                for (_, id) in ids {
                    state.instances.remove(id); // no longer pending, in any case
                    let k = cfg.instance_shutting_down;
                    begin(&mut state.instances, id.clone(), "shutting-down", k);
                }
            }
            ("ec2", "DescribeInstances" | "DescribeInstanceStatus")
                if !state.instances.is_empty() =>
            {
                let xml = String::from_utf8_lossy(&upstream.body);
                let mut overrides: HashMap<String, &str> = HashMap::new();
                for (id, _) in instance_states(&xml) {
                    if let Some(status) = take(&mut state.instances, &id) {
                        emulated = emulated.or(Some(status));
                        overrides.insert(id, status);
                    }
                }
                rewritten = rewrite_instance_states(&xml, &overrides).map(Bytes::from);
            }
            ("ec2", "DescribeSecurityGroups") if !state.new_groups.is_empty() => {
                let xml = String::from_utf8_lossy(&upstream.body);
                let items = xml_items(&xml, &["securityGroupInfo"], "groupId", "");
                let hidden: Vec<(usize, usize)> = items
                    .into_iter()
                    .filter(|item| refuse_one(&mut state.new_groups, &[item.id.as_str()]).is_some())
                    .map(|item| item.range)
                    .collect();
                if !hidden.is_empty() {
                    emulated = Some("group-invisible");
                    rewritten = Some(Bytes::from(cut(&xml, &hidden)));
                }
            }
            _ => {}
        }
        (upstream.into_response(rewritten), emulated)
    }
}

struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    /// The response for the client: moto's, or moto's headers with a `rewritten` body.
    fn into_response(self, rewritten: Option<Bytes>) -> Response<Body> {
        let changed = rewritten.is_some();
        let body = rewritten.unwrap_or(self.body);
        let len = body.len();
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            let stale = changed
                && matches!(
                    name.as_str(),
                    "content-length" | "x-amz-crc32" | "content-md5"
                );
            if !is_hop_by_hop(name) && !stale {
                headers.append(name.clone(), value.clone());
            }
        }
        if changed {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        response
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    )
}

fn classify(parts: &Parts, body: &[u8]) -> Op {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let query = parts.uri.query().unwrap_or_default();
    let scope = credential_scope(header("authorization")).or_else(|| {
        form_fields(query)
            .remove("X-Amz-Credential")
            .and_then(|c| scope_parts(&c))
    });
    let (region, service) = scope.unwrap_or_default();
    let service = if service.is_empty() {
        "unknown".to_owned()
    } else {
        service
    };
    let content_type = header("content-type");
    let json = if content_type.contains("json") {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let mut form = if content_type.starts_with("application/x-www-form-urlencoded") {
        form_fields(&String::from_utf8_lossy(body))
    } else {
        HashMap::new()
    };
    if !form.contains_key("Action") {
        form.extend(form_fields(query));
    }
    let target = header("x-amz-target");
    let (action, is_write) = if !target.is_empty() {
        let action = target.rsplit('.').next().unwrap_or(target).to_owned();
        let is_write = !is_read_action(&action);
        (action, is_write)
    } else if let Some(action) = form.get("Action") {
        (action.clone(), !is_read_action(action))
    } else if service == "s3" {
        (
            s3_action(&parts.method, parts.uri.path(), query),
            !matches!(parts.method, Method::GET | Method::HEAD),
        )
    } else {
        (
            format!("{} {}", parts.method, parts.uri.path()),
            !matches!(parts.method, Method::GET | Method::HEAD),
        )
    };
    let lock = service == "s3"
        && parts
            .uri
            .path()
            .trim_start_matches('/')
            .starts_with("streamstack-locks-");
    Op {
        service,
        region,
        action,
        is_write,
        lock,
        json,
        form,
    }
}

fn is_read_action(action: &str) -> bool {
    ["Describe", "Get", "List", "Head"]
        .iter()
        .any(|p| action.starts_with(p))
}

/// `(region, service)` from `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request, ...`.
fn credential_scope(authorization: &str) -> Option<(String, String)> {
    let (_, rest) = authorization.split_once("Credential=")?;
    scope_parts(rest.split(',').next()?)
}

fn scope_parts(credential: &str) -> Option<(String, String)> {
    let mut parts = credential.trim().split('/').skip(2);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// `a=1&b=x%20y` -> {a: 1, b: "x y"}; later duplicates win.
fn form_fields(text: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `PUT`, `GET ?tagging`, `PUT key`, `POST ?delete`, `GET /` (no bucket): path-style only.
fn s3_action(method: &Method, path: &str, query: &str) -> String {
    let path = path.trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    let mut flags: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| match kv.split_once('=') {
            None | Some((_, "")) => Some(kv.trim_end_matches('=')),
            Some(_) => None,
        })
        .collect();
    flags.sort_unstable();
    let mut action = method.to_string();
    if path.is_empty() {
        action.push_str(" /");
    } else if has_key {
        action.push_str(" key");
    }
    if !flags.is_empty() {
        action.push_str(" ?");
        action.push_str(&flags.join("&"));
    }
    action
}

fn collect_role_arns(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(arn) if key == "RoleARN" => out.push(arn.clone()),
                    _ => collect_role_arns(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_role_arns(v, out)),
        _ => {}
    }
}

/// Sets `body[outer][field] = status` in a JSON body; `None` if the body does not have that shape.
fn set_json_status(body: &[u8], outer: &str, field: &str, status: &str) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let slot = value.get_mut(outer)?.get_mut(field)?;
    *slot = Value::from(status);
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// Fixes a DescribeDeliveryStream answer: the emulated `status`, if any, and the S3 destination
/// defaults AWS always returns but moto leaves out when the create request did not set them
/// (without `CompressionFormat` the Rust SDK rejects the whole answer).
fn describe_delivery_stream(body: &[u8], status: Option<&str>) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let description = value
        .get_mut("DeliveryStreamDescription")?
        .as_object_mut()?;
    let mut changed = false;
    if let Some(status) = status {
        description.insert("DeliveryStreamStatus".into(), Value::from(status));
        changed = true;
    }
    let destinations = description
        .get_mut("Destinations")
        .and_then(Value::as_array_mut);
    for destination in destinations.into_iter().flatten() {
        for kind in [
            "S3DestinationDescription",
            "ExtendedS3DestinationDescription",
        ] {
            let Some(s3) = destination.get_mut(kind).and_then(Value::as_object_mut) else {
                continue;
            };
            let defaults = [
                ("CompressionFormat", json!("UNCOMPRESSED")),
                (
                    "BufferingHints",
                    json!({"SizeInMBs": 5, "IntervalInSeconds": 300}),
                ),
                (
                    "EncryptionConfiguration",
                    json!({"NoEncryptionConfig": "NoEncryption"}),
                ),
            ];
            for (key, default) in defaults {
                if !s3.contains_key(key) {
                    s3.insert(key.into(), default);
                    changed = true;
                }
            }
        }
    }
    changed
        .then(|| serde_json::to_vec(&value).ok().map(Bytes::from))
        .flatten()
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A minimal DescribeStream / DescribeStreamSummary answer for a stream moto has already deleted.
fn deleting_stream(action: &str, name: &str, region: &str, account: &str) -> Value {
    let common = json!({
        "StreamName": name,
        "StreamARN": format!("arn:aws:kinesis:{region}:{account}:stream/{name}"),
        "StreamStatus": "DELETING",
        "RetentionPeriodHours": 24,
        "StreamCreationTimestamp": epoch_seconds(),
        "EnhancedMonitoring": [],
        "EncryptionType": "NONE",
    });
    let (outer, extra) = if action == "DescribeStream" {
        (
            "StreamDescription",
            json!({"Shards": [], "HasMoreShards": false}),
        )
    } else {
        ("StreamDescriptionSummary", json!({"OpenShardCount": 0}))
    };
    let mut description = common;
    if let (Some(d), Value::Object(extra)) = (description.as_object_mut(), extra) {
        d.extend(extra);
    }
    json!({ outer: description })
}

/// A minimal DescribeDeliveryStream answer for a delivery stream moto has already deleted.
fn deleting_delivery(name: &str, kind: &str, region: &str, account: &str) -> Value {
    json!({"DeliveryStreamDescription": {
        "DeliveryStreamName": name,
        "DeliveryStreamARN": format!("arn:aws:firehose:{region}:{account}:deliverystream/{name}"),
        "DeliveryStreamStatus": "DELETING",
        "DeliveryStreamType": kind,
        "VersionId": "1",
        "CreateTimestamp": epoch_seconds(),
        "Destinations": [],
        "HasMoreDestinations": false,
    }})
}

fn ec2_state_code(name: &str) -> u8 {
    match name {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    }
}

/// One `<item>` directly inside a set element of an EC2 XML answer.
struct XmlItem {
    /// The text of its direct child `id_tag` (empty if it has none).
    id: String,
    /// The byte range of the whole `<item>...</item>`.
    range: (usize, usize),
    /// The byte range of its direct child `child_tag`, if any.
    child: Option<(usize, usize)>,
}

/// The items directly inside any element named in `sets` (e.g. `instancesSet`), with their id
/// and the range of one child element. A small tag scanner, not a full XML parser: enough for
/// moto's and AWS's answers, and it never panics on anything else.
fn xml_items(xml: &str, sets: &[&str], id_tag: &str, child_tag: &str) -> Vec<XmlItem> {
    let mut items = Vec::new();
    // Open elements: (name, offset of its '<', offset after its '>').
    let mut stack: Vec<(&str, usize, usize)> = Vec::new();
    // The item being read and its depth in `stack`.
    let mut current: Option<(usize, XmlItem)> = None;
    let mut pos = 0;
    while let Some(start) = xml[pos..].find('<').map(|i| pos + i) {
        let Some(end) = xml[start..].find('>').map(|i| start + i + 1) else {
            break;
        };
        pos = end;
        let tag = &xml[start + 1..end - 1];
        if tag.starts_with(['?', '!']) || tag.ends_with('/') {
            continue;
        }
        if tag.starts_with('/') {
            let Some((name, open_start, open_end)) = stack.pop() else {
                break;
            };
            match &mut current {
                Some((depth, item)) if stack.len() == *depth => {
                    item.range.1 = end;
                    items.extend(current.take().map(|(_, item)| item))
                }
                Some((depth, item)) if stack.len() == *depth + 1 => {
                    if name == id_tag {
                        item.id = xml[open_end..start].trim().to_owned();
                    }
                    if name == child_tag {
                        item.child = Some((open_start, end));
                    }
                }
                _ => {}
            }
        } else {
            let name = tag.split_whitespace().next().unwrap_or_default();
            let in_set = stack.last().is_some_and(|(n, ..)| sets.contains(n));
            if name == "item" && in_set && current.is_none() {
                current = Some((
                    stack.len(),
                    XmlItem {
                        id: String::new(),
                        range: (start, start),
                        child: None,
                    },
                ));
            }
            stack.push((name, start, end));
        }
    }
    items
}

/// `xml` without the byte `ranges` (sorted, not overlapping).
fn cut(xml: &str, ranges: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut pos = 0;
    for &(start, end) in ranges {
        out.push_str(&xml[pos..start]);
        pos = end;
    }
    out.push_str(&xml[pos..]);
    out
}

/// `(instance id, byte range of its state)` of the instances an EC2 answer lists
/// (`instancesSet` or `instanceStatusSet` items).
fn instance_states(xml: &str) -> Vec<(String, Option<(usize, usize)>)> {
    xml_items(
        xml,
        &["instancesSet", "instanceStatusSet"],
        "instanceId",
        "instanceState",
    )
    .into_iter()
    .filter(|i| !i.id.is_empty())
    .map(|i| (i.id, i.child))
    .collect()
}

/// Replaces the `<instanceState>` of the instances in `overrides`; `None` when nothing changed.
fn rewrite_instance_states(xml: &str, overrides: &HashMap<String, &str>) -> Option<String> {
    let mut edits: Vec<((usize, usize), &str)> = instance_states(xml)
        .into_iter()
        .filter_map(|(id, range)| Some((range?, *overrides.get(&id)?)))
        .collect();
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|((start, _), _)| *start);
    let mut out = String::with_capacity(xml.len());
    let mut pos = 0;
    for ((start, end), status) in edits {
        out.push_str(&xml[pos..start]);
        out.push_str(&format!(
            "<instanceState><code>{}</code><name>{status}</name></instanceState>",
            ec2_state_code(status)
        ));
        pos = end;
    }
    out.push_str(&xml[pos..]);
    Some(out)
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("realism-proxy"),
    );
    response
}

fn json_ok(body: Value) -> Response<Body> {
    with_type(
        plain(StatusCode::OK, body.to_string()),
        "application/x-amz-json-1.1",
    )
}

/// An error in the service's own wire format.
fn service_error(service: &str, code: &str, message: &str, status: StatusCode) -> Response<Body> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut response = match service {
        "kinesis" | "firehose" | "ssm" | "logs" | "tagging" => json_error(code, message),
        "ec2" => ec2_error(code, message),
        "s3" => with_type(
            plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>realism-proxy</RequestId></Error>",
                    escape(code),
                    escape(message)
                ),
            ),
            "application/xml",
        ),
        // Query protocol (IAM, STS, CloudFormation).
        _ => with_type(
            plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>realism-proxy</RequestId></ErrorResponse>",
                    escape(code),
                    escape(message)
                ),
            ),
            "text/xml",
        ),
    };
    *response.status_mut() = status;
    response
}

/// The text of the first `<tag>` element of an XML answer.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

fn json_error(kind: &str, message: &str) -> Response<Body> {
    let body = json!({"__type": kind, "message": message}).to_string();
    with_type(
        plain(StatusCode::BAD_REQUEST, body),
        "application/x-amz-json-1.1",
    )
}

fn ec2_error(code: &str, message: &str) -> Response<Body> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>",
            "<Code>{}</Code><Message>{}</Message></Error></Errors>",
            "<RequestID>realism-proxy</RequestID></Response>"
        ),
        escape(code),
        escape(message)
    );
    with_type(
        plain(StatusCode::BAD_REQUEST, body),
        "text/xml;charset=UTF-8",
    )
}
