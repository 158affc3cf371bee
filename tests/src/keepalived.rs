//! keepalived (the reference VRRP implementation) on a lab director, as a
//! version 3 peer for `lbd`'s own VRRP, or on its own.
//!
//! keepalived runs in the foreground (`--dont-fork`), logs to a file in the
//! lab directory, and keeps its pid files there too, so any number of them
//! run side by side without touching `/run`. Its state changes arrive through
//! `vrrp_notify_fifo`: keepalived writes one line per change into the FIFO
//! from the VRRP process itself, in order, at the moment it changes state
//! (after adding the VIPs on the way to MASTER). A reader thread here
//! timestamps every line as it arrives. Notify *scripts* would be forked
//! without waiting for them, so two quick changes could land out of order,
//! and their exec time would blur takeover timings.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::netns::{command_in, ip};
use crate::{HOST_IFNAME, Lab, wait_until};

/// The binary (Debian's keepalived 2.2.7 lives here).
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// The name of the one `vrrp_instance` in every config written here.
const INSTANCE: &str = "lab";
/// How long keepalived may take to report its first state.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long keepalived may take after SIGTERM to exit; it lingers about a
/// second on purpose (to get its IGMP leave out).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Written into the FIFO by us to end the reader thread; keepalived's own
/// lines start with `INSTANCE` or `GROUP`.
const QUIT_LINE: &str = "LB-LAB-QUIT\n";
/// The states keepalived reports; its FIFO also carries events
/// (`MASTER_RX_LOWER_PRI`, `MASTER_PRIORITY`, ...) that change no state.
const STATES: [&str; 5] = ["MASTER", "BACKUP", "FAULT", "STOP", "DELETED"];

/// One VRRP instance for keepalived. See [`KeepalivedConfig::new`] for the
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedConfig {
    pub vrid: u8,
    /// 1–255; 255 makes it the address owner.
    pub priority: u8,
    /// The advertisement interval in centiseconds (VRRP version 3 units), 1–4095.
    pub advert_interval_cs: u16,
    /// `false` writes `nopreempt`: a backup then never takes over from a
    /// live master of lower priority.
    pub preempt: bool,
    /// How long a backup waits before preempting a lower-priority master
    /// (`preempt_delay`); needs `preempt`.
    pub preempt_delay: Option<Duration>,
    /// Written as `/32` or `/128` on [`Self::interface`]. keepalived sends
    /// all of them in its adverts and drops adverts whose list differs.
    pub vips: Vec<IpAddr>,
    /// Empty: multicast (`224.0.0.18` / `ff02::12`). Otherwise unicast to these.
    pub unicast_peers: Vec<IpAddr>,
    pub interface: String,
}

impl KeepalivedConfig {
    /// Priority `priority` for `vips` on VRID `vrid`, multicast, a 1 s
    /// interval (keepalived's default), preemption on, no delay, on `eth0`.
    #[must_use]
    pub fn new(vrid: u8, priority: u8, vips: &[IpAddr]) -> Self {
        Self {
            vrid,
            priority,
            advert_interval_cs: 100,
            preempt: true,
            preempt_delay: None,
            vips: vips.to_vec(),
            unicast_peers: Vec::new(),
            interface: HOST_IFNAME.to_owned(),
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.vrid >= 1, "VRID 0 is not valid");
        ensure!(self.priority >= 1, "priority 0 is reserved for resigning");
        ensure!(
            (1..=4095).contains(&self.advert_interval_cs),
            "advert interval {} cs is outside 1..=4095",
            self.advert_interval_cs
        );
        // keepalived would only log these and carry on with something else.
        let mut families = self
            .vips
            .iter()
            .chain(&self.unicast_peers)
            .map(IpAddr::is_ipv4);
        if let Some(first) = families.next() {
            ensure!(
                families.all(|v4| v4 == first),
                "VIPs and unicast peers must all be IPv4 or all IPv6 (keepalived ignores the rest)"
            );
        }
        ensure!(
            self.preempt || self.preempt_delay.is_none(),
            "preempt_delay needs preemption (keepalived resets it with nopreempt)"
        );
        ensure!(
            self.preempt || self.priority < 255,
            "keepalived ignores nopreempt at priority 255"
        );
        Ok(())
    }

