//! `SYN_ALLOWANCE`: how many more half-open flows each CPU may put into the
//! connection table, and `HALF_OPEN_GEN`: whether `HALF_OPEN` may hold a
//! half-open flow of this director's own (see `xdp-ebpf/src/maps.rs`).
//! Userspace writes both after every ageing pass
//! ([`crate::ageing::syn_allowance`]); the data path spends and returns the
//! allowance in between.

use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use lb_common::{HALF_OPEN_GEN_EMPTY_AT, HALF_OPEN_GEN_INSERTS, map_names as names};

use super::{Dataplane, DataplaneError, map_err};

impl Dataplane {
    /// What all CPUs may still put into the connection table.
    pub fn syn_allowance(&self) -> Result<u64, DataplaneError> {
        self.per_cpu_total(names::SYN_ALLOWANCE)
    }

    /// Sets the allowance to `total`, split evenly over the online CPUs
    /// (the remainder to the first ones; CPUs that are only possible get
    /// none: a SYN never runs there).
    pub fn set_syn_allowance(&mut self, total: u64) -> Result<(), DataplaneError> {
        let online = aya::util::online_cpus()
            .map_err(|(what, e)| DataplaneError::Cpus(format!("{what}: {e}")))?;
        let shares = online.len().max(1) as u64;
        let mut values = vec![0u64; self.cpus];
        for (n, cpu) in online.iter().enumerate() {
            if let Some(value) = values.get_mut(*cpu as usize) {
                *value = total / shares + u64::from((n as u64) < total % shares);
            }
        }
        let values = PerCpuValues::try_from(values).expect("one value per possible CPU");
        let mut map: PerCpuArray<&mut MapData, u64> = self.typed_map_mut(names::SYN_ALLOWANCE)?;
        map.set(0, values, 0).map_err(map_err(names::SYN_ALLOWANCE))
    }

    /// How many half-open flows of its own the data path has put into
    /// `HALF_OPEN` so far (read before a table walk).
    pub fn half_open_inserts(&self) -> Result<u64, DataplaneError> {
        let map: Array<&MapData, u64> = self.typed_map(names::HALF_OPEN_GEN)?;
        map.get(&HALF_OPEN_GEN_INSERTS, 0)
            .map_err(map_err(names::HALF_OPEN_GEN))
    }

    /// A walk that began when the count was `inserts` found no half-open
    /// flow of this director's own in `HALF_OPEN`: SYNs may go into the
    /// connection table again until the data path puts one there. `None`:
    /// `HALF_OPEN` may hold one (e.g. after adopting another lbd's maps).
    pub fn set_half_open_empty_at(&mut self, inserts: Option<u64>) -> Result<(), DataplaneError> {
        let mut map: Array<&mut MapData, u64> = self.typed_map_mut(names::HALF_OPEN_GEN)?;
        map.set(HALF_OPEN_GEN_EMPTY_AT, inserts.unwrap_or(u64::MAX), 0)
            .map_err(map_err(names::HALF_OPEN_GEN))
    }
}
