//! `SYN_ALLOWANCE`: how many more half-open flows each CPU may put into the
//! connection table (see `xdp-ebpf/src/maps.rs`). Userspace writes it after
//! every ageing pass ([`crate::ageing::syn_allowance`]); the data path
//! spends and returns it in between.

use aya::maps::{PerCpuArray, PerCpuValues};
use lb_common::map_names as names;

use super::{Dataplane, DataplaneError, map_err};

impl Dataplane {
    /// What all CPUs may still put into the connection table.
    pub fn syn_allowance(&self) -> Result<u64, DataplaneError> {
        Ok(self
            .syn_allowance_map()?
            .get(&0, 0)
            .map_err(map_err(names::SYN_ALLOWANCE))?
            .iter()
            .sum())
    }

    /// Sets the allowance to `total`, split evenly over the CPUs (the
    /// remainder to the first ones).
    pub fn set_syn_allowance(&mut self, total: u64) -> Result<(), DataplaneError> {
        let cpus = self.cpus as u64;
        let values: Vec<u64> = (0..cpus)
            .map(|cpu| total / cpus + u64::from(cpu < total % cpus))
            .collect();
        let values = PerCpuValues::try_from(values).expect("one value per possible CPU");
        let mut map: PerCpuArray<&mut aya::maps::MapData, u64> = self
            .ebpf
            .map_mut(names::SYN_ALLOWANCE)
            .ok_or(DataplaneError::MissingMap {
                name: names::SYN_ALLOWANCE,
            })?
            .try_into()
            .map_err(map_err(names::SYN_ALLOWANCE))?;
        map.set(0, values, 0).map_err(map_err(names::SYN_ALLOWANCE))
    }

    fn syn_allowance_map(&self) -> Result<PerCpuArray<&aya::maps::MapData, u64>, DataplaneError> {
        self.ebpf
            .map(names::SYN_ALLOWANCE)
            .ok_or(DataplaneError::MissingMap {
                name: names::SYN_ALLOWANCE,
            })?
            .try_into()
            .map_err(map_err(names::SYN_ALLOWANCE))
    }
}
