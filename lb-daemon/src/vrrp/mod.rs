//! VRRP version 3 (RFC 5798) for director failover, interoperable with
//! keepalived: the pure parts, packet encoding/decoding ([`packet`]) and the
//! router state machine ([`state`]). Sockets, VIPs and gratuitous ARP live
//! with the daemon.

pub mod packet;
pub mod state;

pub use packet::{Advertisement, PacketError, decode, encode};
pub use state::{Action, Config, ConfigError, Router, State};
