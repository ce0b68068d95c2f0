//! moto, the AWS emulator the integration tests run against, and SDK configuration for it.
//!
//! [`MotoServer::shared`] gives the server of this test binary:
//! * `STREAMSTACK_MOTO_ENDPOINT` set (as `scripts/test` and `scripts/moto run` do): that server,
//!   or those servers (comma-separated: moto answers one request at a time, so `scripts/test`
//!   starts two and each test's account lives on one of them, [`MotoServer::endpoint_for`]);
//! * otherwise a `moto_server` is started on a free port, from the project venv
//!   (`$STREAMSTACK_VENV` or `.venv-moto`, relative to the crate root) or from `PATH`. It runs
//!   under a tiny `sh` watchdog that kills it when the test process exits, however it exits;
//! * neither: the test panics with instructions. Tests never pass silently without moto.
//!
//! Tests share one server, so each test should work in its own moto account: put a
//! [`unique_account_id`] in a [`super::proxy::ProxyConfig`] and talk to moto through that proxy
//! (see [`super::Sandbox`]), which adds `x-moto-account-id` to every request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};

/// Environment variable naming an already running moto server (`http://127.0.0.1:PORT`).
pub const ENDPOINT_ENV: &str = "STREAMSTACK_MOTO_ENDPOINT";
/// The region the tests use.
pub const REGION: &str = "eu-west-1";

/// How long a spawned moto may take to answer (it imports much Python: seconds on an idle
/// machine, many more on a saturated one); only a moto that never answers waits this long.
const STARTUP_TIMEOUT: Duration = super::wait::PATIENCE;

/// A moto server: either external (`STREAMSTACK_MOTO_ENDPOINT`, one or more) or a child process.
pub struct MotoServer {
    /// Every server's endpoint; a test's account lives on one of them.
    endpoints: Vec<String>,
    /// The process, when this server was spawned here (stopped on drop).
    _child: Option<Spawned>,
}

/// Makes moto load its lazily built backends (the first EC2 call costs ~3 s of CPU under the
/// GIL, the first SSM/IAM calls ~0.5 s) before tests start timing emulated AWS delays.
/// Best effort: errors are ignored; a no-op on an already warm server.
fn warm_up(endpoint: &str) {
    let Some(address) = endpoint.strip_prefix("http://") else {
        return;
    };
    let calls = [
        ("ec2", "", "Action=DescribeInstances&Version=2016-11-15"),
        ("iam", "", "Action=ListRoles&Version=2010-05-08"),
        (
            "ssm",
            "AmazonSSM.GetParameter",
            r#"{"Name":"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}"#,
        ),
        ("kinesis", "Kinesis_20131202.ListStreams", "{}"),
        ("firehose", "Firehose_20150804.ListDeliveryStreams", "{}"),
    ];
    for (service, target, body) in calls {
        let content_type = if target.is_empty() {
            "application/x-www-form-urlencoded"
        } else {
            "application/x-amz-json-1.1"
        };
        let request = format!(
            "POST / HTTP/1.0\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
             X-Amz-Target: {target}\r\nContent-Length: {}\r\nAuthorization: AWS4-HMAC-SHA256 \
             Credential=warmup/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, \
             Signature=0\r\n\r\n{body}",
            body.len()
        );
        let Ok(mut stream) = TcpStream::connect(address) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        let mut answer = Vec::new();
        let _ = stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.read_to_end(&mut answer));
    }
}

struct Spawned {
    watchdog: Child,
    /// Closing this pipe makes the watchdog stop moto.
    stdin: Option<ChildStdin>,
}

impl MotoServer {
    /// The server shared by all tests of this test binary, started on first use.
    ///
    /// Panics (failing the test) with a clear message when moto is not available.
    pub fn shared() -> &'static MotoServer {
        static SHARED: OnceLock<Result<MotoServer, String>> = OnceLock::new();
        let start = || {
            MotoServer::start().inspect(|m| {
                for e in &m.endpoints {
                    warm_up(e);
                }
            })
        };
        match SHARED.get_or_init(start) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// `STREAMSTACK_MOTO_ENDPOINT` if set, else a new server ([`MotoServer::spawn`]).
    pub fn start() -> Result<MotoServer, String> {
        match std::env::var(ENDPOINT_ENV) {
            Ok(endpoints) if !endpoints.trim().is_empty() => Ok(MotoServer {
                endpoints: endpoints
                    .split(',')
                    .map(|e| e.trim().trim_end_matches('/').to_owned())
                    .filter(|e| !e.is_empty())
                    .collect(),
                _child: None,
            }),
            _ => MotoServer::spawn(),
        }
    }

