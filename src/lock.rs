//! One apply or destroy at a time per stack and region: a lock held in the account itself, as
//! the SSM parameter `/streamstack/{stack}/lock`, created with `Overwrite=false` (an atomic
//! create-if-absent). Its value records the holder (caller ARN, host, pid, command, start) and a
//! lease the holder renews while it runs. A lock whose holder died is taken over, with a notice:
//! the same host with the pid gone, or a lapsed lease. Otherwise a second run fails at once,
//! naming the holder, or waits up to `--lock-timeout`.
//!
//! Permissions: `ssm:PutParameter`, `ssm:GetParameter` and `ssm:DeleteParameter` on
//! `arn:aws:ssm:REGION:ACCOUNT:parameter/streamstack/*`.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::aws::{Clients, Ctx};
use crate::time::{parse_rfc3339, rfc3339};
use crate::{Error, Result};

/// How long a lock stays valid without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// Who holds a lock, as recorded in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
    pub lease_until: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lock {} held by {} on {} (pid {}, `{}`, since {}, lease until {})",
            self.id, self.holder, self.host, self.pid, self.command, self.started, self.lease_until
        )
    }
}

pub fn parameter_name(stack: &str) -> String {
    format!("/streamstack/{stack}/lock")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Is a process with this pid alive on this machine?
fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 checks for existence and permission only; it sends nothing.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Why a held lock may be taken over, if it may.
fn stale(info: &LockInfo, now: SystemTime) -> Option<String> {
    if parse_rfc3339(&info.lease_until).is_none_or(|until| until < now) {
        return Some(format!("its lease ran out at {}", info.lease_until));
    }
    if info.host == hostname() && info.pid != std::process::id() && !pid_alive(info.pid) {
        return Some(format!("its process {} on this host is gone", info.pid));
    }
    None
}

/// A held lock; renewed in the background until [`Lock::release`].
pub struct Lock {
    clients: Clients,
    name: String,
    pub info: LockInfo,
    stop: Option<oneshot::Sender<()>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    held: std::sync::Arc<std::sync::Mutex<Held>>,
}

/// What the holder knows of its lock: when it last wrote it, and whether it saw it taken.
#[derive(Debug, Clone, Copy)]
struct Held {
    written: Instant,
    lost: bool,
}

impl Held {
    /// Certainly still ours: written less than half a lease ago and never seen taken. Nobody
    /// takes over a lock before its lease runs out (its holder's process is alive), and half a
    /// lease leaves 30 s for clocks that disagree.
    fn certainly_ours(&self) -> bool {
        !self.lost && self.written.elapsed() < LEASE / 2
    }
}

/// What the lock parameter holds: a run's lock, or a value streamstack cannot read (written by
/// something else, or damaged), which is never taken over but can be force-unlocked by its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Run(LockInfo),
    Unreadable {
        /// A digest of the value: the id `force-unlock` takes for it.
        id: String,
        value: String,
    },
}

impl Holder {
    pub fn id(&self) -> &str {
        match self {
            Holder::Run(i) => &i.id,
            Holder::Unreadable { id, .. } => id,
        }
    }

    fn of(value: String) -> Holder {
        match serde_json::from_str(&value) {
            Ok(info) => Holder::Run(info),
            Err(_) => {
                use sha2::Digest;
                let digest = sha2::Sha256::digest(value.as_bytes());
                let id = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
                Holder::Unreadable { id, value }
            }
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Run(i) => i.fmt(f),
            Holder::Unreadable { id, value } => {
                let shown: String = value.chars().take(120).collect();
                write!(
                    f,
                    "a lock value streamstack cannot read (id {id}): {shown:?}; not a lock of \
                     this streamstack, or damaged"
                )
            }
        }
    }
}

