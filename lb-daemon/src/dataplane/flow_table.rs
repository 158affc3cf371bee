//! A handle of its own on the pinned connection table, for a thread other
//! than the controller's: the daemon's table thread reads the whole table
//! and deletes idle flows with it while the controller (which owns the
//! [`super::Dataplane`]) goes on answering requests.

use aya::maps::{HashMap, IterableMap, Map, MapData, MapError};
use lb_common::{FlowKey, FlowValue, map_names as names};

use super::{DataplaneError, PinDir, batch, map_err, read_all, walk};

/// The connection table (and the half-open table), opened from their pins.
pub struct FlowTable {
    conntrack: HashMap<MapData, FlowKey, FlowValue>,
    half_open: HashMap<MapData, FlowKey, FlowValue>,
}

fn open_pinned(
    pins: &PinDir,
    name: &'static str,
) -> Result<HashMap<MapData, FlowKey, FlowValue>, DataplaneError> {
    let data = MapData::from_pin(pins.map(name)).map_err(map_err(name))?;
    let map = Map::from_map_data(data).map_err(map_err(name))?;
    HashMap::try_from(map).map_err(map_err(name))
}

impl FlowTable {
    /// Opens the tables a running lbd pinned under `pins`.
    pub fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        Ok(Self {
            conntrack: open_pinned(pins, names::CONNTRACK)?,
            half_open: open_pinned(pins, names::HALF_OPEN)?,
        })
    }

    /// Every flow of the half-open table.
    pub fn half_open_flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        read_all(&self.half_open, names::HALF_OPEN)
    }

    /// Deletes a half-open flow (one already gone is fine).
    pub fn remove_half_open(&mut self, key: &FlowKey) -> Result<(), DataplaneError> {
        match self.half_open.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::HALF_OPEN)(e)),
        }
    }

    /// Every flow, read in batches (entry by entry on kernels without batch
    /// operations).
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowValue)>, DataplaneError> {
        match batch::lookup_all(IterableMap::map(&self.conntrack)) {
            Ok(flows) => Ok(flows),
            Err(e) if batch::unsupported(&e) => walk(&self.conntrack),
            Err(source) => Err(DataplaneError::Batch {
                name: names::CONNTRACK,
                source,
            }),
        }
    }

    /// Writes a flow (tools and benchmarks that fill the table).
    pub fn insert(&mut self, key: &FlowKey, value: &FlowValue) -> Result<(), DataplaneError> {
        self.conntrack
            .insert(key, value, 0)
            .map_err(map_err(names::CONNTRACK))
    }

    /// Deletes a flow (one already gone is fine: the LRU may have evicted it).
    pub fn remove(&mut self, key: &FlowKey) -> Result<(), DataplaneError> {
        match self.conntrack.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::CONNTRACK)(e)),
        }
    }
}
