//! The load balancer's userspace library: loading and programming the XDP
//! data path, scheduling tables, connection-table ageing, the config file,
//! rtnetlink (neighbours, addresses) and the daemon behind `lbd`/`lbctl`
//! ([`daemon::run`]: the binaries only parse arguments and set up logging).

pub mod admin;
pub mod ageing;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod ecmp;
pub mod health;
pub mod metrics;
pub mod netlink;
pub mod sched;
pub mod sync;
pub mod vrrp;

/// `lbd --version` and `lbctl --version`: the crate version and the git
/// revision it was built from (`unknown` without git).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("LB_GIT_REV"), ")");
