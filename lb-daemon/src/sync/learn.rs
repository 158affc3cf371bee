//! Flow sharing's receiving side: flows another director reports are
//! written into this director's tables as *learned* (`FLOW_F_LEARNED`),
//! never over a flow this director forwards itself.
//!
//! The rules, in [`plan`]: a record is skipped when either table holds the
//! 5-tuple as this director's own (the data path clears the flag when it
//! forwards a packet of a flow: the client's packets come here, so this
//! director's real is the one the connection lives on), unless this
//! director's copy is closing and the record is of a newer connection on
//! the same 5-tuple (a reused client port). Otherwise the
//! record lands where the sender keeps the flow: a half-open one in
//! `HALF_OPEN` (so that a SYN flood at one director evicts only half-open
//! flows at the others too), an established or closing one in `CONNTRACK`,
//! and a learned copy in the other table goes (the sender moved it). A
//! closing record for a flow held half-open here closes it there. A
//! learned copy is never made to look older than it is: its last-seen
//! time only moves forward.

use std::collections::HashMap;

use aya::maps::{HashMap as BpfHashMap, IterableMap, Map, MapData, MapError};
use lb_common::{
    FLOW_CLOSING, FLOW_F_LEARNED, FLOW_HALF_OPEN, FlowKey, FlowValue, map_names as names,
};

use super::table::{Applied, Index, Unknown};
use super::wire::FlowRecord;
use crate::dataplane::{DataplaneError, PinDir, batch_unsupported, update_entries};

/// One of the two flow tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `CONNTRACK`.
    Main = 0,
    /// `HALF_OPEN`.
    HalfOpen = 1,
}

impl Table {
    fn other(self) -> Self {
        match self {
            Self::Main => Self::HalfOpen,
            Self::HalfOpen => Self::Main,
        }
    }
}

/// What to do with one received record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// This director forwards the flow (or the learned copy is already
    /// up to date): nothing.
    Keep,
    /// Write `value` into `table`, and delete the learned copy from the
    /// other table when `remove_other`.
    Write {
        table: Table,
        value: FlowValue,
        remove_other: bool,
    },
}

fn learned(v: &FlowValue) -> bool {
    v.flags & FLOW_F_LEARNED != 0
}

/// This director's own copy is a closed connection's, and the record is
/// of a newer one on the same 5-tuple that another director saw open (the
/// client reused its port: with thousands of connections a second it does
/// every few seconds, and a closing flow stays `tcp_closing`, 2 min). The
/// new connection wins, or the router moving it here would send its
/// packets to the old one's real.
fn superseded(own: &FlowValue, record: &FlowValue) -> bool {
    own.state == FLOW_CLOSING
        && record.state != FLOW_CLOSING
        && record.last_seen_ns > own.last_seen_ns
}

/// Decides what a record (already turned into this director's `value`)
/// does, given what `CONNTRACK` (`main`) and `HALF_OPEN` (`half`) hold for
/// its 5-tuple.
#[must_use]
pub fn plan(value: FlowValue, main: Option<FlowValue>, half: Option<FlowValue>) -> Plan {
    if main
        .iter()
        .chain(half.iter())
        .any(|own| !learned(own) && !superseded(own, &value))
    {
        return Plan::Keep;
    }
    let mut value = FlowValue {
        flags: FLOW_F_LEARNED,
        ..value
    };
    let table = match value.state {
        FLOW_HALF_OPEN => Table::HalfOpen,
        // A half-open flow closing stays where it is, like at the sender.
        FLOW_CLOSING if main.is_none() && half.is_some() => Table::HalfOpen,
        _ => Table::Main,
    };
    let (here, other) = match table {
        Table::Main => (main, half),
        Table::HalfOpen => (half, main),
    };
    if let Some(old) = here
        && old.real == value.real
        && old.state == value.state
    {
        if old.last_seen_ns >= value.last_seen_ns && other.is_none() {
            return Plan::Keep;
        }
        value.last_seen_ns = value.last_seen_ns.max(old.last_seen_ns);
    }
    Plan::Write {
        table,
        value,
        remove_other: other.is_some(),
    }
}

// Lookups: a record is checked against both tables only when the one it
// belongs in has no learned copy. With a learned copy there, the other
// table holds the 5-tuple only if this director opened the same 5-tuple
// anew meanwhile (a SYN reusing it); the data path looks `CONNTRACK` up
// first, so that rare case is decided by the copy already there, whatever
// the record does. Syscalls per record: one lookup for a flow already
// known (refreshes, a closing flow), two lookups and a delete for a
// handshake completed at the sender; the writes of a datagram's records
// are one batch per table.

/// What one `apply` call did to a 5-tuple, per table (`Table as usize`):
/// `Some(Some(v))` written, `Some(None)` deleted, `None` untouched.
type Pending = [Option<Option<FlowValue>>; 2];

