//! Parsing and validation: the whole pipeline on small files. The corpus of
//! bad files is in `tests/config_corpus.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::balancer::model::{Protocol, Scheduler, ServiceAddr};
use crate::health::spec::CheckSpec;
use crate::sched::maglev;

/// Interfaces named `eth*` exist.
pub(super) struct FakeEnv;

impl Environment for FakeEnv {
    fn interface_exists(&self, name: &str) -> bool {
        name.starts_with("eth")
    }
}

fn ok(text: &str) -> Config {
    match parse(text, "test.toml", &FakeEnv) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse(text, "test.toml", &FakeEnv)
        .expect_err("should fail")
        .0
}

const MINIMAL: &str = "[dataplane]\ninterfaces = [\"eth0\"]\n";

#[test]
fn minimal_file_gets_every_default() {
    let c = ok(MINIMAL);
    let expected = Config {
        dataplane: DataplaneConfig {
            interfaces: vec!["eth0".into()],
            ..DataplaneConfig::default()
        },
        ..Config::default()
    };
    assert_eq!(c, expected);
}

#[test]
fn every_field_is_read() {
    let c = ok(r#"
[daemon]
admin_socket = "/tmp/lbd.sock"
pin_path = "/sys/fs/bpf/x"
metrics_address = "[::1]:9999"
neighbour_refresh = "500ms"

[dataplane]
interfaces = ["eth1", "eth2"]
xdp_mode = "generic"
xdp_fallback = false
conntrack_size = 2048
max_reals = 32
max_services = 4

[timeouts]
tcp = "1h"
tcp_closing = "30s"
udp = "1m30s"
ageing_interval = "2s"

[[service]]
vip = "fd00::0200"
port = 53
protocol = "udp"
scheduler = "maglev"
table_size = 257

[[service.real]]
address = "fd00::1"
port = 53
weight = 0
backup = true
mac = "02:AA:00:00:00:01"

[[service]]
vip = "192.0.2.1"
port = 443
"#);
    assert_eq!(c.daemon.admin_socket, PathBuf::from("/tmp/lbd.sock"));
    assert_eq!(c.daemon.pin_path, PathBuf::from("/sys/fs/bpf/x"));
    assert_eq!(c.daemon.metrics_address, "[::1]:9999".parse().unwrap());
    assert_eq!(c.daemon.neighbour_refresh, Duration::from_millis(500));
    assert_eq!(
        c.dataplane,
        DataplaneConfig {
            interfaces: vec!["eth1".into(), "eth2".into()],
            xdp_mode: XdpModeConfig::Generic,
            xdp_fallback: false,
            conntrack_size: 2048,
            max_reals: 32,
            max_services: 4,
        }
    );
    assert_eq!(
        c.timeouts,
        TimeoutsConfig {
            tcp: Duration::from_hours(1),
            tcp_closing: Duration::from_secs(30),
            udp: Duration::from_secs(90),
            ageing_interval: Duration::from_secs(2),
        }
    );
    assert_eq!(c.timeouts.ageing().udp, Duration::from_secs(90));
    let dns = ServiceAddr {
        vip: "fd00::200".parse().unwrap(),
        port: 53,
        protocol: Protocol::Udp,
    };
    assert_eq!(
        c.services,
        vec![
            ServiceConfig {
                addr: dns,
                scheduler: Scheduler::Maglev,
                table_size: 257,
                reals: vec![RealConfig {
                    addr: "fd00::1".parse().unwrap(),
                    port: 53,
                    weight: 0,
                    backup: true,
                    mac: Some([0x02, 0xaa, 0, 0, 0, 1]),
                    check: None,
                }],
                ..ServiceConfig::new(dns)
            },
            ServiceConfig {
                addr: ServiceAddr {
                    vip: "192.0.2.1".parse().unwrap(),
                    port: 443,
                    protocol: Protocol::Tcp,
                },
                scheduler: Scheduler::WeightedLeastConnection,
                table_size: maglev::DEFAULT_SIZE,
                reals: vec![],
                check: CheckSpec::default(),
                on_down: OnDown::Reroute,
                min_primaries: 1,
                slow_start: None,
                fallback: None,
                drain_timeout: Duration::from_mins(5),
                damping: None,
            },
        ]
    );
}

#[test]
fn real_port_defaults_to_the_service_port() {
    let c = ok(&format!(
        "{MINIMAL}[[service]]\nvip = \"192.0.2.1\"\nport = 8080\n[[service.real]]\naddress = \"10.0.0.1\"\n"
    ));
    let real = &c.services[0].reals[0];
    assert_eq!(
        (real.port, real.weight, real.backup, real.mac),
        (8080, 1, false, None)
    );
}

#[test]
fn inline_tables_are_read_too() {
    let c = ok(&format!(
        "service = [{{ vip = \"192.0.2.1\", port = 80, real = [{{ address = \"10.0.0.1\", weight = 3 }}] }}]\n{MINIMAL}"
    ));
    assert_eq!(c.services[0].reals[0].weight, 3);
}

#[test]
fn collects_every_error_in_file_order() {
    let errs = errors(
        r#"[timeouts]
udp = "0s"
tcp = "5"

[dataplane]
interfaces = ["eth0", "wlan0"]
conntrack_size = 10

[[service]]
vip = "192.0.2.1"
port = 0

[[service.real]]
address = "10.0.0.300"

[[service.real]]
address = "10.0.0.1"
weight = -1
"#,
    );
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "timeouts.udp"),
            (3, "timeouts.tcp"),
            (6, "dataplane.interfaces[1]"),
            (7, "dataplane.conntrack_size"),
            (11, "service[0].port"),
            (14, "service[0].real[0].address"),
            (18, "service[0].real[1].weight"),
        ],
        "{}",
        ConfigErrors(errs.clone())
    );
    assert!(errs[0].message.contains("greater than zero"));
    assert!(errs[1].message.contains("missing unit"));
}

