//! wrk, the HTTP load generator, run from a client namespace.

use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{Lab, command_in};

/// How long wrk is told to run: longer than any test, so that only
/// [`Wrk::finish`] (with SIGINT) ends a run.
const WRK_LIMIT: &str = "600s";

/// A wrk run in progress.
///
/// wrk runs until [`Wrk::finish`], and at least for the duration given to
/// [`Wrk::start`]: a test's steps under load (waits with deadlines, which
/// a busy machine stretches) can never outlast the load and find it gone.
pub struct Wrk {
    child: Child,
    /// The earliest moment `finish` stops wrk.
    not_before: Instant,
}

/// What wrk reported.
#[derive(Debug, Clone)]
pub struct WrkReport {
    pub requests: u64,
    /// The "Socket errors: …" line, if wrk printed one.
    pub socket_errors: Option<String>,
    pub non_2xx: u64,
    pub text: String,
}

impl WrkReport {
    /// True when every request succeeded.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.requests > 0 && self.socket_errors.is_none() && self.non_2xx == 0
    }
}

impl Wrk {
    /// Starts wrk in client `client`'s namespace against `url` for at
    /// least `duration` (until [`Wrk::finish`]) with `connections`
    /// connections. `close` sends
    /// `Connection: close` (a new connection per request); otherwise the
    /// connections are kept alive for the whole run (long-lived flows).
    pub fn start(
        lab: &mut Lab,
        client: usize,
        url: &str,
        duration: Duration,
        connections: u32,
        close: bool,
    ) -> Result<Self> {
        let mut args = vec![
            "wrk".to_owned(),
            "-t2".into(),
            format!("-c{connections}"),
            format!("-d{WRK_LIMIT}"),
            "--timeout".into(),
            "2s".into(),
        ];
        if close {
            args.extend(["-H".into(), "Connection: close".into()]);
        }
        args.push(url.to_owned());
        let mut cmd = command_in(lab.client_ns(client), &args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = lab.spawn(&mut cmd)?;
        Ok(Self {
            child,
            not_before: Instant::now() + duration,
        })
    }

    /// Lets wrk run out its minimum duration, stops it (SIGINT: wrk then
    /// prints its summary as at the end of a timed run) and parses the
    /// summary.
    pub fn finish(self) -> Result<WrkReport> {
        std::thread::sleep(self.not_before.saturating_duration_since(Instant::now()));
        // `ip netns exec` execs wrk: the child is wrk itself.
        let pid = libc::pid_t::try_from(self.child.id()).context("wrk's pid")?;
        // SAFETY: kill(2) of our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let output = self.child.wait_with_output().context("waiting for wrk")?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "wrk failed ({}):\n{text}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(parse(&text))
    }
}

fn parse(text: &str) -> WrkReport {
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let socket_errors = text
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map(|l| l.trim().to_owned());
    let non_2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    WrkReport {
        requests,
        socket_errors,
        non_2xx,
        text: text.to_owned(),
    }
}

/// A rate-limited download with curl from a client namespace: a
/// long-lived flow whose survival a test can check.
pub struct Download {
    child: Child,
}

impl Download {
    /// Starts `curl` fetching `url` at `rate` (curl's `--limit-rate`, e.g.
    /// `"1M"`) from client `client`.
    pub fn start(lab: &mut Lab, client: usize, url: &str, rate: &str) -> Result<Self> {
        let args = [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "--limit-rate",
            rate,
            url,
        ];
        let mut cmd = command_in(lab.client_ns(client), &args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Ok(Self {
            child: lab.spawn(&mut cmd)?,
        })
    }

    /// Whether curl is still downloading.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end: the bytes received, or why it failed (a reset
    /// connection makes curl fail).
    pub fn finish(self) -> Result<u64> {
        let output = self.child.wait_with_output().context("waiting for curl")?;
        if !output.status.success() {
            bail!(
                "download failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .context("curl's size_download")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_summary() {
        let text = "Running 4s test @ http://10.99.0.200/\n  2 threads and 8 connections\n\
                    11934 requests in 4.00s, 2.9MB read\n  Socket errors: connect 0, read 3, write 0, timeout 0\n\
                    Non-2xx or 3xx responses: 2\nRequests/sec:   2983.1\n";
        let report = parse(text);
        assert_eq!(report.requests, 11934);
        assert_eq!(report.non_2xx, 2);
        assert!(report.socket_errors.is_some());
        assert!(!report.clean());
        let ok = parse("100 requests in 1.00s, 1KB read\n");
        assert!(ok.clean());
    }
}
