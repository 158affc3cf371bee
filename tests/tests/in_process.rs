//! A whole daemon started in-process through `lb_daemon::daemon::run` and
//! stopped through its `Shutdown`, as a test or another program embedding
//! the balancer does: no `lbd` process, the same parts.

use std::{net::SocketAddr, path::Path, time::Duration};

use lb_daemon::{
    admin::{Request, Status, call},
    daemon::{DaemonConfig, run, shutdown_channel},
};
use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    http_get, pass_object, spawn_in_namespace, wait_for,
};

/// `lbctl status`, through the library's admin client.
fn status(socket: &Path) -> anyhow::Result<Status> {
    let data = call(socket, &Request::Status, Duration::from_secs(10))?;
    Ok(serde_json::from_value(data)?)
}

#[test]
fn a_daemon_runs_in_process_and_stops_when_its_trigger_fires() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .expect("build the lab");
    // As `LabDaemon::start` does: XDP_TX frames reach the switch only with
    // a program on its end of the director's veth.
    lab.attach_pass_program(0, &pass_object()).unwrap();
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let text = LabDaemon::config_text(&lab, 0, std::slice::from_ref(&service));
    let dir = lab.dir().join("lbd-0");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lb.toml");
    std::fs::write(&path, &text).unwrap();
    let socket = dir.join("lbd.sock");

    let (trigger, shutdown) = shutdown_channel();
    // In the director's namespace: the config names its interface, and the
    // daemon's sockets and netlink calls belong there.
    let daemon = spawn_in_namespace(lab.director_ns(0), move || {
        let config = DaemonConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        run(config, shutdown)
    })
    .unwrap();
    let ready = wait_for(Duration::from_secs(30), "the daemon answers", || {
        anyhow::ensure!(!daemon.is_finished(), "the daemon ended while starting");
        status(&socket)
    });
    assert!(
        ready.is_ok() || !daemon.is_finished(),
        "the daemon failed to start: {:?}",
        daemon.join()
    );
    ready.unwrap();

    let vip = SocketAddr::from((VIP_V4, 80));
    for i in 0..10 {
        let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("request {i}: {e:#}"));
        assert_eq!(response.status, 200);
    }
    let now = status(&socket).unwrap();
    let connections: u64 = now.services[0].reals.iter().map(|r| r.connections).sum();
    assert_eq!(connections, 10, "{now:?}");

    trigger.stop();
    let result = daemon.join().expect("the daemon thread");
    result
        .expect("entered the namespace")
        .expect("run returns Ok after a stop");
    assert!(!socket.exists(), "the admin socket file is removed");
    // The data path stays pinned and forwarding after the daemon stopped.
    let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(10))
        .expect("forwarding goes on without the daemon");
    assert_eq!(response.status, 200);
}
