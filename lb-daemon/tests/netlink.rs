//! `lb_daemon::netlink` against the real kernel (needs root).
//!
//! Every test builds its own pair of network namespaces joined by a veth
//! pair: `a` plays the director (the code under test runs there, in a thread
//! that entered it with `setns`), `b` plays a real server. Nothing touches
//! the host's namespace, and a drop guard deletes both namespaces even when
//! an assertion fails.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lb_daemon::netlink::{
    Mac, MacTracker, Neighbour, NeighbourState, Netlink, NetlinkError, Route, format_mac,
};

const NETNS_DIR: &str = "/var/run/netns";
/// Namespace names: `lbnl<pid>-<n>-a` / `-b`.
const PREFIX: &str = "lbnl";
/// The director's and the real's ends of the veth pair.
const DIR_IF: &str = "dir0";
const REAL_IF: &str = "real0";
/// How long the kernel gets to resolve a neighbour.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `ip netns add` mounts the shared `/var/run/netns` the first time; two
/// first calls at once can race.
static NETNS_ADD: Mutex<()> = Mutex::new(());

/// Makes the names of the labs of one process unique.
static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair, removed on drop.
struct Lab {
    a: String,
    b: String,
    /// Third octet of the IPv4 subnet, `10.77.<x>.0/24`.
    x: u8,
}

