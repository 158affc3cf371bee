//! One nginx per real server, started as a child process inside the real's
//! namespace, in its own process group (so that stop, pause and resume reach
//! the master and its worker together).

use std::fs::{self, File};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::http::{connection_refused, http_get};
use crate::netns::command_in;
use crate::wait::{wait_for, wait_until};

/// How long nginx may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long signals may take to reach every process of the group.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-probe network timeout while waiting for nginx.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct RealServer {
    pub(crate) name: String,
    pub(crate) ns: String,
    /// This server's directory: config, pid, logs, temp files.
    dir: PathBuf,
    addrs: [IpAddr; 2],
    child: Option<Child>,
    paused: bool,
}

impl RealServer {
    /// Writes the configuration; nothing runs yet.
    pub(crate) fn new(
        name: String,
        ns: String,
        lab_dir: &Path,
        www: &Path,
        addrs: [IpAddr; 2],
    ) -> Result<Self> {
        let dir = lab_dir.join(&name);
        fs::create_dir_all(dir.join("tmp"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let conf = config(&name, &dir, www);
        fs::write(dir.join("nginx.conf"), conf)
            .with_context(|| format!("writing {}/nginx.conf", dir.display()))?;
        Ok(Self {
            name,
            ns,
            dir,
            addrs,
            child: None,
            paused: false,
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts nginx without waiting for it; see [`Self::wait_ready`].
    pub(crate) fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{}'s nginx is already running", self.name);
        }
        let stderr = File::create(self.dir.join("stderr.log"))
            .with_context(|| format!("creating {}/stderr.log", self.dir.display()))?;
        let dir = self.dir.to_string_lossy().into_owned();
        let conf = format!("{dir}/nginx.conf");
        let mut cmd = command_in(
            &self.ns,
            &["nginx", "-p", &dir, "-c", &conf, "-g", "daemon off;"],
        );
        cmd.stdout(Stdio::null()).stderr(stderr).process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting nginx for {} in {}", self.name, self.ns))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Waits until nginx answers `GET /` with this server's name on both its
    /// IPv4 and IPv6 address (from inside its namespace).
    pub(crate) fn wait_ready(&mut self) -> Result<()> {
        let expected = format!("{}\n", self.name);
        let what = format!("{}'s nginx in {} to answer", self.name, self.ns);
        let mut pending: Vec<IpAddr> = self.addrs.to_vec();
        wait_for(START_TIMEOUT, &what, || -> Result<()> {
            if let Some(status) = self
                .child
                .as_mut()
                .ok_or_else(|| anyhow!("not started"))?
                .try_wait()?
            {
                self.child = None;
                return Err(anyhow!("nginx exited ({status}); {}", logs(&self.dir)));
            }
            while let Some(&addr) = pending.first() {
                let response = http_get(&self.ns, SocketAddr::new(addr, 80), "/", PROBE_TIMEOUT)?;
                if response.status != 200 || response.text() != expected {
                    bail!("unexpected answer from {addr}: {response:?}");
                }
                pending.remove(0);
            }
            Ok(())
        })
        .inspect_err(|_| {
            // Don't keep a half-started nginx around.
            let _ = self.stop();
        })
    }

    /// SIGKILLs nginx (master and worker) and waits until nothing listens on
    /// its port any more.
    pub(crate) fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        self.paused = false;
        signal_group(&child, libc::SIGKILL);
        child
            .wait()
            .with_context(|| format!("waiting for {}'s nginx", self.name))?;
        let pgid = child.id();
        wait_until(
            SIGNAL_TIMEOUT,
            &format!("{}'s nginx processes to exit", self.name),
            || group_states(pgid).iter().all(|&s| s == 'Z'),
        )?;
        let addr = SocketAddr::new(self.addrs[0], 80);
        wait_until(
            SIGNAL_TIMEOUT,
            &format!("{} to refuse connections", self.name),
            || connection_refused(&self.ns, addr).unwrap_or(false),
        )
    }

    /// SIGSTOPs every nginx process and waits until all are stopped.
    pub(crate) fn pause(&mut self) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("{}'s nginx is not running", self.name))?;
        signal_group(child, libc::SIGSTOP);
        let pgid = child.id();
        wait_until(
            SIGNAL_TIMEOUT,
            &format!("{}'s nginx processes to stop", self.name),
            || {
                let states = group_states(pgid);
                !states.is_empty() && states.iter().all(|&s| s == 'T')
            },
        )?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONTs every nginx process and waits until none is stopped.
    pub(crate) fn resume(&mut self) -> Result<()> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("{}'s nginx is not running", self.name))?;
        signal_group(child, libc::SIGCONT);
        let pgid = child.id();
        wait_until(
            SIGNAL_TIMEOUT,
            &format!("{}'s nginx processes to continue", self.name),
            || group_states(pgid).iter().all(|&s| s != 'T'),
        )?;
        self.paused = false;
        Ok(())
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }
}

/// nginx's own logs, for error messages.
fn logs(dir: &Path) -> String {
    let read = |file: &str| {
        fs::read_to_string(dir.join(file))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "stderr: {:?}; error.log: {:?}",
        read("stderr.log"),
        read("error.log")
    )
}

impl Drop for RealServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to the process group led by `child` (spawned with
/// `process_group(0)`, and not yet reaped, so the id can't have been reused).
fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) of our own child's process group.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// The states (`R`, `S`, `T`, `Z`, ...) of the processes in group `pgid`.
fn group_states(pgid: u32) -> Vec<char> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // "pid (comm) state ppid pgrp ..."; comm may contain spaces.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            (pgrp == pgid).then_some(state)
        })
        .collect()
}

fn config(name: &str, dir: &Path, www: &Path) -> String {
    let dir = dir.display();
    let www = www.display();
    format!(
        r#"# nginx for lab real server {name}; generated by lb-lab.
worker_processes 1;
worker_rlimit_nofile 16384;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    default_type text/plain;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

    server {{
        listen 0.0.0.0:80 default_server;
        listen [::]:80 ipv6only=on default_server;
        server_name _;
        add_header X-Real-Server {name} always;

        location = /big {{
            root {www};
            default_type application/octet-stream;
        }}

        location / {{
            return 200 "{name}\n";
        }}
    }}
}}
"#
    )
}
