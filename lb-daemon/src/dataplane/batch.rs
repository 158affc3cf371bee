//! `BPF_MAP_UPDATE_BATCH` for the scheduling table: a 65537-slot Maglev ring
//! (1025 chunks) is written with one syscall instead of 1025 (aya 0.14 has
//! no batch API).

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::maps::MapData;

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of the kernel's `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Sets `map[offset + i] = values[i]` for a `u32 -> V` array map.
pub fn update_array<V: aya::Pod>(map: &MapData, offset: u32, values: &[V]) -> io::Result<()> {
    // The kernel caps nothing here, but keep each call's key buffer modest.
    for (chunk_index, chunk) in values.chunks(1 << 16).enumerate() {
        let first = offset + (chunk_index << 16) as u32;
        let keys: Vec<u32> = (first..first + chunk.len() as u32).collect();
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: chunk.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at live buffers of `count` keys and `count`
        // values (the map's value type), and its size is passed along.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        if attr.count as usize != chunk.len() {
            return Err(io::Error::other(format!(
                "batch update wrote {} of {} entries",
                attr.count,
                chunk.len()
            )));
        }
    }
    Ok(())
}
