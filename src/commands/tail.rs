//! `streamstack tail SPEC (stream.KEY|delivery.KEY|host.KEY) [--from-start | --since DUR]
//! [--max N] [--timeout DUR] [--json] [--grep REGEX] [--pretty]`

use std::io::Write;
use std::time::Duration;

use streamstack::events::Events;
use streamstack::ops;
use streamstack::tail::{self, Sink, Start, TailOptions, TailRecord};

use super::{open_options, runtime, Failure, Outcome};
use streamstack::cli::{Global, TailArgs};

/// Records to stdout, flushed one by one (a pipe sees each as it comes).
struct Stdout {
    json: bool,
}

impl Sink for Stdout {
    fn write(&mut self, r: &TailRecord) -> std::io::Result<()> {
        let line = if self.json {
            serde_json::to_string(r).map_err(std::io::Error::other)?
        } else {
            r.line()
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// A pipe whose reader is gone (`| head -1`) polls as an error: stop without waiting for
    /// the next record to fail to write.
    fn closed(&mut self) -> bool {
        #[cfg(unix)]
        {
            let mut fd = libc::pollfd {
                fd: 1,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, a count of 1 and no wait.
            let n = unsafe { libc::poll(&mut fd, 1, 0) };
            n > 0 && fd.revents & libc::POLLERR != 0
        }
        #[cfg(not(unix))]
        false
    }
}

/// Writing into a closed pipe is an error to handle (quietly, exit 0), not a signal.
fn ignore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition before any thread of the runtime exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

pub fn run(g: &Global, a: &TailArgs) -> Outcome {
    let grep = match &a.grep {
        Some(re) => Some(
            regex_lite::Regex::new(re)
                .map_err(|e| Failure::Message(format!("--grep {re:?} is not a regex: {e}")))?,
        ),
        None => None,
    };
    let start = match (a.from_start, a.since) {
        (true, _) => Start::FromStart,
        (false, Some(d)) => Start::Since(d),
        (false, None) => Start::Latest,
    };
    let opts = TailOptions {
        start,
        max: a.max,
        timeout: a.timeout,
        grep,
        pretty: a.pretty,
        poll: super::timeouts().poll.max(Duration::from_millis(200)),
    };
    ignore_sigpipe();
    runtime()?.block_on(async {
        let s = ops::open(&a.spec, &open_options(g, Events::none())).await?;
        let mut sink = Stdout { json: a.json };
        let ended = tail::tail(&s, &a.target, &opts, &mut sink).await?;
        tracing::debug!("tail ended: {ended:?}");
        Ok(0)
    })
}
