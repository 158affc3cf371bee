//! Health checking of real servers: what to check (`spec`), the checks
//! themselves, and the up/down state machine.

pub mod spec;
