//! Allocators for map slots: single ids (services, reals, lc sets) and ranges
//! of the shared scheduling table. Pure bookkeeping, no kernel access.

use std::collections::BTreeMap;

/// Hands out the lowest free id below a limit.
#[derive(Debug)]
pub struct IdAllocator {
    limit: u32,
    next_fresh: u32,
    freed: std::collections::BTreeSet<u32>,
}

impl IdAllocator {
    #[must_use]
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            next_fresh: 0,
            freed: std::collections::BTreeSet::new(),
        }
    }

    pub fn allocate(&mut self) -> Option<u32> {
        if let Some(id) = self.freed.pop_first() {
            return Some(id);
        }
        if self.next_fresh < self.limit {
            self.next_fresh += 1;
            Some(self.next_fresh - 1)
        } else {
            None
        }
    }

    pub fn free(&mut self, id: u32) {
        debug_assert!(
            id < self.next_fresh && !self.freed.contains(&id),
            "double free of {id}"
        );
        self.freed.insert(id);
    }

    /// Marks a specific id as used (adopting existing state).
    pub fn claim(&mut self, id: u32) -> bool {
        if id >= self.limit {
            return false;
        }
        if id >= self.next_fresh {
            self.freed.extend(self.next_fresh..id);
            self.next_fresh = id + 1;
            true
        } else {
            self.freed.remove(&id)
        }
    }
}

/// First-fit allocator of `[offset, offset + len)` ranges, merging freed
/// neighbours so the table does not fragment under churn.
#[derive(Debug)]
pub struct RangeAllocator {
    /// Free ranges: offset -> len, never adjacent to one another.
    free: BTreeMap<u32, u32>,
}

impl RangeAllocator {
    #[must_use]
    pub fn new(size: u32) -> Self {
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(0, size);
        }
        Self { free }
    }

    pub fn allocate(&mut self, len: u32) -> Option<u32> {
        if len == 0 {
            return Some(0);
        }
        let (&offset, &free_len) = self.free.iter().find(|&(_, &l)| l >= len)?;
        self.free.remove(&offset);
        if free_len > len {
            self.free.insert(offset + len, free_len - len);
        }
        Some(offset)
    }

    pub fn free(&mut self, offset: u32, len: u32) {
        if len == 0 {
            return;
        }
        let (mut start, mut end) = (offset, offset + len);
        // Freeing a range that is (partly) free already would let two tables
        // share slots later: refuse, loudly, in every build.
        let overlaps_prev = self
            .free
            .range(..=offset)
            .next_back()
            .is_some_and(|(&p, &l)| p + l > offset);
        let overlaps_next = self.free.range(offset..end).next().is_some();
        if overlaps_prev || overlaps_next {
            tracing::error!(
                offset,
                len,
                "double free of a scheduling-table range ignored"
            );
            return;
        }
        if let Some((&prev, &prev_len)) = self.free.range(..offset).next_back()
            && prev + prev_len == offset
        {
            self.free.remove(&prev);
            start = prev;
        }
        if let Some(&next_len) = self.free.get(&end) {
            self.free.remove(&end);
            end += next_len;
        }
        self.free.insert(start, end - start);
    }

    /// Marks `[offset, offset + len)` as used (adopting existing state).
    /// False if any of it is not free.
    pub fn claim(&mut self, offset: u32, len: u32) -> bool {
        if len == 0 {
            return true;
        }
        let Some((&start, &free_len)) = self.free.range(..=offset).next_back() else {
            return false;
        };
        let (end, free_end) = (
            u64::from(offset) + u64::from(len),
            u64::from(start) + u64::from(free_len),
        );
        if end > free_end {
            return false;
        }
        self.free.remove(&start);
        if offset > start {
            self.free.insert(start, offset - start);
        }
        if free_end > end {
            self.free.insert(end as u32, (free_end - end) as u32);
        }
        true
    }

    /// Total free slots.
    #[must_use]
    pub fn available(&self) -> u64 {
        self.free.values().map(|&l| u64::from(l)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_reused_lowest_first() {
        let mut ids = IdAllocator::new(3);
        assert_eq!(ids.allocate(), Some(0));
        assert_eq!(ids.allocate(), Some(1));
        assert_eq!(ids.allocate(), Some(2));
        assert_eq!(ids.allocate(), None);
        ids.free(1);
        ids.free(0);
        assert_eq!(ids.allocate(), Some(0));
        assert_eq!(ids.allocate(), Some(1));
    }

    #[test]
    fn range_claim_splits_the_free_range() {
        let mut ranges = RangeAllocator::new(100);
        assert!(ranges.claim(10, 20));
        assert!(!ranges.claim(25, 10), "overlaps the claimed range");
        assert!(!ranges.claim(95, 10), "past the end");
        assert_eq!(ranges.available(), 80);
        assert_eq!(ranges.allocate(10), Some(0));
        assert_eq!(ranges.allocate(5), Some(30));
        ranges.free(10, 20);
        assert_eq!(ranges.allocate(20), Some(10));
    }

    #[test]
    fn claim_marks_ids_used() {
        let mut ids = IdAllocator::new(10);
        assert!(ids.claim(3));
        assert!(!ids.claim(3));
        assert_eq!(ids.allocate(), Some(0));
        assert!(!ids.claim(10));
    }

    #[test]
    fn ranges_merge_when_freed() {
        let mut r = RangeAllocator::new(100);
        let a = r.allocate(30).unwrap();
        let b = r.allocate(30).unwrap();
        let c = r.allocate(30).unwrap();
        assert_eq!((a, b, c), (0, 30, 60));
        assert_eq!(r.allocate(20), None);
        r.free(a, 30);
        r.free(c, 30);
        assert_eq!(r.allocate(41), None, "holes are 0..30 and 60..100");
        r.free(b, 30);
        assert_eq!(r.available(), 100);
        assert_eq!(r.allocate(100), Some(0));
    }
}
