//! VRRP version 3 (RFC 5798) for director failover, interoperable with
//! keepalived: the pure parts, packet encoding/decoding ([`packet`]) and the
//! router state machine ([`state`]); the raw VRRP socket ([`socket`]) and
//! the gratuitous ARP / unsolicited NA that announce moved VIPs ([`announce`]).

pub mod announce;
pub mod packet;
pub mod socket;
pub mod state;

pub use announce::Announcer;
pub use packet::{Advertisement, PacketError, decode, encode};
pub use socket::{Received, Rejected, VrrpSocket};
pub use state::{Action, Config, ConfigError, Router, State};
