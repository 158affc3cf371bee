//! The real `lbd` and `lbctl` in a lab: runtime changes under load, restarts,
//! reloads.

use std::time::Duration;

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    http_get,
};

fn lab(reals: usize) -> Lab {
    Lab::builder()
        .clients(1)
        .directors(1)
        .reals(reals)
        .build()
        .expect("build the lab")
}

#[test]
fn lbd_serves_its_config_and_lbctl_shows_it() {
    let mut lab = lab(2);
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let lbd = LabDaemon::start(&mut lab, 0, &[service.clone()]).expect("start lbd");
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    for _ in 0..10 {
        let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("request failed: {e:#}\n{}", lbd.log()));
        assert_eq!(response.status, 200);
    }
    let status = lbd.lbctl_ok(&["status"]).unwrap();
    println!("{status}");
    assert!(status.contains("10.99.0.200:80/tcp"), "{status}");
    let total: u64 = (0..2)
        .map(|i| {
            lbd.real_connections(&service.name(), &format!("{}:80", lab.real_addr_v4(i)))
                .unwrap()
        })
        .sum();
    assert_eq!(total, 10, "{status}");
}
