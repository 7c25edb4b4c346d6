//! Reading and writing many map entries with one syscall (`BPF_MAP_*_BATCH`,
//! Linux 5.6) instead of one per entry: a Maglev ring is 65,537 entries by default,
//! which took about 50 ms entry by entry (several hundred in a debug build) on the
//! owner task, delaying every other event the agent handles. aya 0.14 has no batch
//! operations, hence this one small syscall wrapper.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::maps::MapData;

/// `BPF_MAP_UPDATE_BATCH` of the kernel's `enum bpf_cmd`.
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

/// `BPF_NOEXIST` of the kernel's map update flags: add a key, never replace one.
pub const NOEXIST: u64 = 1;

/// Sets entries `first..first + values.len()` of the array `map` (u32 values).
pub fn set_u32_range(map: &MapData, first: u32, values: &[u32]) -> std::io::Result<()> {
    let keys: Vec<u32> = (first..).take(values.len()).collect();
    update(map, &keys, values, 0).map(|_| ())
}

/// Writes `values[i]` at `keys[i]` with `BPF_MAP_UPDATE_BATCH`. With `NOEXIST` in
/// `elem_flags` a key the map already holds keeps its value: the batch command
/// takes no such flag, so those go one `BPF_MAP_UPDATE_ELEM` each. Returns how
/// many were written.
pub fn update<K: aya::Pod, V: aya::Pod>(
    map: &MapData,
    keys: &[K],
    values: &[V],
    elem_flags: u64,
) -> std::io::Result<usize> {
    let n = keys.len().min(values.len());
    let fd = map.fd().as_fd().as_raw_fd();
    if elem_flags & NOEXIST != 0 {
        let mut written = 0;
        for (k, v) in keys.iter().zip(values) {
            match update_elem(fd, k, v, elem_flags) {
                Ok(()) => written += 1,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(written);
    }
    let mut at = 0usize;
    while at < n {
        let mut attr = BatchAttr {
            keys: keys[at..].as_ptr() as u64,
            values: values[at..].as_ptr() as u64,
            count: (n - at) as u32,
            map_fd: fd as u32,
            elem_flags,
            ..BatchAttr::default()
        };
        let result = batch_call(BPF_MAP_UPDATE_BATCH, &mut attr);
        at += attr.count as usize;
        result?;
    }
    Ok(n)
}

/// `BPF_MAP_UPDATE_ELEM` of the kernel's `enum bpf_cmd`.
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

/// The element member of the kernel's `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn update_elem<K: aya::Pod, V: aya::Pod>(
    fd: std::os::fd::RawFd,
    key: &K,
    value: &V,
    flags: u64,
) -> std::io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_ref(value) as u64,
        flags,
    };
    // SAFETY: `attr` is a valid `bpf_attr` element member whose `key` and `value`
    // point at one key and one value of the map's sizes (the callers' types),
    // alive for the call; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_ELEM,
            &raw mut attr,
            size_of::<ElemAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `BPF_MAP_LOOKUP_BATCH` / `BPF_MAP_DELETE_BATCH` of the kernel's `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// One batch syscall on `map`; `attr.count` in and out.
fn batch_call(cmd: libc::c_long, attr: &mut BatchAttr) -> std::io::Result<()> {
    // SAFETY: `attr` is a valid `bpf_attr.batch` whose pointers (set by the callers
    // below) cover `count` keys and values of the map's sizes, alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, &raw mut *attr, size_of::<BatchAttr>()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Walks a hash map (LRU included) in batches of up to `chunk` entries, one
/// `BPF_MAP_LOOKUP_BATCH` each, calling `each` with every batch. Entries added or
/// removed during the walk may be seen or not, as with any map iteration.
pub fn walk<K: aya::Pod + Default, V: aya::Pod + Default>(
    map: &MapData,
    chunk: usize,
    mut each: impl FnMut(&[K], &[V]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let fd = map.fd().as_fd().as_raw_fd();
    let mut keys = vec![K::default(); chunk];
    let mut values = vec![V::default(); chunk];
    // The batch position: an opaque token of the key's size for hash maps.
    let mut token_in = vec![0u8; size_of::<K>().max(8)];
    let mut token_out = vec![0u8; size_of::<K>().max(8)];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                token_in.as_mut_ptr() as u64
            },
            out_batch: token_out.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        let done = match batch_call(BPF_MAP_LOOKUP_BATCH, &mut attr) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => return Err(e),
        };
        let n = attr.count as usize;
        if n > 0 {
            each(&keys[..n], &values[..n])?;
        }
        if done {
            return Ok(());
        }
        token_in.copy_from_slice(&token_out);
        first = false;
    }
}

/// Deletes `keys` from a hash map with `BPF_MAP_DELETE_BATCH`; a key already gone
/// (evicted, replaced) is skipped. Returns how many were deleted.
pub fn delete<K: aya::Pod>(map: &MapData, keys: &[K]) -> std::io::Result<usize> {
    let fd = map.fd().as_fd().as_raw_fd();
    let (mut at, mut deleted) = (0usize, 0usize);
    while at < keys.len() {
        let mut attr = BatchAttr {
            keys: keys[at..].as_ptr() as u64,
            count: (keys.len() - at) as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        let result = batch_call(BPF_MAP_DELETE_BATCH, &mut attr);
        deleted += attr.count as usize;
        at += attr.count as usize;
        match result {
            Ok(()) => {}
            // The kernel stops at a missing key: skip it and go on.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => at += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
