//! Writing many entries of an array map with one syscall (`BPF_MAP_UPDATE_BATCH`,
//! Linux 5.6) instead of one per entry: a Maglev ring is 65,537 entries by default,
//! which took about 50 ms entry by entry (several hundred in a debug build) on the
//! owner task, delaying every other event the agent handles. aya 0.14 has no batch
//! operations, hence this one small syscall wrapper.

use std::os::fd::{AsFd, AsRawFd};

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

/// Sets entries `first..first + values.len()` of the array `map` (u32 values).
pub fn set_u32_range(map: &MapData, first: u32, values: &[u32]) -> std::io::Result<()> {
    let keys: Vec<u32> = (first..).take(values.len()).collect();
    let fd = map.fd().as_fd().as_raw_fd();
    let mut done = 0usize;
    while done < values.len() {
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: (values.len() - done) as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is a valid `bpf_attr.batch` whose `keys` and `values` point
        // at `count` u32s each, alive for the call; the kernel only reads them and
        // writes back `count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &raw mut attr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // Entries before `count` were written; go on from there unless none was.
            if attr.count == 0 {
                return Err(err);
            }
        }
        done += attr.count as usize;
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
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &raw mut *attr,
            std::mem::size_of::<BatchAttr>(),
        )
    };
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
    let mut token_in = vec![0u8; std::mem::size_of::<K>().max(8)];
    let mut token_out = vec![0u8; std::mem::size_of::<K>().max(8)];
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