    /// The config file. `router_id` names the host in keepalived's own
    /// messages; `fifo` receives the state changes.
    #[must_use]
    pub fn render(&self, router_id: &str, fifo: &Path) -> String {
        let mut text = format!(
            "# keepalived config written by lb-lab\n\
             global_defs {{\n\
             \x20   router_id {router_id}\n\
             \x20   vrrp_version 3\n\
             \x20   vrrp_notify_fifo {}\n\
             \x20   # No scripts run; this only stops keepalived looking for (and\n\
             \x20   # logging the absence of) a `keepalived_script` user.\n\
             \x20   script_user root\n\
             }}\n\n\
             vrrp_instance {INSTANCE} {{\n\
             \x20   # BACKUP: start by listening for a full master-down interval, so\n\
             \x20   # priority alone decides (MASTER would wait one interval only, and\n\
             \x20   # keepalived 2.2.7 drops nopreempt and preempt_delay with it).\n\
             \x20   state BACKUP\n\
             \x20   interface {}\n\
             \x20   virtual_router_id {}\n\
             \x20   priority {}\n\
             \x20   advert_int {}.{:02}\n",
            fifo.display(),
            self.interface,
            self.vrid,
            self.priority,
            self.advert_interval_cs / 100,
            self.advert_interval_cs % 100,
        );
        if !self.preempt {
            text.push_str("    nopreempt\n");
        }
        if let Some(delay) = self.preempt_delay {
            let _ = writeln!(
                text,
                "    preempt_delay {}.{:03}",
                delay.as_secs(),
                delay.subsec_millis()
            );
        }
        text.push_str("    virtual_ipaddress {\n");
        for vip in &self.vips {
            let len = if vip.is_ipv4() { 32 } else { 128 };
            let _ = writeln!(text, "        {vip}/{len} dev {}", self.interface);
        }
        text.push_str("    }\n");
        if !self.unicast_peers.is_empty() {
            text.push_str("    unicast_peer {\n");
            for peer in &self.unicast_peers {
                let _ = writeln!(text, "        {peer}");
            }
            text.push_str("    }\n");
        }
        text.push_str("}\n");
        text
    }
}

/// What the FIFO reader has seen.
#[derive(Default)]
struct Seen {
    /// `(arrival, state)` for every state line, oldest first.
    states: Vec<(Instant, String)>,
    /// Every line, for error messages.
    lines: Vec<String>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// keepalived running in a director namespace. Dropping it SIGKILLs it.
pub struct Keepalived {
    director: usize,
    ns: String,
    interface: String,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    shared: Arc<Shared>,
    /// Our write end of the FIFO, to stop the reader.
    fifo: File,
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Keepalived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keepalived")
            .field("ns", &self.ns)
            .field("dir", &self.dir)
            .field("pid", &self.pid())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Keepalived {
    /// Writes the config and a FIFO into a fresh directory under
    /// `lab.dir()`, checks the config (`keepalived -t`), starts keepalived
    /// (VRRP only) in director `director`'s namespace, and returns once it
    /// reported its first state: BACKUP. (keepalived doesn't report a FAULT
    /// it starts in, so with the interface down this times out.)
    pub fn start(lab: &mut Lab, director: usize, cfg: &KeepalivedConfig) -> Result<Self> {
        cfg.validate()?;
        let ns = lab.director_ns(director).to_owned();
        let dir = fresh_dir(lab.dir(), &format!("keepalived-d{director}"))?;
        let fifo_path = dir.join("notify.fifo");
        make_fifo(&fifo_path)?;
        // Read and write: the reader never sees end-of-file between two
        // keepalived writers, and our own write end can wake it to quit.
        let fifo = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo_path)
            .with_context(|| format!("opening {}", fifo_path.display()))?;
        let config = dir.join("keepalived.conf");
        // The namespace name is unique per lab and director.
        fs::write(&config, cfg.render(&ns, &fifo_path))
            .with_context(|| format!("writing {}", config.display()))?;
        check_config(&ns, &dir, &config)?;

        let shared = Arc::new(Shared::default());
        let reader = {
            let fifo = fifo.try_clone().context("duplicating the FIFO")?;
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("keepalived-d{director}"))
                .spawn(move || read_fifo(fifo, &shared))
                .context("starting the FIFO reader")?
        };
        let mut keepalived = Self {
            director,
            ns,
            interface: cfg.interface.clone(),
            dir,
            config,
            child: None,
            shared,
            fifo,
            reader: Some(reader),
        };
        keepalived.spawn(lab)?;
        Ok(keepalived)
    }

