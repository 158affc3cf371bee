//! A lab of network namespaces for the load balancer: clients, directors and
//! real servers on one Linux bridge, all inside namespaces that this process
//! creates and deletes again. Nothing in a lab routes anywhere outside it.
//!
//! ```text
//!            switch namespace: bridge br0
//!      ┌──────────┬─────┴──────┬──────────┐
//!    s-c0       s-d0         s-r0       s-r1        (switch ends of the veths)
//!      │          │            │          │
//!    eth0       eth0         eth0       eth0        (one namespace each)
//!   client 0  director 0    real 0     real 1
//!  10.99.0.10  10.99.0.2  10.99.0.100 10.99.0.101
//! ```
//!
//! Addresses (the same in every lab; labs are isolated from each other):
//! IPv4 `10.99.0.0/24` and IPv6 `fd00:99::/64` on every `eth0`; directors
//! `.2`, `.3`, …; clients `.10 + i`; reals `.100 + i`; the IPv6 address uses
//! the same digits (`fd00:99::100` for real 0). The VIPs [`VIP_V4`] and
//! [`VIP_V6`] sit on every real's `lo`, with `arp_ignore=1`/`arp_announce=2`,
//! as LVS direct routing wants. Every real runs nginx on port 80: `GET /`
//! answers `200` with the real's name and a newline (`real-0\n`), `GET /big`
//! sends a large file (for long downloads), and every response carries the
//! header `X-Real-Server: <name>`.
//!
//! Optionally ([`LabBuilder::client_behind_router`]) client 0 sits on a
//! network of its own behind a router namespace on the bridge, and the link
//! between them has a smaller MTU on the router's side, so the reals' large
//! replies need path MTU discovery:
//!
//! ```text
//!   client 0 eth0 ──── c0 router eth0 ──── s-g0 (bridge)
//!  10.99.1.10   10.99.1.1 (MTU m)  10.99.0.1
//! ```
//!
//! The client routes everything through the router (`10.99.1.1`,
//! `fd00:99:1::1`); every host on the bridge routes `10.99.1.0/24` and
//! `fd00:99:1::/64` through it (`10.99.0.1`, `fd00:99::1`). The VIPs are on
//! the bridge's network, so the router reaches them (its ICMP errors
//! included) through whichever host answers ARP/ND for them: the director.
//!
//! Dropping the [`Lab`] kills every process it started or that runs inside its
//! namespaces, deletes the namespaces (the bridge and veths go with them) and
//! removes its temporary directory, also when a test panics.
//! [`cleanup_stale`] (run by every [`LabBuilder::build`]) removes what a
//! killed process left behind.

pub mod bird;
pub mod browser;
pub mod daemon;
pub mod director;
pub mod dns;
pub mod goal;
mod http;
pub mod keepalived;
mod netns;
mod nginx;
pub mod requests;
mod wait;
pub mod wrk;
mod xdp;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

pub use http::{Response, http_get, url};
pub use netns::{
    NAME_PREFIX, NETNS_DIR, cleanup_stale, command_in, command_in_net, exec, exec_ok, format_mac,
    in_namespace, list_namespaces, mac_of, owner_pid, parse_mac, spawn_in_namespace,
};
pub use wait::{wait_for, wait_until};
pub use xdp::{PASS_PROGRAM, attach_xdp, pass_object, xdp_object};

use nginx::RealServer;

/// The IPv4 VIP, on every real server's `lo`.
pub const VIP_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 200);
/// The IPv6 VIP, on every real server's `lo`.
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0x200);
/// The lab's IPv4 network (`10.99.0.0/24`).
pub const NET_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 0);
pub const NET_V4_PREFIX_LEN: u8 = 24;
/// The lab's IPv6 network (`fd00:99::/64`).
pub const NET_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 0);
pub const NET_V6_PREFIX_LEN: u8 = 64;
/// Client 0's network when it sits behind the router (`10.99.1.0/24`,
/// `fd00:99:1::/64`): the lab's network with 1 in the third group.
pub const ROUTED_NET: u8 = 1;
/// The router's address on the bridge's network (`10.99.0.1`,
/// `fd00:99::1`) and on client 0's (`10.99.1.1`, `fd00:99:1::1`).
const ROUTER_NUMBER: u8 = 1;
/// The router's interface to client 0.
pub const ROUTER_CLIENT_IFNAME: &str = "c0";
/// The bridge in the switch namespace.
pub const BRIDGE: &str = "br0";
/// The name of every host's interface to the bridge.
pub const HOST_IFNAME: &str = "eth0";
/// The path nginx serves the large file on.
pub const BIG_PATH: &str = "/big";
/// The default size of the file behind [`BIG_PATH`]: 50 MiB.
pub const DEFAULT_BIG_SIZE: u64 = 50 << 20;
/// The port every real's nginx listens on.
pub const HTTP_PORT: u16 = 80;

