//! A handle of its own on the pinned connection table, for a thread other
//! than the controller's: the daemon's table thread reads the whole table
//! and deletes idle flows with it while the controller (which owns the
//! [`super::Dataplane`]) goes on answering requests.

use aya::maps::{HashMap, IterableMap, Map, MapData, MapError};
use lb_common::{FlowKey, FlowValue, map_names as names};

use super::{DataplaneError, PinDir, batch, map_err, walk};

/// The connection table, opened from its pin.
pub struct FlowTable {
    conntrack: HashMap<MapData, FlowKey, FlowValue>,
}

impl FlowTable {
    /// Opens the table a running lbd pinned under `pins`.
    pub fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        let data =
            MapData::from_pin(pins.map(names::CONNTRACK)).map_err(map_err(names::CONNTRACK))?;
        let map = Map::from_map_data(data).map_err(map_err(names::CONNTRACK))?;
        let conntrack = HashMap::try_from(map).map_err(map_err(names::CONNTRACK))?;
        Ok(Self { conntrack })
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
