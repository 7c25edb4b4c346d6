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