    fn spawn(&mut self, lab: &mut Lab) -> Result<()> {
        let log = File::create(self.log_path())
            .with_context(|| format!("creating {}", self.log_path().display()))?;
        let args = keepalived_args(&self.dir, &self.config, false);
        let mut cmd = command_in(&self.ns, &args);
        // keepalived writes its data/stats dumps (SIGUSR1/SIGUSR2) to
        // $TMPDIR: keep them here too.
        cmd.env("TMPDIR", &self.dir)
            .stdout(log.try_clone()?)
            .stderr(log);
        // `ip netns exec` execs keepalived: the child's pid is keepalived's,
        // and its process group holds keepalived's own children as well.
        self.child = Some(lab.spawn(&mut cmd)?);
        let started = wait_until(START_TIMEOUT, "keepalived to report a state", || {
            self.state().is_some() || self.exited()
        });
        if self.exited() {
            let status = self.child.take().and_then(|mut c| c.wait().ok());
            bail!(
                "keepalived in {} exited while starting ({status:?})\nlog:\n{}",
                self.ns,
                self.log()
            );
        }
        started.with_context(|| format!("keepalived log:\n{}", self.log()))
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// The latest state keepalived reported: `MASTER`, `BACKUP`, `FAULT` or
    /// `STOP` (`DELETED` only on reloads); `None` before the first.
    #[must_use]
    pub fn state(&self) -> Option<String> {
        self.shared
            .lock()
            .states
            .last()
            .map(|(_, state)| state.clone())
    }

    /// Every state change so far with the time its line arrived, oldest
    /// first: compare them with an `Instant` taken before the cause (e.g.
    /// [`Keepalived::stop`] of the peer) to time a takeover.
    #[must_use]
    pub fn transitions(&self) -> Vec<(Instant, String)> {
        self.shared.lock().states.clone()
    }

    /// The latest state change and when it arrived.
    #[must_use]
    pub fn last_transition(&self) -> Option<(Instant, String)> {
        self.shared.lock().states.last().cloned()
    }

    /// Waits until the latest state is `want`; returns the time from this
    /// call until keepalived reported it (zero if it already had).
    pub fn wait_state(&self, want: &str, timeout: Duration) -> Result<Duration> {
        let called = Instant::now();
        let deadline = called + timeout;
        let mut seen = self.shared.lock();
        loop {
            if let Some((at, state)) = seen.states.last()
                && state == want
            {
                return Ok(at.saturating_duration_since(called));
            }
            let now = Instant::now();
            if now >= deadline {
                let history = seen.lines.join("");
                drop(seen);
                bail!(
                    "timed out after {timeout:?} waiting for keepalived in {} to be {want}; \
                     it reported:\n{history}log:\n{}",
                    self.ns,
                    self.log()
                );
            }
            seen = self
                .shared
                .changed
                .wait_timeout(seen, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Whether `vip` is on keepalived's interface in the director namespace.
    pub fn holds_vip(&self, lab: &Lab, vip: IpAddr) -> Result<bool> {
        let ns = lab.director_ns(self.director);
        let out = ip(&["-n", ns, "-o", "address", "show", "dev", &self.interface])?;
        Ok(interface_has(&out, vip))
    }

    /// SIGTERM: keepalived sends a priority-0 advert if it is master, removes
    /// its VIPs, reports STOP, and exits (about a second later); waits for
    /// that.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("keepalived in {} is not running", self.ns);
        };
        signal(&child, libc::SIGTERM, false);
        let exited = wait_until(STOP_TIMEOUT, "keepalived to exit after SIGTERM", || {
            child.try_wait().ok().flatten().is_some()
        });
        if exited.is_err() {
            signal(&child, libc::SIGKILL, true);
        }
        child.wait()?;
        exited.with_context(|| format!("keepalived log:\n{}", self.log()))
    }

    /// SIGKILL to keepalived and its children: a crash. It sends nothing
    /// more, and its VIPs stay on the interface.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("keepalived in {} is not running", self.ns);
        };
        signal(&child, libc::SIGKILL, true);
        child.wait()?;
        Ok(())
    }

