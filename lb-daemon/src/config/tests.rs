//! Parsing and validation: the whole pipeline on small files, and the
//! helpers the sections' tests share. The corpus of bad files is in
//! `tests/config_corpus.rs`.

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

pub(crate) fn ok(text: &str) -> Config {
    match parse(text, "test.toml", &FakeEnv) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

pub(super) fn errors(text: &str) -> Vec<ConfigError> {
    parse(text, "test.toml", &FakeEnv)
        .expect_err("should fail")
        .0
}

pub(crate) const MINIMAL: &str = "[dataplane]\ninterfaces = [\"eth0\"]\n";

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
#[expect(clippy::too_many_lines, reason = "every field of a file, in one place")]
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
log_events = true

[timeouts]
tcp = "1h"
tcp_syn = "20s"
tcp_closing = "30s"
udp = "1m30s"
ageing_interval = "2s"

[[service]]
vip = "fd00::0200"
port = 53
protocol = "udp"
scheduler = "maglev"
table_size = 257
min_healthy = 0

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
            log_events: true,
        }
    );
    assert_eq!(
        c.timeouts,
        TimeoutsConfig {
            tcp: Duration::from_hours(1),
            tcp_syn: Duration::from_secs(20),
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
                min_healthy: 0,
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
                min_healthy: 1,
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