    /// Starts a private `moto_server` on a free port; it is stopped on drop.
    pub fn spawn() -> Result<MotoServer, String> {
        MotoServer::spawn_with(&[])
    }

    /// [`MotoServer::spawn`] with extra environment variables for moto (a test that needs a
    /// server of its own, such as one enforcing IAM with `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn spawn_with(env: &[(&str, &str)]) -> Result<MotoServer, String> {
        let program = find_moto_server().ok_or_else(|| {
            format!(
                "moto is not available, and the integration tests need it (they do not skip).\n\
                 Either run them with scripts/test or `scripts/moto run -- cargo test` (these create \
                 the venv .venv-moto), or set {ENDPOINT_ENV}=http://127.0.0.1:PORT to a running \
                 `moto_server`, or put moto_server (pip install 'moto[server]==5.2.5') on PATH."
            )
        })?;
        let port = free_port().map_err(|e| format!("no free port for moto: {e}"))?;
        let log_path = std::env::temp_dir().join(format!("streamstack-moto-{port}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        // The watchdog runs moto in the background and kills it when its stdin (a pipe held by
        // this process) reaches EOF: on drop, or when the test process dies in any way.
        let script = concat!(
            r#"exec 3<&0; "$@" </dev/null & pid=$!; "#,
            r#"(read -r line <&3; kill "$pid" 2>/dev/null) & wait "$pid""#
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", script, "moto-watchdog"])
            .arg(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ALLOW_NONEXISTENT_REGION", "true")
            .env(
                "MOTO_IAM_LOAD_MANAGED_POLICIES",
                std::env::var("MOTO_IAM_LOAD_MANAGED_POLICIES").unwrap_or_else(|_| "true".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdin = watchdog.stdin.take();
        let mut spawned = Spawned { watchdog, stdin };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !answers(port) {
            let exited = spawned.watchdog.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let why = exited
                    .map_or(format!("did not answer within {STARTUP_TIMEOUT:?}"), |s| {
                        format!("exited ({s})")
                    });
                return Err(format!(
                    "{} on port {port} {why}; last lines of {}:\n{}",
                    program.display(),
                    log_path.display(),
                    tail(&log_path, 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(MotoServer {
            endpoints: vec![format!("http://127.0.0.1:{port}")],
            _child: Some(spawned),
        })
    }

    /// `http://127.0.0.1:PORT`: the first server.
    pub fn endpoint(&self) -> &str {
        self.endpoint_for("")
    }

    /// The server that holds `account_id`'s state: always the same one for an account, so a
    /// test and its inventory see the same moto.
    pub fn endpoint_for(&self, account_id: &str) -> &str {
        let n = self.endpoints.len().max(1) as u64;
        let i = account_id
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        self.endpoints
            .get((i % n) as usize)
            .map_or("http://127.0.0.1:0", String::as_str)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.watchdog.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

fn find_moto_server() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var("STREAMSTACK_VENV").unwrap_or_else(|_| ".venv-moto".into());
    let in_venv = root.join(venv).join("bin/moto_server");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"));
    std::iter::once(in_venv)
        .chain(on_path)
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True once something answers HTTP on `GET /moto-api/data.json`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut head = [0u8; 5];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && &head == b"HTTP/"
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A 12-digit moto account id, unique per call within this process and (with overwhelming
/// probability) across concurrently running test processes: 7 digits derived from the pid and
/// the start time, then 5 digits of a per-process counter. Never starts with 0.
pub fn unique_account_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        1_000_000 + splitmix64(nanos ^ (u64::from(std::process::id()) << 32)) % 9_000_000
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 100_000;
    format!("{prefix}{n:05}")
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// SDK configuration for `endpoint` (moto or a proxy in front of it): static dummy credentials,
/// the given region, `BehaviorVersion::latest()`, nothing read from the environment or
/// `~/.aws`. Build any client with `aws_sdk_xxx::Client::new(&config)`; for S3 use [`s3_client`].
pub fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    let credentials = Credentials::new(
        "AKIDSTREAMSTACKTEST",
        "streamstack-test-secret",
        None,
        None,
        "tests",
    );
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        // The SDK crates are built without a default HTTPS client (see Cargo.toml).
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

/// An S3 client for `config` with path-style addressing (required with an IP endpoint).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
