//! The config file's error corpus: for each bad file, the exact line, the
//! field path and a phrase of the message; plus the good files (the
//! annotated example among them) that must parse.

use std::{fmt::Write as _, path::Path};

use lb_daemon::config::{self, ConfigError, Environment};
use lb_daemon::health::spec::{CheckKind, CheckSpec};

/// Interfaces named `eth*` exist, nothing else does.
struct FakeEnv;

impl Environment for FakeEnv {
    fn interface_exists(&self, name: &str) -> bool {
        name.starts_with("eth")
    }
}

/// Lines 1 and 2 of most cases.
macro_rules! dataplane {
    () => {
        "[dataplane]\ninterfaces = [\"eth0\"]\n"
    };
}

/// Lines 1 to 5: `dataplane!()` and an IPv4 service on port 80, so that
/// what follows starts at line 6.
macro_rules! web {
    () => {
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n"
        )
    };
}

struct Case {
    name: &'static str,
    text: &'static str,
    line: usize,
    field: &'static str,
    phrase: &'static str,
}

const CASES: &[Case] = &[
    // --- TOML itself ---
    Case {
        name: "syntax error: unquoted string",
        text: concat!(dataplane!(), "xdp_mode = driver\n"),
        line: 3,
        field: "",
        phrase: "quoted",
    },
    Case {
        name: "syntax error: duplicate key",
        text: concat!(
            dataplane!(),
            "\n[daemon]\npin_path = \"/a\"\npin_path = \"/b\"\n"
        ),
        line: 6,
        field: "",
        phrase: "duplicate key: `pin_path`",
    },
    // --- unknown fields, at every level ---
    Case {
        name: "unknown top-level table",
        text: concat!(dataplane!(), "[[servce]]\nvip = \"192.0.2.10\"\n"),
        line: 3,
        field: "servce",
        phrase: "unknown field `servce`",
    },
    Case {
        name: "unknown field in [daemon]",
        text: concat!("[daemon]\nadmin_sock = \"/run/x.sock\"\n", dataplane!()),
        line: 2,
        field: "daemon.admin_sock",
        phrase: "unknown field `admin_sock`",
    },
    Case {
        name: "unknown field in [[service]]",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nsheduler = \"rr\"\n"
        ),
        line: 6,
        field: "service[0].sheduler",
        phrase: "unknown field `sheduler`",
    },
    Case {
        name: "unknown field in a real",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\nwieght = 3\n",
        ),
        line: 10,
        field: "service[0].real[1].wieght",
        phrase: "unknown field `wieght`",
    },
    Case {
        name: "unknown field in an inline real",
        text: concat!(
            "service = [{ vip = \"192.0.2.10\", port = 80, real = [{ address = \"198.51.100.1\" },\n",
            "  { address = \"198.51.100.2\", wieght = 3 }] }]\n",
            dataplane!(),
        ),
        line: 2,
        field: "service[0].real[1].wieght",
        phrase: "unknown field `wieght`",
    },
    // --- wrong types ---
    Case {
        name: "port as a string",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = \"80\"\n"
        ),
        line: 5,
        field: "service[0].port",
        phrase: "invalid type: string \"80\", expected an integer",
    },
    Case {
        name: "duration as a number",
        text: concat!(dataplane!(), "[timeouts]\ntcp = 900\n"),
        line: 4,
        field: "timeouts.tcp",
        phrase: "a duration is a string",
    },
    Case {
        name: "interface list as a string",
        text: "[dataplane]\ninterfaces = \"eth0\"\n",
        line: 2,
        field: "dataplane.interfaces",
        phrase: "invalid type: string \"eth0\", expected an array",
    },
    Case {
        name: "interface name as a number",
        text: "[dataplane]\ninterfaces = [\"eth0\", 1]\n",
        line: 2,
        field: "dataplane.interfaces[1]",
        phrase: "invalid type: integer `1`",
    },
    Case {
        name: "boolean as a string",
        text: concat!(dataplane!(), "xdp_fallback = \"yes\"\n"),
        line: 3,
        field: "dataplane.xdp_fallback",
        phrase: "expected a boolean",
    },
    Case {
        name: "service written as a single table",
        text: concat!(dataplane!(), "[service]\nvip = \"192.0.2.10\"\nport = 80\n"),
        line: 3,
        field: "service",
        phrase: "expected [[service]] tables",
    },
    // --- missing required fields ---
    Case {
        name: "no [dataplane] table",
        text: "[daemon]\npin_path = \"/sys/fs/bpf/lbd\"\n",
        line: 1,
        field: "dataplane.interfaces",
        phrase: "no [dataplane] table",
    },
    Case {
        name: "[dataplane] without interfaces",
        text: "[daemon]\n\n[dataplane]\nxdp_mode = \"generic\"\n",
        line: 3,
        field: "dataplane.interfaces",
        phrase: "missing required field `interfaces`",
    },
    Case {
        name: "service without vip",
        text: concat!(dataplane!(), "\n[[service]]\nport = 80\n"),
        line: 4,
        field: "service[0].vip",
        phrase: "missing required field `vip`",
    },
    Case {
        name: "service without port",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service]]\nvip = \"192.0.2.11\"\n",
        ),
        line: 6,
        field: "service[1].port",
        phrase: "missing required field `port`",
    },
    Case {
        name: "real without address",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\nweight = 2\n",
        ),
        line: 6,
        field: "service[0].real[0].address",
        phrase: "missing required field `address`",
    },
    // --- addresses ---
    Case {
        name: "bad VIP",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.256\"\nport = 80\n"
        ),
        line: 4,
        field: "service[0].vip",
        phrase: "\"192.0.2.256\" is not an IP address",
    },
    Case {
        name: "bad real address",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"web-1\"\n",
        ),
        line: 7,
        field: "service[0].real[0].address",
        phrase: "\"web-1\" is not an IP address",
    },
    Case {
        name: "multicast VIP",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"224.0.0.1\"\nport = 80\n"
        ),
        line: 4,
        field: "service[0].vip",
        phrase: "224.0.0.1 is a multicast address",
    },
    Case {
        name: "IPv6 real under an IPv4 VIP",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service.real]]\naddress = \"2001:db8::1\"\n",
        ),
        line: 9,
        field: "service[0].real[1].address",
        phrase: "IPv4 VIP 192.0.2.10 cannot have IPv6 real 2001:db8::1",
    },
    Case {
        name: "IPv4 real under an IPv6 VIP",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"2001:db8::10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
        ),
        line: 7,
        field: "service[0].real[0].address",
        phrase: "IPv6 VIP 2001:db8::10 cannot have IPv4 real",
    },
    Case {
        name: "bad metrics address",
        text: concat!(
            "[daemon]\nmetrics_address = \"localhost:9140\"\n",
            dataplane!()
        ),
        line: 2,
        field: "daemon.metrics_address",
        phrase: "not an address and port",
    },
    Case {
        name: "metrics address without port",
        text: concat!("[daemon]\nmetrics_address = \"127.0.0.1\"\n", dataplane!()),
        line: 2,
        field: "daemon.metrics_address",
        phrase: "expected IP:PORT",
    },
    Case {
        name: "relative admin socket",
        text: concat!("[daemon]\nadmin_socket = \"lbd.sock\"\n", dataplane!()),
        line: 2,
        field: "daemon.admin_socket",
        phrase: "not an absolute path",
    },
    Case {
        name: "bad MAC",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nmac = \"02:00:00:00:11\"\n",
        ),
        line: 8,
        field: "service[0].real[0].mac",
        phrase: "not a MAC address",
    },
    Case {
        name: "broadcast MAC",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nmac = \"ff:ff:ff:ff:ff:ff\"\n",
        ),
        line: 8,
        field: "service[0].real[0].mac",
        phrase: "multicast/broadcast",
    },
    // --- duplicates ---
    Case {
        name: "duplicate service (same VIP written differently, tcp implied)",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"2001:db8::0200\"\nport = 80\n",
            "[[service]]\nvip = \"2001:db8::200\"\nport = 443\n",
            "\n[[service]]\nvip = \"2001:db8::200\"\nport = 80\nprotocol = \"tcp\"\n",
        ),
        line: 10,
        field: "service[2]",
        phrase: "duplicate service [2001:db8::200]:80/tcp (already defined by service[0] at line 3)",
    },
    Case {
        name: "duplicate real (port implied on one, written on the other)",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nport = 80\n",
        ),
        line: 10,
        field: "service[0].real[2]",
        phrase: "duplicate real 198.51.100.1:80 (already defined by service[0].real[0] at line 6)",
    },
    Case {
        name: "duplicate interface",
        text: "[dataplane]\ninterfaces = [\"eth0\", \"eth1\", \"eth0\"]\n",
        line: 2,
        field: "dataplane.interfaces[2]",
        phrase: "duplicate interface \"eth0\" (also dataplane.interfaces[0])",
    },
    // --- ranges ---
    Case {
        name: "weight too large",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nweight = 65536\n",
        ),
        line: 8,
        field: "service[0].real[0].weight",
        phrase: "weight 65536 is out of range 0..=65535",
    },
    Case {
        name: "negative weight",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nweight = -1\n",
        ),
        line: 8,
        field: "service[0].real[0].weight",
        phrase: "weight -1 is out of range",
    },
    Case {
        name: "service port 0",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 0\n"
        ),
        line: 5,
        field: "service[0].port",
        phrase: "port 0 is out of range 1..=65535",
    },
    Case {
        name: "service port too large",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 65536\n"
        ),
        line: 5,
        field: "service[0].port",
        phrase: "port 65536 is out of range",
    },
    Case {
        name: "real port different from the service port",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nport = 8080\n",
        ),
        line: 8,
        field: "service[0].real[0].port",
        phrase: "cannot translate ports",
    },
    Case {
        name: "conntrack_size too small",
        text: concat!(dataplane!(), "conntrack_size = 1000\n"),
        line: 3,
        field: "dataplane.conntrack_size",
        phrase: "conntrack_size 1000 is out of range 1024..=100000000",
    },
    Case {
        name: "conntrack_size too large",
        text: concat!(dataplane!(), "conntrack_size = 100000001\n"),
        line: 3,
        field: "dataplane.conntrack_size",
        phrase: "out of range",
    },
    Case {
        name: "max_reals too small",
        text: concat!(dataplane!(), "max_reals = 8\n"),
        line: 3,
        field: "dataplane.max_reals",
        phrase: "max_reals 8 is out of range 16..=1048576",
    },
    Case {
        name: "max_services zero",
        text: concat!(dataplane!(), "max_services = 0\n"),
        line: 3,
        field: "dataplane.max_services",
        phrase: "max_services 0 is out of range 1..=65536",
    },
    Case {
        name: "more services than max_services",
        text: concat!(
            dataplane!(),
            "max_services = 1\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 443\n",
        ),
        line: 7,
        field: "service[1]",
        phrase: "too many services",
    },
    // --- schedulers and tables ---
    Case {
        name: "unknown scheduler",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nscheduler = \"lblc\"\n"
        ),
        line: 6,
        field: "service[0].scheduler",
        phrase: "unknown scheduler `lblc` (expected one of rr, wrr, lc, wlc, maglev, sh)",
    },
    Case {
        name: "unknown protocol",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nprotocol = \"sctp\"\n"
        ),
        line: 6,
        field: "service[0].protocol",
        phrase: "unknown protocol \"sctp\"",
    },
    Case {
        name: "table_size on a wlc service (the default scheduler)",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\ntable_size = 65537\n"
        ),
        line: 6,
        field: "service[0].table_size",
        phrase: "only applies to the maglev and sh schedulers (this service uses wlc)",
    },
    Case {
        name: "table_size not prime",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nscheduler = \"maglev\"\ntable_size = 65536\n",
        ),
        line: 7,
        field: "service[0].table_size",
        phrase: "table_size 65536 is not prime",
    },
    Case {
        name: "table_size too small",
        text: concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nscheduler = \"sh\"\ntable_size = 251\n",
        ),
        line: 7,
        field: "service[0].table_size",
        phrase: "out of range 257..=1000003",
    },
    // --- durations ---
    Case {
        name: "duration without unit",
        text: concat!(dataplane!(), "[timeouts]\nudp = \"300\"\n"),
        line: 4,
        field: "timeouts.udp",
        phrase: "missing unit",
    },
    Case {
        name: "half-open timeout of zero",
        text: concat!(dataplane!(), "[timeouts]\ntcp_syn = \"0s\"\n"),
        line: 4,
        field: "timeouts.tcp_syn",
        phrase: "greater than zero",
    },
    Case {
        name: "duration with unknown unit",
        text: concat!(dataplane!(), "[timeouts]\ntcp_closing = \"2d\"\n"),
        line: 4,
        field: "timeouts.tcp_closing",
        phrase: "unknown unit `d`",
    },
    Case {
        name: "negative duration",
        text: concat!("[daemon]\nneighbour_refresh = \"-1s\"\n", dataplane!()),
        line: 2,
        field: "daemon.neighbour_refresh",
        phrase: "negative",
    },
    Case {
        name: "empty duration",
        text: concat!(dataplane!(), "[timeouts]\ntcp = \"\"\n"),
        line: 4,
        field: "timeouts.tcp",
        phrase: "empty duration",
    },
    Case {
        name: "zero duration",
        text: concat!(dataplane!(), "[timeouts]\nageing_interval = \"0ms\"\n"),
        line: 4,
        field: "timeouts.ageing_interval",
        phrase: "greater than zero",
    },
    // --- interfaces ---
    Case {
        name: "unknown interface",
        text: "[dataplane]\ninterfaces = [\n  \"eth0\",\n  \"wlan0\",\n]\n",
        line: 4,
        field: "dataplane.interfaces[1]",
        phrase: "interface \"wlan0\" does not exist",
    },
    Case {
        name: "too many interfaces",
        text: "[dataplane]\ninterfaces = [\"eth0\", \"eth1\", \"eth2\", \"eth3\", \"eth4\", \"eth5\", \"eth6\", \"eth7\", \"eth8\"]\n",
        line: 2,
        field: "dataplane.interfaces",
        phrase: "too many interfaces: 9 (at most 8)",
    },
    Case {
        name: "no interfaces",
        text: "[dataplane]\ninterfaces = []\n",
        line: 2,
        field: "dataplane.interfaces",
        phrase: "at least one interface",
    },
    Case {
        name: "interface name too long",
        text: "[dataplane]\ninterfaces = [\"eth0123456789abcdef\"]\n",
        line: 2,
        field: "dataplane.interfaces[0]",
        phrase: "not a valid interface name",
    },
    Case {
        name: "unknown XDP mode",
        text: concat!(dataplane!(), "xdp_mode = \"native\"\n"),
        line: 3,
        field: "dataplane.xdp_mode",
        phrase: "expected \"driver\" or \"generic\"",
    },
    // --- health settings of a service ---
    Case {
        name: "unknown on_down",
        text: concat!(web!(), "on_down = \"drop\"\n"),
        line: 6,
        field: "service[0].on_down",
        phrase: "unknown on_down \"drop\" (expected \"reroute\" or \"keep\")",
    },
    Case {
        name: "min_primaries zero",
        text: concat!(web!(), "min_primaries = 0\n"),
        line: 6,
        field: "service[0].min_primaries",
        phrase: "min_primaries 0 is out of range 1..=65535",
    },
    Case {
        name: "min_primaries too large",
        text: concat!(web!(), "min_primaries = 65536\n"),
        line: 6,
        field: "service[0].min_primaries",
        phrase: "out of range 1..=65535",
    },
    Case {
        name: "zero slow_start",
        text: concat!(web!(), "slow_start = \"0s\"\n"),
        line: 6,
        field: "service[0].slow_start",
        phrase: "greater than zero",
    },
    Case {
        name: "slow_start without unit",
        text: concat!(web!(), "slow_start = \"30\"\n"),
        line: 6,
        field: "service[0].slow_start",
        phrase: "missing unit",
    },
    Case {
        name: "drain_timeout as a number",
        text: concat!(web!(), "drain_timeout = 300\n"),
        line: 6,
        field: "service[0].drain_timeout",
        phrase: "a duration is a string",
    },
    Case {
        name: "zero drain_timeout",
        text: concat!(web!(), "drain_timeout = \"0m\"\n"),
        line: 6,
        field: "service[0].drain_timeout",
        phrase: "greater than zero",
    },
    Case {
        name: "fallback not an address",
        text: concat!(web!(), "fallback = \"sorry.example.com\"\n"),
        line: 6,
        field: "service[0].fallback",
        phrase: "\"sorry.example.com\" is not an IP address",
    },
    Case {
        name: "fallback of the other family",
        text: concat!(web!(), "fallback = \"2001:db8::99\"\n"),
        line: 6,
        field: "service[0].fallback",
        phrase: "IPv4 VIP 192.0.2.10 cannot have IPv6 fallback 2001:db8::99",
    },
    Case {
        name: "fallback is the VIP",
        text: concat!(web!(), "fallback = \"192.0.2.10\"\n"),
        line: 6,
        field: "service[0].fallback",
        phrase: "is the service's own VIP",
    },
    Case {
        name: "fallback is one of the reals",
        text: concat!(
            web!(),
            "fallback = \"198.51.100.2\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\n",
        ),
        line: 6,
        field: "service[0].fallback",
        phrase: "the fallback 198.51.100.2 is also a real of this service",
    },
    Case {
        name: "multicast fallback",
        text: concat!(web!(), "fallback = \"239.1.1.1\"\n"),
        line: 6,
        field: "service[0].fallback",
        phrase: "a multicast address",
    },
    Case {
        name: "bad fallback_mac",
        text: concat!(
            web!(),
            "fallback = \"198.51.100.99\"\nfallback_mac = \"ff:ff:ff:ff:ff:ff\"\n"
        ),
        line: 7,
        field: "service[0].fallback_mac",
        phrase: "multicast/broadcast MAC address",
    },
    Case {
        name: "fallback_mac without fallback",
        text: concat!(web!(), "fallback_mac = \"02:00:00:00:00:99\"\n"),
        line: 6,
        field: "service[0].fallback_mac",
        phrase: "fallback_mac without fallback",
    },
    // --- [service.check] ---
    Case {
        name: "unknown field in [service.check]",
        text: concat!(web!(), "[service.check]\nkind = \"http\"\npaht = \"/\"\n"),
        line: 8,
        field: "service[0].check.paht",
        phrase: "unknown field `paht`",
    },
    Case {
        name: "check written as a string",
        text: concat!(web!(), "check = \"tcp\"\n"),
        line: 6,
        field: "service[0].check",
        phrase: "expected a check table",
    },
    Case {
        name: "unknown check kind",
        text: concat!(web!(), "[service.check]\nkind = \"icmp\"\n"),
        line: 7,
        field: "service[0].check.kind",
        phrase: "unknown check kind \"icmp\" (expected \"none\", \"tcp\", \"http\", \"https\", \"command\", \"udp\" or \"dns\")",
    },
    Case {
        name: "unknown dns query type",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"dns\"\nquery_name = \"a.test\"\nquery_type = \"AXFR\"\n"
        ),
        line: 9,
        field: "service[0].check.query_type",
        phrase: "unknown query type \"AXFR\"",
    },
    Case {
        name: "bad dns rcode",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"dns\"\nquery_name = \"a.test\"\nexpect_rcode = \"OK\"\n"
        ),
        line: 9,
        field: "service[0].check.expect_rcode",
        phrase: "unknown response code \"OK\"",
    },
    Case {
        name: "dns check without a name",
        text: concat!(web!(), "[service.check]\nkind = \"dns\"\n"),
        line: 6,
        field: "service[0].check.query_name",
        phrase: "missing required field `query_name`",
    },
    Case {
        name: "udp check without a payload",
        text: concat!(web!(), "[service.check]\nkind = \"udp\"\n"),
        line: 6,
        field: "service[0].check.payload",
        phrase: "missing required field `payload`",
    },
    Case {
        name: "check port 0",
        text: concat!(web!(), "[service.check]\nport = 0\n"),
        line: 7,
        field: "service[0].check.port",
        phrase: "port 0 is out of range 1..=65535",
    },
    Case {
        name: "interval as a number",
        text: concat!(web!(), "[service.check]\ninterval = 1\n"),
        line: 7,
        field: "service[0].check.interval",
        phrase: "a duration is a string",
    },
    Case {
        name: "zero timeout",
        text: concat!(web!(), "[service.check]\ntimeout = \"0ms\"\n"),
        line: 7,
        field: "service[0].check.timeout",
        phrase: "greater than zero",
    },
    Case {
        name: "timeout longer than the interval",
        text: concat!(
            web!(),
            "[service.check]\ninterval = \"2s\"\ntimeout = \"3s\"\n"
        ),
        line: 8,
        field: "service[0].check.timeout",
        phrase: "timeout 3s is longer than the interval 2s: a probe must end before the next one starts",
    },
    Case {
        name: "timeout longer than the default interval",
        text: concat!(web!(), "[service.check]\ntimeout = \"1500ms\"\n"),
        line: 7,
        field: "service[0].check.timeout",
        phrase: "timeout 1s500ms is longer than the interval 1s (the default)",
    },
    Case {
        name: "interval shorter than the default timeout",
        text: concat!(web!(), "[service.check]\ninterval = \"500ms\"\n"),
        line: 7,
        field: "service[0].check.interval",
        phrase: "interval 500ms is shorter than the timeout 800ms (the default)",
    },
    Case {
        name: "rise zero",
        text: concat!(web!(), "[service.check]\nrise = 0\n"),
        line: 7,
        field: "service[0].check.rise",
        phrase: "rise 0 is out of range 1..=100",
    },
    Case {
        name: "fall too large",
        text: concat!(web!(), "[service.check]\nfall = 101\n"),
        line: 7,
        field: "service[0].check.fall",
        phrase: "fall 101 is out of range 1..=100",
    },
    Case {
        name: "path on the default (tcp) check",
        text: concat!(web!(), "[service.check]\npath = \"/healthz\"\n"),
        line: 7,
        field: "service[0].check.path",
        phrase: "`path` does not apply to kind \"tcp\" (the default kind); it is for http and https checks",
    },
    Case {
        name: "expect_status on a tcp check",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"tcp\"\nexpect_status = [200]\n"
        ),
        line: 8,
        field: "service[0].check.expect_status",
        phrase: "`expect_status` does not apply to kind \"tcp\"",
    },
    Case {
        name: "verify_tls on an http check",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\nverify_tls = false\n"
        ),
        line: 8,
        field: "service[0].check.verify_tls",
        phrase: "it is for https checks",
    },
    Case {
        name: "command on an http check",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\ncommand = [\"/bin/true\"]\n"
        ),
        line: 8,
        field: "service[0].check.command",
        phrase: "it is for command checks",
    },
    Case {
        name: "interval on a check of kind none",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"none\"\ninterval = \"5s\"\n"
        ),
        line: 8,
        field: "service[0].check.interval",
        phrase: "`interval` does not apply to kind \"none\": no checks are run",
    },
    Case {
        name: "path without a leading slash",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\npath = \"healthz\"\n"
        ),
        line: 8,
        field: "service[0].check.path",
        phrase: "\"healthz\" is not a request path: it must start with \"/\"",
    },
    Case {
        name: "path with a space (request line injection)",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\npath = \"/ HTTP/1.0\\r\\nX: y\"\n"
        ),
        line: 8,
        field: "service[0].check.path",
        phrase: "contains a space, a control character or a non-ASCII character",
    },
    Case {
        name: "host with a header injected",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"https\"\nhost = \"a\\r\\nX-Evil: 1\"\n"
        ),
        line: 8,
        field: "service[0].check.host",
        phrase: "is not a host name",
    },
    Case {
        name: "status code out of range",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\nexpect_status = [200, 600]\n"
        ),
        line: 8,
        field: "service[0].check.expect_status[1]",
        phrase: "status 600 is out of range 100..=599",
    },
    Case {
        name: "duplicate status code",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\nexpect_status = [\n  200,\n  204,\n  200,\n]\n"
        ),
        line: 11,
        field: "service[0].check.expect_status[2]",
        phrase: "duplicate status 200 (also service[0].check.expect_status[0])",
    },
    Case {
        name: "expect_status as a number",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\nexpect_status = 200\n"
        ),
        line: 8,
        field: "service[0].check.expect_status",
        phrase: "expected an array",
    },
    Case {
        name: "empty expect_body",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"http\"\nexpect_body = \"\"\n"
        ),
        line: 8,
        field: "service[0].check.expect_body",
        phrase: "must not be empty",
    },
    Case {
        name: "command check without command",
        text: concat!(web!(), "\n[service.check]\nkind = \"command\"\n"),
        line: 7,
        field: "service[0].check.command",
        phrase: "missing required field `command`",
    },
    Case {
        name: "empty command",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"command\"\ncommand = []\n"
        ),
        line: 8,
        field: "service[0].check.command",
        phrase: "the command is empty",
    },
    Case {
        name: "command with a relative program",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"command\"\ncommand = [\"check-db\", \"--quick\"]\n"
        ),
        line: 8,
        field: "service[0].check.command[0]",
        phrase: "\"check-db\" is not an absolute path: the program is run directly, neither looked up in PATH nor run through a shell",
    },
    Case {
        name: "command as a shell line",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"command\"\ncommand = \"/usr/local/bin/check-db --quick\"\n"
        ),
        line: 8,
        field: "service[0].check.command",
        phrase: "expected an array",
    },
    Case {
        name: "command argument with a NUL",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"command\"\ncommand = [\"/bin/check\",\n  \"a\\u0000b\"]\n"
        ),
        line: 9,
        field: "service[0].check.command[1]",
        phrase: "contains a NUL character",
    },
    // --- a real's check ---
    Case {
        name: "unknown field in an inline real check",
        text: concat!(
            web!(),
            "[[service.real]]\naddress = \"198.51.100.1\"\ncheck = { intervall = \"2s\" }\n"
        ),
        line: 8,
        field: "service[0].real[0].check.intervall",
        phrase: "unknown field `intervall`",
    },
    Case {
        name: "unknown field in a [service.real.check] table",
        text: concat!(
            web!(),
            "[[service.real]]\naddress = \"198.51.100.1\"\n[service.real.check]\nrise = 3\nfal = 3\n"
        ),
        line: 10,
        field: "service[0].real[0].check.fal",
        phrase: "unknown field `fal`",
    },
    Case {
        name: "a real's path under the service's tcp kind",
        text: concat!(
            web!(),
            "[service.check]\nkind = \"tcp\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\ncheck = { path = \"/healthz\" }\n",
        ),
        line: 12,
        field: "service[0].real[1].check.path",
        phrase: "`path` does not apply to kind \"tcp\" (the kind of service[0].check)",
    },
    Case {
        name: "a real's interval shorter than the service's timeout",
        text: concat!(
            web!(),
            "[service.check]\ninterval = \"5s\"\ntimeout = \"2s\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n[service.real.check]\ninterval = \"1s\"\n",
        ),
        line: 12,
        field: "service[0].real[0].check.interval",
        phrase: "interval 1s is shorter than the timeout 2s (from service[0].check)",
    },
    Case {
        name: "a real's timeout longer than the service's interval",
        text: concat!(
            web!(),
            "[service.check]\ninterval = \"2s\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\ncheck = { timeout = \"3s\" }\n",
        ),
        line: 10,
        field: "service[0].real[0].check.timeout",
        phrase: "timeout 3s is longer than the interval 2s (from service[0].check)",
    },
    Case {
        name: "a real switching to a command check without a command",
        text: concat!(
            web!(),
            "[[service.real]]\naddress = \"198.51.100.1\"\ncheck = { kind = \"command\" }\n"
        ),
        line: 8,
        field: "service[0].real[0].check.command",
        phrase: "missing required field `command`",
    },
    Case {
        name: "a real's port on a check of kind none",
        text: concat!(
            web!(),
            "[[service.real]]\naddress = \"198.51.100.1\"\ncheck = { kind = \"none\", port = 81 }\n"
        ),
        line: 8,
        field: "service[0].real[0].check.port",
        phrase: "does not apply to kind \"none\"",
    },
    Case {
        name: "a real's check rise out of range",
        text: concat!(
            web!(),
            "[[service.real]]\naddress = \"198.51.100.1\"\ncheck = { rise = 1000 }\n"
        ),
        line: 8,
        field: "service[0].real[0].check.rise",
        phrase: "rise 1000 is out of range 1..=100",
    },
    // --- [service.damping] ---
    Case {
        name: "unknown field in [service.damping]",
        text: concat!(web!(), "[service.damping]\nhalflife = \"30s\"\n"),
        line: 7,
        field: "service[0].damping.halflife",
        phrase: "unknown field `halflife`",
    },
    Case {
        name: "damping penalty as a float",
        text: concat!(web!(), "[service.damping]\npenalty = 1000.0\n"),
        line: 7,
        field: "service[0].damping.penalty",
        phrase: "expected an integer",
    },
    Case {
        name: "damping penalty zero",
        text: concat!(web!(), "[service.damping]\npenalty = 0\n"),
        line: 7,
        field: "service[0].damping.penalty",
        phrase: "penalty 0 is out of range 1..=1000000",
    },
    Case {
        name: "damping reuse not below suppress",
        text: concat!(web!(), "[service.damping]\nsuppress = 2000\nreuse = 2000\n"),
        line: 8,
        field: "service[0].damping.reuse",
        phrase: "reuse 2000 must be less than suppress 2000",
    },
    Case {
        name: "damping suppress below the default reuse",
        text: concat!(web!(), "[service.damping]\nsuppress = 500\n"),
        line: 7,
        field: "service[0].damping.suppress",
        phrase: "suppress 500 must be greater than reuse 750 (the default",
    },
    Case {
        name: "damping that can never hold a real down",
        text: concat!(web!(), "[service.damping]\nmax_suppress = \"30s\"\n"),
        line: 7,
        field: "service[0].damping.max_suppress",
        phrase: "a real could never be held down: the penalty is capped at reuse × 2^(max_suppress / half_life) = 1500, which does not exceed suppress 2000",
    },
    Case {
        name: "zero damping half_life",
        text: concat!(web!(), "[service.damping]\nhalf_life = \"0s\"\n"),
        line: 7,
        field: "service[0].damping.half_life",
        phrase: "greater than zero",
    },
    Case {
        name: "damping written as an array of tables",
        text: concat!(web!(), "[[service.damping]]\npenalty = 1\n"),
        line: 6,
        field: "service[0].damping",
        phrase: "expected a [service.damping] table, found an array (write [service.damping], not [[service.damping]])",
    },
    Case {
        name: "[daemon] written as an array of tables",
        text: concat!("[[daemon]]\npin_path = \"/sys/fs/bpf/lbd\"\n", dataplane!()),
        line: 1,
        field: "daemon",
        phrase: "expected a [daemon] table, found an array",
    },
    Case {
        name: "check written as an array of tables",
        text: concat!(web!(), "[[service.check]]\nkind = \"tcp\"\n"),
        line: 6,
        field: "service[0].check",
        phrase: "expected a [service.check] table, found an array",
    },
    // --- [vrrp] ---
    Case {
        name: "vrrp without vrid",
        text: concat!(dataplane!(), "[vrrp]\npriority = 150\n"),
        line: 3,
        field: "vrrp.vrid",
        phrase: "missing required field `vrid`",
    },
    Case {
        name: "vrrp vrid out of range",
        text: concat!(dataplane!(), "[vrrp]\nvrid = 256\n"),
        line: 4,
        field: "vrrp.vrid",
        phrase: "vrid 256 is out of range 1..=255",
    },
    Case {
        name: "vrrp priority 255 (address owner) refused",
        text: concat!(dataplane!(), "[vrrp]\nvrid = 51\npriority = 255\n"),
        line: 5,
        field: "vrrp.priority",
        phrase: "priority 255 is out of range 1..=254",
    },
    Case {
        name: "vrrp interval not in centiseconds",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\nadvert_interval = \"15ms\"\n"
        ),
        line: 5,
        field: "vrrp.advert_interval",
        phrase: "multiple of 10ms between 10ms and 40.95s",
    },
    Case {
        name: "vrrp interval too long",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\nadvert_interval = \"41s\"\n"
        ),
        line: 5,
        field: "vrrp.advert_interval",
        phrase: "multiple of 10ms between 10ms and 40.95s",
    },
    Case {
        name: "vrrp unknown family",
        text: concat!(dataplane!(), "[vrrp]\nvrid = 51\nfamily = \"inet\"\n"),
        line: 5,
        field: "vrrp.family",
        phrase: "unknown family \"inet\"",
    },
    Case {
        name: "vrrp unicast peer of the other family",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\nunicast_peers = [\"10.0.0.2\", \"fd00::2\"]\n"
        ),
        line: 5,
        field: "vrrp.unicast_peers[1]",
        phrase: "fd00::2 is not an IPv4 address (vrrp.family = \"ipv4\")",
    },
    Case {
        name: "vrrp unicast peer listed twice",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\nunicast_peers = [\"10.0.0.2\", \"10.0.0.2\"]\n"
        ),
        line: 5,
        field: "vrrp.unicast_peers[1]",
        phrase: "listed twice",
    },
    Case {
        name: "vrrp interface without the program",
        text: concat!(dataplane!(), "[vrrp]\nvrid = 51\ninterface = \"eth1\"\n"),
        line: 5,
        field: "vrrp.interface",
        phrase: "\"eth1\" is not one of dataplane.interfaces (eth0)",
    },
    Case {
        name: "vrrp unknown key",
        text: concat!(dataplane!(), "[vrrp]\nvrid = 51\nnopreempt = true\n"),
        line: 5,
        field: "vrrp.nopreempt",
        phrase: "unknown field `nopreempt`",
    },
    Case {
        name: "vrrp sync without key",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\n[vrrp.sync]\npeer = \"10.0.0.2\"\n"
        ),
        line: 5,
        field: "vrrp.sync.key",
        phrase: "missing required field `key`",
    },
    Case {
        name: "vrrp sync key too short",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\n[vrrp.sync]\npeer = \"10.0.0.2\"\nkey = \"short\"\n"
        ),
        line: 7,
        field: "vrrp.sync.key",
        phrase: "the key is 5 bytes long; use at least 16",
    },
    Case {
        name: "vrrp sync bad peer",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\n[vrrp.sync]\npeer = \"director-b\"\nkey = \"0123456789abcdef\"\n"
        ),
        line: 6,
        field: "vrrp.sync.peer",
        phrase: "\"director-b\" is not an IP address",
    },
    Case {
        name: "vrrp sync link-local peer",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\n[vrrp.sync]\npeer = \"fe80::2\"\nkey = \"0123456789abcdef\"\n"
        ),
        line: 6,
        field: "vrrp.sync.peer",
        phrase: "fe80::2 is link-local, which needs an interface",
    },
    Case {
        name: "vrrp sync zero interval",
        text: concat!(
            dataplane!(),
            "[vrrp]\nvrid = 51\n[vrrp.sync]\npeer = \"10.0.0.2\"\nkey = \"0123456789abcdef\"\ninterval = \"0s\"\n"
        ),
        line: 8,
        field: "vrrp.sync.interval",
        phrase: "greater than zero",
    },
];

