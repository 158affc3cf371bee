//! Connection-table sync between two directors, so that after a VRRP failover
//! the new master keeps every established flow on the real it was pinned to
//! (a scheduler such as round-robin or least-connection would otherwise pick
//! afresh, and even Maglev moves flows whose real set changed meanwhile).
//!
//! The master sends `Flows` datagrams (records of the flows its data path
//! holds) to the backup over UDP unicast. A director that has just started or
//! become backup sends `DumpRequest`; the peer answers with its whole table in
//! `Flows` datagrams followed by `DumpEnd`, after which the requester holds
//! every flow and may safely preempt. Records carry addresses rather than slot
//! numbers, which differ between hosts.
//!
//! Every datagram is authenticated with HMAC-SHA256 under a shared key and
//! carries a sender id, a sequence number and its send time: [`wire::decode`]
//! refuses forged, altered and stale datagrams, and a [`wire::ReplayGuard`]
//! refuses replays within the freshness window and our own datagrams
//! reflected back. Datagrams are not encrypted: client addresses are visible
//! on the wire, so put sync on the directors' own link or VLAN if that
//! matters.
//!
//! [`wire`] is the pure format; [`socket`] is the small UDP socket it travels
//! over; [`table`] turns connection-table entries into records and back.

pub mod learn;
pub mod socket;
pub mod table;
pub mod wire;

pub use socket::SyncSocket;
pub use wire::{
    FlowRecord, Header, Key, KeyError, MAX_CLOCK_SKEW, MAX_DATAGRAM, Message, ReplayGuard,
    Sequencer, WireError, decode, encode, encode_flows,
};
