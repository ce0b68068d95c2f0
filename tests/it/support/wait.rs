//! Waiting in tests: every wait has a deadline and, when it passes, fails the test with what it
//! saw last. No test loops on a condition without one.
//!
//! The deadlines are only for failing: a passing test never waits for them. They are generous
//! ([`PATIENCE`]) so that a machine ten times slower than an idle one still passes; what a test
//! waits *for* is an event (a call seen by the proxy, a line printed, a resource listed), never an
//! amount of time.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for something that takes a few seconds on an idle machine before it
/// fails.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// How often [`until`] looks again.
const EVERY: Duration = Duration::from_millis(50);

/// Calls `look` until it returns `Ok`, every 50 ms; after `timeout`, panics with `what` and the
/// last `Err` it returned (what it saw).
#[track_caller]
pub fn until<T, D: Debug>(
    what: &str,
    timeout: Duration,
    mut look: impl FnMut() -> Result<T, D>,
) -> T {
    let start = Instant::now();
    loop {
        let seen = match look() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            panic!(
                "gave up waiting for {what} after {:.1?}; last seen: {seen:#?}",
                start.elapsed()
            );
        }
        std::thread::sleep(EVERY);
    }
}

/// [`until`] for async tests: awaits `look()` every 50 ms until it returns `Ok`.
pub async fn until_async<T, D, F, Fut>(what: &str, timeout: Duration, mut look: F) -> T
where
    D: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, D>>,
{
    let start = Instant::now();
    loop {
        let seen = match look().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            panic!(
                "gave up waiting for {what} after {:.1?}; last seen: {seen:#?}",
                start.elapsed()
            );
        }
        tokio::time::sleep(EVERY).await;
    }
}