pub const MAX_DIRECTORS: usize = 8;
pub const MAX_CLIENTS: usize = 90;
pub const MAX_REALS: usize = 99;

const FIRST_DIRECTOR: u8 = 2;
const FIRST_CLIENT: u8 = 10;
const FIRST_REAL: u8 = 100;
/// How long a fresh interface may take to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Client,
    Director,
    Real,
    Router,
}

impl Role {
    fn letter(self) -> char {
        match self {
            Role::Client => 'c',
            Role::Director => 'd',
            Role::Real => 'r',
            Role::Router => 'g',
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Role::Client => "clients",
            Role::Director => "directors",
            Role::Real => "reals",
            Role::Router => "routers",
        }
    }
}

/// One host namespace and its veth pair.
#[derive(Debug)]
struct Host {
    role: Role,
    ns: String,
    /// The last octet of its IPv4 address (and the digits of its IPv6 one).
    number: u8,
    /// The third octet of its IPv4 address (and the third group of its IPv6
    /// one): 0 on the bridge, [`ROUTED_NET`] behind the router.
    net: u8,
    /// The other end of its veth: on the bridge, in the switch namespace, or
    /// in the router namespace for a client behind the router.
    peer: String,
}

impl Host {
    fn new(prefix: &str, role: Role, index: usize, first: u8) -> Self {
        let tag = format!("{}{index}", role.letter());
        Self {
            role,
            ns: format!("{prefix}{tag}"),
            number: first + index as u8,
            net: 0,
            peer: format!("s-{tag}"),
        }
    }

    /// Whether its veth ends on the bridge.
    fn on_switch(&self) -> bool {
        self.net == 0
    }

    fn v4(&self) -> Ipv4Addr {
        address_v4(self.net, self.number)
    }

    fn v6(&self) -> Ipv6Addr {
        address_v6(self.net, self.number)
    }

    /// Locally administered, readable: `02:99:00:00:00:<octet>`.
    fn mac(&self) -> [u8; 6] {
        [0x02, 0x99, 0, 0, 0, self.number]
    }

    /// The switch end: `02:99:01:00:00:<octet>`.
    fn peer_mac(&self) -> [u8; 6] {
        [0x02, 0x99, 1, 0, 0, self.number]
    }

