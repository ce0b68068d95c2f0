//! One apply or destroy at a time per stack and region: a lock held in the account itself, as
//! the S3 object `{stack}/lock` in the bucket `streamstack-locks-{account}-{region}`, written
//! only with S3's conditional writes (compare-and-swap on the object's ETag, what Terraform's S3
//! backend locks with since 1.10):
//!
//! - taking a free lock is `PutObject` with `If-None-Match: *` (created only if absent);
//! - renewing it, taking over a stale one and releasing it are `PutObject` / `DeleteObject` with
//!   `If-Match: ETAG` (the ETag this run last read or wrote), so of two runs racing for one
//!   stale lock exactly one wins, and the other sees the winner as the holder; a renewal never
//!   overwrites a newer holder, and a release never deletes one. S3 answers a failed condition
//!   with 412 `PreconditionFailed` (409 `ConditionalRequestConflict` when two conditional
//!   writes of one key race; `NoSuchKey` when the object is gone), and every one of them means
//!   "not yours any more". Conditional deletes work on general purpose buckets, so a release
//!   leaves no tombstone: the object is gone.
//!
//! The value (JSON [`LockInfo`]) records the holder (caller ARN, host, pid, command, start) and a
//! lease the holder renews every quarter of it (60 s; `STREAMSTACK_LOCK_LEASE_MS` shortens it,
//! for tests). A lock whose holder died is taken over, with a notice: the same host with the pid
//! gone, or a lapsed lease. A value that does not parse is a foreign or corrupt lock: never
//! taken over, waited for like a held lock (`--lock-timeout`), then reported with a digest id
//! that `force-unlock` takes. Otherwise a second run fails at once, naming the holder, or waits
//! up to `--lock-timeout`.
//!
//! While a run holds the lock, every write of its clients waits for the lock's write gate
//! (`crate::budget::WriteGate`): when the lease was last confirmed less than half a lease ago the
//! write goes at once; otherwise the lease is renewed first (`If-Match`), and a refused renewal
//! means the lock was taken over (the run was paused or cut off past its lease): the write is not
//! sent and the run stops with an error naming the new holder. So a paused process that resumes
//! after a takeover stops before its next write, whichever module makes it.
//!
//! The bucket is made at the first lock in an account and region: `CreateBucket` (with the
//! region's `LocationConstraint`), all four public-access blocks and SSE-S3 default encryption.
//! (A run killed between those calls leaves a bucket with AWS's own defaults for new buckets,
//! which are the same two settings: see docs/aws-facts.md.)
//! It is not tagged as any stack's, so `stacks` and `gc` never see it, and `destroy` leaves it:
//! it is the one thing streamstack leaves in an account. Bucket names are global, so every call
//! names the account as `ExpectedBucketOwner`: a bucket of that name in another account is
//! refused with an error, never written.
//!
//! Permissions: `s3:CreateBucket`, `s3:PutBucketPublicAccessBlock`, `s3:PutEncryptionConfiguration`
//! and `s3:ListBucket` (a missing object reads as `NoSuchKey`) on
//! `arn:aws:s3:::streamstack-locks-ACCOUNT-REGION`; `s3:GetObject`, `s3:PutObject` and
//! `s3:DeleteObject` on `arn:aws:s3:::streamstack-locks-ACCOUNT-REGION/*`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::aws::{Clients, Ctx, LockCall};
use crate::budget::{GateClosed, WriteGate};
use crate::time::{parse_rfc3339, rfc3339};
use crate::{Error, Result};

/// How long a lock stays valid without renewal (unless `STREAMSTACK_LOCK_LEASE_MS` says).
pub const LEASE: Duration = Duration::from_secs(60);

/// What the lock bucket's name starts with (then `{account}-{region}`).
pub const BUCKET_PREFIX: &str = "streamstack-locks-";

/// The lease of this process: [`LEASE`], or `STREAMSTACK_LOCK_LEASE_MS` (a test knob).
fn lease_length() -> Duration {
    std::env::var("STREAMSTACK_LOCK_LEASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(LEASE, Duration::from_millis)
}

/// The lock bucket of an account and region.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("{BUCKET_PREFIX}{account}-{region}")
}

/// The lock object's key in the lock bucket.
pub fn object_key(stack: &str) -> String {
    format!("{stack}/lock")
}

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

/// What the lock object holds: a run's lock, or a value streamstack cannot read (written by
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
                    "a foreign or corrupt lock (id {id}): a value streamstack cannot read, \
                     {shown:?}"
                )
            }
        }
    }
}

