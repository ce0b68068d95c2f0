//! The stack's lock on S3 conditional writes, against moto through the proxy: two runs taking
//! over one stale lock at once (exactly one proceeds), a holder paused past its lease and taken
//! over (it stops before its next write), a value that does not parse (a clear error within
//! `--lock-timeout`, cleared by force-unlock), and what remains after destroy (the lock bucket
//! only).
//!
//! Each race is made at the proxy, not by timing: the racers' reads of the stale lock are held
//! until both have arrived, then their takeover writes until both have arrived, and only then
//! let go together.

use std::time::Duration;

use crate::support::cli::*;
use crate::support::inventory::assert_nothing_remains;
use crate::support::proxy::{Hold, ProxyConfig};
use crate::support::wait::PATIENCE;
use crate::support::Sandbox;

const STACK: &str = "lock-lab";

fn lock_lab() -> SpecFile {
    spec_file(&format!(
        "version: 1\nstack: {STACK}\nregion: {LAB_REGION}\nstreams:\n  weather:\n    \
         retention_hours: 24\n"
    ))
}

/// Waits until `hold` holds a request of `run` (failing the test, with its output, if the run
/// ends first).
fn held_or_fail(hold: &Hold, run: &mut Background, what: &str) {
    if hold.wait_held(PATIENCE, || run.exited()).is_none() {
        panic!("the run never reached {what}");
    }
}

#[test]
fn of_two_runs_taking_over_one_stale_lock_at_once_exactly_one_proceeds() {
    let sb = Sandbox::new(ProxyConfig::default());
    let spec = lock_lab();
    // A lock whose lease ran out long ago, of a run on another host.
    put_lock_object(
        &sb,
        STACK,
        &lock_value_of("stale1", "runner-7", "2001-01-01T00:00:00Z"),
    );
    sb.proxy.reset_calls(); // the test's own write above went through the proxy
                            // Both runs read the stale lock before either writes: their reads are held until both came.
    let reads = [sb.proxy.hold("s3:GET key"), sb.proxy.hold("s3:GET key")];
    let args = ["apply", "--auto-approve", p(&spec.path)];
    let mut a = Background::start(&sb, &args);
    let mut b = Background::start(&sb, &args);
    held_or_fail(&reads[0], &mut a, "its read of the lock");
    held_or_fail(&reads[1], &mut b, "its read of the lock");
    // Their next lock writes are the takeovers (If-Match the stale ETag): held until both came,
    // and the winner is then kept inside its run, at its first resource write.
    let takeovers = [sb.proxy.hold("s3:PUT key"), sb.proxy.hold("s3:PUT key")];
    let inside = sb.proxy.hold("kinesis:CreateStream");
    drop(reads);
    held_or_fail(&takeovers[0], &mut a, "its takeover");
    held_or_fail(&takeovers[1], &mut b, "its takeover");
    drop(takeovers);

    // The loser fails at once, naming the winner (which cannot end: its first write is held).
    let (loser, mut winner) = loop_until_one_exits(a, b);
    let loser_pid = loser.pid();
    let lost = loser.finish();
    assert_eq!(lost.status.code(), Some(1), "{}", text(&lost));
    let err = String::from_utf8_lossy(&lost.stderr);
    assert!(
        err.contains("is locked") && err.contains(&format!("pid {}", winner.pid())),
        "the loser names the winner:\n{err}"
    );
    assert!(!err.contains("taking over"), "{err}");
    // The winner goes on into its run (and holds the lock there).
    held_or_fail(&inside, &mut winner, "its CreateStream");
    let (value, _) = lock_object(&sb, STACK).expect("the winner's lock");
    let v: serde_json::Value = serde_json::from_str(&value).expect("JSON");
    assert_eq!(v["pid"], winner.pid(), "{value}");
    assert_ne!(v["pid"], loser_pid);
    // Of the two takeovers (the third and fourth lock writes: each run's create-if-absent was
    // refused first), exactly one was written.
    let puts: Vec<u16> = sb
        .proxy
        .lock_writes()
        .iter()
        .filter(|c| c.action == "PUT key")
        .map(|c| c.status)
        .collect();
    assert_eq!(puts[..2], [412, 412], "{puts:?}");
    let mut takeovers = puts[2..4].to_vec();
    takeovers.sort_unstable();
    assert_eq!(takeovers, [200, 412], "{puts:?}");

    inside.release();
    let won = winner.finish();
    assert_eq!(won.status.code(), Some(0), "{}", text(&won));
    assert!(
        String::from_utf8_lossy(&won.stderr).contains("taking over the lock"),
        "{}",
        text(&won)
    );
    assert!(lock_object(&sb, STACK).is_none(), "released");
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, STACK);
}

/// Waits until one of two runs ends: (the one that ended, the other).
fn loop_until_one_exits(mut a: Background, mut b: Background) -> (Background, Background) {
    let first = crate::support::wait::until("one of the racers to end", PATIENCE, || {
        match (a.exited(), b.exited()) {
            (true, true) => panic!("both racers ended: one of them should be held"),
            (true, false) => Ok(true),
            (false, true) => Ok(false),
            (false, false) => Err("both running"),
        }
    });
    if first {
        (a, b)
    } else {
        (b, a)
    }
}

