//! Direct-routing forwarding end to end: a client in one namespace, the
//! balancer attached to a director's veth (native XDP), nginx on the reals,
//! requests to the VIP answered by the reals directly.

use std::{collections::BTreeMap, time::Duration};

use lb_daemon::{
    balancer::model::{RealKey, Scheduler},
    dataplane::xdp_object,
};
use lb_lab::{
    Lab,
    director::{LabDirector, http_service, vip_socket},
    http_get,
    wrk::Wrk,
};

fn lab_with_director(reals: usize) -> (Lab, LabDirector) {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(reals)
        .build()
        .expect("build the lab");
    let object = xdp_object().expect("the XDP object is embedded: run with `cargo xtask test`");
    let director =
        LabDirector::start(&mut lab, 0, object).expect("start the balancer on director 0");
    (lab, director)
}

/// Which real answered each of `n` fresh connections to the service.
fn answers(
    lab: &Lab,
    spec: &lb_daemon::balancer::model::ServiceSpec,
    n: usize,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        let response = http_get(
            lab.client_ns(0),
            vip_socket(spec),
            "/",
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("request {i} to {} failed: {e:#}", spec.addr));
        assert_eq!(response.status, 200);
        *seen.entry(response.text().trim().to_owned()).or_default() += 1;
    }
    seen
}

#[test]
fn requests_to_the_vip_are_served_by_every_real_over_ipv4_and_ipv6() {
    let (lab, mut director) = lab_with_director(2);
    for ipv6 in [false, true] {
        let spec = http_service(&lab, ipv6, Scheduler::RoundRobin, &[(0, 1), (1, 1)]);
        director.lb.apply(&spec).expect("program the service");
        let seen = answers(&lab, &spec, 20);
        // Round-robin positions are per CPU: each CPU alternates exactly, so
        // the two reals' counts differ by at most one per CPU.
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let a = seen.get(lab.real_name(0)).copied().unwrap_or(0);
        let b = seen.get(lab.real_name(1)).copied().unwrap_or(0);
        assert_eq!(
            a + b,
            20,
            "only the two reals answered ({}): {seen:?}",
            spec.addr
        );
        assert!(
            a > 0 && b > 0 && a.abs_diff(b) <= cpus,
            "rr shares the requests ({}): {seen:?}",
            spec.addr
        );
    }
}

#[test]
fn a_load_generator_sees_no_failed_request_while_reals_change() {
    let (mut lab, mut director) = lab_with_director(3);
    let mut spec = http_service(
        &lab,
        false,
        Scheduler::WeightedLeastConnection,
        &[(0, 1), (1, 1)],
    );
    director.lb.apply(&spec).expect("program the service");
    let url = format!("http://{}/", vip_socket(&spec));
    // Runs until `finish`, however long the steps below take.
    let wrk = Wrk::start(&mut lab, 0, &url, Duration::from_secs(4), 8, true).unwrap();
    // While the load runs: add a real, then drain one, then remove it.
    let wait_for_new_flows = |director: &LabDirector, name: &str| {
        let slot = director
            .lb
            .real_id(&RealKey::new(spec.addr, name.parse().unwrap()))
            .expect("real configured");
        lb_lab::wait_until(
            Duration::from_secs(20),
            &format!("{name} gets new connections"),
            || {
                director
                    .lb
                    .dataplane()
                    .real_stats(slot)
                    .is_ok_and(|s| s.new_flows > 0)
            },
        )
        .unwrap();
    };
    wait_for_new_flows(&director, &format!("{}:80", lab.real_addr_v4(0)));
    spec.reals
        .extend(http_service(&lab, false, Scheduler::WeightedLeastConnection, &[(2, 1)]).reals);
    director.lb.apply(&spec).expect("add real-2");
    wait_for_new_flows(&director, &format!("{}:80", lab.real_addr_v4(2)));
    spec.reals[0].weight = 0;
    director.lb.apply(&spec).expect("drain real-0");
    // Let the drained real's connections finish under load before removal.
    let busy = director
        .lb
        .real_id(&RealKey::new(
            spec.addr,
            format!("{}:80", lab.real_addr_v4(1)).parse().unwrap(),
        ))
        .unwrap();
    let mark = director.lb.dataplane().real_stats(busy).unwrap().new_flows;
    lb_lab::wait_until(Duration::from_secs(20), "more load after the drain", || {
        director
            .lb
            .dataplane()
            .real_stats(busy)
            .is_ok_and(|s| s.new_flows > mark + 200)
    })
    .unwrap();
    spec.reals.remove(0);
    director.lb.apply(&spec).expect("remove real-0");

    let report = wrk.finish().unwrap();
    println!("{}", report.text);
    assert!(report.clean(), "no request failed:\n{}", report.text);
}