async fn read(clients: &Clients, name: &str) -> Result<Option<Holder>> {
    match clients
        .ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .op("ssm:GetParameter")
    {
        Ok(o) => {
            let value = o.parameter.and_then(|p| p.value).unwrap_or_default();
            Ok(Some(Holder::of(value)))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn put(clients: &Clients, name: &str, info: &LockInfo, overwrite: bool) -> Result<()> {
    let value = serde_json::to_string(info).map_err(|e| Error::Internal(e.to_string()))?;
    clients
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(overwrite)
        .description("streamstack lock: one apply or destroy at a time")
        .send()
        .await
        .op("ssm:PutParameter")
        .map(|_| ())
}

/// Deletes the lock parameter; one already gone is fine.
async fn delete(clients: &Clients, name: &str) -> Result<()> {
    match clients
        .ssm
        .delete_parameter()
        .name(name)
        .send()
        .await
        .op("ssm:DeleteParameter")
    {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// The lock of `stack`, if someone holds it (for `plan` to mention).
pub async fn held(clients: &Clients, stack: &str) -> Result<Option<Holder>> {
    read(clients, &parameter_name(stack)).await
}

/// Takes the lock of `stack` for `command`, waiting up to `timeout` for its holder.
pub async fn acquire(
    clients: &Clients,
    stack: &str,
    command: &str,
    timeout: Duration,
) -> Result<Lock> {
    let name = parameter_name(stack);
    let holder = clients.caller_arn().await?;
    let started = Instant::now();
    loop {
        let now = SystemTime::now();
        let info = LockInfo {
            id: format!(
                "{:x}{:x}",
                now.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
                std::process::id()
            ),
            holder: holder.clone(),
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            started: rfc3339(now),
            lease_until: rfc3339(now + LEASE),
        };
        let writing = Instant::now();
        match put(clients, &name, &info, false).await {
            Ok(()) => return Ok(Lock::start(clients.clone(), name, info, writing)),
            Err(e) if e.code() == Some("ParameterAlreadyExists") => {}
            Err(e) => return Err(e),
        }
        let Some(current) = read(clients, &name).await? else {
            continue; // released in between: try again at once
        };
        let stale = match &current {
            Holder::Run(info) => stale(info, now),
            Holder::Unreadable { .. } => None,
        };
        if let Some(why) = stale {
            tracing::warn!("taking over a stale {current}: {why}");
            eprintln!("note: taking over the lock of stack {stack}: {why} ({current})");
            delete(clients, &name).await?;
            continue;
        }
        if started.elapsed() >= timeout {
            return Err(Error::Locked(format!(
                "stack {stack} is locked: {current}; wait for it, pass --lock-timeout, or, if \
                 that run is dead, streamstack force-unlock SPEC {}",
                current.id()
            )));
        }
        tokio::time::sleep(Duration::from_secs(2).min(timeout.saturating_sub(started.elapsed())))
            .await;
    }
}

impl Lock {
    fn start(clients: Clients, name: String, info: LockInfo, written: Instant) -> Lock {
        let (stop, mut stopped) = oneshot::channel();
        let (c, n, mut i) = (clients.clone(), name.clone(), info.clone());
        let held = std::sync::Arc::new(std::sync::Mutex::new(Held {
            written,
            lost: false,
        }));
        let h = std::sync::Arc::clone(&held);
        let set = move |f: &dyn Fn(&mut Held)| {
            f(&mut h.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        };
        let renewer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                // Renew only a lock that is still ours.
                match read(&c, &n).await {
                    Ok(Some(Holder::Run(current))) if current.id == i.id => {
                        let writing = Instant::now();
                        i.lease_until = rfc3339(SystemTime::now() + LEASE);
                        match put(&c, &n, &i, true).await {
                            Ok(()) => set(&|h| h.written = writing),
                            Err(e) => tracing::warn!("could not renew the lock: {e}"),
                        }
                    }
                    Ok(_) => {
                        tracing::warn!("the lock {} is no longer ours", i.id);
                        set(&|h| h.lost = true);
                        return;
                    }
                    Err(e) => tracing::warn!("could not read the lock: {e}"),
                }
            }
        });
        Lock {
            clients,
            name,
            info,
            stop: Some(stop),
            renewer: Some(renewer),
            held,
        }
    }

    /// Stops renewing and deletes the lock (if it is still ours).
    pub async fn release(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A renewal in flight finishes first: its write must not bring the lock back after
        // the delete.
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.await;
        }
        let held = *self.held.lock().unwrap_or_else(|p| p.into_inner());
        let ours = if held.certainly_ours() {
            true
        } else {
            matches!(
                read(&self.clients, &self.name).await?,
                Some(Holder::Run(current)) if current.id == self.info.id
            )
        };
        if !ours {
            return Ok(());
        }
        delete(&self.clients, &self.name).await
    }
}

/// `force-unlock`: removes the lock of `stack` if its id is `id`.
pub async fn force_unlock(clients: &Clients, stack: &str, id: &str) -> Result<Holder> {
    let name = parameter_name(stack);
    let Some(current) = read(clients, &name).await? else {
        return Err(Error::Config(format!("stack {stack} is not locked")));
    };
    if current.id() != id {
        return Err(Error::Config(format!(
            "the lock of stack {stack} has id {}, not {id}: {current}",
            current.id()
        )));
    }
    delete(clients, &name).await?;
    Ok(current)
}
