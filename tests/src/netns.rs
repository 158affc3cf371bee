//! Network-namespace plumbing: unique names, running commands inside a
//! namespace, entering one from a short-lived thread, and cleaning up.

use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

use crate::wait::wait_until;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Every namespace and temporary directory the lab creates starts with this,
/// followed by the owning process id and a `-`.
pub const NAME_PREFIX: &str = "lbl";

/// Where lab daemons pin their data path.
pub const BPFFS: &str = "/sys/fs/bpf";

/// How long to wait for the processes of a namespace to die.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// `ip netns add` sets up the shared `/var/run/netns` mount the first time it
/// runs; two first calls at once can race. Within the process, serialise.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// A fresh prefix for one lab: `lbl<pid>-<counter>-<suffix>-`.
///
/// The pid makes names unique between live processes (and lets
/// [`cleanup_stale`] find the litter of dead ones), the counter makes them
/// unique within a process, and the suffix (from the clock) keeps a reused pid
/// from meeting an old run's names.
pub(crate) fn new_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(7)
    });
    format!(
        "{NAME_PREFIX}{}-{counter}-{:05x}-",
        std::process::id(),
        nanos & 0xf_ffff
    )
}

/// The pid encoded in a lab name (`lbl<pid>-…`), if it is one of ours.
#[must_use]
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (digits, _) = rest.split_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A readable form of a command line, for error messages.
fn display_args<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let arg = arg.as_ref().to_string_lossy();
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            let _ = write!(out, "'{arg}'");
        } else {
            out.push_str(&arg);
        }
    }
    out
}

/// A `Command` that runs `args` inside namespace `ns` (`ip netns exec`),
/// with stdin from `/dev/null`. Nothing is spawned yet.
#[must_use]
pub fn command_in<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// Like [`command_in`], but enters only the network namespace (`nsenter
/// --net`), keeping the caller's mounts: `ip netns exec` remounts `/sys`,
/// which hides the bpffs at `/sys/fs/bpf` where `lbd` pins its data path.
#[must_use]
pub fn command_in_net<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={NETNS_DIR}/{ns}"))
        .arg("--")
        .args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `args` inside namespace `ns` and collects its output. Fails only when
/// the command can't be started; check the status yourself (or use
/// [`exec_ok`]).
pub fn exec<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Result<Output> {
    command_in(ns, args)
        .output()
        .with_context(|| format!("starting `ip netns exec {ns} {}`", display_args(args)))
}

/// Runs `args` inside namespace `ns` and returns its stdout; a non-zero exit
/// is an error that includes the command, its status and its stderr.
pub fn exec_ok<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Result<String> {
    let output = exec(ns, args)?;
    check_output(
        &format!("ip netns exec {ns} {}", display_args(args)),
        &output,
    )
}

fn check_output(what: &str, output: &Output) -> Result<String> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    bail!(
        "`{what}` failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        if output.stdout.is_empty() {
            String::new()
        } else {
            format!(
                " (stdout: {})",
                String::from_utf8_lossy(&output.stdout).trim()
            )
        }
    )
}

/// Runs `ip <args>` in the current namespace; returns stdout.
pub(crate) fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `ip {}`", display_args(args)))?;
    check_output(&format!("ip {}", display_args(args)), &output)
}

/// Runs `ip [-n ns] -batch -` with `lines` on stdin.
pub(crate) fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting `ip -batch -`")?;
    let script = lines.join("\n") + "\n";
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .context("writing to `ip -batch -`")?;
    let output = child
        .wait_with_output()
        .context("waiting for `ip -batch -`")?;
    let what = match ns {
        Some(ns) => format!("ip -n {ns} -batch - <<<'{}'", script.trim_end()),
        None => format!("ip -batch - <<<'{}'", script.trim_end()),
    };
    check_output(&what, &output).map(drop)
}

/// Creates the named namespaces (one `ip -batch`).
pub(crate) fn add_namespaces(names: &[String]) -> Result<()> {
    let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
    let _guard = NETNS_ADD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ip_batch(None, &lines)
}