/// Handles on the pinned flow tables for learning.
pub struct LearnTables {
    conntrack: BpfHashMap<MapData, FlowKey, FlowValue>,
    half_open: BpfHashMap<MapData, FlowKey, FlowValue>,
}

fn open(
    pins: &PinDir,
    name: &'static str,
) -> Result<BpfHashMap<MapData, FlowKey, FlowValue>, DataplaneError> {
    let err = |source| DataplaneError::Map {
        name,
        source: Box::new(source),
    };
    let data = MapData::from_pin(pins.map(name)).map_err(err)?;
    let map = Map::from_map_data(data).map_err(err)?;
    BpfHashMap::try_from(map).map_err(err)
}

impl LearnTables {
    pub fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        Ok(Self {
            conntrack: open(pins, names::CONNTRACK)?,
            half_open: open(pins, names::HALF_OPEN)?,
        })
    }

    fn map(&self, table: Table) -> (&BpfHashMap<MapData, FlowKey, FlowValue>, &'static str) {
        match table {
            Table::Main => (&self.conntrack, names::CONNTRACK),
            Table::HalfOpen => (&self.half_open, names::HALF_OPEN),
        }
    }

    fn get(&self, table: Table, key: &FlowKey) -> Result<Option<FlowValue>, DataplaneError> {
        let (map, name) = self.map(table);
        match map.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DataplaneError::Map {
                name,
                source: Box::new(e),
            }),
        }
    }

    /// Applies received records by [`plan`]. `kept` in the result counts
    /// the records skipped because this director forwards the flow or
    /// already has it.
    pub fn apply(
        &mut self,
        index: &Index,
        records: &[FlowRecord],
        now_ns: u64,
    ) -> Result<Applied, DataplaneError> {
        let mut applied = Applied::default();
        // Writes go in one batch per table (deletes, rare, one by one):
        // a record then costs its lookups and a share of one syscall. Until
        // then, `batch` holds what this call did to each 5-tuple, so a
        // later record of the same flow (its SYN and its ACK often share a
        // datagram) sees the earlier one's effect.
        let mut batch: HashMap<FlowKey, Pending> = HashMap::new();
        for record in records {
            let (key, value) = match index.entry(record, now_ns) {
                Ok(entry) => entry,
                Err(Unknown::Service) => {
                    applied.unknown_service += 1;
                    continue;
                }
                Err(Unknown::Real) => {
                    applied.unknown_real += 1;
                    continue;
                }
            };
            // The table the record belongs in first: when it holds a
            // learned copy, the other is not looked at (one syscall less
            // for most records; see above).
            let first = if value.state == FLOW_HALF_OPEN {
                Table::HalfOpen
            } else {
                Table::Main
            };
            let here = self.lookup(&batch, first, &key)?;
            let there = match here {
                Some(v) if learned(&v) => None,
                _ => self.lookup(&batch, first.other(), &key)?,
            };
            let (main, half) = match first {
                Table::Main => (here, there),
                Table::HalfOpen => (there, here),
            };
            let Plan::Write {
                table,
                value,
                remove_other,
            } = plan(value, main, half)
            else {
                applied.kept += 1;
                continue;
            };
            let pending = batch.entry(key).or_default();
            pending[table as usize] = Some(Some(value));
            if remove_other {
                pending[table.other() as usize] = Some(None);
            }
            applied.written += 1;
        }
        for table in [Table::Main, Table::HalfOpen] {
            let writes: Vec<(FlowKey, FlowValue)> = batch
                .iter()
                .filter_map(|(k, p)| p[table as usize].flatten().map(|v| (*k, v)))
                .collect();
            self.write(table, &writes)?;
        }
        for (key, pending) in &batch {
            for table in [Table::Main, Table::HalfOpen] {
                if pending[table as usize] == Some(None) {
                    let map = match table {
                        Table::Main => &mut self.conntrack,
                        Table::HalfOpen => &mut self.half_open,
                    };
                    // Gone meanwhile (the data path, an LRU eviction) is fine.
                    let _ = map.remove(key);
                }
            }
        }
        Ok(applied)
    }

    /// `key` in `table` as this call left it so far, else as the map has
    /// it.
    fn lookup(
        &self,
        batch: &HashMap<FlowKey, Pending>,
        table: Table,
        key: &FlowKey,
    ) -> Result<Option<FlowValue>, DataplaneError> {
        match batch.get(key).and_then(|p| p[table as usize]) {
            Some(done) => Ok(done),
            None => self.get(table, key),
        }
    }

    /// Writes `entries` into `table`, in one batch where the kernel can.
    fn write(
        &mut self,
        table: Table,
        entries: &[(FlowKey, FlowValue)],
    ) -> Result<(), DataplaneError> {
        if entries.is_empty() {
            return Ok(());
        }
        let (map, name) = match table {
            Table::Main => (&mut self.conntrack, names::CONNTRACK),
            Table::HalfOpen => (&mut self.half_open, names::HALF_OPEN),
        };
        match update_entries(IterableMap::map(map), entries) {
            Ok(()) => Ok(()),
            Err(e) if batch_unsupported(&e) => {
                for (key, value) in entries {
                    map.insert(key, value, 0).map_err(|e| DataplaneError::Map {
                        name,
                        source: Box::new(e),
                    })?;
                }
                Ok(())
            }
            Err(source) => Err(DataplaneError::Batch { name, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::FLOW_ACTIVE;

    fn v(real: u32, state: u32, flags: u32, last_seen_ns: u64) -> FlowValue {
        FlowValue {
            real,
            state,
            service: 1,
            flags,
            last_seen_ns,
        }
    }

    const L: u32 = FLOW_F_LEARNED;

    fn write(table: Table, value: FlowValue, remove_other: bool) -> Plan {
        Plan::Write {
            table,
            value: FlowValue { flags: L, ..value },
            remove_other,
        }
    }

    #[test]
    fn a_flow_this_director_forwards_is_never_overwritten() {
        for state in [FLOW_HALF_OPEN, FLOW_ACTIVE, FLOW_CLOSING] {
            let record = v(2, state, 0, 100);
            let own = v(1, FLOW_ACTIVE, 0, 50);
            assert_eq!(plan(record, Some(own), None), Plan::Keep);
            assert_eq!(plan(record, None, Some(own)), Plan::Keep);
            // Own in one table, learned in the other: still ours.
            assert_eq!(
                plan(record, Some(v(1, FLOW_ACTIVE, L, 50)), Some(own)),
                Plan::Keep
            );
        }
    }

    #[test]
    fn a_newer_connection_on_a_reused_port_replaces_an_own_closed_one() {
        // Own closing copy (last seen at 50) of an older connection; the
        // client reused its port through another director (SYN at 100).
        let closed = v(1, FLOW_CLOSING, 0, 50);
        let syn = v(2, FLOW_HALF_OPEN, 0, 100);
        assert_eq!(
            plan(syn, Some(closed), None),
            write(Table::HalfOpen, syn, true)
        );
        let established = v(2, FLOW_ACTIVE, 0, 100);
        assert_eq!(
            plan(established, Some(closed), None),
            write(Table::Main, established, false)
        );
        // Not an older record, nor a closing one, nor over a live flow.
        assert_eq!(
            plan(v(2, FLOW_HALF_OPEN, 0, 40), Some(closed), None),
            Plan::Keep
        );
        assert_eq!(
            plan(v(2, FLOW_CLOSING, 0, 100), Some(closed), None),
            Plan::Keep
        );
        assert_eq!(plan(syn, Some(v(1, FLOW_ACTIVE, 0, 50)), None), Plan::Keep);
    }

    #[test]
    fn records_land_where_the_sender_keeps_the_flow() {
        let syn = v(2, FLOW_HALF_OPEN, 0, 100);
        assert_eq!(plan(syn, None, None), write(Table::HalfOpen, syn, false));
        // The handshake completed at the sender: to CONNTRACK, and the
        // learned half-open copy goes.
        let est = v(2, FLOW_ACTIVE, 0, 200);
        assert_eq!(
            plan(est, None, Some(v(2, FLOW_HALF_OPEN, L, 100))),
            write(Table::Main, est, true)
        );
        // A closing established flow.
        let fin = v(2, FLOW_CLOSING, 0, 300);
        assert_eq!(
            plan(fin, Some(v(2, FLOW_ACTIVE, L, 200)), None),
            write(Table::Main, fin, false)
        );
        // A half-open flow that closed stays half-open-table.
        assert_eq!(
            plan(fin, None, Some(v(2, FLOW_HALF_OPEN, L, 100))),
            write(Table::HalfOpen, fin, false)
        );
        // A SYN reusing a learned closing flow's 5-tuple: a new flow, the
        // old copy goes.
        assert_eq!(
            plan(syn, Some(v(3, FLOW_CLOSING, L, 50)), None),
            write(Table::HalfOpen, syn, true)
        );
    }

    #[test]
    fn a_learned_copy_only_gets_younger() {
        let copy = v(2, FLOW_ACTIVE, L, 500);
        // A refresh from a director that saw the flow less recently.
        assert_eq!(
            plan(v(2, FLOW_ACTIVE, 0, 400), Some(copy), None),
            Plan::Keep
        );
        assert_eq!(
            plan(v(2, FLOW_ACTIVE, 0, 500), Some(copy), None),
            Plan::Keep
        );
        let newer = v(2, FLOW_ACTIVE, 0, 900);
        assert_eq!(
            plan(newer, Some(copy), None),
            write(Table::Main, newer, false)
        );
        // Another real (the flow was rescheduled) or state: written as sent.
        let moved = v(3, FLOW_ACTIVE, 0, 100);
        assert_eq!(
            plan(moved, Some(copy), None),
            write(Table::Main, moved, false)
        );
    }
}