    /// Sysctls, addresses, link up, checksum offload off; then waits for
    /// carrier. The veth already exists.
    fn configure(&self) -> Result<()> {
        let mut lines = vec![
            "link set lo up".to_owned(),
            format!(
                "address add {}/{NET_V4_PREFIX_LEN} dev {HOST_IFNAME}",
                self.v4()
            ),
            format!(
                "address add {}/{NET_V6_PREFIX_LEN} dev {HOST_IFNAME} nodad",
                self.v6()
            ),
        ];
        if self.role == Role::Real {
            let mut sysctls = vec!["sysctl".to_owned(), "-qw".to_owned()];
            for conf in ["all", "default", HOST_IFNAME] {
                sysctls.push(format!("net.ipv4.conf.{conf}.arp_ignore=1"));
                sysctls.push(format!("net.ipv4.conf.{conf}.arp_announce=2"));
            }
            exec_ok(&self.ns, &sysctls)?;
            lines.push(format!("address add {VIP_V4}/32 dev lo"));
            lines.push(format!("address add {VIP_V6}/128 dev lo"));
        }
        if self.role == Role::Router {
            exec_ok(
                &self.ns,
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                ],
            )?;
        }
        if self.role == Role::Client {
            // One client address opening tens of thousands of connections a
            // second runs out of ephemeral ports within seconds (every port
            // sits in TIME_WAIT), and connect() crawls: let it reuse ports in
            // TIME_WAIT, as load generators do. Real clients come from many
            // addresses.
            exec_ok(&self.ns, &["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])?;
        }
        lines.push(format!("link set {HOST_IFNAME} up"));
        netns::ip_batch(Some(&self.ns), &lines)?;
        exec_ok(&self.ns, &["ethtool", "-K", HOST_IFNAME, "tx", "off"])?;
        let what = format!("{HOST_IFNAME} in {} to have carrier", self.ns);
        wait_until(LINK_UP_TIMEOUT, &what, || {
            netns::ip(&["-n", &self.ns, "-o", "link", "show", "dev", HOST_IFNAME])
                .is_ok_and(|out| out.contains("state UP"))
        })
    }
}

/// Host `number` on network `net` (0: the bridge's, [`ROUTED_NET`]: behind
/// the router): `10.99.<net>.<number>`.
fn address_v4(net: u8, number: u8) -> Ipv4Addr {
    let [a, b, c, _] = NET_V4.octets();
    Ipv4Addr::new(a, b, c + net, number)
}

/// Like [`address_v4`]: `fd00:99:<net>::<number>`, with the decimal digits
/// of the IPv4 octet (`.100` -> `::100`).
fn address_v6(net: u8, number: u8) -> Ipv6Addr {
    let mut segments = NET_V6.segments();
    segments[2] += u16::from(net);
    segments[7] =
        u16::from_str_radix(&number.to_string(), 16).expect("a decimal octet is a valid hex group");
    Ipv6Addr::from(segments)
}

/// Sizes of a lab. Defaults: 1 client, 1 director, 2 reals, a 50 MiB `/big`,
/// no router.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    clients: usize,
    directors: usize,
    reals: usize,
    big_size: u64,
    router_mtu: Option<u32>,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            clients: 1,
            directors: 1,
            reals: 2,
            big_size: DEFAULT_BIG_SIZE,
            router_mtu: None,
        }
    }
}

impl LabBuilder {
    #[must_use]
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    #[must_use]
    pub fn directors(mut self, n: usize) -> Self {
        self.directors = n;
        self
    }

    #[must_use]
    pub fn reals(mut self, n: usize) -> Self {
        self.reals = n;
        self
    }

    /// Size in bytes of the file served on [`BIG_PATH`] (sparse: it costs no
    /// disk space).
    #[must_use]
    pub fn big_file_size(mut self, bytes: u64) -> Self {
        self.big_size = bytes;
        self
    }

    /// Puts client 0 behind a router (see the crate documentation) whose
    /// interface to the client has MTU `mtu`; the client's own end keeps
    /// 1500, so it still announces the larger MSS, as a client behind a
    /// tunnel does, and replies larger than `mtu` need path MTU discovery.
    #[must_use]
    pub fn client_behind_router(mut self, mtu: u32) -> Self {
        self.router_mtu = Some(mtu);
        self
    }