#[test]
fn serde_errors_in_several_tables_are_all_reported() {
    let errs = errors(
        r#"[daemon]
pin_pth = "/x"
[dataplane]
interfaces = ["eth0"]
xdp_fallback = "yes"
[[service]]
vip = "192.0.2.1"
port = 80
[[service.real]]
adress = "10.0.0.1"
[[service.real]]
address = "10.0.0.2"
wieght = 2
"#,
    );
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, "daemon.pin_pth"),
            (5, "dataplane.xdp_fallback"),
            (10, "service[0].real[0].adress"),
            (13, "service[0].real[1].wieght"),
        ]
    );
    assert!(errs[0].message.contains("unknown field `pin_pth`"));
    assert!(errs[1].message.contains("invalid type"));
}

#[test]
fn too_many_services_and_reals_for_the_limits() {
    let mut text =
        "[dataplane]\ninterfaces = [\"eth0\"]\nmax_services = 1\nmax_reals = 16\n".to_owned();
    for i in 0..2 {
        write!(text, "[[service]]\nvip = \"192.0.2.{i}\"\nport = 80\n").unwrap();
        for j in 0..9 {
            write!(text, "[[service.real]]\naddress = \"10.0.{i}.{j}\"\n").unwrap();
        }
    }
    let errs = errors(&text);
    let got: Vec<(&str, bool)> = errs
        .iter()
        .map(|e| (e.field.as_str(), e.message.contains("too many")))
        .collect();
    assert_eq!(got, [("service[1]", true), ("service[1].real[7]", true)]);
    // service[1] starts after 4 lines + 3 + 9 * 2.
    assert_eq!(errs[0].line, 26);
}

#[test]
fn display_names_file_line_and_field() {
    let e = &errors("[dataplane]\ninterfaces = []\n")[0];
    assert_eq!(
        e.to_string(),
        "test.toml:2: dataplane.interfaces: at least one interface is required"
    );
    let syntax = &errors("[dataplane\n")[0];
    assert_eq!(syntax.field, "");
    assert!(syntax.to_string().starts_with("test.toml:1: "), "{syntax}");
    let io = ConfigError {
        source_name: "lb.toml".into(),
        line: 0,
        field: String::new(),
        message: "cannot read".into(),
    };
    assert_eq!(io.to_string(), "lb.toml: cannot read");
    let both = ConfigErrors(vec![e.clone(), io]);
    assert_eq!(both.to_string().lines().count(), 2);
}

