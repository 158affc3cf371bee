//! The config file's error corpus: for each bad file, the exact line, the
//! field path and a phrase of the message; plus the good files (the
//! annotated example among them) that must parse.

use std::{fmt::Write as _, path::Path};

use lb_daemon::config::{self, ConfigError, Environment};

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
            "[timeouts]\ntcp = \"1h30m\"\ntcp_closing = \"90s\"\nudp = \"1m500ms\"\nageing_interval = \"250ms\"\n",
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