#[test]
fn every_bad_config_is_reported_where_it_is() {
    let mut failures = Vec::new();
    for case in CASES {
        let errors: Vec<ConfigError> = match config::parse(case.text, "bad.toml", &FakeEnv) {
            Ok(_) => {
                failures.push(format!("{}: parsed without error", case.name));
                continue;
            }
            Err(e) => e.0,
        };
        let listing = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n    ");
        if errors.len() != 1 {
            failures.push(format!(
                "{}: expected exactly one error, got {}:\n    {listing}",
                case.name,
                errors.len()
            ));
            continue;
        }
        let e = &errors[0];
        if e.line != case.line || e.field != case.field || !e.message.contains(case.phrase) {
            failures.push(format!(
                "{}: expected line {} field {:?} with {:?}, got:\n    {listing}",
                case.name, case.line, case.field, case.phrase
            ));
        }
        if e.source_name != "bad.toml"
            || !e
                .to_string()
                .starts_with(&format!("bad.toml:{}: ", case.line))
        {
            failures.push(format!("{}: bad display {e}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Files that must parse: the boundaries of each range, and things that
/// look wrong but are allowed.
const GOOD: &[(&str, &str)] = &[
    (
        "a service with no reals (added later with lbctl)",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n"
        ),
    ),
    (
        "same VIP and port over tcp and udp",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 53\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 53\nprotocol = \"udp\"\n",
        ),
    ),
    (
        "the same real in two services",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service]]\nvip = \"192.0.2.11\"\nport = 80\n[[service.real]]\naddress = \"198.51.100.1\"\n",
        ),
    ),
    (
        "range boundaries",
        concat!(
            "[dataplane]\ninterfaces = [\"eth0\", \"eth1\", \"eth2\", \"eth3\", \"eth4\", \"eth5\", \"eth6\", \"eth7\"]\n",
            "conntrack_size = 1024\nmax_reals = 16\nmax_services = 65536\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 65535\nscheduler = \"maglev\"\ntable_size = 257\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\nweight = 0\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\nweight = 65535\nport = 65535\n",
            "[[service]]\nvip = \"192.0.2.11\"\nport = 1\nscheduler = \"sh\"\ntable_size = 1000003\n",
        ),
    ),
    (
        "durations in several units",
        concat!(
            dataplane!(),
            "[timeouts]\ntcp = \"1h30m\"\ntcp_syn = \"5s\"\ntcp_closing = \"90s\"\nudp = \"1m500ms\"\nageing_interval = \"250ms\"\n",
        ),
    ),
    (
        "every check kind",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n[service.check]\nkind = \"none\"\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 81\n[service.check]\nkind = \"tcp\"\nport = 9000\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 82\n[service.check]\nkind = \"http\"\npath = \"/healthz?deep=1&x=%20\"\nhost = \"[2001:db8::1]:8080\"\nexpect_status = []\nexpect_body = \"\\\"status\\\": \\\"up\\\"\"\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 83\n[service.check]\nkind = \"https\"\nhost = \"www.example.com\"\nverify_tls = false\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 84\n[service.check]\nkind = \"command\"\n",
            "command = [\"/usr/local/bin/check-db\", \"--query\", \"select 1; drop table x\", \"$(reboot)\"]\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 85\n[service.check]\n",
        ),
    ),
    (
        "check and health boundaries",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\nmin_primaries = 65535\nslow_start = \"1ms\"\ndrain_timeout = \"1ms\"\n",
            "[service.check]\nkind = \"http\"\nport = 65535\ninterval = \"1s\"\ntimeout = \"1s\"\nrise = 1\nfall = 100\nexpect_status = [100, 599]\n",
            "[service.damping]\npenalty = 1000000\nsuppress = 2\nreuse = 1\nhalf_life = \"1ms\"\nmax_suppress = \"2ms\"\n",
            "[[service]]\nvip = \"192.0.2.10\"\nport = 81\nmin_primaries = 1\n[service.check]\nrise = 100\nfall = 1\n",
        ),
    ),
    (
        "real checks in both forms, switching kind (inherited HTTP fields are dropped)",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
            "[service.check]\nkind = \"https\"\npath = \"/healthz\"\nverify_tls = false\ninterval = \"3s\"\ntimeout = \"2s\"\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n[service.real.check]\nkind = \"tcp\"\nport = 22\n",
            "[[service.real]]\naddress = \"198.51.100.2\"\ncheck = { kind = \"http\", interval = \"500ms\", timeout = \"500ms\" }\n",
            "[[service.real]]\naddress = \"198.51.100.3\"\ncheck = { kind = \"command\", command = [\"/bin/true\"] }\n",
            "[[service.real]]\naddress = \"198.51.100.4\"\ncheck = { kind = \"none\" }\n",
            "[[service.real]]\naddress = \"198.51.100.5\"\ncheck = {}\nbackup = true\n",
        ),
    ),
    (
        "empty damping table, keep on down, fallbacks of either family",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\non_down = \"keep\"\nfallback = \"198.51.100.99\"\n[service.damping]\n",
            "[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service]]\nvip = \"2001:db8::10\"\nport = 80\non_down = \"reroute\"\nfallback = \"2001:db8:1::99\"\nfallback_mac = \"02:00:00:00:00:99\"\n",
        ),
    ),
    (
        "the fallback may be a real of another service",
        concat!(
            dataplane!(),
            "[[service]]\nvip = \"192.0.2.10\"\nport = 80\n[[service.real]]\naddress = \"198.51.100.1\"\n",
            "[[service]]\nvip = \"192.0.2.11\"\nport = 80\nfallback = \"198.51.100.1\"\n",
        ),
    ),
];