/// Where a stack's lock lives: its bucket (owned by `account`) and key.
#[derive(Clone)]
struct Place {
    clients: Clients,
    account: String,
    bucket: String,
    key: String,
}

/// How a conditional `PutObject` came out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Put {
    /// Written; the object's new ETag.
    Written(String),
    /// The condition failed: the object exists (`If-None-Match`), or changed or is gone
    /// (`If-Match`), or another conditional write of it raced this one.
    Refused,
    /// The lock bucket does not exist (yet).
    NoBucket,
}

/// The condition of a write.
enum Cond<'a> {
    IfAbsent,
    IfMatch(&'a str),
}

/// S3's answers that mean "the condition did not hold".
fn condition_failed(e: &Error) -> bool {
    matches!(
        e.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
    )
}

impl Place {
    async fn of(clients: &Clients, stack: &str) -> Result<Place> {
        let account = clients.account_id().await?;
        Ok(Place {
            clients: clients.clone(),
            bucket: bucket_name(&account, &clients.region),
            key: object_key(stack),
            account,
        })
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// A 403 from the lock bucket: another account's bucket (refused by `ExpectedBucketOwner`)
    /// or missing permissions; said so, with AWS's answer.
    fn refused(&self, e: Error) -> Error {
        if e.aws().and_then(crate::aws::AwsError::status) != Some(403) {
            return e;
        }
        Error::Config(format!(
            "the lock bucket {} refused access ({e}): it belongs to another account than {} \
             (bucket names are global), or the credentials lack the lock's S3 permissions (see \
             the lock in docs/cli.md)",
            self.bucket, self.account
        ))
    }

    /// The lock object and its ETag; `None` when there is none (or no bucket yet).
    async fn read(&self) -> Result<Option<(Holder, String)>> {
        let got = self
            .clients
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .expected_bucket_owner(&self.account)
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:GetObject");
        let out = match got {
            Ok(o) => o,
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchBucket")) => return Ok(None),
            Err(e) => return Err(self.refused(e)),
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| Error::Config(format!("cannot read the lock {}: {e}", self.url())))?
            .into_bytes();
        Ok(Some((
            Holder::of(String::from_utf8_lossy(&bytes).into_owned()),
            etag,
        )))
    }

    async fn put(&self, info: &LockInfo, cond: Cond<'_>) -> Result<Put> {
        let value = serde_json::to_vec(info).map_err(|e| Error::Internal(e.to_string()))?;
        let request = self
            .clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .expected_bucket_owner(&self.account)
            .content_type("application/json")
            .body(ByteStream::from(value));
        let request = match cond {
            Cond::IfAbsent => request.if_none_match("*"),
            Cond::IfMatch(etag) => request.if_match(etag),
        };
        let sent = request
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:PutObject");
        match sent {
            Ok(o) => o.e_tag.map(Put::Written).ok_or_else(|| {
                Error::Internal(format!("S3 wrote the lock {} but sent no ETag", self.url()))
            }),
            Err(e) if e.code() == Some("NoSuchBucket") => Ok(Put::NoBucket),
            Err(e) if condition_failed(&e) => Ok(Put::Refused),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Deletes the lock object if its ETag is still `etag`; `false` when it changed or is gone.
    async fn delete(&self, etag: &str) -> Result<bool> {
        let sent = self
            .clients
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .expected_bucket_owner(&self.account)
            .if_match(etag)
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:DeleteObject");
        match sent {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) || e.code() == Some("NoSuchBucket") => Ok(false),
            Err(e) => Err(self.refused(e)),
        }
    }

    /// Makes the lock bucket: private (all four public-access blocks) and encrypted (SSE-S3).
    /// One made by a concurrent first run is fine; one of that name in another account is not.
    async fn make_bucket(&self) -> Result<()> {
        use aws_sdk_s3::types::{
            BucketLocationConstraint, CreateBucketConfiguration, ServerSideEncryption,
            ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
            ServerSideEncryptionRule,
        };
        let s3 = &self.clients.s3;
        let mut create = s3.create_bucket().bucket(&self.bucket);
        // us-east-1 takes no LocationConstraint; every other region needs its own.
        if self.clients.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(
                        self.clients.region.as_str(),
                    ))
                    .build(),
            );
        }
        let created = create
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:CreateBucket");
        match created {
            Ok(_) => tracing::info!("made the lock bucket {}", self.bucket),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) if e.code() == Some("BucketAlreadyExists") => {
                return Err(Error::Config(format!(
                    "the lock bucket name {} is taken by another AWS account (bucket names are \
                     global): streamstack cannot lock stacks in account {} and region {} ({e})",
                    self.bucket, self.account, self.clients.region
                )))
            }
            Err(e) => return Err(self.refused(e)),
        }
        let block = crate::aws::all_public_access_blocked();
        s3.put_public_access_block()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .public_access_block_configuration(block)
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:PutPublicAccessBlock")
            .map_err(|e| self.refused(e))?;
        let aes = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(aes)
            .build();
        let encryption = ServerSideEncryptionConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        s3.put_bucket_encryption()
            .bucket(&self.bucket)
            .expected_bucket_owner(&self.account)
            .server_side_encryption_configuration(encryption)
            .customize()
            .interceptor(LockCall)
            .send()
            .await
            .op("s3:PutBucketEncryption")
            .map_err(|e| self.refused(e))?;
        Ok(())
    }
}

