//! A real `lbd` on a lab director, driven with the real `lbctl`, exactly as
//! an operator would run them: a config file, the daemon process, the CLI.

use std::{
    ffi::{OsStr, OsString},
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use std::os::unix::process::CommandExt as _;

use anyhow::{Context, Result, bail};

use lb_daemon::admin::{FlowEntry, RealStatus, Status, VrrpStatus};

use crate::{
    HOST_IFNAME, HTTP_PORT, Lab, VIP_V4, VIP_V6, command_in_net, pass_object, wait_for, wait_until,
};

/// Where `lbd` and `lbctl` are: `LB_BIN_DIR`, or the target directory this
/// test binary was built in (`cargo xtask test` builds them there first).
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("LB_BIN_DIR") {
        return Ok(dir.into());
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(2) {
        if dir.join("lbd").exists() && dir.join("lbctl").exists() {
            return Ok(dir.to_owned());
        }
    }
    bail!(
        "lbd/lbctl not found next to {} (build them: `cargo build -p lb-daemon --bins`, \
         which `cargo xtask test` does)",
        exe.display()
    )
}

/// A service of the lab config: VIP (v4 or v6), HTTP port, the scheduler
/// and (real index, weight) pairs.
#[derive(Clone, Debug)]
pub struct LabService {
    pub ipv6: bool,
    pub scheduler: &'static str,
    pub reals: Vec<(usize, u32)>,
}

impl LabService {
    #[must_use]
    pub fn v4(scheduler: &'static str, reals: &[(usize, u32)]) -> Self {
        Self {
            ipv6: false,
            scheduler,
            reals: reals.to_vec(),
        }
    }

    /// `VIP:PORT/tcp` as lbctl takes it.
    #[must_use]
    pub fn name(&self) -> String {
        if self.ipv6 {
            format!("[{VIP_V6}]:{HTTP_PORT}/tcp")
        } else {
            format!("{VIP_V4}:{HTTP_PORT}/tcp")
        }
    }
}

/// `lbd` running in a director namespace.
pub struct LabDaemon {
    ns: String,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    pin_path: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    /// A command lbd runs under (e.g. `setpriv …`), ending with `--`.
    wrapper: Vec<OsString>,
    /// Extra environment for lbd (e.g. `NOTIFY_SOCKET`).
    env: Vec<(OsString, OsString)>,
    starts: usize,
    /// Wall time from the latest spawn until `lbctl status` answered.
    ready_after: Duration,
}

impl LabDaemon {
    /// Writes a config for director `director` with `services`, starts
    /// `lbd` and waits until it answers `lbctl`.
    pub fn start(lab: &mut Lab, director: usize, services: &[LabService]) -> Result<Self> {
        let text = Self::config_text(lab, director, services);
        Self::start_with_config(lab, director, &text)
    }

    /// Like `start`, with the whole config text given (see `config_text`);
    /// the admin socket and pin path are the ones the text names.
    pub fn start_with_config(lab: &mut Lab, director: usize, text: &str) -> Result<Self> {
        let mut daemon = Self::prepare(lab, director, text)?;
        daemon.spawn()?;
        Ok(daemon)
    }

    /// Like `start_with_config` without starting `lbd`: set a wrapper or
    /// environment, then [`LabDaemon::spawn`].
    pub fn prepare(lab: &mut Lab, director: usize, text: &str) -> Result<Self> {
        // The interfaces exist in the director namespace, not here.
        struct AnyInterface;
        impl lb_daemon::config::Environment for AnyInterface {
            fn interface_exists(&self, _: &str) -> bool {
                true
            }
        }
        let parsed = lb_daemon::config::parse(text, "lab config", &AnyInterface)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let object = pass_object();
        // The switch end of the director's veth needs a program for XDP_TX
        // frames to be delivered (veth native XDP).
        lab.attach_pass_program(director, &object)?;
        let dir = lab.dir().join(format!("lbd-{director}"));
        fs::create_dir_all(&dir)?;
        let config = dir.join("lb.toml");
        fs::write(&config, text)?;
        let daemon = Self {
            ns: lab.director_ns(director).to_owned(),
            socket: parsed.daemon.admin_socket,
            pin_path: parsed.daemon.pin_path,
            dir,
            config,
            bin: bin_dir()?,
            child: None,
            wrapper: Vec::new(),
            env: Vec::new(),
            starts: 0,
            ready_after: Duration::ZERO,
        };
        Ok(daemon)
    }

    /// Runs the next `lbd` under `wrapper` (a command that ends by running
    /// the arguments after it, e.g. `setpriv … --`).
    pub fn set_wrapper<S: AsRef<OsStr>>(&mut self, wrapper: &[S]) {
        self.wrapper = wrapper.iter().map(|s| s.as_ref().to_owned()).collect();
    }

    /// Takes `lbd` and `lbctl` from `dir` (e.g. an unpacked package).
    pub fn set_bin_dir(&mut self, dir: PathBuf) {
        self.bin = dir;
    }

    /// Sets `key=value` in the environment of the next `lbd`.
    pub fn set_env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
    }

    fn default_pin_path(lab: &Lab, director: usize) -> PathBuf {
        PathBuf::from(format!("/sys/fs/bpf/{}d{director}", lab.prefix()))
    }

    /// The `[daemon]` and `[dataplane]` sections for a lab director, plus
    /// `services`.
    #[must_use]
    pub fn config_text(lab: &Lab, director: usize, services: &[LabService]) -> String {
        let dir = lab.dir().join(format!("lbd-{director}"));
        let mut text = format!(
            "# lbd config written by the lab\n\
             [daemon]\n\
             admin_socket = \"{}\"\n\
             pin_path = \"{}\"\n\
             neighbour_refresh = \"200ms\"\n\n\
             [dataplane]\n\
             interfaces = [\"{HOST_IFNAME}\"]\n\
             conntrack_size = 65536\n\
             max_reals = 1024\n\
             max_services = 64\n\n\
             [timeouts]\n\
             ageing_interval = \"2s\"\n",
            dir.join("lbd.sock").display(),
            Self::default_pin_path(lab, director).display(),
        );
        for service in services {
            text.push_str(&Self::service_text(lab, service));
        }
        text
    }

    /// One `[[service]]` block.
    #[must_use]
    pub fn service_text(lab: &Lab, service: &LabService) -> String {
        let vip = if service.ipv6 {
            VIP_V6.to_string()
        } else {
            VIP_V4.to_string()
        };
        let mut text = format!(
            "\n[[service]]\nvip = \"{vip}\"\nport = {HTTP_PORT}\nscheduler = \"{}\"\n",
            service.scheduler
        );
        for &(i, weight) in &service.reals {
            let addr = if service.ipv6 {
                lab.real_addr_v6(i).to_string()
            } else {
                lab.real_addr_v4(i).to_string()
            };
            let _ = write!(
                text,
                "\n[[service.real]]\naddress = \"{addr}\"\nweight = {weight}\n"
            );
        }
        text
    }

    /// Starts (or restarts) the `lbd` process and waits until `lbctl
    /// status` answers; returns the wall time from the spawn to then.
    pub fn spawn(&mut self) -> Result<Duration> {
        if self.child.is_some() {
            bail!("lbd is already running");
        }
        self.starts += 1;
        let log = fs::File::create(self.dir.join(format!("lbd-{}.log", self.starts)))?;
        let lbd = self.bin.join("lbd");
        let started = Instant::now();
        // nsenter execs lbd (and a wrapper execs it too): the child's pid
        // is lbd's.
        let mut args = self.wrapper.clone();
        args.extend([lbd.into(), "--config".into(), self.config.clone().into()]);
        let child = command_in_net(&self.ns, &args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting lbd")?;
        self.child = Some(child);
        let ready = wait_until(Duration::from_secs(30), "lbd answers lbctl status", || {
            self.child_exited().is_some()
                || self.lbctl(&["status"]).is_ok_and(|o| o.status.success())
        });
        self.ready_after = started.elapsed();
        if let Some(status) = self.child_exited() {
            self.child = None;
            bail!(
                "lbd exited ({status}) while starting\nlbd log:\n{}",
                self.log()
            );
        }
        if let Err(e) = ready {
            bail!("{e:#}\nlbd log:\n{}", self.log());
        }
        Ok(self.ready_after)
    }

    /// Wall time from the latest spawn until `lbctl status` answered.
    #[must_use]
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The running lbd's process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn child_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The admin socket (for printing an `lbctl` command to try).
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The director namespace lbd runs in.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Runs `lbctl --socket … ARGS`. The admin socket is a path, which
    /// every network namespace sees: no namespace to enter (and no extra
    /// exec in timings).
    pub fn lbctl(&self, args: &[&str]) -> Result<Output> {
        Command::new(self.bin.join("lbctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running lbctl")
    }

    /// `lbctl ARGS`, which must succeed; its stdout.
    pub fn lbctl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.lbctl(args)?;
        if !out.status.success() {
            bail!(
                "lbctl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `lbctl --json ARGS`, parsed.
    pub fn lbctl_json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        Ok(serde_json::from_str(&self.lbctl_ok(&full)?)?)
    }

    /// `lbctl --json status`, typed.
    pub fn status(&self) -> Result<Status> {
        Ok(serde_json::from_value(self.lbctl_json(&["status"])?)?)
    }

    /// One real (`IP:PORT`) of a service (`VIP:PORT/proto`) as `lbctl
    /// status` shows it.
    pub fn real(&self, service: &str, real: &str) -> Result<RealStatus> {
        let status = self.status()?;
        status
            .services
            .into_iter()
            .filter(|s| s.service == service)
            .flat_map(|s| s.reals)
            .find(|r| r.real == real)
            .with_context(|| format!("no real {real} in service {service}"))
    }

    /// Every flow in the connection table (`lbctl --json flows --limit 0`).
    pub fn flows(&self) -> Result<Vec<FlowEntry>> {
        Ok(serde_json::from_value(
            self.lbctl_json(&["flows", "--limit", "0"])?,
        )?)
    }

    /// `lbctl --json vrrp`, typed.
    pub fn vrrp(&self) -> Result<VrrpStatus> {
        Ok(serde_json::from_value(self.lbctl_json(&["vrrp"])?)?)
    }

    /// Waits until `lbctl vrrp` shows `state` (`master`, `backup`,
    /// `fault`); returns how long it took.
    pub fn wait_vrrp(&self, state: &str, limit: Duration) -> Result<Duration> {
        let started = Instant::now();
        wait_for(limit, &format!("VRRP {state}"), || {
            let now = self.vrrp()?.state;
            if now == state {
                Ok(())
            } else {
                bail!("VRRP is {now}")
            }
        })
        .with_context(|| format!("lbd log:\n{}", self.log()))?;
        Ok(started.elapsed())
    }

    /// A `[vrrp]` section (vrid 51, 100 ms adverts, multicast) for a lab
    /// director with `priority`, and `[vrrp.sync]` with `sync_peer` (a
    /// director index) when given.
    #[must_use]
    pub fn vrrp_text(lab: &Lab, priority: u8, sync_peer: Option<usize>) -> String {
        let mut text =
            format!("\n[vrrp]\nvrid = 51\npriority = {priority}\nadvert_interval = \"100ms\"\n");
        if let Some(peer) = sync_peer {
            let _ = write!(
                text,
                "\n[vrrp.sync]\npeer = \"{}\"\nkey = \"lab-sync-key-0123456789\"\n\
                 interval = \"200ms\"\nwait_before_preempt = \"5s\"\n",
                lab.director_addr_v4(peer)
            );
        }
        text
    }

    /// An `[ecmp]` section (table [`crate::bird::LAB_ROUTE_TABLE`],
    /// `learn_delay`) for a lab director, with `[ecmp.sync]` to the
    /// directors `peers` (indexes) when there are any.
    #[must_use]
    pub fn ecmp_text(lab: &Lab, director: usize, peers: &[usize], learn_delay: &str) -> String {
        let mut text = format!(
            "\n[ecmp]\ntable = {}\nlearn_delay = \"{learn_delay}\"\n",
            crate::bird::LAB_ROUTE_TABLE
        );
        if !peers.is_empty() {
            let list: Vec<String> = peers
                .iter()
                .map(|&p| format!("\"{}\"", lab.director_addr_v4(p)))
                .collect();
            let _ = write!(
                text,
                "\n[ecmp.sync]\npeers = [{}]\nlisten = \"{}\"\nkey = \"lab-sync-key-0123456789\"\n",
                list.join(", "),
                lab.director_addr_v4(director)
            );
        }
        text
    }

    /// `lbctl director --json`: the VIPs' announcement.
    pub fn director_status(&self) -> Result<lb_daemon::admin::EcmpStatus> {
        Ok(serde_json::from_value(self.lbctl_json(&["director"])?)?)
    }

    /// New connections a real of a service has received.
    pub fn real_connections(&self, service: &str, real: &str) -> Result<u64> {
        Ok(self.real(service, real)?.connections)
    }

    /// Waits until a real of a service shows `state`; returns how long it
    /// took (the last state seen is in the error).
    pub fn wait_state(
        &self,
        service: &str,
        real: &str,
        state: &str,
        limit: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        wait_for(limit, &format!("{real} is {state}"), || {
            let now = self.real(service, real)?.state;
            if now == state {
                Ok(())
            } else {
                bail!("{real} is {now}")
            }
        })
        .with_context(|| format!("lbd log:\n{}", self.log()))?;
        Ok(started.elapsed())
    }

    /// Waits until a real of a service has had more than `above` new
    /// connections.
    pub fn wait_connections(
        &self,
        service: &str,
        real: &str,
        above: u64,
        limit: Duration,
    ) -> Result<()> {
        wait_for(
            limit,
            &format!("{real} gets more than {above} new connections"),
            || {
                let n = self.real_connections(service, real)?;
                if n > above {
                    Ok(())
                } else {
                    bail!("{real} has {n}")
                }
            },
        )
        .with_context(|| format!("lbd log:\n{}", self.log()))
    }

    /// SIGKILL: the daemon dies at once, the data path stays.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// SIGTERM: a clean stop (forwarding stays in place).
    pub fn stop(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    fn signal(&mut self, signal: i32) -> Result<()> {
        let mut child = self.child.take().context("lbd is not running")?;
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait()?;
        Ok(())
    }

    /// SIGHUP: reload the config file.
    pub fn hangup(&self) -> Result<()> {
        let child = self.child.as_ref().context("lbd is not running")?;
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
        Ok(())
    }

    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The log of the latest start.
    #[must_use]
    pub fn current_log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("lbd-{}.log", self.starts))).unwrap_or_default()
    }

    /// Every log this daemon wrote, oldest first.
    #[must_use]
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| fs::read_to_string(self.dir.join(format!("lbd-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("--- restart ---\n")
    }

    /// Runs `lbd teardown` (lbd must be stopped) and checks that the pins
    /// are gone.
    pub fn teardown(&self) -> Result<()> {
        let lbd = self.bin.join("lbd");
        let out = command_in_net(
            &self.ns,
            &[
                lbd.as_os_str(),
                "--config".as_ref(),
                self.config.as_os_str(),
                "teardown".as_ref(),
            ],
        )
        .output()
        .context("running lbd teardown")?;
        if !out.status.success() {
            bail!(
                "lbd teardown failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if self.pin_path.exists() {
            bail!("lbd teardown left {}", self.pin_path.display());
        }
        Ok(())
    }

    /// The pin directory of this lbd.
    #[must_use]
    pub fn pin_path(&self) -> &Path {
        &self.pin_path
    }
}

impl Drop for LabDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.pin_path.exists() {
            let _ = self.teardown();
        }
        // Whatever teardown could not remove (e.g. the namespace is gone).
        let _ = remove_pins(&self.pin_path);
    }
}

/// Removes a pin directory tree (bpffs: files are unpinned by unlinking).
pub fn remove_pins(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