#[test]
fn good_configs_parse() {
    for (name, text) in GOOD {
        if let Err(e) = config::parse(text, "good.toml", &FakeEnv) {
            panic!("{name}:\n{e}");
        }
    }
}

#[test]
fn the_annotated_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/lb.toml");
    let (config, text) = config::load(&path, &FakeEnv).unwrap_or_else(|e| panic!("{e}"));
    // It documents every option: each default is written out.
    for key in [
        "admin_socket",
        "pin_path",
        "metrics_address",
        "neighbour_refresh",
        "interfaces",
        "xdp_mode",
        "xdp_fallback",
        "conntrack_size",
        "max_reals",
        "max_services",
        "tcp",
        "tcp_syn",
        "tcp_closing",
        "udp",
        "ageing_interval",
        "vip",
        "port",
        "protocol",
        "scheduler",
        "table_size",
        "address",
        "weight",
        "backup",
        "mac",
        "check",
        "on_down",
        "min_primaries",
        "slow_start",
        "fallback",
        "fallback_mac",
        "drain_timeout",
        "kind",
        "interval",
        "timeout",
        "rise",
        "fall",
        "path",
        "host",
        "expect_status",
        "expect_body",
        "verify_tls",
        "command",
        "penalty",
        "suppress",
        "reuse",
        "half_life",
        "max_suppress",
    ] {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "lb.toml does not show `{key}`"
        );
    }
    // Written-out defaults are the defaults.
    let defaults = config::Config::default();
    assert_eq!(config.daemon, defaults.daemon);
    assert_eq!(config.timeouts, defaults.timeouts);
    assert_eq!(
        config.dataplane,
        config::DataplaneConfig {
            interfaces: vec!["eth0".into()],
            ..defaults.dataplane
        }
    );
    // Two services: IPv4 wlc with three reals (one a backup), IPv6 maglev.
    assert_eq!(config.services.len(), 2);
    let (v4, v6) = (&config.services[0], &config.services[1]);
    assert!(v4.addr.vip.is_ipv4() && v4.scheduler.name() == "wlc");
    assert_eq!(v4.reals.len(), 3);
    assert_eq!(v4.reals.iter().filter(|r| r.backup).count(), 1);
    assert!(v6.addr.vip.is_ipv6() && v6.scheduler.name() == "maglev");
    assert!(!v6.reals.is_empty());
}

