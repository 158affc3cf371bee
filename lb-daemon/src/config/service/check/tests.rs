//! Check tables: kinds, a real's merged over its service's, and where the
//! errors of a merged check are reported.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::service::tests::service;
use crate::config::tests::{errors, ok};
use crate::health::spec::{CheckKind, CheckSpec, DnsCheck, HttpCheck, UdpCheck};

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
fn udp_and_dns_checks() {
    let check = |table: &str| {
        ok(&service(&format!("[service.check]\n{table}"))).services[0]
            .check
            .clone()
    };
    assert_eq!(
        check("kind = \"udp\"\npayload = \"ping\\n\"\nexpect_reply = \"pong\"\n").kind,
        CheckKind::Udp(UdpCheck {
            payload: "ping\n".into(),
            expect_reply: Some("pong".into()),
        })
    );
    assert_eq!(
        check("kind = \"dns\"\nquery_name = \"www.example.com.\"\n").kind,
        CheckKind::Dns(DnsCheck {
            name: "www.example.com".into(),
            qtype: 1,
            rcode: 0,
            expect_address: None,
        })
    );
    assert_eq!(
        check(
            "kind = \"dns\"\nquery_name = \"v6.test\"\nquery_type = \"aaaa\"\n\
             expect_rcode = \"NXDOMAIN\"\nexpect_address = \"fd00::1\"\n"
        )
        .kind,
        CheckKind::Dns(DnsCheck {
            name: "v6.test".into(),
            qtype: 28,
            rcode: 3,
            expect_address: Some("fd00::1".parse().unwrap()),
        })
    );
    // A real inherits the service's dns fields and overrides some.
    let c = ok(&service(
        "[service.check]\nkind = \"dns\"\nquery_name = \"a.test\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { query_type = \"TXT\" }\n[[service.real]]\naddress = \"10.0.0.2\"\ncheck = { kind = \"udp\", payload = \"x\" }\n",
    ));
    let reals = &c.services[0].reals;
    assert_eq!(
        reals[0].check.as_ref().map(|c| c.kind.clone()),
        Some(CheckKind::Dns(DnsCheck {
            name: "a.test".into(),
            qtype: 16,
            rcode: 0,
            expect_address: None,
        }))
    );
    assert!(matches!(
        reals[1].check.as_ref().map(|c| &c.kind),
        Some(CheckKind::Udp(_))
    ));
}

#[test]
fn udp_and_dns_errors_name_the_line_and_field() {
    let (at, messages) = located(&service(
        "[service.check]\nkind = \"dns\"\nquery_type = \"AXFR\"\nexpect_rcode = \"OOPS\"\n",
    ));
    assert_eq!(
        at,
        [
            (8, "service[0].check.query_type".to_owned()),
            (9, "service[0].check.expect_rcode".to_owned()),
        ]
    );
    assert!(
        messages[0].contains("unknown query type \"AXFR\""),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("unknown response code \"OOPS\""),
        "{messages:?}"
    );
    // Missing name, and missing payload.
    let (at, messages) = located(&service("[service.check]\nkind = \"dns\"\n"));
    assert_eq!(at, [(6, "service[0].check.query_name".to_owned())]);
    assert!(messages[0].contains("missing required field `query_name`"));
    let (at, messages) = located(&service(
        "[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { kind = \"udp\" }\n",
    ));
    assert_eq!(at, [(8, "service[0].real[0].check.payload".to_owned())]);
    assert!(messages[0].contains("missing required field `payload`"));
    // Bad values.
    let (at, _) = located(&service(
        "[service.check]\nkind = \"dns\"\nquery_name = \"a..b\"\nexpect_address = \"nope\"\n",
    ));
    assert_eq!(
        at,
        [
            (8, "service[0].check.query_name".to_owned()),
            (9, "service[0].check.expect_address".to_owned()),
        ]
    );
    // An IPv6 address for an A query, written in a real over the service's
    // type; and a real's AAAA type under the service's IPv4 address.
    let (at, messages) = located(&service(
        "[service.check]\nkind = \"dns\"\nquery_name = \"a.test\"\nexpect_address = \"10.0.0.9\"\n[[service.real]]\naddress = \"10.0.0.1\"\ncheck = { expect_address = \"fd00::9\" }\n[[service.real]]\naddress = \"10.0.0.2\"\ncheck = { query_type = \"AAAA\" }\n",
    ));
    assert_eq!(
        at,
        [
            (12, "service[0].real[0].check.expect_address".to_owned()),
            (15, "service[0].real[1].check.query_type".to_owned()),
        ]
    );
    assert!(
        messages[0].contains("cannot be in the answer to a A query, which holds an IPv4"),
        "{messages:?}"
    );
    // Fields of one kind in another.
    let (at, messages) = located(&service(
        "[service.check]\nkind = \"udp\"\npayload = \"x\"\nquery_name = \"a.test\"\n",
    ));
    assert_eq!(at, [(9, "service[0].check.query_name".to_owned())]);
    assert!(messages[0].contains("it is for dns checks"), "{messages:?}");
    let (at, _) = located(&service(
        "[service.check]\nkind = \"udp\"\npayload = \"\"\n",
    ));
    assert_eq!(at, [(8, "service[0].check.payload".to_owned())]);
}

#[test]
fn start_down_is_read_inherited_overridden_and_judged() {
    let c = ok(&service(
        "[service.check]\nstart_down = true\n\
         [[service.real]]\naddress = \"10.0.0.1\"\n\
         [[service.real]]\naddress = \"10.0.0.2\"\ncheck = { start_down = false }\n\
         [[service.real]]\naddress = \"10.0.0.3\"\ncheck = { kind = \"http\" }\n",
    ));
    let s = &c.services[0];
    assert!(s.check.start_down);
    let of = |i: usize| s.check_for(&s.reals[i]).start_down;
    assert_eq!((of(0), of(1), of(2)), (true, false, true));
    assert!(!ok(&service("")).services[0].check.start_down, "default");
    // Not a boolean; and under kind "none" (nothing would ever pass).
    let (at, messages) = located(&service("[service.check]\nstart_down = \"yes\"\n"));
    assert_eq!(at, [(7, "service[0].check.start_down".to_owned())]);
    assert!(messages[0].contains("bool"), "{messages:?}");
    let (at, messages) = located(&service(
        "[service.check]\nkind = \"none\"\nstart_down = true\n",
    ));
    assert_eq!(at, [(8, "service[0].check.start_down".to_owned())]);
    assert!(messages[0].contains("does not apply"), "{messages:?}");
}
