//! Batch map operations (aya 0.14 has no batch API): `BPF_MAP_UPDATE_BATCH`
//! for the scheduling table (a 65537-slot Maglev ring, 1025 chunks, is
//! written with one syscall instead of 1025) and `BPF_MAP_LOOKUP_BATCH` for
//! reading the whole connection table.

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

/// One batch command.
///
/// # Safety
/// `attr` must point at live buffers of `attr.count` keys and values of the
/// map's key and value types (and batch tokens of the key's size, if set).
unsafe fn batch_call(command: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: the caller's contract; the attribute's size is passed along.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            size_of::<BatchAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `map[keys[i]] = values[i]` with `BPF_MAP_UPDATE_BATCH`, at most 65536
/// entries per call. `K` and `V` must be the map's key and value types.
fn update<K: aya::Pod, V: aya::Pod>(map: &MapData, keys: &[K], values: &[V]) -> io::Result<()> {
    debug_assert_eq!(keys.len(), values.len());
    for (keys, values) in keys.chunks(1 << 16).zip(values.chunks(1 << 16)) {
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: keys.len() as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `count` keys and values of the map's types, alive for
        // the call.
        unsafe { batch_call(BPF_MAP_UPDATE_BATCH, &mut attr) }?;
        if attr.count as usize != keys.len() {
            return Err(io::Error::other(format!(
                "batch update wrote {} of {} entries",
                attr.count,
                keys.len()
            )));
        }
    }
    Ok(())
}

/// Sets `map[offset + i] = values[i]` for a `u32 -> V` array map.
pub fn update_array<V: aya::Pod>(map: &MapData, offset: u32, values: &[V]) -> io::Result<()> {
    let keys: Vec<u32> = (offset..offset + values.len() as u32).collect();
    update(map, &keys, values)
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per `BPF_MAP_LOOKUP_BATCH` call.
const LOOKUP_CHUNK: u32 = 4096;

/// Every entry of a (non-per-CPU) hash or LRU hash map, a few thousand per
/// syscall instead of two syscalls per entry: a million flows are read in
/// about 0.3 s instead of 1.2 s here (the kernel's walk over the buckets is
/// most of what is left). Entries added or removed meanwhile may or may not
/// be seen, as with any walk.
///
/// `K` and `V` must be the map's key and value types (callers pass the
/// `MapData` of a typed map), and the map must not be per-CPU.
pub(crate) fn lookup_all<K: aya::Pod, V: aya::Pod>(map: &MapData) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    let mut chunk = LOOKUP_CHUNK;
    // The kernel's batch cursor for hash maps is a bucket index; a buffer of
    // the key's size (at least 8 bytes) holds it whatever the key type.
    let token_len = size_of::<K>().max(8);
    let mut token_in = vec![0u8; token_len];
    let mut token_out = vec![0u8; token_len];
    let mut first = true;
    loop {
        // Zeroed, not just reserved: whatever count the kernel reports, no
        // uninitialised memory is ever read.
        // SAFETY: Pod types are valid for any bytes, zeros included.
        let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; chunk as usize];
        // SAFETY: as above.
        let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; chunk as usize];
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                token_in.as_mut_ptr() as u64
            },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the key and value buffers have room for `count` entries
        // of the map's key and value types, the batch tokens for one key;
        // the kernel writes at most `count` entries and reports how many.
        let err = unsafe { batch_call(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        let got = (attr.count as usize).min(chunk as usize);
        if let Some(e) = &err {
            // A bucket holds more entries than `count`: ask for more.
            if e.raw_os_error() == Some(libc::ENOSPC) && got == 0 {
                chunk *= 2;
                continue;
            }
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(err.expect("checked"));
            }
        }
        keys.truncate(got);
        values.truncate(got);
        out.extend(keys.into_iter().zip(values));
        if err.is_some() {
            // ENOENT: that was the last batch.
            return Ok(out);
        }
        token_in.copy_from_slice(&token_out);
        first = false;
    }
}

/// Entries `0..count` of a per-CPU array of `u64` with one
/// `BPF_MAP_LOOKUP_BATCH`, each summed over the `cpus` possible CPUs (the
/// kernel gives one 8-byte value per possible CPU and entry).
pub(crate) fn lookup_per_cpu_u64(map: &MapData, count: u32, cpus: usize) -> io::Result<Vec<u64>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut keys = vec![0u32; count as usize];
    let mut values = vec![0u64; count as usize * cpus];
    // The cursor of an array is an index: 4 bytes (8 reserved).
    let mut token_out = [0u8; 8];
    let mut attr = BatchAttr {
        out_batch: token_out.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    // SAFETY: room for `count` u32 keys and `count` per-CPU u64 values;
    // the kernel writes at most `count` entries and reports how many.
    let err = unsafe { batch_call(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
    if let Some(e) = err
        && e.raw_os_error() != Some(libc::ENOENT)
    {
        return Err(e);
    }
    let got = (attr.count as usize).min(count as usize);
    let mut sums = vec![0u64; count as usize];
    for (key, per_cpu) in keys.iter().zip(values.chunks(cpus)).take(got) {
        if let Some(sum) = sums.get_mut(*key as usize) {
            *sum = per_cpu.iter().sum();
        }
    }
    Ok(sums)
}

/// Whether a batch call failed because this kernel or map type has no batch
/// operations (before Linux 5.6): the caller falls back to one entry per
/// syscall.
pub(crate) fn unsupported(error: &io::Error) -> bool {
    // ENOTSUPP (524) is the kernel-internal code some map types return.
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | 524)
    )
}

/// Writes `entries` into a (non-per-CPU) hash or LRU hash map with
/// `BPF_MAP_UPDATE_BATCH`: one syscall for a whole sync datagram. Same type
/// contract as [`lookup_all`].
pub(crate) fn update_entries<K: aya::Pod, V: aya::Pod>(
    map: &MapData,
    entries: &[(K, V)],
) -> io::Result<()> {
    let (keys, values): (Vec<K>, Vec<V>) = entries.iter().copied().unzip();
    update(map, &keys, &values)
}
