//! `/metrics` scraped by a real Prometheus server: traffic through the
//! balancer shows in `lb_real_packets_total`, and a stopped real's
//! `lb_real_up` turns 0, as Prometheus's HTTP API reports them. Then every
//! query of the Grafana dashboard (`config/grafana/lbd.json`) runs against
//! that Prometheus and must return data. lbd runs with `[vrrp]` (alone, so
//! master), so that the failover metrics exist too.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use lb_lab::{
    Lab, VIP_V4, command_in,
    daemon::{LabDaemon, LabService},
    http_get, wait_for,
};

/// Where lbd serves metrics inside the director namespace (the default).
const METRICS: &str = "127.0.0.1:9140";
/// Where the test's Prometheus listens, in the same namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";

/// The series of an instant query (an error when Prometheus reports one).
fn query_series(ns: &str, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = format!("/api/v1/query?query={}", encode(promql));
    let response = http_get(ns, PROMETHEUS.parse()?, &path, Duration::from_secs(5))?;
    let json: serde_json::Value = serde_json::from_str(&response.text())?;
    anyhow::ensure!(json["status"] == "success", "Prometheus answered {json}");
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The values of an instant query, by the `real` label.
fn query(ns: &str, promql: &str) -> anyhow::Result<Vec<(String, f64)>> {
    query_series(ns, promql)?
        .iter()
        .map(|r| {
            let real = r["metric"]["real"].as_str().unwrap_or_default().to_owned();
            let value = r["value"][1].as_str().unwrap_or("nan").parse()?;
            Ok((real, value))
        })
        .collect()
}

/// Percent-encoding for a query string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_lbd_and_sees_traffic_and_a_stopped_real() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .unwrap();
    let service = LabService::v4("rr", &[(0, 1), (1, 1)]);
    let config =
        LabDaemon::config_text(&lab, 0, &[service]) + &LabDaemon::vrrp_text(&lab, 150, None);
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &config).expect("start lbd");
    lbd.wait_vrrp("master", Duration::from_secs(10))
        .expect("the only director becomes master");
    let ns = lbd.namespace().to_owned();

    // The endpoint itself: right content type, nothing else served.
    let metrics: SocketAddr = METRICS.parse().unwrap();
    let page = http_get(&ns, metrics, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("lb_build_info{version="),
        "{}",
        page.text()
    );
    let other = http_get(&ns, metrics, "/nothing", Duration::from_secs(5)).unwrap();
    assert_eq!(other.status, 404);

    // A real Prometheus, with its own config and data directory.
    let dir = lab.dir().join("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: lbd\n    static_configs:\n      - targets: ['{METRICS}']\n"
        ),
    )
    .unwrap();
    let mut cmd = command_in(
        &ns,
        &[
            "prometheus".to_owned(),
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={PROMETHEUS}"),
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // The lab also kills it when dropped (e.g. after a failed assertion).
    let mut prometheus = lab.spawn(&mut cmd).expect("start prometheus");

    // Traffic through the balancer reaches both reals...
    let vip = SocketAddr::from((VIP_V4, 80));
    for _ in 0..20 {
        let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5)).unwrap();
        assert_eq!(response.status, 200);
    }
    // ...and Prometheus sees lb_real_packets_total grow for each.
    let reals = [
        format!("{}:80", lab.real_addr_v4(0)),
        format!("{}:80", lab.real_addr_v4(1)),
    ];
    let packets = wait_for(
        Duration::from_secs(30),
        "Prometheus has packets for both reals",
        || -> anyhow::Result<Vec<(String, f64)>> {
            let values = query(&ns, "lb_real_packets_total")?;
            for r in &reals {
                anyhow::ensure!(
                    values.iter().any(|(real, v)| real == r && *v > 0.0),
                    "no packets for {r} yet: {values:?}"
                );
            }
            Ok(values)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    println!("lb_real_packets_total: {packets:?}");

    // Both reals are up; stop real 1: Prometheus sees its lb_real_up turn 0.
    let up = query(&ns, "lb_real_up").unwrap();
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v > 0.5), "{up:?}");
    lab.real_stop(1).unwrap();
    let promql = format!("lb_real_up{{real=\"{}\"}}", reals[1]);
    let down = wait_for(
        Duration::from_secs(30),
        "Prometheus sees the real down",
        || {
            let values = query(&ns, &promql)?;
            match values.first() {
                Some((_, v)) if *v < 0.5 => Ok(values),
                _ => anyhow::bail!("lb_real_up is {values:?}"),
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    println!("lb_real_up after stopping {}: {down:?}", reals[1]);

    // Now that there was traffic, a failed check and a transition: every
    // query of the dashboard returns data (`increase()` of a counter that
    // just appeared needs a second scrape of it first).
    wait_for(
        Duration::from_secs(30),
        "every dashboard query returns data",
        || check_dashboard(&ns),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}

/// Concrete values for the dashboard's variables: every service and real,
/// and a rate window over several 1 s scrapes.
const VARIABLES: [(&str, &str); 5] = [
    ("$__rate_interval", "1m"),
    ("$__interval", "15s"),
    ("$__range", "5m"),
    ("$service", ".*"),
    ("$real", ".*"),
];

/// Every Prometheus query of `config/grafana/lbd.json` (panel targets and the
/// variables' `label_values(...)` metrics), with [`VARIABLES`] substituted.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/grafana/lbd.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let substitute = |expr: &str| {
        VARIABLES
            .iter()
            .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
    };
    let mut queries = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            let title = panel["title"].as_str().unwrap_or("?");
            queries.push((title.to_owned(), substitute(expr)));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        // label_values(METRIC{...}, LABEL): that metric must have the label.
        let definition = variable["definition"].as_str().unwrap();
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .and_then(|d| d.rsplit_once(','))
            .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
        let (metric, label) = (substitute(inner.0), inner.1.trim());
        queries.push((
            format!("variable {label}"),
            format!("count by ({label}) ({metric})"),
        ));
    }
    queries
}

fn check_dashboard(ns: &str) -> anyhow::Result<()> {
    let queries = dashboard_queries();
    anyhow::ensure!(queries.len() > 20, "only {} queries", queries.len());
    let mut failed = Vec::new();
    for (title, promql) in &queries {
        match query_series(ns, promql) {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failed.push(format!("{title}: no data from {promql}")),
            Err(e) => failed.push(format!("{title}: {promql}: {e:#}")),
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "dashboard queries without data:\n{}",
        failed.join("\n")
    );
    println!("dashboard: all {} queries returned data", queries.len());
    Ok(())
}
