//! Running the CLI binary against a sandbox, as a user or CI job would, and reading results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::Sandbox;

pub const WEATHER_LAB: &str = include_str!("../../../stacks/weather-lab.yaml");
pub const CLASSROOM: &str = include_str!("../../../stacks/classroom.yaml");
pub const LAB_REGION: &str = "ap-northeast-2";

/// A spec file in a fresh temporary directory.
pub struct SpecFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn spec_file(text: &str) -> SpecFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, text).expect("write spec");
    SpecFile { _dir: dir, path }
}

pub fn rewrite(spec: &SpecFile, text: &str) {
    std::fs::write(&spec.path, text).expect("rewrite spec");
}

/// Runs the CLI against the sandbox; never inherits the caller's AWS settings.
pub fn ss(sb: &Sandbox, args: &[&str]) -> Output {
    ss_env(sb, args, &[])
}

/// [`ss`] with extra environment variables (set after the caller's are cleared).
pub fn ss_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(sb, args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run streamstack")
}

/// [`ss_env`] at a high priority (nice -15, where allowed: root), for tests about rates, whose
/// client must send when it means to, not when a saturated machine lets it run.
pub fn ss_env_urgent(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let plain = command(sb, args);
    let mut c = Command::new("nice");
    c.args(["-n", "-15"])
        .arg(plain.get_program())
        .args(plain.get_args());
    for (key, value) in plain.get_envs() {
        match value {
            Some(value) => c.env(key, value),
            None => c.env_remove(key),
        };
    }
    c.envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run streamstack under nice")
}

/// Starts the CLI in the background (output piped), for tests that kill it or race it.
pub fn spawn_ss(sb: &Sandbox, args: &[&str]) -> std::process::Child {
    spawn_ss_env(sb, args, &[])
}

/// [`spawn_ss`] with extra environment variables.
pub fn spawn_ss_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    command(sb, args)
        .env("STREAMSTACK_POLL_MS", "100")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start streamstack")
}

/// The CLI against the sandbox; never inherits the caller's AWS settings, and runs without a
/// request budget (`STREAMSTACK_API_BUDGET=off`: moto has no quotas) unless `env` sets one.
fn command(sb: &Sandbox, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_streamstack"));
    c.args(["--endpoint-url", &sb.endpoint(), "--no-color"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "AKIDSTREAMSTACKTEST")
        .env("AWS_SECRET_ACCESS_KEY", "streamstack-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("STREAMSTACK_POLL_MS", "200")
        // moto has no request quotas: no budget, unless a test asks for it (tests/it/quotas.rs).
        .env("STREAMSTACK_API_BUDGET", "off")
        .env("STREAMSTACK_PROGRESS_MS", "1000")
        .env(
            "STREAMSTACK_STATE_DIR",
            std::env::temp_dir().join("streamstack-test-state"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = ss(sb, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "streamstack {args:?} failed:\n{}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn sdk(sb: &Sandbox, region: &str) -> aws_config::SdkConfig {
    crate::support::moto::sdk_config(&sb.endpoint(), region)
}

/// Addresses of everything tagged with the stack, as `output --json` sees them.
pub fn remaining(sb: &Sandbox, spec: &Path) -> Vec<String> {
    let out = ok(sb, &["output", "--json", p(spec)]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("output --json is JSON");
    v.as_array()
        .expect("array")
        .iter()
        .map(|o| o["address"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn plan_json(sb: &Sandbox, spec: &Path) -> serde_json::Value {
    let o = ss(sb, &["plan", "--json", "--detailed-exitcode", p(spec)]);
    assert!(
        matches!(o.status.code(), Some(0 | 2)),
        "plan failed:\n{}",
        text(&o)
    );
    serde_json::from_slice(&o.stdout).expect("plan --json is JSON")
}

pub fn actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Ids of the stack's instances in one of `states` (EC2 state names).
pub fn instance_ids(sb: &Sandbox, stack: &str, region: &str, states: &[&str]) -> Vec<String> {
    rt().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&sdk(sb, region));
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:streamstack:stack")
                    .values(stack)
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                    .build(),
            )
            .send()
            .await
            .expect("describe instances");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect()
    })
}

/// Whether a bucket is a lock bucket (no stack's: it stays after destroy).
pub fn is_lock_bucket(name: &str) -> bool {
    name.starts_with("streamstack-locks-")
}

/// The names of the buckets in `listed` that are not lock buckets.
pub fn stack_buckets(
    listed: &aws_sdk_s3::operation::list_buckets::ListBucketsOutput,
) -> Vec<String> {
    listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| !is_lock_bucket(n))
        .map(str::to_string)
        .collect()
}

/// The lock bucket of the sandbox's account in `region`, and the key of `stack`'s lock.
pub fn lock_place(sb: &Sandbox, region: &str, stack: &str) -> (String, String) {
    (
        format!("streamstack-locks-{}-{region}", sb.account_id),
        format!("{stack}/lock"),
    )
}

/// The raw value of `stack`'s lock object in `LAB_REGION`, and its ETag, if there is one.
pub fn lock_object(sb: &Sandbox, stack: &str) -> Option<(String, String)> {
    let (bucket, key) = lock_place(sb, LAB_REGION, stack);
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&sdk(sb, LAB_REGION));
        let out = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
        let etag = out.e_tag.clone().unwrap_or_default();
        let body = out.body.collect().await.expect("lock body").into_bytes();
        Some((String::from_utf8_lossy(&body).into_owned(), etag))
    })
}

/// Makes the sandbox account's lock bucket in `LAB_REGION` if there is none yet (as the first
/// lock there would), so that a test's faults on `s3:PUT` meet the stack's bucket, not it.
pub fn make_lock_bucket(sb: &Sandbox) {
    let (bucket, _) = lock_place(sb, LAB_REGION, "-");
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&sdk(sb, LAB_REGION));
        if s3.head_bucket().bucket(&bucket).send().await.is_ok() {
            return;
        }
        let location = aws_sdk_s3::types::BucketLocationConstraint::from(LAB_REGION);
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(location)
                    .build(),
            )
            .send()
            .await
            .expect("create the lock bucket");
    });
}

