//! Reading the maps from either side: the running agent's loaded object
//! (`Dataplane`) or maps pinned by an agent that may not be running (`PinnedMaps`,
//! what the CLI opens when the daemon is down).

use std::collections::HashMap;

use aya::maps::{Map, MapData, MapError};
use lb_common::MAP_VIPS;

use super::{Capacities, DataplaneError, PinLayout, map_shapes, services::map_err};

/// Something holding the program's maps by name.
pub trait MapSet {
    fn raw_map(&mut self, name: &'static str) -> Option<&mut Map>;
}

/// A typed handle on map `name` of `set`.
pub fn typed<'a, T>(set: &'a mut impl MapSet, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    set.raw_map(name)
        .ok_or(DataplaneError::MissingMap { name })?
        .try_into()
        .map_err(map_err(name, "type check"))
}

impl MapSet for super::Dataplane {
    fn raw_map(&mut self, name: &'static str) -> Option<&mut Map> {
        self.ebpf.map_mut(name)
    }
}

/// The maps an agent pinned, opened without loading anything.
pub struct PinnedMaps {
    maps: HashMap<&'static str, Map>,
}

impl PinnedMaps {
    /// Opens every pinned map under `pins`; fails when there are none (no
    /// `VIPS`). A map an older agent did not have is left out (a reader of it
    /// gets `MissingMap`).
    pub fn open(pins: &PinLayout) -> Result<Self, DataplaneError> {
        let mut maps = HashMap::new();
        for shape in map_shapes(&Capacities::default()) {
            let path = pins.map(shape.name);
            if shape.name != MAP_VIPS && !path.exists() {
                continue;
            }
            let data = MapData::from_pin(&path).map_err(|e| DataplaneError::PinnedMap {
                path: path.clone(),
                why: format!("cannot open it ({e}); is the agent's pin_path right?"),
            })?;
            let map = Map::from_map_data(data).map_err(map_err(shape.name, "open"))?;
            maps.insert(shape.name, map);
        }
        Ok(Self { maps })
    }
}

impl MapSet for PinnedMaps {
    fn raw_map(&mut self, name: &'static str) -> Option<&mut Map> {
        self.maps.get_mut(name)
    }
}