    /// Creates the namespaces, the bridge and veths, the addresses, and starts
    /// nginx on every real; returns once every nginx answers. On error,
    /// everything created so far is removed again.
    pub fn build(self) -> Result<Lab> {
        ensure!(
            self.directors <= MAX_DIRECTORS,
            "at most {MAX_DIRECTORS} directors"
        );
        ensure!(self.clients <= MAX_CLIENTS, "at most {MAX_CLIENTS} clients");
        ensure!(self.reals <= MAX_REALS, "at most {MAX_REALS} reals");
        ensure!(
            self.router_mtu.is_none() || self.clients > 0,
            "a router needs a client behind it"
        );
        if let Err(e) = cleanup_stale() {
            eprintln!("lb-lab: could not clean up stale namespaces: {e:#}");
        }

        let prefix = netns::new_prefix();
        let hosts = |role, n, first| -> Vec<Host> {
            (0..n).map(|i| Host::new(&prefix, role, i, first)).collect()
        };
        let mut clients = hosts(Role::Client, self.clients, FIRST_CLIENT);
        let router = self.router_mtu.map(|mtu| {
            let client = &mut clients[0];
            client.net = ROUTED_NET;
            ROUTER_CLIENT_IFNAME.clone_into(&mut client.peer);
            Router {
                host: Host::new(&prefix, Role::Router, 0, ROUTER_NUMBER),
                mtu,
            }
        });
        let mut lab = Lab {
            dir: std::env::temp_dir().join(prefix.trim_end_matches('-')),
            switch_ns: format!("{prefix}sw"),
            clients,
            router,
            directors: hosts(Role::Director, self.directors, FIRST_DIRECTOR),
            reals: hosts(Role::Real, self.reals, FIRST_REAL),
            prefix,
            servers: Vec::new(),
            big_size: self.big_size,
            namespaces: Vec::new(),
            spawned: Vec::new(),
            pass_programs: Vec::new(),
        };
        lab.pass_programs.resize_with(self.directors, || None);
        fs::create_dir(&lab.dir).with_context(|| format!("creating {}", lab.dir.display()))?;
        lab.build_network()?;
        lab.start_reals()?;
        Ok(lab)
    }
}

/// The router in front of client 0 and the MTU of its link to the client.
#[derive(Debug)]
struct Router {
    host: Host,
    mtu: u32,
}

/// A running lab; see the crate documentation. Dropping it tears it down.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    switch_ns: String,
    clients: Vec<Host>,
    router: Option<Router>,
    directors: Vec<Host>,
    reals: Vec<Host>,
    /// One per real, same order.
    servers: Vec<RealServer>,
    big_size: u64,
    /// Every namespace this lab created (or tried to).
    namespaces: Vec<String>,
    /// Process ids (= process group ids) of children from [`Lab::spawn`].
    spawned: Vec<u32>,
    /// One slot per director.
    pass_programs: Vec<Option<aya::Ebpf>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("clients", &self.clients.len())
            .field("directors", &self.directors.len())
            .field("reals", &self.reals.len())
            .field("router_mtu", &self.router_mtu())
            .finish_non_exhaustive()
    }
}

impl Lab {
    #[must_use]
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    fn all_hosts(&self) -> impl Iterator<Item = &Host> {
        self.clients
            .iter()
            .chain(&self.directors)
            .chain(&self.reals)
            .chain(self.router.as_ref().map(|r| &r.host))
    }

    fn build_network(&mut self) -> Result<()> {
        self.namespaces = std::iter::once(self.switch_ns.clone())
            .chain(self.all_hosts().map(|h| h.ns.clone()))
            .collect();
        netns::add_namespaces(&self.namespaces)?;

        // The switch has no addresses of its own, so no IPv6 chatter either.
        exec_ok(
            &self.switch_ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )?;
        let mut lines = vec![
            "link set lo up".to_owned(),
            format!("link add {BRIDGE} type bridge stp_state 0 mcast_snooping 0"),
            format!("link set {BRIDGE} up"),
        ];
        for host in self.all_hosts().filter(|h| h.on_switch()) {
            lines.push(format!(
                "link add {HOST_IFNAME} netns {} address {} type veth peer name {} address {}",
                host.ns,
                format_mac(host.mac()),
                host.peer,
                format_mac(host.peer_mac()),
            ));
            lines.push(format!("link set {} master {BRIDGE} up", host.peer));
        }
        netns::ip_batch(Some(&self.switch_ns), &lines)?;
        if let Some(router) = &self.router {
            self.link_routed_client(router)?;
        }

        // Configure every host (and the switch's ends) in parallel.
        std::thread::scope(|scope| {
            let switch = scope.spawn(|| -> Result<()> {
                for host in self.all_hosts().filter(|h| h.on_switch()) {
                    exec_ok(&self.switch_ns, &["ethtool", "-K", &host.peer, "tx", "off"])?;
                }
                if let Some(router) = &self.router {
                    let ifname = ROUTER_CLIENT_IFNAME;
                    exec_ok(&router.host.ns, &["ethtool", "-K", ifname, "tx", "off"])?;
                }
                Ok(())
            });
            let hosts: Vec<_> = self
                .all_hosts()
                .map(|host| scope.spawn(|| host.configure()))
                .collect();
            std::iter::once(switch)
                .chain(hosts)
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Result<Vec<()>>>()
        })?;
        if let Some(router) = &self.router {
            self.route_through(router)?;
        }
        Ok(())
    }

