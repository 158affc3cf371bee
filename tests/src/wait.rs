//! Polling with a deadline: the lab never sleeps for a fixed time.

use std::fmt::Display;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

/// First pause between two polls; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(2);
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `cond` until it returns `true`, for at most `timeout`.
///
/// The error names `what` (write it as the thing being waited for, e.g.
/// `"real-0 to answer on port 80"`) and how long it waited.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, what, || {
        if cond() {
            Ok(())
        } else {
            Err(anyhow!("condition still false"))
        }
    })
}

/// Polls `attempt` until it returns `Ok`, for at most `timeout`, and returns
/// that value. On timeout the error names `what` and carries the last error
/// `attempt` returned, which usually says why it never succeeded.
pub fn wait_for<T, E: Display>(
    timeout: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, E>,
) -> Result<T> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut interval = FIRST_POLL_INTERVAL;
    loop {
        let last_error = match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(anyhow!(
                "timed out after {:.1?} waiting for {what}; last attempt: {last_error:#}",
                now - start
            ));
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}