/// What the holder knows of its lock: the value and ETag it last wrote, when it wrote them,
/// and, once a renewal was refused, why the lock is no longer its own.
#[derive(Debug)]
struct Lease {
    info: LockInfo,
    etag: String,
    written: Instant,
    lost: Option<String>,
}

/// Certainly still ours without asking S3: confirmed less than half a lease ago. Nobody takes
/// over a lock before its lease runs out (its holder's process is alive), and half a lease
/// leaves the other half for clocks that disagree and for the write itself.
fn fresh(age: Duration, length: Duration) -> bool {
    age < length / 2
}

/// The lock a run holds, shared by its renewer and its write gate.
struct Held {
    place: Place,
    stack: String,
    length: Duration,
    lease: tokio::sync::Mutex<Lease>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the lock {}", self.place.url())
    }
}

impl Held {
    /// Renews the lease with `If-Match` on the ETag last written; a refusal means the lock was
    /// taken over (or removed), which is remembered and returned as [`Error::Locked`].
    async fn renew(&self, lease: &mut Lease) -> Result<()> {
        if let Some(why) = &lease.lost {
            return Err(Error::Locked(why.clone()));
        }
        let writing = Instant::now();
        let mut info = lease.info.clone();
        info.lease_until = rfc3339(SystemTime::now() + self.length);
        if let Put::Written(etag) = self.place.put(&info, Cond::IfMatch(&lease.etag)).await? {
            *lease = Lease {
                info,
                etag,
                written: writing,
                lost: None,
            };
            return Ok(());
        }
        let now = match self.place.read().await {
            Ok(Some((holder, _))) => format!("it is now {holder}"),
            Ok(None) => "it is gone".to_string(),
            Err(e) => format!("it could not be read: {e}"),
        };
        let why = format!(
            "the lock of stack {} ({}) is no longer this run's: it was taken over while this run \
             was paused or cut off past its lease, and {now}; this run stopped before its next \
             write (run plan to see where the stack stands)",
            self.stack,
            self.place.url()
        );
        lease.lost = Some(why.clone());
        Err(Error::Locked(why))
    }

    /// The write gate: passes at once while the lease is fresh, else renews it first.
    async fn check(&self) -> Result<()> {
        let mut lease = self.lease.lock().await;
        if let Some(why) = &lease.lost {
            return Err(Error::Locked(why.clone()));
        }
        if fresh(lease.written.elapsed(), self.length) {
            return Ok(());
        }
        self.renew(&mut lease).await
    }
}

#[derive(Debug)]
struct Gate(Arc<Held>);

impl WriteGate for Gate {
    fn before_write(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), GateClosed>> + Send>> {
        let held = Arc::clone(&self.0);
        Box::pin(async move { held.check().await.map_err(|e| GateClosed(e.to_string())) })
    }
}

