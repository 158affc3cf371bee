//! The scheduling table, mapped into our memory (`BPF_F_MMAPABLE`), so a
//! 65537-slot Maglev ring is written with plain stores instead of 65537
//! syscalls.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
};

use aya::maps::MapData;

/// A `u32` array map shared with the kernel.
pub struct MappedTable {
    // Keeps the map (and so the mapping's backing object) alive.
    _map: MapData,
    base: NonNull<u32>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; access goes
// through `&self`/`&mut self`, so Rust's aliasing rules hold on our side. The
// kernel side only reads 4-byte words, which x86 stores never tear.
unsafe impl Send for MappedTable {}
unsafe impl Sync for MappedTable {}

impl MappedTable {
    pub fn new(map: MapData, len: u32) -> io::Result<Self> {
        let len = len as usize;
        let bytes = len * size_of::<u32>();
        // SAFETY: mapping a BPF array fd created with BPF_F_MMAPABLE; the size
        // is exactly max_entries * value_size, which the kernel allows.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u32>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self {
            _map: map,
            base,
            len,
        })
    }

    /// Copies `ids` to `offset..offset + ids.len()`. The caller checked the
    /// range.
    pub fn write(&mut self, offset: usize, ids: &[u32]) {
        assert!(offset + ids.len() <= self.len, "table write out of range");
        // SAFETY: in range (checked above) of a live mapping we own mutably.
        unsafe {
            std::ptr::copy_nonoverlapping(ids.as_ptr(), self.base.as_ptr().add(offset), ids.len());
        }
    }

    #[must_use]
    pub fn read(&self, offset: usize, len: usize) -> Vec<u32> {
        assert!(offset + len <= self.len, "table read out of range");
        // SAFETY: in range of a live mapping.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(offset), len).to_vec() }
    }
}

impl Drop for MappedTable {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len * size_of::<u32>());
        }
    }
}
