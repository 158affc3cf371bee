//! Health checking of real servers: what to check (`spec`), the checks
//! themselves, and the up/down state machine.

pub mod damping;
pub mod dns;
pub mod http;
pub mod probe;
pub mod scheduler;
pub mod spec;
pub mod state;
pub mod tls;