/// A held lock; renewed in the background, and checked before every write, until
/// [`Lock::release`].
pub struct Lock {
    held: Arc<Held>,
    pub info: LockInfo,
    stop: Option<oneshot::Sender<()>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// Makes the account's lock bucket of the region (private, encrypted) if it is not there, and
/// returns its name. The CloudFormation engine stages large templates in it.
pub async fn make_bucket(clients: &Clients) -> Result<String> {
    let place = Place::of(clients, "-").await?;
    place.make_bucket().await?;
    Ok(place.bucket)
}

/// The lock of `stack`, if someone holds it (for `plan` to mention).
pub async fn held(clients: &Clients, stack: &str) -> Result<Option<Holder>> {
    let place = Place::of(clients, stack).await?;
    Ok(place.read().await?.map(|(holder, _)| holder))
}

fn new_info(holder: &str, command: &str, length: Duration) -> LockInfo {
    let now = SystemTime::now();
    LockInfo {
        id: format!(
            "{:x}{:x}",
            now.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::process::id()
        ),
        holder: holder.to_string(),
        host: hostname(),
        pid: std::process::id(),
        command: command.to_string(),
        started: rfc3339(now),
        lease_until: rfc3339(now + length),
    }
}

/// Why a lock found in place may be taken over, if it may: a run's whose holder died. A value
/// that does not parse is never taken over.
fn takeover(current: &Holder, now: SystemTime) -> Option<String> {
    match current {
        Holder::Run(info) => stale(info, now),
        Holder::Unreadable { .. } => None,
    }
}

/// The error of a run that found `current` holding the lock at `place`.
fn locked_error(stack: &str, place: &Place, current: &Holder) -> Error {
    let id = current.id();
    Error::Locked(match current {
        Holder::Run(_) => format!(
            "stack {stack} is locked: {current}; wait for it, pass --lock-timeout, or, if that \
             run is dead, streamstack force-unlock SPEC {id}"
        ),
        Holder::Unreadable { .. } => format!(
            "stack {stack} is locked by a foreign or corrupt lock at {}: {current}; streamstack \
             never takes it over: if nothing holds it, streamstack force-unlock SPEC {id}",
            place.url()
        ),
    })
}

/// Takes the lock of `stack` for `command`, waiting up to `timeout` for its holder.
pub async fn acquire(
    clients: &Clients,
    stack: &str,
    command: &str,
    timeout: Duration,
) -> Result<Lock> {
    let place = Place::of(clients, stack).await?;
    let holder = clients.caller_arn().await?;
    let length = lease_length();
    let started = Instant::now();
    let mut bucket_made = 0;
    loop {
        let info = new_info(&holder, command, length);
        let writing = Instant::now();
        match place.put(&info, Cond::IfAbsent).await? {
            Put::Written(etag) => {
                return Ok(Lock::start(place, stack, length, info, etag, writing))
            }
            Put::NoBucket if bucket_made < 3 => {
                bucket_made += 1;
                place.make_bucket().await?;
                continue;
            }
            Put::NoBucket => {
                return Err(Error::Config(format!(
                    "the lock bucket {} was made but S3 still says it does not exist",
                    place.bucket
                )))
            }
            Put::Refused => {}
        }
        let Some((current, etag)) = place.read().await? else {
            continue; // released in between: try again at once
        };
        if let Some(why) = takeover(&current, SystemTime::now()) {
            // Compare-and-swap on the stale value: of two runs taking it over, one wins; the
            // other's write is refused and it finds the winner holding the lock.
            let writing = Instant::now();
            if let Put::Written(etag) = place.put(&info, Cond::IfMatch(&etag)).await? {
                tracing::warn!("took over a stale {current}: {why}");
                eprintln!("note: taking over the lock of stack {stack}: {why} ({current})");
                return Ok(Lock::start(place, stack, length, info, etag, writing));
            }
            continue;
        }
        if started.elapsed() >= timeout {
            return Err(locked_error(stack, &place, &current));
        }
        tokio::time::sleep(Duration::from_secs(2).min(timeout.saturating_sub(started.elapsed())))
            .await;
    }
}

impl Lock {
    fn start(
        place: Place,
        stack: &str,
        length: Duration,
        info: LockInfo,
        etag: String,
        written: Instant,
    ) -> Lock {
        let budget = Arc::clone(&place.clients.budget);
        let held = Arc::new(Held {
            place,
            stack: stack.to_string(),
            length,
            lease: tokio::sync::Mutex::new(Lease {
                info: info.clone(),
                etag,
                written,
                lost: None,
            }),
        });
        budget.set_gate(Some(Arc::new(Gate(Arc::clone(&held)))));
        let (stop, mut stopped) = oneshot::channel();
        let h = Arc::clone(&held);
        let renewer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(h.length / 4) => {}
                }
                let mut lease = h.lease.lock().await;
                match h.renew(&mut lease).await {
                    Ok(()) => {}
                    Err(e) if lease.lost.is_some() => {
                        tracing::warn!("{e}");
                        return;
                    }
                    Err(e) => tracing::warn!("could not renew the lock: {e}"),
                }
            }
        });
        Lock {
            held,
            info,
            stop: Some(stop),
            renewer: Some(renewer),
        }
    }

    /// Stops renewing and checking writes, and deletes the lock if it is still this run's (by
    /// its ETag). A lock that was taken over is an error: the run may not have done all it
    /// planned, and another run may have planned beside it.
    pub async fn release(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A renewal in flight finishes first: its write must not bring the lock back after
        // the delete.
        if let Some(renewer) = self.renewer.take() {
            if let Err(e) = renewer.await {
                tracing::warn!("the lock's renewer ended badly: {e}");
            }
        }
        self.held.place.clients.budget.set_gate(None);
        let lease = self.held.lease.lock().await;
        if let Some(why) = &lease.lost {
            return Err(Error::Locked(why.clone()));
        }
        if self.held.place.delete(&lease.etag).await? {
            return Ok(());
        }
        let now = match self.held.place.read().await? {
            Some((holder, _)) => format!("it is now {holder}"),
            None => "it is gone".to_string(),
        };
        Err(Error::Locked(format!(
            "the lock of stack {} ({}) was no longer this run's when it ended: {now}; it was \
             left as it is",
            self.held.stack,
            self.held.place.url()
        )))
    }
}