/// Deletes the names of these namespaces (what `ip netns del` does: detach
/// the bind mount, remove the file); missing ones are not an error, so
/// concurrent cleaners don't trip over each other. The namespaces live on
/// while processes remain inside: see [`remove_namespaces`].
fn delete_namespaces(names: &[String]) -> Result<()> {
    let mut failures = Vec::new();
    for name in names {
        let path = namespace_path(name);
        let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: umount2(2) with a valid C string; failure (not mounted,
        // already gone) is fine and handled by the unlink below.
        unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("deleting namespaces: {}", failures.join("; "))
    }
}

fn namespace_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Names of all namespaces `ip netns` knows.
pub fn list_namespaces() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context(format!("listing {NETNS_DIR}")),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {NETNS_DIR}"))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The nsfs inode of a named namespace (what `/proc/<pid>/ns/net` points to).
fn namespace_inode(name: &str) -> Option<u64> {
    let meta = std::fs::metadata(namespace_path(name)).ok()?;
    // An unmounted leftover file is a plain empty file on the tmpfs, not nsfs.
    (meta.dev() != std::fs::metadata(NETNS_DIR).ok()?.dev()).then_some(meta.ino())
}

/// Pids of live (non-zombie) processes whose network namespace has one of
/// these inodes. Zombies have no namespaces left, so they don't show.
fn pids_in(inodes: &[u64]) -> Vec<libc::pid_t> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(link) = std::fs::read_link(entry.path().join("ns/net")) else {
            continue;
        };
        let inode = link
            .to_str()
            .and_then(|s| s.strip_prefix("net:["))
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok());
        if inode.is_some_and(|i| inodes.contains(&i))
            && let Ok(pid) = libc::pid_t::try_from(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Whether process `pid` lives in one of the named namespaces.
pub(crate) fn pid_in_namespaces(pid: u32, names: &[String]) -> bool {
    let inodes: Vec<u64> = names.iter().filter_map(|n| namespace_inode(n)).collect();
    let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else {
        return false;
    };
    inodes
        .iter()
        .any(|i| link.to_str() == Some(&format!("net:[{i}]")))
}

/// Removes the named namespaces: first their names (so nothing new can
/// enter them), then every process still inside (SIGKILL, and wait until
/// they are gone; the caller reaps its own children). The kernel frees a
/// namespace, with its interfaces, once both are gone.
pub(crate) fn remove_namespaces(names: &[String]) -> Result<()> {
    let inodes: Vec<u64> = names.iter().filter_map(|n| namespace_inode(n)).collect();
    let deleted = delete_namespaces(names);
    let killed = if inodes.is_empty() {
        Ok(())
    } else {
        wait_until(
            KILL_TIMEOUT,
            "the processes in the namespaces to exit",
            || {
                let pids = pids_in(&inodes);
                for &pid in &pids {
                    // SAFETY: plain kill(2) of a process found inside our namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                pids.is_empty()
            },
        )
    };
    deleted.and(killed)
}

/// Removes what crashed runs left behind: every namespace and temporary
/// directory named `lbl<pid>-…` whose process `<pid>` is gone (after killing
/// whatever still runs inside those namespaces). Returns how many namespaces
/// it deleted. [`crate::LabBuilder::build`] calls it, so a test run killed
/// with `SIGKILL` leaves litter only until the next lab is built.
pub fn cleanup_stale() -> Result<usize> {
    let me = std::process::id();
    let stale = |name: &str| owner_pid(name).is_some_and(|pid| pid != me && !pid_alive(pid));
    let names: Vec<String> = list_namespaces()?
        .into_iter()
        .filter(|n| stale(n))
        .collect();
    // Another process may clean the same names concurrently: names that
    // vanished meanwhile are no error.
    remove_namespaces(&names)?;
    // Pin directories of lab daemons (`/sys/fs/bpf/lbl<pid>-…`).
    if let Ok(entries) = std::fs::read_dir(BPFFS) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(stale) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let stale_dir = entry.file_name().to_str().is_some_and(stale)
                && entry.file_type().is_ok_and(|t| t.is_dir());
            if stale_dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(names.len())
}

/// Runs `f` inside network namespace `name` and returns its result.
///
/// `f` runs on a fresh thread that first joins the namespace
/// (`setns(CLONE_NEWNET)`) and exits when `f` returns, so no other thread of
/// the process ever changes namespace. Sockets that `f` opens, interface
/// lookups and netlink calls (e.g. aya's XDP attach) all happen in that
/// namespace; processes spawned by `f` start in it too. A panic in `f` is
/// resumed on the calling thread.
pub fn in_namespace<T: Send, F: FnOnce() -> T + Send>(name: &str, f: F) -> Result<T> {
    let path = namespace_path(name);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || -> Result<T> {
            // SAFETY: setns(2) with a valid namespace fd; it moves only this
            // thread, which exits at the end of the closure.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("setns into network namespace {name}"));
            }
            drop(file);
            Ok(f())
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Starts a thread that joins network namespace `name` and runs `f`; threads
/// that `f` spawns are in the namespace too (a new thread inherits its
/// creator's namespaces). For work that outlives the call, such as a load
/// generator; [`in_namespace`] is the blocking form.
pub fn spawn_in_namespace<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T>>> {
    let path = namespace_path(name);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let name = name.to_owned();
    Ok(std::thread::spawn(move || -> Result<T> {
        // SAFETY: setns(2) with a valid namespace fd; it moves only this
        // thread, which is ours alone.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("setns into network namespace {name}"));
        }
        drop(file);
        Ok(f())
    }))
}

/// The MAC address of `ifname` inside namespace `ns`.
pub fn mac_of(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", ifname])?;
    let mac = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| {
            anyhow!("no link/ether address in `ip link show` of {ifname} in {ns}: {out}")
        })?;
    parse_mac(mac)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts
            .next()
            .ok_or_else(|| anyhow!("MAC address {text:?} is too short"))?;
        *byte =
            u8::from_str_radix(part, 16).with_context(|| format!("bad MAC address {text:?}"))?;
    }
    if parts.next().is_some() {
        bail!("MAC address {text:?} is too long");
    }
    Ok(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_encodes_our_pid_and_is_unique() {
        let a = new_prefix();
        let b = new_prefix();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&a), Some(std::process::id()));
        assert_eq!(owner_pid(&format!("{a}sw")), Some(std::process::id()));
        assert_eq!(owner_pid("lbl-1-x"), None);
        assert_eq!(owner_pid("lblx12-1"), None);
        assert_eq!(owner_pid("other123-1"), None);
    }

    #[test]
    fn mac_round_trip() {
        let mac = [0x02, 0x99, 0, 0x0a, 0xbc, 0xff];
        assert_eq!(parse_mac(&format_mac(mac)).unwrap(), mac);
        assert!(parse_mac("02:99").is_err());
        assert!(parse_mac("02:99:00:00:00:00:01").is_err());
    }
}