#[test]
fn load_reads_the_file_and_reports_io_errors() {
    let path = std::env::temp_dir().join(format!("lbd-config-load-{}.toml", std::process::id()));
    std::fs::write(&path, MINIMAL).unwrap();
    let (config, text) = load(&path, &FakeEnv).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(text, MINIMAL);
    assert_eq!(config.dataplane.interfaces, ["eth0"]);

    let missing = Path::new("/nonexistent/lb.toml");
    let errs = load(missing, &FakeEnv).unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].line, errs[0].field.as_str()), (0, ""));
    assert_eq!(errs[0].source_name, "/nonexistent/lb.toml");
    assert!(
        errs[0]
            .to_string()
            .starts_with("/nonexistent/lb.toml: cannot read")
    );
}

#[test]
fn system_environment_knows_loopback() {
    assert!(SystemEnvironment.interface_exists("lo"));
    assert!(!SystemEnvironment.interface_exists("no-such-if0"));
    assert!(!SystemEnvironment.interface_exists("bad\0name"));
}

// --- health checking: [service.check], real overrides, damping, fallback ---

use crate::health::spec::{CheckKind, HttpCheck};

/// `MINIMAL` plus one IPv4 service on port 80 with `body` after its
/// `port` line (line 5 is `port = 80`).
fn service(body: &str) -> String {
    format!("{MINIMAL}[[service]]\nvip = \"192.0.2.10\"\nport = 80\n{body}")
}

#[test]
fn a_service_without_health_settings_gets_the_defaults() {
    let c = ok(&service("[[service.real]]\naddress = \"10.0.0.1\"\n"));
    let s = &c.services[0];
    let defaults = ServiceConfig::new(s.addr);
    assert_eq!(s.check, CheckSpec::default());
    assert_eq!(s.check.kind, CheckKind::Tcp);
    assert_eq!(s.on_down, OnDown::Reroute);
    assert_eq!(s.min_primaries, 1);
    assert_eq!(s.slow_start, None);
    assert_eq!(s.fallback, None);
    assert_eq!(s.drain_timeout, Duration::from_mins(5));
    assert_eq!(s.damping, None);
    assert_eq!(s.reals[0].check, None);
    assert_eq!(s.check_for(&s.reals[0]), &CheckSpec::default());
    assert_eq!(
        ServiceConfig {
            reals: Vec::new(),
            ..s.clone()
        },
        defaults
    );
}

#[test]
fn every_health_field_is_read() {
    let c = ok(&service(
        r#"on_down = "keep"
min_primaries = 2
slow_start = "30s"
fallback = "10.0.0.99"
fallback_mac = "02:00:00:00:00:99"
drain_timeout = "1m"

[service.check]
kind = "https"
port = 8443
interval = "2s"
timeout = "1s500ms"
rise = 3
fall = 4
path = "/healthz?full=1"
host = "www.example.com:8443"
expect_status = [200, 204]
expect_body = "ok"
verify_tls = false

[service.damping]
penalty = 500
suppress = 3000
reuse = 1000
half_life = "1m"
max_suppress = "10m"

[[service.real]]
address = "10.0.0.1"
"#,
    ));
    let s = &c.services[0];
    assert_eq!(s.on_down, OnDown::Keep);
    assert_eq!(s.min_primaries, 2);
    assert_eq!(s.slow_start, Some(Duration::from_secs(30)));
    assert_eq!(
        s.fallback,
        Some(FallbackConfig {
            addr: "10.0.0.99".parse().unwrap(),
            mac: Some([2, 0, 0, 0, 0, 0x99]),
        })
    );
    assert_eq!(s.drain_timeout, Duration::from_mins(1));
    assert_eq!(
        s.check,
        CheckSpec {
            kind: CheckKind::Https(HttpCheck {
                path: "/healthz?full=1".into(),
                host: Some("www.example.com:8443".into()),
                expect_status: vec![200, 204],
                expect_body: Some("ok".into()),
                verify_tls: false,
            }),
            port: Some(8443),
            interval: Duration::from_secs(2),
            fast_interval: crate::health::spec::DEFAULT_FAST_INTERVAL,
            timeout: Duration::from_millis(1500),
            rise: 3,
            fall: 4,
        }
    );
    assert_eq!(
        s.damping,
        Some(DampingConfig {
            penalty: 500,
            suppress: 3000,
            reuse: 1000,
            half_life: Duration::from_mins(1),
            max_suppress: Duration::from_mins(10),
        })
    );
    assert_eq!(s.reals[0].check, None);
}