    /// The veth between the router and client 0: the router's end gets the
    /// client network's first address and the small MTU.
    fn link_routed_client(&self, router: &Router) -> Result<()> {
        let client = &self.clients[0];
        let ifname = ROUTER_CLIENT_IFNAME;
        let lines = [
            format!(
                "link add {ifname} address {} type veth peer name {HOST_IFNAME} netns {} address {}",
                format_mac(client.peer_mac()),
                client.ns,
                format_mac(client.mac()),
            ),
            format!(
                "address add {}/{NET_V4_PREFIX_LEN} dev {ifname}",
                address_v4(ROUTED_NET, ROUTER_NUMBER)
            ),
            format!(
                "address add {}/{NET_V6_PREFIX_LEN} dev {ifname} nodad",
                address_v6(ROUTED_NET, ROUTER_NUMBER)
            ),
            format!("link set {ifname} mtu {} up", router.mtu),
        ];
        netns::ip_batch(Some(&router.host.ns), &lines)
    }

    /// Routes between client 0's network and the bridge's through the router
    /// (the interfaces are up by now).
    fn route_through(&self, router: &Router) -> Result<()> {
        netns::ip_batch(
            Some(&self.clients[0].ns),
            &[
                format!(
                    "route add default via {}",
                    address_v4(ROUTED_NET, ROUTER_NUMBER)
                ),
                format!(
                    "route add default via {}",
                    address_v6(ROUTED_NET, ROUTER_NUMBER)
                ),
            ],
        )?;
        let back = [
            format!(
                "route add {}/{NET_V4_PREFIX_LEN} via {}",
                address_v4(ROUTED_NET, 0),
                router.host.v4()
            ),
            format!(
                "route add {}/{NET_V6_PREFIX_LEN} via {}",
                address_v6(ROUTED_NET, 0),
                router.host.v6()
            ),
        ];
        for host in self.directors.iter().chain(&self.reals) {
            netns::ip_batch(Some(&host.ns), &back)?;
        }
        Ok(())
    }

    fn start_reals(&mut self) -> Result<()> {
        let www = self.dir.join("www");
        fs::create_dir(&www).with_context(|| format!("creating {}", www.display()))?;
        let big = www.join(BIG_PATH.trim_start_matches('/'));
        File::create(&big)
            .and_then(|f| f.set_len(self.big_size))
            .with_context(|| format!("creating {}", big.display()))?;
        for (i, host) in self.reals.iter().enumerate() {
            let server = RealServer::new(
                real_name(i),
                host.ns.clone(),
                &self.dir,
                &www,
                [host.v4().into(), host.v6().into()],
            )?;
            self.servers.push(server);
        }
        for server in &mut self.servers {
            server.spawn()?;
        }
        for server in &mut self.servers {
            server.wait_ready()?;
        }
        Ok(())
    }

    fn host(&self, role: Role, i: usize) -> &Host {
        let hosts = match role {
            Role::Client => &self.clients,
            Role::Director => &self.directors,
            Role::Real => &self.reals,
            Role::Router => {
                return &self
                    .router
                    .as_ref()
                    .filter(|_| i == 0)
                    .unwrap_or_else(|| panic!("the lab has no router {i}"))
                    .host;
            }
        };
        hosts.get(i).unwrap_or_else(|| {
            panic!(
                "the lab has {} {}; there is no index {i}",
                hosts.len(),
                role.plural()
            )
        })
    }

    fn server(&mut self, i: usize) -> &mut RealServer {
        let n = self.servers.len();
        self.servers
            .get_mut(i)
            .unwrap_or_else(|| panic!("the lab has {n} reals; there is no index {i}"))
    }

