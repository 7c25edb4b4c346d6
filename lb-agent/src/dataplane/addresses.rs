//! The addresses the program owns: `ADDRS` (authoritative hash) and its direct-mapped
//! copy `ADDR_TABLE` (double buffered, flipped with `ADDR_TABLE_LIVE`).

use std::collections::BTreeMap;

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError};
use lb_common::{
    ADDR_F_LOCAL_BACKEND, ADDR_F_NODE_VIP_ANY_PORT, ADDR_F_NODE_VIP_PORTS, ADDR_F_SNAT,
    ADDR_F_VIP_ANY_PORT, ADDR_F_VIP_PORTS, ADDR_SLOT_SHARED, ADDR_TABLE_SLOTS, AddrInfo, AddrKey,
    AddrSlot, MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE, MAP_ADDRS, hash::addr_slot,
    maps::addr::to_words,
};

use super::{Dataplane, DataplaneError, Forwarding, ServiceSpec, services::map_err};

impl Dataplane {
    /// ADDRS holds exactly the VIP, node-local VIP and SNAT addresses of `specs`,
    /// and the addresses of local backends of NAT services (their replies are
    /// translated at TC egress).
    pub(super) fn sync_addresses(&mut self, specs: &[ServiceSpec]) -> Result<(), DataplaneError> {
        let mut want: BTreeMap<(u32, [u32; 4]), u32> = BTreeMap::new();
        for s in specs {
            let (a, f) = to_words(s.vip);
            let bit = match (s.node_local(), s.port == 0) {
                (false, true) => ADDR_F_VIP_ANY_PORT,
                (false, false) => ADDR_F_VIP_PORTS,
                (true, true) => ADDR_F_NODE_VIP_ANY_PORT,
                (true, false) => ADDR_F_NODE_VIP_PORTS,
            };
            *want.entry((u32::from(f), a)).or_default() |= bit;
            if s.node_local() || s.forwarding != Forwarding::Nat {
                continue;
            }
            for snat in &s.snat {
                let (a, f) = to_words(*snat);
                *want.entry((u32::from(f), a)).or_default() |= ADDR_F_SNAT;
            }
            for b in &s.backends {
                if self.programmer.local.contains(&b.addr) {
                    let (a, f) = to_words(b.addr);
                    *want.entry((u32::from(f), a)).or_default() |= ADDR_F_LOCAL_BACKEND;
                }
            }
        }
        let mut addrs: BpfHashMap<&mut MapData, AddrKey, AddrInfo> = self.map_mut(MAP_ADDRS)?;
        // Only this agent writes ADDRS: every read error counts.
        let present: Vec<AddrKey> = addrs
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_err(MAP_ADDRS, "read"))?;
        for ((family, addr), flags) in &want {
            let key = AddrKey {
                addr: *addr,
                family: *family,
            };
            addrs
                .insert(key, AddrInfo { flags: *flags }, 0)
                .map_err(map_err(MAP_ADDRS, "update"))?;
        }
        // New addresses are in ADDRS before the table points at them; removed ones
        // leave the table before they leave ADDRS.
        self.write_addr_table(&want)?;
        let mut addrs: BpfHashMap<&mut MapData, AddrKey, AddrInfo> = self.map_mut(MAP_ADDRS)?;
        for key in present {
            if !want.contains_key(&(key.family, key.addr)) {
                match addrs.remove(&key) {
                    Ok(()) | Err(MapError::KeyNotFound) => {}
                    Err(e) => return Err(map_err(MAP_ADDRS, "delete")(e)),
                }
            }
        }
        Ok(())
    }

    /// Writes the direct-mapped address table for `want` into the idle half (changed
    /// slots only) and makes that half live.
    fn write_addr_table(
        &mut self,
        want: &BTreeMap<(u32, [u32; 4]), u32>,
    ) -> Result<(), DataplaneError> {
        let mut table = vec![AddrSlot::default(); ADDR_TABLE_SLOTS as usize];
        for ((family, addr), flags) in want {
            let slot = &mut table[addr_slot(addr, *family) as usize];
            *slot = if slot.family == 0 {
                AddrSlot {
                    addr: *addr,
                    family: *family,
                    flags: *flags,
                }
            } else {
                AddrSlot {
                    addr: [0; 4],
                    family: ADDR_SLOT_SHARED,
                    flags: 0,
                }
            };
        }
        let idle = self.programmer.addr_live ^ 1;
        let base = idle * ADDR_TABLE_SLOTS;
        let old = std::mem::take(&mut self.programmer.addr_tables[idle as usize]);
        {
            let mut map: Array<&mut MapData, AddrSlot> = self.map_mut(MAP_ADDR_TABLE)?;
            for (i, (new, was)) in table.iter().zip(&old).enumerate() {
                if new != was {
                    map.set(base + i as u32, *new, 0)
                        .map_err(map_err(MAP_ADDR_TABLE, "update"))?;
                }
            }
        }
        self.programmer.addr_tables[idle as usize] = table;
        let mut live: Array<&mut MapData, u32> = self.map_mut(MAP_ADDR_TABLE_LIVE)?;
        live.set(0, idle, 0)
            .map_err(map_err(MAP_ADDR_TABLE_LIVE, "update"))?;
        self.programmer.addr_live = idle;
        Ok(())
    }
}