#[test]
fn check_kinds() {
    let check = |table: &str| {
        ok(&service(&format!("[service.check]\n{table}"))).services[0]
            .check
            .clone()
    };
    assert_eq!(
        check("kind = \"none\"\n"),
        CheckSpec {
            kind: CheckKind::None,
            ..CheckSpec::default()
        }
    );
    assert_eq!(check("kind = \"tcp\"\n"), CheckSpec::default());
    assert_eq!(check("").kind, CheckKind::Tcp);
    assert_eq!(
        check("kind = \"http\"\n").kind,
        CheckKind::Http(HttpCheck::get("/"))
    );
    assert_eq!(
        check("kind = \"https\"\n").kind,
        CheckKind::Https(HttpCheck::get("/"))
    );
    assert_eq!(
        check(
            "kind = \"command\"\ncommand = [\"/usr/local/bin/check-db\", \"--quick\", \"a b;c\"]\n"
        )
        .kind,
        CheckKind::Command {
            program: PathBuf::from("/usr/local/bin/check-db"),
            args: vec!["--quick".into(), "a b;c".into()],
        }
    );
    // The fast interval is never longer than the interval; timeout may
    // equal it.
    let fast = check("interval = \"100ms\"\ntimeout = \"100ms\"\n");
    assert_eq!(
        (fast.interval, fast.fast_interval, fast.timeout),
        (
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(100)
        )
    );
}

#[test]
fn a_real_check_overrides_fields_of_the_service_check() {
    let c = ok(&service(
        r#"[service.check]
kind = "http"
path = "/healthz"
host = "www.example.com"
interval = "2s"
timeout = "1s"

[[service.real]]
address = "10.0.0.1"

[[service.real]]
address = "10.0.0.2"
check = { interval = "500ms", timeout = "400ms", path = "/other" }

[[service.real]]
address = "10.0.0.3"
[service.real.check]
port = 8080

[[service.real]]
address = "10.0.0.4"
check = { kind = "tcp" }

[[service.real]]
address = "10.0.0.5"
check = { kind = "https", verify_tls = false }

[[service.real]]
address = "10.0.0.6"
check = { kind = "http", interval = "2s" }

[[service.real]]
address = "10.0.0.7"
check = {}

[[service.real]]
address = "10.0.0.8"
check = { kind = "none" }
"#,
    ));
    let s = &c.services[0];
    let base = CheckSpec {
        kind: CheckKind::Http(HttpCheck {
            host: Some("www.example.com".into()),
            ..HttpCheck::get("/healthz")
        }),
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        ..CheckSpec::default()
    };
    assert_eq!(s.check, base);
    let checks: Vec<Option<&CheckSpec>> = s.reals.iter().map(|r| r.check.as_ref()).collect();
    assert_eq!(checks[0], None);
    assert_eq!(
        checks[1],
        Some(&CheckSpec {
            kind: CheckKind::Http(HttpCheck {
                host: Some("www.example.com".into()),
                ..HttpCheck::get("/other")
            }),
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(400),
            ..CheckSpec::default()
        })
    );
    assert_eq!(
        checks[2],
        Some(&CheckSpec {
            port: Some(8080),
            ..base.clone()
        })
    );
    // Another kind: the HTTP fields are dropped, the timers inherited.
    assert_eq!(
        checks[3],
        Some(&CheckSpec {
            kind: CheckKind::Tcp,
            ..base.clone()
        })
    );
    // http to https keeps the HTTP fields.
    assert_eq!(
        checks[4],
        Some(&CheckSpec {
            kind: CheckKind::Https(HttpCheck {
                host: Some("www.example.com".into()),
                verify_tls: false,
                ..HttpCheck::get("/healthz")
            }),
            ..base.clone()
        })
    );
    // Overrides that change nothing are no override.
    assert_eq!((checks[5], checks[6]), (None, None));
    assert_eq!(
        checks[7],
        Some(&CheckSpec {
            kind: CheckKind::None,
            ..CheckSpec::default()
        })
    );
    assert_eq!(s.check_for(&s.reals[0]), &base);
    assert_eq!(s.check_for(&s.reals[2]).port, Some(8080));
}