#[test]
fn the_annotated_example_shows_health_checks() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/lb.toml");
    let (config, _) = config::load(&path, &FakeEnv).unwrap_or_else(|e| panic!("{e}"));
    let (v4, v6) = (&config.services[0], &config.services[1]);
    // The web service's written-out defaults are the defaults, its check
    // is HTTP, with a fallback; the DNS service's is TCP.
    let web_defaults = config::ServiceConfig::new(v4.addr);
    assert_eq!(v4.on_down, web_defaults.on_down);
    assert_eq!(v4.min_primaries, web_defaults.min_primaries);
    assert_eq!(v4.drain_timeout, web_defaults.drain_timeout);
    assert_eq!(v4.damping, Some(config::DampingConfig::default()));
    assert!(v4.slow_start.is_some() && v4.fallback.is_some_and(|f| f.mac.is_some()));
    let defaults = CheckSpec::default();
    assert_eq!(
        (
            v4.check.interval,
            v4.check.timeout,
            v4.check.rise,
            v4.check.fall
        ),
        (
            defaults.interval,
            defaults.timeout,
            defaults.rise,
            defaults.fall
        )
    );
    let CheckKind::Http(http) = &v4.check.kind else {
        panic!("{:?}", v4.check);
    };
    assert_eq!(http.path, "/healthz");
    // The reals' own checks: a faster one, and https on the spare.
    assert_eq!(v4.reals[0].check, None);
    assert!(
        v4.reals[1]
            .check
            .as_ref()
            .is_some_and(|c| c.interval < v4.check.interval)
    );
    let spare = v4.check_for(&v4.reals[2]);
    assert!(matches!(&spare.kind, CheckKind::Https(h) if !h.verify_tls && h.path == "/healthz"));
    assert!(
        matches!(&v6.check.kind, CheckKind::Dns(d) if d.qtype == 28 && d.expect_address.is_some()),
        "{:?}",
        v6.check.kind
    );
    assert!(v6.fallback.is_none() && v6.damping.is_none());
    let kinds: Vec<&CheckKind> = v6.reals.iter().map(|r| &v6.check_for(r).kind).collect();
    assert!(
        matches!(
            kinds[..],
            [
                CheckKind::Dns(_),
                CheckKind::Command { .. },
                CheckKind::Tcp,
                CheckKind::Udp(_),
                CheckKind::None
            ]
        ),
        "{kinds:?}"
    );
}