impl Lab {
    fn new() -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the netlink integration tests need root (network namespaces)"
        );
        remove_stale_namespaces();
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let lab = Self {
            a: format!("{PREFIX}{pid}-{n}-a"),
            b: format!("{PREFIX}{pid}-{n}-b"),
            x: ((pid + n) % 250 + 1) as u8,
        };
        {
            let _guard = NETNS_ADD
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ip(&["netns", "add", &lab.a]);
        }
        // From here on, `lab` going out of scope cleans up.
        ip(&["netns", "add", &lab.b]);
        let (a, b, x) = (lab.a.as_str(), lab.b.as_str(), lab.x);
        ip(&[
            "-n", a, "link", "add", DIR_IF, "type", "veth", "peer", "name", REAL_IF, "netns", b,
        ]);
        ip(&[
            "-n",
            a,
            "addr",
            "add",
            &format!("10.77.{x}.1/24"),
            "dev",
            DIR_IF,
        ]);
        ip(&[
            "-n",
            b,
            "addr",
            "add",
            &format!("10.77.{x}.2/24"),
            "dev",
            REAL_IF,
        ]);
        ip(&[
            "-n",
            a,
            "addr",
            "add",
            "fd00:77::1/64",
            "dev",
            DIR_IF,
            "nodad",
        ]);
        ip(&[
            "-n",
            b,
            "addr",
            "add",
            "fd00:77::2/64",
            "dev",
            REAL_IF,
            "nodad",
        ]);
        for (ns, dev) in [(a, DIR_IF), (b, REAL_IF), (a, "lo"), (b, "lo")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn v4(&self, host: u8) -> IpAddr {
        IpAddr::from([10, 77, self.x, host])
    }

    fn v6(host: u16) -> IpAddr {
        IpAddr::from([0xfd00, 0x77, 0, 0, 0, 0, 0, host])
    }

    /// Runs `f` with a `Netlink` opened inside namespace `a`, in a thread
    /// that entered it (only that thread changes namespace).
    fn in_a<T: Send + 'static>(&self, f: impl FnOnce(&mut Netlink) -> T + Send + 'static) -> T {
        let path = format!("{NETNS_DIR}/{}", self.a);
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: a valid namespace fd; affects this thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let mut nl = Netlink::open().expect("open rtnetlink");
            f(&mut nl)
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// `(ifindex, MAC)` of `dev` in `ns`, as `ip -j link` reports them.
    fn link(ns: &str, dev: &str) -> (u32, Mac) {
        let out = ip(&["-n", ns, "-j", "link", "show", "dev", dev]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("ip -j link");
        let link = &json[0];
        let ifindex = link["ifindex"].as_u64().expect("ifindex") as u32;
        (
            ifindex,
            parse_mac(link["address"].as_str().expect("address")),
        )
    }

    fn real_mac(&self) -> Mac {
        Self::link(&self.b, REAL_IF).1
    }

    fn dir_ifindex(&self) -> u32 {
        Self::link(&self.a, DIR_IF).0
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Deletes `lbnl<pid>-…` namespaces left behind by test processes that died
/// without cleaning up (killed, aborted).
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip ARGS`, panicking with its stderr on failure; returns stdout.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn parse_mac(s: &str) -> Mac {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("6 bytes")
}

/// Calls `f` every [`POLL_INTERVAL`] until it returns `Ok`, or panics after
/// `timeout` with `what` and the last `Err` (a description of what it saw).
fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(value) => return value,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?}; last: {last}"
                );
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn find(dump: &[Neighbour], ifindex: u32, addr: IpAddr) -> Option<&Neighbour> {
    dump.iter().find(|n| n.ifindex == ifindex && n.addr == addr)
}

/// Writes a neighbour-table sysctl of `dev` for both families, from a
/// thread inside the namespace (`/proc/sys/net` is per namespace of the
/// writer).
fn set_neigh_sysctl(dev: &str, name: &str, value: &str) {
    for family in ["ipv4", "ipv6"] {
        let path = format!("/proc/sys/net/{family}/neigh/{dev}/{name}");
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

#[test]
fn link_index_and_mac_match_ip_link() {
    let lab = Lab::new();
    let (ifindex, mac) = Lab::link(&lab.a, DIR_IF);
    let (lo_index, _) = Lab::link(&lab.a, "lo");
    let (got_index, got_mac, got_lo, missing, missing_mac) = lab.in_a(|nl| {
        let index = nl.link_index(DIR_IF).unwrap();
        (
            index,
            nl.link_mac(index).unwrap(),
            nl.link_index("lo").unwrap(),
            nl.link_index("nosuchif0").unwrap_err(),
            nl.link_mac(99_999).unwrap_err(),
        )
    });
    assert_eq!(got_index, ifindex);
    assert_eq!(
        got_mac,
        mac,
        "{} vs {}",
        format_mac(&got_mac),
        format_mac(&mac)
    );
    assert_eq!(got_lo, lo_index);
    assert!(
        matches!(missing, NetlinkError::NoSuchInterface(ref n) if n == "nosuchif0"),
        "{missing}"
    );
    assert!(
        matches!(missing_mac, NetlinkError::NoSuchInterface(_)),
        "{missing_mac}"
    );
}

#[test]
fn resolve_learns_the_real_mac_v4_and_v6() {
    let lab = Lab::new();
    let ifindex = lab.dir_ifindex();
    let real_mac = lab.real_mac();
    let targets = [lab.v4(2), Lab::v6(2)];
    lab.in_a(move |nl| {
        // Nothing has talked to the real yet: no entry at all.
        let dump = nl.neighbours().unwrap();
        for addr in targets {
            assert!(
                find(&dump, ifindex, addr).is_none(),
                "{addr} already in {dump:?}"
            );
            assert_eq!(nl.neighbour(ifindex, addr).unwrap(), None);
        }
        for addr in targets {
            nl.resolve(ifindex, addr).unwrap();
        }
        for addr in targets {
            let entry = poll(&format!("resolve {addr}"), RESOLVE_TIMEOUT, || {
                let dump = nl.neighbours().map_err(|e| e.to_string())?;
                match find(&dump, ifindex, addr) {
                    Some(n) if n.usable_mac().is_some() => Ok(n.clone()),
                    other => Err(format!("{other:?}")),
                }
            });
            assert_eq!(entry.mac, Some(real_mac), "{addr}: {entry:?}");
            assert_eq!(entry.state, NeighbourState::Reachable, "{addr}");
            assert_eq!(nl.neighbour(ifindex, addr).unwrap(), Some(entry));
        }
        // Resolving a resolved entry is harmless.
        nl.resolve(ifindex, targets[0]).unwrap();
    });
}

#[test]
fn resolve_leaves_permanent_entries_and_rejects_unknown_interfaces() {
    let lab = Lab::new();
    let ifindex = lab.dir_ifindex();
    let addr = lab.v4(99);
    ip(&[
        "-n",
        &lab.a,
        "neigh",
        "add",
        &addr.to_string(),
        "dev",
        DIR_IF,
        "lladdr",
        "02:00:00:00:00:99",
        "nud",
        "permanent",
    ]);
    lab.in_a(move |nl| {
        nl.resolve(ifindex, addr).unwrap();
        let entry = nl.neighbour(ifindex, addr).unwrap().expect("static entry");
        assert_eq!(entry.state, NeighbourState::Permanent);
        assert_eq!(entry.mac, Some([2, 0, 0, 0, 0, 0x99]));
        let err = nl.resolve(99_999, addr).unwrap_err();
        assert!(matches!(err, NetlinkError::NoSuchInterface(_)), "{err}");
    });
}

/// The daemon's loop (dump, `MacTracker::update`, resolve what it says)
/// follows a real whose MAC changes.
///
/// Nothing tells the director that the real's MAC changed (no gratuitous
/// ARP / unsolicited NA by default), and the kernel keeps a `REACHABLE` entry
/// untouched until its reachable time runs out; `NTF_USE` on a `REACHABLE`
/// entry does nothing. What moves it: the entry goes `STALE`, the tracker
/// resolves it, the kernel goes `DELAY` → `PROBE` and sends unicast probes
/// to the *old* MAC, which the real's veth drops (not its address), so the
/// entry goes `FAILED` (the tracker reports the MAC lost); the tracker
/// resolves again, and this time a broadcast request finds the new MAC.
/// With the default timers (reachable 15–45 s, first probe after 5 s, 3
/// probes 1 s apart) that takes up to a minute, so the director's namespace
/// gets short ones, set before any entry exists (a running entry keeps the
/// timer it was given): reachable 250–750 ms, probe at once, one probe of
/// 100 ms. Deleting the entry (`ip neigh del`) would also work, but would
/// test only a fresh resolution.
#[test]
fn mac_change_is_followed() {
    let lab = Lab::new();
    let ifindex = lab.dir_ifindex();
    let old_mac = lab.real_mac();
    let new_mac: Mac = [0x02, 0x77, 0, 0, 0, lab.x];
    assert_ne!(old_mac, new_mac);
    let targets = [lab.v4(2), Lab::v6(2)];
    let real_ns = lab.b.clone();

    lab.in_a(move |nl| {
        for (name, value) in [
            ("base_reachable_time_ms", "500"),
            ("delay_first_probe_time", "0"),
            ("retrans_time_ms", "100"),
            ("ucast_solicit", "1"),
        ] {
            set_neigh_sysctl(DIR_IF, name, value);
        }
        let mut tracker = MacTracker::new();
        tracker.set_wanted(targets.map(|addr| (ifindex, addr)));
        let mut seen = Vec::new();
        let mut converge = |what: &str, want: Mac, timeout: Duration| {
            poll(what, timeout, || {
                let dump = nl.neighbours().map_err(|e| e.to_string())?;
                let update = tracker.update(&dump);
                seen.extend(update.changes);
                for (ifindex, addr) in update.to_resolve {
                    nl.resolve(ifindex, addr).map_err(|e| e.to_string())?;
                }
                let macs = targets.map(|addr| tracker.mac(addr));
                if macs.iter().all(|m| *m == Some(want)) {
                    Ok(())
                } else {
                    Err(format!("{macs:?}, dump {dump:?}"))
                }
            });
        };

        converge("learn the MAC", old_mac, RESOLVE_TIMEOUT);
        ip(&[
            "-n",
            &real_ns,
            "link",
            "set",
            "dev",
            REAL_IF,
            "address",
            &format_mac(&new_mac),
        ]);
        converge("follow the new MAC", new_mac, Duration::from_secs(10));

        for addr in targets {
            let changes: Vec<_> = seen.iter().filter(|c| c.addr == addr).collect();
            assert_eq!(
                changes.first().map(|c| (c.old, c.new)),
                Some((None, Some(old_mac))),
                "{addr}: {changes:?}"
            );
            let last = changes.last().unwrap();
            assert_eq!(last.new, Some(new_mac), "{addr}: {changes:?}");
            assert!(changes.iter().all(|c| c.ifindex == ifindex));
        }
    });
}

#[test]
fn addresses_are_added_and_removed_idempotently() {
    let lab = Lab::new();
    let ifindex = lab.dir_ifindex();
    let vip4 = lab.v4(200);
    let vip6 = Lab::v6(0x200);
    let own = [(lab.v4(1), 24), (Lab::v6(1), 64)];
    let ns = lab.a.clone();
    lab.in_a(move |nl| {
        let before = nl.addresses(ifindex).unwrap();
        for a in own {
            assert!(before.contains(&a), "{a:?} in {before:?}");
        }
        for (addr, len) in [(vip4, 32), (vip6, 128)] {
            nl.add_address(ifindex, addr, len).unwrap();
            nl.add_address(ifindex, addr, len).unwrap();
            let now = nl.addresses(ifindex).unwrap();
            assert_eq!(
                now.iter().filter(|a| **a == (addr, len)).count(),
                1,
                "{now:?}"
            );
        }
        // The IPv6 VIP skipped duplicate address detection: usable at once.
        let json: serde_json::Value =
            serde_json::from_str(&ip(&["-n", &ns, "-j", "-6", "addr", "show", "dev", DIR_IF]))
                .unwrap();
        let info = json[0]["addr_info"].as_array().unwrap();
        let vip = info
            .iter()
            .find(|a| a["local"] == "fd00:77::200")
            .expect("fd00:77::200 in ip addr");
        assert_eq!(vip["prefixlen"], 128);
        assert_ne!(vip["tentative"], true, "{vip}");

        for (addr, len) in [(vip4, 32), (vip6, 128)] {
            nl.remove_address(ifindex, addr, len).unwrap();
            nl.remove_address(ifindex, addr, len).unwrap();
            let now = nl.addresses(ifindex).unwrap();
            assert!(now.iter().all(|(a, _)| *a != addr), "{now:?}");
        }
        // (Not compared with `before` as a whole: the IPv6 link-local
        // address may appear in between, when the veth's carrier comes up.)
        let after = nl.addresses(ifindex).unwrap();
        for a in own {
            assert!(after.contains(&a), "{a:?} in {after:?}");
        }
        let err = nl.add_address(99_999, vip4, 32).unwrap_err();
        assert!(matches!(err, NetlinkError::NoSuchInterface(_)), "{err}");
    });
}

#[test]
fn route_to_reports_interface_and_gateway() {
    let lab = Lab::new();
    let ifindex = lab.dir_ifindex();
    let (a, x) = (lab.a.as_str(), lab.x);
    ip(&[
        "-n",
        a,
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        &format!("10.77.{x}.2"),
    ]);
    ip(&[
        "-n",
        a,
        "-6",
        "route",
        "add",
        "2001:db8::/64",
        "via",
        "fd00:77::2",
    ]);
    let (real4, real6, own4) = (lab.v4(2), Lab::v6(2), lab.v4(1));
    lab.in_a(move |nl| {
        let on_link = Some(Route {
            ifindex,
            gateway: None,
        });
        assert_eq!(nl.route_to(real4).unwrap(), on_link);
        assert_eq!(nl.route_to(real6).unwrap(), on_link);
        assert_eq!(
            nl.route_to("198.51.100.7".parse().unwrap()).unwrap(),
            Some(Route {
                ifindex,
                gateway: Some(real4)
            })
        );
        assert_eq!(
            nl.route_to("2001:db8::7".parse().unwrap()).unwrap(),
            Some(Route {
                ifindex,
                gateway: Some(real6)
            })
        );
        // No default route in the namespace; a local address is no next hop.
        assert_eq!(nl.route_to("192.0.2.1".parse().unwrap()).unwrap(), None);
        assert_eq!(nl.route_to("2001:db8:1::1".parse().unwrap()).unwrap(), None);
        assert_eq!(nl.route_to(own4).unwrap(), None);
    });
}