    /// The pid of keepalived's parent process, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its console log (with `--log-detail`).
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Its directory: config, FIFO, pid files, log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The director namespace it runs in.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("keepalived.log")
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL, true);
            let _ = child.wait();
        }
        // One short write to a pipe is atomic: it can't interleave with a
        // line keepalived writes.
        if self.fifo.write_all(QUIT_LINE.as_bytes()).is_ok()
            && let Some(reader) = self.reader.take()
        {
            let _ = reader.join();
        }
    }
}

/// keepalived's command line: foreground, VRRP only, console log, no syslog,
/// no respawning of a dead VRRP process (a test wants to see it dead), pid
/// files in `dir` (the defaults in /run would collide between labs).
fn keepalived_args(dir: &Path, config: &Path, config_test: bool) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![KEEPALIVED.into()];
    if config_test {
        args.push("--config-test".into());
    } else {
        for flag in [
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--dont-respawn",
        ] {
            args.push(flag.into());
        }
    }
    args.push("--vrrp".into());
    args.push("--use-file".into());
    args.push(config.into());
    for (flag, file) in [
        ("--pid", "keepalived.pid"),
        ("--vrrp_pid", "vrrp.pid"),
        ("--checkers_pid", "checkers.pid"),
        ("--bfd_pid", "bfd.pid"),
    ] {
        let mut arg = std::ffi::OsString::from(format!("{flag}="));
        arg.push(dir.join(file));
        args.push(arg);
    }
    args
}

/// `keepalived --config-test` in the namespace (it checks the interface
/// too): keepalived itself only logs config errors and runs on.
fn check_config(ns: &str, dir: &Path, config: &Path) -> Result<()> {
    let out = command_in(ns, &keepalived_args(dir, config, true))
        .stdin(Stdio::null())
        .output()
        .context("running keepalived --config-test")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "keepalived rejects {} ({}):\n{text}\nconfig:\n{}",
            config.display(),
            out.status,
            fs::read_to_string(config).unwrap_or_default()
        );
    }
    Ok(())
}

/// `base/name-<n>` for the first `n` from 1 that doesn't exist yet: a
/// director may run keepalived more than once per lab.
fn fresh_dir(base: &Path, name: &str) -> Result<PathBuf> {
    for n in 1..1000 {
        let dir = base.join(format!("{name}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("no free {name}-<n> directory in {}", base.display())
}

fn make_fifo(path: &Path) -> Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: mkfifo(3) with a valid C string. keepalived finds it existing,
    // opens it, and (not having made it) leaves it in place when it exits.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mkfifo {}", path.display()));
    }
    Ok(())
}

/// The reader thread: records `INSTANCE "lab" MASTER 150` lines until it
/// reads [`QUIT_LINE`].
fn read_fifo(fifo: File, shared: &Shared) {
    for line in BufReader::new(fifo).lines() {
        let Ok(line) = line else { return };
        let at = Instant::now();
        if line == QUIT_LINE.trim_end() {
            return;
        }
        let state = parse_fifo_line(&line).map(str::to_owned);
        let mut seen = shared.lock();
        seen.lines.push(line + "\n");
        if let Some(state) = state {
            seen.states.push((at, state));
        }
        drop(seen);
        shared.changed.notify_all();
    }
}

/// The state in a FIFO line of our instance, if it reports one.
fn parse_fifo_line(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let name = words.next()?;
    let state = words.next()?;
    (kind == "INSTANCE" && name.trim_matches('"') == INSTANCE && STATES.contains(&state))
        .then_some(state)
}

/// Whether `ip -o address show` output lists `vip`.
fn interface_has(out: &str, vip: IpAddr) -> bool {
    out.lines().any(|line| {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if (word == "inet" || word == "inet6")
                && let Some(addr) = words.next()
                && addr
                    .split('/')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    == Some(vip)
            {
                return true;
            }
        }
        false
    })
}

/// Signals keepalived's parent, or with `group` its whole process group (the
/// VRRP child included; the parent would otherwise SIGTERM it, and a
/// VRRP process that gets SIGTERM resigns cleanly, which is no crash).
fn signal(child: &Child, signal: libc::c_int, group: bool) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) of our own, not yet reaped child (or its group).
    unsafe { libc::kill(target, signal) };
}