/// The one error of a generated config.
fn only_error(text: &str) -> ConfigError {
    let errors = config::parse(text, "gen.toml", &FakeEnv)
        .expect_err("refused")
        .0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn what_the_data_path_cannot_hold_is_refused_where_it_is_written() {
    // 257 reals behind wlc: one more than a least-connection scan covers.
    let mut text = String::from(
        "[dataplane]\ninterfaces = [\"eth0\"]\n\n[[service]]\nvip = \"192.0.2.10\"\nport = 80\n",
    );
    for i in 0..257 {
        let _ = write!(
            text,
            "[[service.real]]\naddress = \"10.1.{}.{}\"\n",
            i / 200,
            1 + i % 200
        );
    }
    let e = only_error(&text);
    assert_eq!((e.line, e.field.as_str()), (4, "service[0].real"), "{e}");
    assert!(e.message.contains("at most 256 reals"), "{e}");

    // Maglev rings beyond the scheduling table (with room to rebuild one):
    // the first service that does not fit is named.
    let mut text = String::from("[dataplane]\ninterfaces = [\"eth0\"]\n");
    for i in 0..64 {
        let _ = write!(
            text,
            "[[service]]\nvip = \"192.0.2.{}\"\nport = 80\nscheduler = \"maglev\"\n",
            i + 1
        );
    }
    let e = only_error(&text);
    // 64 slots of padding per 65537-slot ring: 62 rings + 1 spare fit.
    assert_eq!(e.field, "service[62].table_size", "{e}");
    assert_eq!(e.line, 3 + 62 * 4, "{e}");
    assert!(e.message.contains("rebuild"), "{e}");

    // A socket path longer than sockaddr_un allows.
    let text = format!(
        "[daemon]\nadmin_socket = \"/run/{}\"\n[dataplane]\ninterfaces = [\"eth0\"]\n",
        "x".repeat(110)
    );
    let e = only_error(&text);
    assert_eq!(
        (e.line, e.field.as_str()),
        (2, "daemon.admin_socket"),
        "{e}"
    );
}

/// The `[vrrp]` block of the annotated example is commented out (the
/// example is a single director); uncommented, it parses to the documented
/// defaults.
#[test]
fn the_annotated_vrrp_block_parses_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/lb.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("# [vrrp]\n").expect("a [vrrp] block");
    let end = start + text[start..].find("\n\n").expect("the block's end");
    let mut settings = String::new();
    for line in text[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
    {
        settings.push_str(line);
        settings.push('\n');
    }
    let file = format!("{}{settings}", dataplane!());
    let config =
        config::parse(&file, "lb.toml [vrrp]", &FakeEnv).unwrap_or_else(|e| panic!("{e}\n{file}"));
    let vrrp = config.vrrp.expect("vrrp");
    let defaults = config::VrrpConfig::new(51);
    assert_eq!(vrrp.vrid, 51);
    assert_eq!(vrrp.priority, defaults.priority);
    assert_eq!(vrrp.advert_interval, defaults.advert_interval);
    assert_eq!(
        (vrrp.preempt, vrrp.preempt_delay),
        (defaults.preempt, defaults.preempt_delay)
    );
    assert_eq!(vrrp.family, defaults.family);
    let sync = vrrp.sync.expect("sync");
    assert_eq!(sync.port, config::DEFAULT_SYNC_PORT);
    assert_eq!(sync.interval, config::DEFAULT_SYNC_INTERVAL);
    assert_eq!(
        sync.wait_before_preempt,
        config::DEFAULT_WAIT_BEFORE_PREEMPT
    );
    for key in [
        "interface",
        "unicast_peers",
        "source_address",
        "peer",
        "listen",
        "key",
    ] {
        assert!(
            settings.contains(&format!("{key} = ")),
            "{key} is documented"
        );
    }
}
