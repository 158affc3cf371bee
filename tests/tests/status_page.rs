//! The status page in a real headless browser (chromium) against a running
//! `lbd` with traffic flowing: the rendered DOM lists every real with its
//! state and its new connections/s, the page keeps refreshing itself, a
//! real whose nginx stops shows as down, with the reason, within seconds,
//! and in slow start once its nginx is back.
//! A screenshot is saved as `target/tmp/status-page.png` (the README's
//! `docs/status-page.png` is a copy of one).

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use lb_lab::{
    Lab, VIP_V4,
    browser::{self, elements, text_of_id},
    daemon::{LabDaemon, LabService},
    url, wait_for,
    wrk::Wrk,
};

/// The page, inside the director namespace (lbd's default address).
const PAGE: &str = "http://127.0.0.1:9140/";

/// Virtual time the page runs for in one browser run: several 2 s polls.
const BUDGET: Duration = Duration::from_secs(7);

/// One real row of the rendered page.
#[derive(Debug)]
struct Row {
    real: String,
    state: String,
    connections_per_second: Option<f64>,
}

/// What the rendered page shows.
#[derive(Debug)]
struct Rendered {
    rows: Vec<Row>,
    refreshes: u32,
    error: String,
    dom: String,
}

fn render(lab: &mut Lab, ns: &str) -> anyhow::Result<Rendered> {
    let dom = browser::dump_dom(lab, ns, PAGE, BUDGET)?;
    let rows = elements(&dom, "tr", "real")
        .into_iter()
        .map(|attrs| {
            let get = |name: &str| {
                attrs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            Row {
                real: get("data-real"),
                state: get("data-state"),
                connections_per_second: get("data-cps").parse().ok(),
            }
        })
        .collect();
    Ok(Rendered {
        rows,
        refreshes: text_of_id(&dom, "refreshes")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        error: text_of_id(&dom, "error").unwrap_or_default().to_owned(),
        dom,
    })
}

#[test]
fn the_page_shows_every_real_traffic_and_a_real_going_down() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .big_file_size(0)
        .build()
        .unwrap();
    let service = LabService::v4("wlc", &[(0, 100), (1, 100), (2, 100)]);
    // A real that comes back ramps up over a minute: long enough to see.
    let config = LabDaemon::config_text(&lab, 0, &[service]).replace(
        "scheduler = \"wlc\"\n",
        "scheduler = \"wlc\"\nslow_start = \"60s\"\n",
    );
    assert!(config.contains("slow_start"));
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &config).expect("start lbd");
    let ns = lbd.namespace().to_owned();
    let reals: Vec<String> = (0..3)
        .map(|i| format!("{}:80", lab.real_addr_v4(i)))
        .collect();

    // A new connection per request, so every real gets new connections/s.
    let vip = SocketAddr::from((VIP_V4, 80));
    let wrk = Wrk::start(
        &mut lab,
        0,
        &url(vip.ip(), "/"),
        Duration::from_secs(1),
        4,
        true,
    )
    .unwrap();

    let page = wait_all_up_with_traffic(&mut lab, &lbd, &reals);
    println!("rendered with traffic: {:?}", page.rows);
    assert_eq!(page.rows.len(), reals.len(), "{:?}", page.rows);
    assert!(page.dom.contains("standalone (no VRRP)"), "{}", page.dom);
    // The charts: a line per real of the selected service, and the verdicts.
    for real in &reals {
        assert!(
            page.dom.contains(&format!("data-series=\"{real}\"")),
            "no chart line for {real}"
        );
    }
    for verdict in ["tx new_flow", "tx established"] {
        assert!(
            page.dom.contains(&format!("data-series=\"{verdict}\"")),
            "no chart line for {verdict}"
        );
    }

    // Real 1's nginx stops: the page shows it down, with the reason, within
    // seconds (the health check's own time included).
    lab.real_stop(1).unwrap();
    let stopped = Instant::now();
    let down = wait_shown(&mut lab, &lbd, &reals, 1, "down");
    println!(
        "the page showed {} down {:.1} s after its nginx stopped",
        reals[1],
        stopped.elapsed().as_secs_f64()
    );
    // The transition and its reason are listed.
    assert!(
        down.dom.contains("connection refused"),
        "no reason in the page:\n{}",
        down.dom
    );

    // Its nginx back: up again, ramping its weight under slow start.
    lab.real_start(1).unwrap();
    let ramping = wait_shown(&mut lab, &lbd, &reals, 1, "slow_start");
    assert!(
        ramping.dom.contains("2 consecutive checks passed"),
        "no reason for coming back up in the page:\n{}",
        ramping.dom
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    browser::screenshot(&mut lab, &ns, PAGE, BUDGET, (1280, 1000), &shot).unwrap();
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 20_000, "a {size}-byte screenshot is blank");
    println!("screenshot: {} ({size} bytes)", shot.display());
    drop(wrk.finish());
}

/// Renders the page until it lists every one of `reals` up with new
/// connections/s (two history samples, 5 s apart, are needed for a rate)
/// and has refreshed itself more than once.
fn wait_all_up_with_traffic(lab: &mut Lab, lbd: &LabDaemon, reals: &[String]) -> Rendered {
    let ns = lbd.namespace().to_owned();
    wait_for(
        Duration::from_mins(1),
        "the page shows every real up with new connections/s",
        || -> anyhow::Result<Rendered> {
            let page = render(lab, &ns)?;
            anyhow::ensure!(page.error.is_empty(), "page error: {}", page.error);
            anyhow::ensure!(page.refreshes >= 2, "{} refreshes", page.refreshes);
            for real in reals {
                let row = page
                    .rows
                    .iter()
                    .find(|r| &r.real == real)
                    .ok_or_else(|| anyhow::anyhow!("{real} not listed: {:?}", page.rows))?;
                anyhow::ensure!(row.state == "up", "{row:?}");
                anyhow::ensure!(
                    row.connections_per_second.is_some_and(|c| c > 0.0),
                    "no new connections/s yet: {row:?}"
                );
            }
            Ok(page)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()))
}

/// Renders the page until it shows `reals[which]` in `state` and the
/// others up.
fn wait_shown(
    lab: &mut Lab,
    lbd: &LabDaemon,
    reals: &[String],
    which: usize,
    state: &str,
) -> Rendered {
    let ns = lbd.namespace().to_owned();
    wait_for(
        Duration::from_secs(20),
        &format!("the page shows {} {state}", reals[which]),
        || -> anyhow::Result<Rendered> {
            let page = render(lab, &ns)?;
            for (i, real) in reals.iter().enumerate() {
                let shown = page
                    .rows
                    .iter()
                    .find(|r| &r.real == real)
                    .map(|r| r.state.as_str());
                let want = if i == which { state } else { "up" };
                anyhow::ensure!(shown == Some(want), "{real} is {shown:?}, not {want}");
            }
            Ok(page)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()))
}
