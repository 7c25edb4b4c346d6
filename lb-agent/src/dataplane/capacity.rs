//! Capacities fixed when the program is loaded.

use std::ops::RangeInclusive;

use lb_common::{
    DEFAULT_FLOW_TABLE_SIZE, DEFAULT_MAX_BACKENDS, DEFAULT_MAX_VIPS, DEFAULT_RING_SIZE,
    DEFAULT_SNAT_PORT_MAX, DEFAULT_SNAT_PORT_MIN, DEFAULT_SOCK_TABLE_SIZE, Entries, MAX_SNAT_ADDRS,
    maglev::is_prime,
};

use super::DataplaneError;

/// Sizes of the maps and tables, set at load time (not compile time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacities {
    /// Services (VIP, port, protocol) at most.
    pub max_vips: u32,
    /// Backends of all services together at most.
    pub max_backends: u32,
    /// Flow table entries (the NAT binding table gets as many).
    pub flow_table_size: u32,
    /// Maglev ring entries per service: a prime.
    pub ring_size: u32,
    /// NAT source ports.
    pub snat_ports: RangeInclusive<u16>,
    /// Sockets of this node balanced by the socket programs whose peer is shown as
    /// the VIP (an LRU).
    pub sock_table_size: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Self {
            max_vips: DEFAULT_MAX_VIPS,
            max_backends: DEFAULT_MAX_BACKENDS,
            flow_table_size: DEFAULT_FLOW_TABLE_SIZE,
            ring_size: DEFAULT_RING_SIZE,
            snat_ports: DEFAULT_SNAT_PORT_MIN..=DEFAULT_SNAT_PORT_MAX,
            sock_table_size: DEFAULT_SOCK_TABLE_SIZE,
        }
    }
}

impl Capacities {
    /// Checks every value; the error names the first one that is wrong.
    pub fn validate(&self) -> Result<(), DataplaneError> {
        let bad = |what, why: String| Err(DataplaneError::Capacity { what, why });
        if self.max_vips == 0 || self.max_vips > 4096 {
            return bad("max_vips", format!("{} is not in 1..=4096", self.max_vips));
        }
        if self.max_backends == 0 || self.max_backends > 1 << 20 {
            return bad(
                "max_backends",
                format!("{} is not in 1..=1048576", self.max_backends),
            );
        }
        if self.flow_table_size < 1024 || self.flow_table_size > 1 << 26 {
            return bad(
                "flow_table_size",
                format!("{} is not in 1024..=67108864", self.flow_table_size),
            );
        }
        if !is_prime(self.ring_size) || self.ring_size < 7 || self.ring_size > 1_000_003 {
            return bad(
                "ring_size",
                format!("{} is not a prime in 7..=1000003", self.ring_size),
            );
        }
        let rings = u64::from(self.max_vips) * 2 * u64::from(self.ring_size);
        if rings > u64::from(u32::MAX) {
            return bad(
                "ring_size",
                format!("max_vips x 2 x ring_size = {rings} entries is too many"),
            );
        }
        if self.sock_table_size < 1024 || self.sock_table_size > 1 << 24 {
            return bad(
                "sock_table_size",
                format!("{} is not in 1024..=16777216", self.sock_table_size),
            );
        }
        if self.snat_ports.is_empty() || *self.snat_ports.start() == 0 {
            return bad(
                "snat_ports",
                format!("{:?} is empty or starts at 0", self.snat_ports),
            );
        }
        Ok(())
    }

    /// Entries of the rings map: two rings per VIP slot.
    pub fn ring_entries(&self) -> u32 {
        self.max_vips * 2 * self.ring_size
    }

    /// A map's entries (`lb_common::MAPS`) at these capacities.
    pub fn entries(&self, e: Entries) -> u32 {
        match e {
            Entries::Fixed(n) => n,
            Entries::PerVip(n) => self.max_vips * n,
            Entries::PerBackend => self.max_backends,
            Entries::Addresses => self.max_vips * (1 + MAX_SNAT_ADDRS) + self.max_backends,
            Entries::Rings => self.ring_entries(),
            Entries::Flows => self.flow_table_size,
            Entries::Sockets => self.sock_table_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: Capacities) -> String {
        match c.validate() {
            Ok(()) => panic!("{c:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Capacities::default().validate().is_ok());
    }

    #[test]
    fn every_bad_value_is_named() {
        let d = Capacities::default;
        assert!(err(Capacities { max_vips: 0, ..d() }).contains("max_vips"));
        assert!(
            err(Capacities {
                max_backends: 0,
                ..d()
            })
            .contains("max_backends")
        );
        assert!(
            err(Capacities {
                flow_table_size: 10,
                ..d()
            })
            .contains("flow_table_size")
        );
        let e = err(Capacities {
            ring_size: 65536,
            ..d()
        });
        assert!(e.contains("ring_size") && e.contains("65536"), "{e}");
        let e = err(Capacities {
            max_vips: 4096,
            ring_size: 1_000_003,
            ..d()
        });
        assert!(e.contains("too many"), "{e}");
        assert!(
            err(Capacities {
                snat_ports: 0..=100,
                ..d()
            })
            .contains("snat_ports")
        );
    }
}