#[test]
fn a_holder_paused_past_its_lease_and_taken_over_stops_before_its_next_write() {
    let sb = Sandbox::new(ProxyConfig::default());
    let spec = lock_lab();
    // A short lease, so the pause outlasts it; the holder is stopped inside its first write.
    let lease = Duration::from_millis(1500);
    let lease_ms = lease.as_millis().to_string();
    let hold = sb.proxy.hold("kinesis:CreateStream");
    let mut run = Background::start_env(
        &sb,
        &["apply", "--auto-approve", p(&spec.path)],
        &[("STREAMSTACK_LOCK_LEASE_MS", &lease_ms)],
    );
    held_or_fail(&hold, &mut run, "its CreateStream");
    run.signal(libc::SIGSTOP);
    // Paused past its lease (a lower bound the sleep guarantees), then taken over by another
    // run, as a run that found the lease lapsed writes it.
    std::thread::sleep(lease + Duration::from_millis(500));
    put_lock_object(
        &sb,
        STACK,
        &lock_value_of("taker1", "runner-9", "2999-01-01T00:00:00Z"),
    );
    let writes_before = sb.proxy.resource_writes().len();
    run.signal(libc::SIGCONT);
    hold.release();
    let out = run.finish();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no longer this run's") && err.contains("runner-9") && err.contains("taker1"),
        "a clear error naming the new holder:\n{err}"
    );
    // After resuming, only the write it was inside of went through: the stream's tags and
    // encryption, its next writes, were never sent.
    let after: Vec<String> = sb.proxy.resource_writes()[writes_before..]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(after, ["kinesis:CreateStream"], "{}", text(&out));
    // The new holder's lock is untouched.
    let (value, _) = lock_object(&sb, STACK).expect("the taker's lock");
    assert!(value.contains("taker1"), "{value}");

    ok(&sb, &["force-unlock", p(&spec.path), "taker1"]);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, STACK);
    // The run made the lock bucket; after destroy it is all that remains.
    let (bucket, _) = lock_place(&sb, LAB_REGION, STACK);
    assert_only_the_lock_bucket_remains(&sb, &bucket, true);
}

#[test]
fn a_corrupt_lock_is_a_clear_error_within_the_lock_timeout_and_force_unlock_clears_it() {
    let sb = Sandbox::new(ProxyConfig::default());
    let spec = lock_lab();
    put_lock_object(&sb, STACK, "locked by a shell script, not JSON");
    let o = ss(
        &sb,
        &[
            "apply",
            "--auto-approve",
            "--lock-timeout",
            "3s",
            p(&spec.path),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let (bucket, key) = lock_place(&sb, LAB_REGION, STACK);
    let at = format!("foreign or corrupt lock at s3://{bucket}/{key}");
    assert!(err.contains(&at), "{err}");
    // It waited like for a held lock, without spinning: one read every 2 s at most.
    let reads = sb.proxy.calls_of("s3:GET key").len();
    assert!((1..=3).contains(&reads), "{reads} reads of the lock");
    assert!(sb.proxy.resource_writes().is_empty());
    // Its id, a digest of the value, is in the message; force-unlock shows the value and removes
    // it (a wrong id removes nothing).
    let id = err
        .split("force-unlock SPEC ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no id in:\n{err}"))
        .to_string();
    let o = ss(&sb, &["force-unlock", p(&spec.path), "abc123"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(lock_object(&sb, STACK).is_some());
    let shown = ok(&sb, &["force-unlock", p(&spec.path), &id]);
    assert!(shown.contains("locked by a shell script"), "{shown}");
    assert!(lock_object(&sb, STACK).is_none());

    // Now free: apply and destroy; the lock bucket is all that remains, and it is no stack's.
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
    assert_nothing_remains(&sb, LAB_REGION, STACK);
    assert!(lock_object(&sb, STACK).is_none(), "the lock object is gone");
    let stacks = ok(&sb, &["stacks", "--region", LAB_REGION]);
    assert!(!stacks.contains("streamstack-locks"), "{stacks}");
    assert_only_the_lock_bucket_remains(&sb, &bucket, false);
}

/// The lock bucket is the only bucket of the account; made by streamstack (`made`), it is
/// private and encrypted.
fn assert_only_the_lock_bucket_remains(sb: &Sandbox, bucket: &str, made: bool) {
    rt().block_on(async {
        let s3 = crate::support::moto::s3_client(&sdk(sb, LAB_REGION));
        let listed = s3.list_buckets().send().await.expect("list buckets");
        let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
        assert_eq!(names, [bucket], "only the lock bucket remains");
        if !made {
            return;
        }
        let block = s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .expect("public access block");
        let c = block.public_access_block_configuration().expect("config");
        assert_eq!(
            (
                c.block_public_acls,
                c.ignore_public_acls,
                c.block_public_policy,
                c.restrict_public_buckets
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let enc = s3
            .get_bucket_encryption()
            .bucket(bucket)
            .send()
            .await
            .expect("encryption");
        let rules = enc
            .server_side_encryption_configuration()
            .map(|c| c.rules())
            .unwrap_or_default();
        let algorithm = rules
            .first()
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_string());
        assert_eq!(algorithm.as_deref(), Some("AES256"));
    });
}
