//! `lbd teardown`: remove the data path and the VIP addresses (with
//! `[ecmp]`: the VIP routes first, so the router stops sending traffic
//! before the program is detached).

use std::{collections::BTreeSet, net::IpAddr, path::Path};

use crate::{
    config::{self, SystemEnvironment},
    dataplane::PinDir,
    netlink::Netlink,
};
use anyhow::{Context, anyhow};

use crate::daemon::vips;

pub fn run(path: &Path) -> anyhow::Result<()> {
    let (config, _) = config::load(path, &SystemEnvironment).map_err(|e| anyhow!("{e}"))?;
    crate::daemon::admin_server::refuse_if_running(&config.daemon.admin_socket)?;
    if let Some(ecmp) = &config.ecmp {
        let mut netlink = Netlink::open()?;
        let routes = netlink
            .routes_in_table(ecmp.table)
            .with_context(|| format!("reading routing table {}", ecmp.table))?;
        for route in routes {
            netlink
                .remove_table_route(ecmp.table, route.destination, route.prefix_len)
                .with_context(|| format!("withdrawing {}", route.destination))?;
            tracing::info!(vip = %route.destination, table = ecmp.table, "withdrew the VIP's route");
        }
    }
    let pins = PinDir::new(&config.daemon.pin_path);
    let detached = pins
        .remove_all()
        .with_context(|| format!("removing pins under {}", pins.root().display()))?;
    for name in &detached {
        tracing::info!(interface = %name, "detached the XDP program");
    }
    let vip_set: BTreeSet<IpAddr> = config.services.iter().map(|s| s.addr.vip).collect();
    if let Some(first) = config.dataplane.interfaces.first() {
        let mut netlink = Netlink::open()?;
        if let Ok(index) = netlink.link_index(first) {
            let left = vips::sync(&mut netlink, index, &vip_set, &BTreeSet::new());
            if !left.is_empty() {
                anyhow::bail!("could not remove VIP addresses {left:?}");
            }
        }
    }
    let _ = std::fs::remove_file(&config.daemon.admin_socket);
    tracing::info!(pin_path = %pins.root().display(), "data path removed");
    Ok(())
}
