//! What the data path can hold besides the configured maxima, checked
//! service by service as they are read.

use super::super::errors::Checker;
use super::ServiceConfig;
use crate::balancer::model::Scheduler;
use crate::dataplane::{DataplaneLimits, table_footprint};
use lb_common::MAX_LC_REALS;

/// Scheduling-table slots the services read so far use.
#[derive(Default)]
pub(super) struct TableUse {
    slots: u64,
    largest: u64,
    lc_services: u32,
    /// Reported once, at the first service that does not fit.
    table_full: bool,
}

impl Checker<'_> {
    /// What the data path can hold besides the configured maxima: lc/wlc
    /// scan at most `MAX_LC_REALS` reals, and the scheduling table (a fixed
    /// `DataplaneLimits::sched_table_size` slots) holds every Maglev/sh ring
    /// plus room to build the largest one anew during a change.
    pub(super) fn capacity(
        &mut self,
        service: &ServiceConfig,
        offset: usize,
        path: &str,
        used: &mut TableUse,
    ) {
        if service.scheduler.uses_lc_set() && service.reals.len() > MAX_LC_REALS {
            let message = format!(
                "{} scans at most {MAX_LC_REALS} reals per service; this service has {} \
                 (use maglev for larger pools)",
                service.scheduler,
                service.reals.len()
            );
            self.error(offset, format!("{path}.real"), message);
        }
        if service.scheduler.uses_lc_set() {
            used.lc_services += 1;
            // One spare set: a change builds the new set before switching.
            let sets = DataplaneLimits::default().lc_sets;
            if used.lc_services == sets {
                let message = format!(
                    "more than {} lc/wlc services: the data path has {sets} \
                     least-connection sets and needs one spare",
                    sets - 1
                );
                self.error(offset, format!("{path}.scheduler"), message);
            }
        }
        if matches!(service.scheduler, Scheduler::Maglev | Scheduler::SourceHash) {
            let slots = u64::from(table_footprint(service.table_size));
            used.slots += slots;
            used.largest = used.largest.max(slots);
            let limit = u64::from(DataplaneLimits::default().sched_table_size);
            if used.slots + used.largest > limit && !used.table_full {
                used.table_full = true;
                let message = format!(
                    "the Maglev/sh tables of the services so far need {} slots (plus {} to \
                     rebuild one), more than the data path's {limit}: use smaller table_size \
                     values or fewer maglev/sh services",
                    used.slots, used.largest
                );
                self.error(offset, format!("{path}.table_size"), message);
            }
        }
    }
}
