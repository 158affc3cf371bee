//! The load balancer's userspace library: loading and programming the XDP
//! data path, scheduling tables, connection-table ageing. `lbd` and `lbctl`
//! are thin binaries over it.

pub mod ageing;
pub mod balancer;
pub mod dataplane;
pub mod sched;