impl Drop for Lock {
    /// A lock dropped without [`Lock::release`] stops renewing and checking writes; its object
    /// stays until its lease runs out and another run takes it over.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.held.place.clients.budget.set_gate(None);
        }
    }
}

/// `force-unlock`: removes the lock of `stack` if its id is `id` (and it did not change since
/// it was read: the delete is conditional on the ETag read).
pub async fn force_unlock(clients: &Clients, stack: &str, id: &str) -> Result<Holder> {
    let place = Place::of(clients, stack).await?;
    let Some((current, etag)) = place.read().await? else {
        return Err(Error::Config(format!(
            "stack {stack} is not locked (no {})",
            place.url()
        )));
    };
    if current.id() != id {
        return Err(Error::Config(format!(
            "the lock of stack {stack} has id {}, not {id}: {current}",
            current.id()
        )));
    }
    if !place.delete(&etag).await? {
        return Err(Error::Config(format!(
            "the lock of stack {stack} changed while force-unlock read it; nothing was removed: \
             run force-unlock again"
        )));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str, pid: u32, lease_until: &str) -> LockInfo {
        LockInfo {
            id: "abc".into(),
            holder: "arn:aws:iam::1:user/ci".into(),
            host: host.into(),
            pid,
            command: "apply".into(),
            started: "2026-01-01T00:00:00Z".into(),
            lease_until: lease_until.into(),
        }
    }

    /// A pid that was alive a moment ago and is not any more.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn a_lock_is_taken_over_only_when_its_holder_died() {
        let now = SystemTime::now();
        let later = rfc3339(now + Duration::from_secs(30));
        let earlier = rfc3339(now - Duration::from_secs(1));
        // Alive elsewhere, lease running: never.
        assert_eq!(stale(&info("elsewhere", 1, &later), now), None);
        // Lease lapsed, or a lease that does not parse: yes.
        assert!(stale(&info("elsewhere", 1, &earlier), now).is_some_and(|w| w.contains("lease")));
        assert!(stale(&info("elsewhere", 1, "soon"), now).is_some());
        // This host, its pid gone: yes; its pid alive (this process): no.
        let here = hostname();
        assert!(stale(&info(&here, dead_pid(), &later), now).is_some_and(|w| w.contains("gone")));
        assert_eq!(stale(&info(&here, std::process::id(), &later), now), None);
    }

    #[test]
    fn a_value_that_does_not_parse_is_never_taken_over_and_has_a_stable_id() {
        let garbage = Holder::of("not json {".to_string());
        let Holder::Unreadable { id, .. } = &garbage else {
            panic!("parsed: {garbage:?}");
        };
        assert_eq!(id.len(), 16);
        assert_eq!(Holder::of("not json {".to_string()).id(), id);
        assert_ne!(Holder::of("not json }".to_string()).id(), id);
        assert_eq!(takeover(&garbage, SystemTime::now() + LEASE * 100), None);
        assert!(garbage.to_string().contains("foreign or corrupt"));
        let lapsed = Holder::Run(info("elsewhere", 1, "2000-01-01T00:00:00Z"));
        assert!(takeover(&lapsed, SystemTime::now()).is_some());
    }

    #[test]
    fn the_gate_asks_s3_only_once_half_a_lease_has_passed() {
        let lease = Duration::from_secs(60);
        assert!(fresh(Duration::ZERO, lease));
        assert!(fresh(Duration::from_secs(29), lease));
        assert!(!fresh(Duration::from_secs(30), lease));
        // A process paused past its lease always asks.
        assert!(!fresh(Duration::from_secs(61), lease));
    }

    #[test]
    fn one_bucket_per_account_and_region_and_one_key_per_stack() {
        assert_eq!(
            bucket_name("123456789012", "eu-west-1"),
            "streamstack-locks-123456789012-eu-west-1"
        );
        assert!(bucket_name("123456789012", "ap-southeast-2").len() <= 63);
        assert_eq!(object_key("weather-lab"), "weather-lab/lock");
    }
}