#[test]
fn an_empty_damping_table_gets_the_defaults() {
    let c = ok(&service("[service.damping]\n"));
    assert_eq!(c.services[0].damping, Some(DampingConfig::default()));
    let d = DampingConfig::default();
    assert_eq!(
        (d.penalty, d.suppress, d.reuse, d.half_life, d.max_suppress),
        (
            1000,
            2000,
            750,
            Duration::from_secs(30),
            Duration::from_mins(5)
        )
    );
}

/// `(line, field)` of each error, and the messages.
fn located(text: &str) -> (Vec<(usize, String)>, Vec<String>) {
    let errs = errors(text);
    (
        errs.iter().map(|e| (e.line, e.field.clone())).collect(),
        errs.iter().map(|e| e.message.clone()).collect(),
    )
}

#[test]
fn a_broken_service_check_does_not_cascade_into_its_reals() {
    // An unknown kind: neither its `path` nor the reals' are judged
    // against a kind that is not known.
    let (at, _) = located(&service(
        "[service.check]\nkind = \"htp\"\npath = \"/x\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { path = \"/y\" }\n",
    ));
    assert_eq!(at, [(7, "service[0].check.kind".to_owned())]);
    // An unknown field: the table is unreadable, the reals' checks are
    // still read on their own.
    let (at, _) = located(&service(
        "[service.check]\nkind = \"http\"\npaht = \"/x\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { path = \"/y\", rise = 0 }\n",
    ));
    assert_eq!(
        at,
        [
            (8, "service[0].check.paht".to_owned()),
            (11, "service[0].real[0].check.rise".to_owned()),
        ]
    );
    // A timeout too long for the interval is reported once, at the
    // service, not again at each real that inherits both.
    let (at, _) = located(&service(
        "[service.check]\ntimeout = \"2s\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { port = 81 }\n[[service.real]]\naddress = \"10.0.0.2\"\n",
    ));
    assert_eq!(at, [(7, "service[0].check.timeout".to_owned())]);
}

#[test]
fn merged_checks_are_judged_where_they_are_written() {
    // A real's interval below the default timeout, and below the service's.
    let (at, messages) = located(&service(
        "[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { interval = \"500ms\" }\n",
    ));
    assert_eq!(at, [(8, "service[0].real[0].check.interval".to_owned())]);
    assert!(
        messages[0].contains("interval 500ms is shorter than the timeout 800ms (the default)"),
        "{messages:?}"
    );
    let (at, messages) = located(&service(
        "[service.check]\ntimeout = \"600ms\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { interval = \"500ms\" }\n",
    ));
    assert_eq!(at, [(10, "service[0].real[0].check.interval".to_owned())]);
    assert!(
        messages[0].contains("timeout 600ms (from service[0].check)"),
        "{messages:?}"
    );
    // A field of the service's kind written in a real that inherits it.
    let (at, messages) = located(&service(
        "[service.check]\nkind = \"https\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { verify_tls = false }\n[[service.real]]\naddress = \"10.0.0.2\"\ncheck = { kind = \"http\", verify_tls = false }\n",
    ));
    assert_eq!(at, [(13, "service[0].real[1].check.verify_tls".to_owned())]);
    assert!(
        messages[0].contains("does not apply to kind \"http\"; it is for https checks"),
        "{messages:?}"
    );
    let (_, messages) = located(&service(
        "[service.check]\nkind = \"tcp\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { path = \"/\" }\n",
    ));
    assert!(
        messages[0].contains("(the kind of service[0].check)"),
        "{messages:?}"
    );
    // kind = "command" in a real needs its own command.
    let (at, messages) = located(&service(
        "[[service.real]]\naddress = \"10.0.0.1\"\n[service.real.check]\nkind = \"command\"\n",
    ));
    assert_eq!(at, [(8, "service[0].real[0].check.command".to_owned())]);
    assert!(messages[0].contains("missing required field `command`"));
    // ... which it may inherit.
    let c = ok(&service(
        "[service.check]\nkind = \"command\"\ncommand = [\"/bin/true\"]\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { rise = 1 }\n",
    ));
    assert_eq!(
        c.services[0].reals[0]
            .check
            .as_ref()
            .map(|c| (&c.kind, c.rise)),
        Some((
            &CheckKind::Command {
                program: "/bin/true".into(),
                args: vec![]
            },
            1
        ))
    );
}

