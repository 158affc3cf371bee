//! Scheduling tables and reference picks for the data path.
//!
//! The XDP program never computes a schedule itself: for rr/wrr/maglev/sh it
//! indexes a table that userspace built here, and for lc/wlc it scans a small
//! member set with the same rule as [`lc::pick`]. Keeping all of this pure (no
//! maps, no clocks) lets it be unit-tested exhaustively and lets `lbctl trace`
//! explain a decision without touching the kernel.

pub mod lc;
pub mod maglev;
pub mod wrr;

/// One real as the table builders see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Real id in the data path (index into `REALS`): what tables contain.
    pub id: u32,
    /// Stable identity such as `"10.0.0.1:80"`. Hash-based tables are derived
    /// from the name rather than the id because ids are allocated locally:
    /// two directors that number their reals differently must still send a
    /// given flow to the same real, so only the name may influence placement.
    pub name: String,
    /// Relative share of new flows; 0 means "takes no new flows" (draining).
    pub weight: u32,
}

impl Backend {
    /// Convenience constructor, mostly for tests and configuration code.
    #[must_use]
    pub fn new(id: u32, name: impl Into<String>, weight: u32) -> Self {
        Self {
            id,
            name: name.into(),
            weight,
        }
    }
}