/// keepalived's master-down interval for a backup of `priority` that learnt
/// `master_interval_cs` from the master (RFC 5798 §6.1, as keepalived's
/// `VRRP_MS_DOWN_TIMER` computes it with the default `down_timer_adverts 3`).
#[must_use]
pub fn master_down_interval(priority: u8, master_interval_cs: u16) -> Duration {
    let interval_us = u64::from(master_interval_cs) * 10_000;
    let skew_us = (256 - u64::from(priority)) * interval_us / 256;
    Duration::from_micros(3 * interval_us + skew_us)
}

/// Helper for error messages: a `transitions()` list relative to `since`.
#[must_use]
pub fn describe_transitions(transitions: &[(Instant, String)], since: Instant) -> String {
    let mut out = String::new();
    for (at, state) in transitions {
        let offset = at.checked_duration_since(since).map_or_else(
            || format!("-{:.0?}", since.duration_since(*at)),
            |d| format!("+{d:.0?}"),
        );
        let _ = write!(out, "{offset} {state}; ");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_text() {
        let mut cfg = KeepalivedConfig::new(51, 150, &["10.99.0.200".parse().unwrap()]);
        cfg.advert_interval_cs = 10;
        cfg.preempt_delay = Some(Duration::from_millis(1500));
        cfg.unicast_peers = vec!["10.99.0.3".parse().unwrap()];
        let text = cfg.render("d0", Path::new("/tmp/x/notify.fifo"));
        for want in [
            "vrrp_version 3",
            "vrrp_notify_fifo /tmp/x/notify.fifo",
            "state BACKUP",
            "virtual_router_id 51",
            "priority 150",
            "advert_int 0.10",
            "preempt_delay 1.500",
            "10.99.0.200/32 dev eth0",
            "unicast_peer {\n        10.99.0.3\n    }",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(!text.contains("    nopreempt\n"));
        cfg.preempt = false;
        cfg.preempt_delay = None;
        cfg.unicast_peers.clear();
        cfg.vips = vec!["fd00:99::200".parse().unwrap()];
        cfg.advert_interval_cs = 250;
        let text = cfg.render("d0", Path::new("/f"));
        assert!(text.contains("    nopreempt\n"));
        assert!(text.contains("advert_int 2.50"));
        assert!(text.contains("fd00:99::200/128 dev eth0"));
        assert!(!text.contains("unicast_peer"));
    }

    #[test]
    fn validation() {
        let ok = KeepalivedConfig::new(51, 100, &[]);
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.preempt = false;
        bad.preempt_delay = Some(Duration::from_secs(1));
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.advert_interval_cs = 4096;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.vrid = 0;
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.vips = vec!["10.99.0.200".parse().unwrap()];
        bad.unicast_peers = vec!["fd00:99::3".parse().unwrap()];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn fifo_lines() {
        assert_eq!(
            parse_fifo_line("INSTANCE \"lab\" MASTER 150"),
            Some("MASTER")
        );
        assert_eq!(parse_fifo_line("INSTANCE \"lab\" STOP 150"), Some("STOP"));
        assert_eq!(
            parse_fifo_line("INSTANCE \"lab\" MASTER_RX_LOWER_PRI 150"),
            None
        );
        assert_eq!(parse_fifo_line("INSTANCE \"other\" MASTER 150"), None);
        assert_eq!(parse_fifo_line("GROUP \"lab\" MASTER 0"), None);
        assert_eq!(parse_fifo_line(""), None);
    }

    #[test]
    fn addresses_in_ip_output() {
        let out = "2: eth0    inet 10.99.0.2/24 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet 10.99.0.200/32 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet6 fd00:99::2/64 scope global nodad \\       valid_lft forever\n";
        assert!(interface_has(out, "10.99.0.200".parse().unwrap()));
        assert!(interface_has(out, "fd00:99::2".parse().unwrap()));
        assert!(!interface_has(out, "10.99.0.20".parse().unwrap()));
        assert!(!interface_has(out, "fd00:99::200".parse().unwrap()));
    }

    #[test]
    fn down_interval() {
        // 3 × 100 ms + (256 − 100)/256 × 100 ms.
        assert_eq!(
            master_down_interval(100, 10),
            Duration::from_micros(360_937)
        );
        assert_eq!(
            master_down_interval(255, 100),
            Duration::from_micros(3_003_906)
        );
    }
}
