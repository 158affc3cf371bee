//! A director in the lab: the balancer loaded into a director namespace and
//! attached to its `eth0`, driven through the `lb-daemon` library.

use std::{
    ffi::CString,
    net::{IpAddr, SocketAddr},
};

use anyhow::{Context, Result, bail};
use aya::programs::XdpMode;
use lb_daemon::{
    balancer::{
        Balancer,
        model::{Protocol, RealSpec, Scheduler, ServiceAddr, ServiceSpec},
    },
    dataplane::{Dataplane, DataplaneLimits},
    sched::maglev,
};

use crate::{HOST_IFNAME, HTTP_PORT, Lab, VIP_V4, VIP_V6, exec_ok, in_namespace};

/// Map sizes for lab directors: small, so many labs fit in memory at once.
pub const LAB_LIMITS: DataplaneLimits = DataplaneLimits {
    conntrack_size: 65_536,
    max_reals: 1024,
    max_services: 64,
    sched_table_size: 1 << 20,
    lc_sets: 64,
};

/// The balancer running on one of the lab's directors. Dropping it detaches
/// the program.
pub struct LabDirector {
    pub lb: Balancer,
}

impl LabDirector {
    /// Holds the VIPs on the director's `eth0` (so it answers ARP/ND for
    /// them), makes `XDP_TX` frames reach the bridge, loads the balancer and
    /// attaches it in native mode.
    pub fn start(lab: &mut Lab, director: usize, object: &[u8]) -> Result<Self> {
        lab.attach_pass_program(director, object)?;
        let ns = lab.director_ns(director).to_owned();
        exec_ok(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{VIP_V4}/32"),
                "dev",
                HOST_IFNAME,
            ],
        )?;
        exec_ok(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{VIP_V6}/128"),
                "dev",
                HOST_IFNAME,
                "nodad",
            ],
        )?;
        let mac = lab.director_mac(director);
        let lb = in_namespace(&ns, move || -> Result<Balancer> {
            let mut dp =
                Dataplane::load_object(object, LAB_LIMITS).context("loading the balancer")?;
            dp.attach(HOST_IFNAME, XdpMode::Driver)
                .context("attaching to eth0")?;
            dp.set_interfaces(&[(ifindex(HOST_IFNAME)?, mac)])?;
            Ok(Balancer::new(dp))
        })??;
        Ok(Self { lb })
    }
}

/// A service on the lab's VIP (`ipv6` picks which one), HTTP port, TCP,
/// over the given reals with their lab MACs.
#[must_use]
pub fn http_service(
    lab: &Lab,
    ipv6: bool,
    scheduler: Scheduler,
    reals: &[(usize, u32)],
) -> ServiceSpec {
    let vip: IpAddr = if ipv6 { VIP_V6.into() } else { VIP_V4.into() };
    ServiceSpec {
        fallback: None,
        addr: ServiceAddr {
            vip,
            port: HTTP_PORT,
            protocol: Protocol::Tcp,
        },
        scheduler,
        table_size: maglev::DEFAULT_SIZE,
        reals: reals
            .iter()
            .map(|&(i, weight)| RealSpec {
                addr: if ipv6 {
                    lab.real_addr_v6(i).into()
                } else {
                    lab.real_addr_v4(i).into()
                },
                port: HTTP_PORT,
                weight,
                mac: Some(lab.real_mac(i)),
                reroute: false,
            })
            .collect(),
    }
}

/// The service's VIP as a socket address.
#[must_use]
pub fn vip_socket(spec: &ServiceSpec) -> SocketAddr {
    SocketAddr::new(spec.addr.vip, spec.addr.port)
}

fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name)?;
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface {name}: {}", std::io::Error::last_os_error());
    }
    Ok(index)
}