#[test]
fn several_health_errors_are_all_reported() {
    let (at, _) = located(&service(
        r#"on_down = "drop"
min_primaries = 0
slow_start = "0s"
fallback = "10.0.0.1"
[service.check]
kind = "http"
expect_status = [200, 700, 200]
command = ["check"]
[service.damping]
reuse = 5000
[[service.real]]
address = "10.0.0.1"
check = { fall = 0 }
"#,
    ));
    let fields: Vec<&str> = at.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "service[0].on_down",
            "service[0].min_primaries",
            "service[0].slow_start",
            "service[0].fallback",
            "service[0].check.expect_status[1]",
            "service[0].check.expect_status[2]",
            "service[0].check.command[0]",
            "service[0].damping.reuse",
            "service[0].real[0].check.fall",
        ]
    );
}

#[test]
fn vrrp_defaults_and_every_field() {
    let c = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\n"));
    assert_eq!(c.vrrp, Some(VrrpConfig::new(51)));
    let v = VrrpConfig::new(51);
    assert_eq!(
        (v.priority, v.advert_interval_cs(), v.preempt, v.family),
        (100, 10, true, VrrpFamily::Ipv4)
    );

    let c = ok(&format!(
        "{MINIMAL}[vrrp]\nvrid = 7\npriority = 150\ninterface = \"eth0\"\nfamily = \"ipv6\"\n\
         advert_interval = \"250ms\"\npreempt = false\npreempt_delay = \"0s\"\n\
         unicast_peers = [\"fe80::2\"]\nsource_address = \"fe80::1\"\n\
         [vrrp.sync]\npeer = \"10.0.0.2\"\nport = 7000\nlisten = \"10.0.0.1\"\n\
         key = \"0123456789abcdef\"\ninterval = \"1s\"\nwait_before_preempt = \"3s\"\n"
    ));
    let v = c.vrrp.expect("vrrp");
    assert_eq!(v.vrid, 7);
    assert_eq!(v.priority, 150);
    assert_eq!(v.interface.as_deref(), Some("eth0"));
    assert_eq!(v.family, VrrpFamily::Ipv6);
    assert_eq!(v.advert_interval_cs(), 25);
    assert!(!v.preempt);
    assert_eq!(v.preempt_delay, Duration::ZERO);
    assert_eq!(
        v.unicast_peers,
        ["fe80::2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(v.source_address, Some("fe80::1".parse().unwrap()));
    let s = v.sync.expect("sync");
    assert_eq!(s.peer, "10.0.0.2".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(s.port, 7000);
    assert_eq!(s.listen, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(s.key, "0123456789abcdef");
    assert_eq!(s.interval, Duration::from_secs(1));
    assert_eq!(s.wait_before_preempt, Duration::from_secs(3));
    assert!(
        !format!("{s:?}").contains("0123456789abcdef"),
        "the key stays out of Debug"
    );
}

#[test]
fn a_vrrp_change_needs_a_restart() {
    let old = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\n"));
    let new = ok(&format!("{MINIMAL}[vrrp]\nvrid = 51\npriority = 120\n"));
    assert_eq!(diff(&old, &new).restart_required, ["vrrp"]);
}

#[test]
fn more_vips_than_an_advertisement_holds_are_refused() {
    let mut text = format!("{MINIMAL}[vrrp]\nvrid = 51\n");
    for i in 0..256u32 {
        let _ = write!(
            text,
            "[[service]]\nvip = \"10.1.{}.{}\"\nport = 80\n",
            i / 200,
            i % 200 + 1
        );
    }
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].field.as_str()), (3, "vrrp"));
    assert!(
        errors[0].message.contains("256 ipv4 VIPs"),
        "{}",
        errors[0].message
    );
    // IPv6 VIPs are not advertised by an IPv4 router.
    let text = text.replace(
        "[vrrp]\nvrid = 51\n",
        "[vrrp]\nvrid = 51\nfamily = \"ipv6\"\n",
    );
    let _ = ok(&text);
}