    /// The prefix of every namespace name of this lab (`lbl<pid>-<n>-<x>-`).
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's temporary directory (nginx configs, logs, the big file).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every namespace of the lab: the switch first.
    #[must_use]
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The namespace holding the bridge.
    #[must_use]
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }

    #[must_use]
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    #[must_use]
    pub fn directors(&self) -> usize {
        self.directors.len()
    }

    #[must_use]
    pub fn reals(&self) -> usize {
        self.reals.len()
    }

    // Clients.

    #[must_use]
    pub fn client_ns(&self, i: usize) -> &str {
        &self.host(Role::Client, i).ns
    }

    #[must_use]
    pub fn client_addr_v4(&self, i: usize) -> Ipv4Addr {
        self.host(Role::Client, i).v4()
    }

    #[must_use]
    pub fn client_addr_v6(&self, i: usize) -> Ipv6Addr {
        self.host(Role::Client, i).v6()
    }

    #[must_use]
    pub fn client_mac(&self, i: usize) -> [u8; 6] {
        self.host(Role::Client, i).mac()
    }

    /// The switch end of client `i`'s veth (the router's end, in the
    /// router's namespace, for a client behind the router).
    #[must_use]
    pub fn client_peer_ifname(&self, i: usize) -> &str {
        &self.host(Role::Client, i).peer
    }

    // The router (see [`LabBuilder::client_behind_router`]).

    /// The router's namespace; panics when the lab has no router.
    #[must_use]
    pub fn router_ns(&self) -> &str {
        &self.host(Role::Router, 0).ns
    }

    /// The router's address on the bridge's network.
    #[must_use]
    pub fn router_addr_v4(&self) -> Ipv4Addr {
        self.host(Role::Router, 0).v4()
    }

    /// The MTU of the router's interface to client 0, if there is a router.
    #[must_use]
    pub fn router_mtu(&self) -> Option<u32> {
        self.router.as_ref().map(|r| r.mtu)
    }

    // Directors.

    #[must_use]
    pub fn director_ns(&self, i: usize) -> &str {
        &self.host(Role::Director, i).ns
    }

    #[must_use]
    pub fn director_addr_v4(&self, i: usize) -> Ipv4Addr {
        self.host(Role::Director, i).v4()
    }

    #[must_use]
    pub fn director_addr_v6(&self, i: usize) -> Ipv6Addr {
        self.host(Role::Director, i).v6()
    }

    #[must_use]
    pub fn director_mac(&self, i: usize) -> [u8; 6] {
        self.host(Role::Director, i).mac()
    }

    /// The switch end of director `i`'s veth: where the `XDP_PASS` program goes.
    #[must_use]
    pub fn director_peer_ifname(&self, i: usize) -> &str {
        &self.host(Role::Director, i).peer
    }

    // Reals.

    #[must_use]
    pub fn real_ns(&self, i: usize) -> &str {
        &self.host(Role::Real, i).ns
    }

    #[must_use]
    pub fn real_addr_v4(&self, i: usize) -> Ipv4Addr {
        self.host(Role::Real, i).v4()
    }

    #[must_use]
    pub fn real_addr_v6(&self, i: usize) -> Ipv6Addr {
        self.host(Role::Real, i).v6()
    }

    #[must_use]
    pub fn real_mac(&self, i: usize) -> [u8; 6] {
        self.host(Role::Real, i).mac()
    }

    /// The switch end of real `i`'s veth.
    #[must_use]
    pub fn real_peer_ifname(&self, i: usize) -> &str {
        &self.host(Role::Real, i).peer
    }

    /// `real-<i>`: what its nginx answers (followed by a newline).
    #[must_use]
    pub fn real_name(&self, i: usize) -> &str {
        let n = self.servers.len();
        &self
            .servers
            .get(i)
            .unwrap_or_else(|| panic!("the lab has {n} reals; there is no index {i}"))
            .name
    }

    /// The size in bytes of the file on [`BIG_PATH`].
    #[must_use]
    pub fn big_size(&self) -> u64 {
        self.big_size
    }

    /// The pid of real `i`'s nginx master, if it runs.
    #[must_use]
    pub fn real_pid(&self, i: usize) -> Option<u32> {
        self.servers.get(i).and_then(RealServer::pid)
    }

    #[must_use]
    pub fn real_is_running(&self, i: usize) -> bool {
        self.servers.get(i).is_some_and(RealServer::is_running)
    }

    #[must_use]
    pub fn real_is_paused(&self, i: usize) -> bool {
        self.servers.get(i).is_some_and(RealServer::is_paused)
    }

    /// Kills real `i`'s nginx (SIGKILL to master and worker) and returns once
    /// its port refuses connections. A no-op if it isn't running.
    pub fn real_stop(&mut self, i: usize) -> Result<()> {
        self.server(i).stop()
    }

    /// Starts real `i`'s nginx again and returns once it answers.
    pub fn real_start(&mut self, i: usize) -> Result<()> {
        let server = self.server(i);
        server.spawn()?;
        server.wait_ready()
    }

    /// SIGSTOPs real `i`'s nginx (a long GC pause, say): the kernel still
    /// accepts connections into the backlog, nothing answers them.
    pub fn real_pause(&mut self, i: usize) -> Result<()> {
        self.server(i).pause()
    }

    /// SIGCONTs real `i`'s nginx.
    pub fn real_resume(&mut self, i: usize) -> Result<()> {
        self.server(i).resume()
    }

    /// Loads the program named [`PASS_PROGRAM`] from the eBPF ELF `object`
    /// (e.g. [`pass_object()`], or the project's eBPF object) and attaches it
    /// in native mode to the switch end of director `director`'s veth, so
    /// that frames the director sends with `XDP_TX` reach the bridge. The lab
    /// keeps it attached until it is dropped; attaching again replaces it.
    pub fn attach_pass_program(&mut self, director: usize, object: &[u8]) -> Result<()> {
        let ifname = self.director_peer_ifname(director).to_owned();
        // Detach the old one first: an interface holds one XDP link.
        self.pass_programs[director] = None;
        let ebpf = attach_xdp(&self.switch_ns, &ifname, object, PASS_PROGRAM)?;
        self.pass_programs[director] = Some(ebpf);
        Ok(())
    }

    /// Detaches the program [`Lab::attach_pass_program`] attached, if any.
    pub fn detach_pass_program(&mut self, director: usize) {
        self.host(Role::Director, director);
        self.pass_programs[director] = None;
    }

    /// Starts `args` inside namespace `ns` (stdin `/dev/null`, stdout and
    /// stderr piped: read them, or use [`Lab::spawn`] with other settings).
    /// The lab kills it (and its process group) when dropped.
    pub fn spawn_in<S: AsRef<OsStr>>(&mut self, ns: &str, args: &[S]) -> Result<Child> {
        let mut cmd = command_in(ns, args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.spawn(&mut cmd)
    }

    /// Starts `cmd` (usually made by [`command_in`]) in a new process group
    /// and kills that group when the lab is dropped.
    pub fn spawn(&mut self, cmd: &mut Command) -> Result<Child> {
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        self.spawned.push(child.id());
        Ok(child)
    }

    fn teardown(&mut self) -> Result<()> {
        // Our nginx children: kill and reap.
        self.servers.clear();
        // Children handed out by `spawn`: kill their groups, but only while
        // the pid is inside our namespaces: one already reaped may belong to
        // another test's child by now.
        for &pid in &self.spawned {
            let ours = netns::pid_in_namespaces(pid, &self.namespaces);
            if ours && let Ok(pgid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) of a process group we created.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
        for slot in &mut self.pass_programs {
            *slot = None;
        }
        // Pins of lab daemons (a daemon removes its own; this catches a
        // daemon that was leaked).
        if let Ok(entries) = fs::read_dir(netns::BPFFS) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&self.prefix))
                {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        // The namespaces, and anything else still running inside them.
        let removed_namespaces = netns::remove_namespaces(&self.namespaces);
        let removed = match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.dir.display()))
            }
            _ => Ok(()),
        };
        removed_namespaces?;
        removed
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("lb-lab: tearing down lab {}: {e:#}", self.prefix);
        }
    }
}

fn real_name(i: usize) -> String {
    format!("real-{i}")
}

// The demo moves a lab between threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Lab>();
};