/// Writes `value` as `stack`'s lock object in `LAB_REGION` (making the lock bucket if needed),
/// unconditionally: what another run, or something else, left there.
pub fn put_lock_object(sb: &Sandbox, stack: &str, value: &str) {
    make_lock_bucket(sb);
    let (bucket, key) = lock_place(sb, LAB_REGION, stack);
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&sdk(sb, LAB_REGION));
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(value.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put lock");
    });
}

/// A lock value of another run: id `id`, on host `host`, lease until `lease_until`.
pub fn lock_value_of(id: &str, host: &str, lease_until: &str) -> String {
    serde_json::json!({
        "id": id, "holder": "arn:aws:iam::1:user/ci", "host": host,
        "pid": 4242, "command": "apply", "started": "2026-11-29T00:00:00Z",
        "lease_until": lease_until
    })
    .to_string()
}

/// Puts a lock on `stack` held by another, live run (id `abc123`, lease far in the future), as
/// the lock's object in the lock bucket holds it.
pub fn hold_lock(sb: &Sandbox, stack: &str) {
    put_lock_object(
        sb,
        stack,
        &lock_value_of("abc123", "runner-7", "2999-01-01T00:00:00Z"),
    );
}

/// A command from one of the venvs the test scripts make (scripts/lib.sh): `$binary_env` if
/// set, else `bin/EXE` of the venv `$venv_env` (default `default_venv`, relative paths from
/// the repository root).
pub fn venv_tool(
    binary_env: Option<&str>,
    venv_env: &str,
    default_venv: &str,
    exe: &str,
) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = binary_env
        .and_then(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let venv = std::env::var_os(venv_env)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default_venv));
            root.join(venv).join("bin").join(exe)
        });
    assert!(
        bin.exists(),
        "{} is missing: run the tests with scripts/test (it installs {exe} in a venv)",
        bin.display()
    );
    bin
}

/// A CLI run in the background whose standard output is read line by line as it comes, so a
/// test can act on what the run says ("waiting for ...") rather than on a guess of time.
pub struct Background {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Standard output so far.
    pub stdout: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    /// Starts `streamstack ARGS` against the sandbox (as [`spawn_ss`]).
    pub fn start(sb: &Sandbox, args: &[&str]) -> Background {
        Background::start_env(sb, args, &[])
    }

    /// [`Background::start`] with extra environment variables.
    pub fn start_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Background {
        use std::io::{BufRead, Read};
        let mut child = spawn_ss_env(sb, args, env);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Background {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Takes in the lines printed so far.
    fn read(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
    }

    /// Has the run ended?
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Waits until a line of standard output contains `needle` and returns it. Fails the test,
    /// showing the output so far, if the run ends first or nothing of the kind comes within
    /// [`crate::support::wait::PATIENCE`].
    #[track_caller]
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        crate::support::wait::until(
            &format!("a line with {needle:?}"),
            crate::support::wait::PATIENCE,
            || {
                let ended = self.exited();
                self.read();
                if let Some(line) = self.stdout.iter().find(|l| l.contains(needle)) {
                    return Ok(line.clone());
                }
                if ended {
                    self.read();
                    panic!(
                        "the run ended before printing {needle:?}:\n{}",
                        self.stdout.join("\n")
                    );
                }
                Err(self.stdout.clone())
            },
        )
    }

    /// The run's process id (what its lock records as `pid`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`libc::SIGSTOP`, `libc::SIGCONT`, ...) to the run.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: a signal to our own child process, which has not been reaped yet.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({pid}, {signal})");
    }

    /// Kills the run (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the run to end (failing the test after
    /// [`crate::support::wait::PATIENCE`]) and returns all it printed.
    #[track_caller]
    pub fn finish(mut self) -> Output {
        let status =
            crate::support::wait::until("the run to end", crate::support::wait::PATIENCE, || {
                match self.child.try_wait() {
                    Ok(Some(status)) => Ok(status),
                    _ => {
                        self.read();
                        Err(self.stdout.last().cloned())
                    }
                }
            });
        // The pipes close when the process ends: the readers finish.
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        while let Ok(line) = self.lines.recv() {
            self.stdout.push(line);
        }
        let mut stdout = self.stdout.join("\n");
        stdout.push('\n');
        Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A test that failed half-way leaves no run behind.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
