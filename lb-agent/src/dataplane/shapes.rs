//! Every map's shape (key size, value size, entries) for given capacities, from
//! `lb_common::MAPS`: set at load time, and checked against maps found pinned by an
//! earlier agent.

use lb_common::MAPS;

use super::Capacities;

/// One map of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub name: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Every map the agent owns (and pins), with its size for `caps`.
pub fn map_shapes(caps: &Capacities) -> [MapShape; MAPS.len()] {
    MAPS.map(|d| MapShape {
        name: d.name,
        key_size: d.key_size,
        value_size: d.value_size,
        max_entries: caps.entries(d.entries),
    })
}

#[cfg(test)]
mod tests {
    use lb_common::{PRIVATE_MAPS, map_def};

    use super::*;
    use crate::dataplane::LB_EBPF_OBJECT;

    /// The built object declares every map of the table, with its type, key, value
    /// and flags, and no other (but the program's own scratch and its globals): no
    /// root needed.
    #[test]
    fn the_object_declares_the_table_of_maps() {
        let object = aya_obj::Object::parse(LB_EBPF_OBJECT).expect("the built object parses");
        for d in &MAPS {
            let m = object
                .maps
                .get(d.name)
                .unwrap_or_else(|| panic!("the object has no map {}", d.name));
            assert_eq!(
                (m.map_type(), m.key_size(), m.value_size(), m.map_flags()),
                (
                    d.map_type.kernel_type(),
                    d.key_size,
                    d.value_size,
                    d.map_type.flags()
                ),
                "map {}: type, key, value, flags",
                d.name
            );
        }
        // Sections of globals (`.rodata`, `.bss`) are maps to the loader too.
        for name in object.maps.keys().filter(|n| !n.starts_with('.')) {
            assert!(
                map_def(name).is_some() || PRIVATE_MAPS.contains(&name.as_str()),
                "the object's map {name} is not in lb_common::MAPS"
            );
        }
    }

    #[test]
    fn entries_follow_the_capacities() {
        let caps = Capacities {
            max_vips: 3,
            max_backends: 10,
            flow_table_size: 1000,
            ring_size: 7,
            sock_table_size: 50,
            ..Capacities::default()
        };
        let n = |name| {
            map_shapes(&caps)
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.max_entries)
        };
        use lb_common::*;
        assert_eq!(n(MAP_ADDRS), Some(3 * 9 + 10));
        assert_eq!(n(MAP_RINGS), Some(3 * 2 * 7));
        assert_eq!(n(MAP_FLOWS), Some(1000));
        assert_eq!(n(MAP_NAT), Some(1000));
        assert_eq!(n(MAP_SNAT_ADDRS), Some(24));
        assert_eq!(n(MAP_SOCK_REVNAT), Some(50));
        assert_eq!(n(MAP_BACKENDS), Some(10));
        assert_eq!(n(MAP_STATS), Some(COUNTER_COUNT));
        assert_eq!(n(MAP_UPGRADE_HOLD), Some(1));
    }
}
