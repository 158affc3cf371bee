//! BIRD 2 in lab namespaces, for `[ecmp]`: the router in front of the
//! directors and one BIRD beside each director's `lbd`, both run from the
//! shipped files `config/bird/router.conf` and `config/bird/director.conf`
//! with only their `define` lines set to the lab's values (so the tests
//! prove the files an operator installs).
//!
//! The lab needs a router ([`crate::LabBuilder::client_behind_router`]):
//! the router gets the L4 multipath hash, and learns each VIP from the
//! directors' BGP sessions as one multipath route.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::{Lab, NET_V4, NET_V4_PREFIX_LEN, command_in, exec_ok, wait_until};

/// The router's and the directors' autonomous systems in the lab.
pub const ROUTER_AS: u32 = 65000;
pub const DIRECTORS_AS: u32 = 65001;
/// `ecmp.table` in the lab's configs.
pub const LAB_ROUTE_TABLE: u32 = 4242;

/// The shipped BIRD configuration `name` (in `config/bird/`).
#[must_use]
pub fn shipped_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/bird")
        .join(name)
}

/// `text` with each `define NAME = ...;` line of `values` set to the given
/// value; every name must have its line.
pub fn with_defines(text: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut found = vec![false; values.len()];
    for line in text.lines() {
        let replaced = values.iter().enumerate().find_map(|(i, (name, value))| {
            let prefix = format!("define {name} =");
            line.starts_with(&prefix).then(|| {
                found[i] = true;
                format!("define {name} = {value};")
            })
        });
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    for ((name, _), seen) in values.iter().zip(found) {
        ensure!(seen, "the BIRD config has no `define {name} =` line");
    }
    Ok(out)
}

/// One BIRD process in a lab namespace. The lab kills it when dropped;
/// [`Bird::kill`] does it earlier.
pub struct Bird {
    ns: String,
    name: String,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Bird {
    /// The router's BIRD, accepting BGP from any director of the lab, with
    /// the L4 multipath hash on.
    pub fn router(lab: &mut Lab) -> Result<Self> {
        let ns = lab.router_ns().to_owned();
        exec_ok(
            &ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv6.fib_multipath_hash_policy=1",
            ],
        )?;
        let text = fs::read_to_string(shipped_config("router.conf"))?;
        let text = with_defines(
            &text,
            &[
                ("ROUTER", lab.router_addr_v4().to_string()),
                ("ROUTER_AS", ROUTER_AS.to_string()),
                ("DIRECTORS_AS", DIRECTORS_AS.to_string()),
                ("DIRECTORS_NET", format!("{NET_V4}/{NET_V4_PREFIX_LEN}")),
            ],
        )?;
        Self::start(lab, &ns, "router", &text)
    }

    /// BIRD beside director `i`'s lbd: learns table [`LAB_ROUTE_TABLE`],
    /// announces it to the router.
    pub fn director(lab: &mut Lab, i: usize) -> Result<Self> {
        let ns = lab.director_ns(i).to_owned();
        let text = fs::read_to_string(shipped_config("director.conf"))?;
        let text = with_defines(
            &text,
            &[
                ("DIRECTOR", lab.director_addr_v4(i).to_string()),
                ("ROUTER", lab.router_addr_v4().to_string()),
                ("LOCAL_AS", DIRECTORS_AS.to_string()),
                ("ROUTER_AS", ROUTER_AS.to_string()),
                ("LBD_TABLE", LAB_ROUTE_TABLE.to_string()),
            ],
        )?;
        Self::start(lab, &ns, &format!("director-{i}"), &text)
    }

    fn start(lab: &mut Lab, ns: &str, name: &str, text: &str) -> Result<Self> {
        let dir = lab.dir().join(format!("bird-{name}"));
        fs::create_dir_all(&dir)?;
        let config = dir.join("bird.conf");
        fs::write(&config, text)?;
        let mut bird = Self {
            ns: ns.to_owned(),
            name: name.to_owned(),
            socket: dir.join("bird.ctl"),
            log: dir.join("bird.log"),
            config,
            child: None,
        };
        bird.spawn(lab)?;
        Ok(bird)
    }

    /// Starts (or restarts) the process and waits until birdc answers.
    pub fn spawn(&mut self, lab: &mut Lab) -> Result<()> {
        ensure!(
            self.child.is_none(),
            "BIRD {} is already running",
            self.name
        );
        let log = fs::File::create(&self.log)?;
        let mut cmd = command_in(
            &self.ns,
            &[
                "bird".as_ref(),
                "-f".as_ref(),
                "-c".as_ref(),
                self.config.as_os_str(),
                "-s".as_ref(),
                self.socket.as_os_str(),
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(lab.spawn(&mut cmd)?);
        wait_until(Duration::from_secs(10), "birdc answers", || {
            self.birdc(&["show", "status"]).is_ok()
        })
        .with_context(|| format!("BIRD {}: {}", self.name, self.log_text()))
    }

    /// `birdc ARGS` against this BIRD; its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running birdc")?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() || text.contains("Unable to connect") {
            bail!("birdc {args:?}: {text}");
        }
        Ok(text)
    }

    /// Whether every BGP session is established (`count` of them).
    #[must_use]
    pub fn bgp_established(&self, count: usize) -> bool {
        self.birdc(&["show", "protocols"]).is_ok_and(|text| {
            text.lines()
                .filter(|l| l.contains(" BGP ") && l.contains("Established"))
                .count()
                >= count
        })
    }

    /// SIGKILL: the BGP sessions end without a withdrawal (the router
    /// notices by BFD or the closed TCP connection).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    #[must_use]
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The next hops of the router's route to `vip` (sorted; empty without a
/// route), from `ip route show VIP` in namespace `ns`.
pub fn next_hops(ns: &str, vip: IpAddr) -> Result<Vec<IpAddr>> {
    let text = exec_ok(ns, &["ip", "-o", "route", "show", &vip.to_string()])?;
    let mut hops: Vec<IpAddr> = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    hops.sort_unstable();
    Ok(hops)
}

/// Waits until the router's route to `vip` goes through exactly `want`
/// (any order); returns how long that took.
pub fn wait_next_hops(
    ns: &str,
    vip: IpAddr,
    want: &[Ipv4Addr],
    limit: Duration,
) -> Result<Duration> {
    let mut want: Vec<IpAddr> = want.iter().map(|a| IpAddr::V4(*a)).collect();
    want.sort_unstable();
    let started = std::time::Instant::now();
    wait_until(
        limit,
        &format!("the router's route to {vip} via {want:?}"),
        || next_hops(ns, vip).is_ok_and(|h| h == want),
    )
    .with_context(|| format!("now: {:?}", next_hops(ns, vip)))?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defines_are_set_and_missing_ones_named() {
        let text = "# x\ndefine A = 1;\ndefine B = 2;\nrouter id A;\n";
        let out = with_defines(text, &[("A", "10.0.0.1".into())]).unwrap();
        assert_eq!(
            out,
            "# x\ndefine A = 10.0.0.1;\ndefine B = 2;\nrouter id A;\n"
        );
        let err = with_defines(text, &[("C", "3".into())]).unwrap_err();
        assert!(err.to_string().contains("define C"), "{err}");
    }

    #[test]
    fn the_shipped_files_have_every_define_the_lab_sets() {
        for (file, names) in [
            (
                "router.conf",
                &["ROUTER", "ROUTER_AS", "DIRECTORS_AS", "DIRECTORS_NET"][..],
            ),
            (
                "director.conf",
                &["DIRECTOR", "ROUTER", "LOCAL_AS", "ROUTER_AS", "LBD_TABLE"][..],
            ),
        ] {
            let text = fs::read_to_string(shipped_config(file)).unwrap();
            let values: Vec<(&str, String)> = names.iter().map(|n| (*n, "1".into())).collect();
            with_defines(&text, &values).unwrap();
        }
    }
}
