//! Backup backends, as HAProxy's `backup` servers: a backup takes new flows only
//! while no other backend of its VIP can (none is up with a weight above 0, because
//! they are down, drained, disabled or weighted 0). Then the first backup that is up,
//! in config order, takes them, or every backup that is up with `all_backups`
//! (`option allbackups`). A backup held back is drained, not down: flows it took
//! while it served stay on it until they end, as HAProxy keeps a backup's sessions
//! when an active server returns.

use super::VipConfig;
use crate::service::BackendState;

/// Whether a backend in this state takes new flows.
fn takes_new(state: BackendState, weight: u32) -> bool {
    state == BackendState::Up && weight > 0
}

/// The states the data plane gets: `own[i]` (backend `i`'s state by its admin state
/// and health) with the backups not needed now held back.
pub fn serving(v: &VipConfig, own: &[BackendState]) -> Vec<BackendState> {
    let backends = v.backends.iter().zip(own.iter().copied());
    let actives_take = backends
        .clone()
        .any(|(b, s)| !b.backup && takes_new(s, b.weight));
    let first_backup = v
        .backends
        .iter()
        .zip(own.iter().copied())
        .position(|(b, s)| b.backup && takes_new(s, b.weight));
    backends
        .enumerate()
        .map(|(i, (b, s))| {
            let needed = !b.backup || (!actives_take && (v.all_backups || first_backup == Some(i)));
            match s {
                BackendState::Up if !needed => BackendState::Drain,
                s => s,
            }
        })
        .collect()
}

/// A backup that is up but held back (shown as "standby").
pub fn standing_by(backup: bool, own: BackendState, serving: BackendState) -> bool {
    backup && own == BackendState::Up && serving == BackendState::Drain
}

#[cfg(test)]
mod tests {
    use BackendState::{Down, Drain, Up};

    use super::*;
    use crate::parse;

    fn vip(all_backups: bool) -> VipConfig {
        let text = format!(
            r#"
[agent]
interfaces = ["eth0"]
[[vip]]
name = "db"
address = "10.0.0.250"
port = 3306
snat_address = "10.0.0.2"
all_backups = {all_backups}
[[vip.backend]]
address = "10.0.0.11"
[[vip.backend]]
address = "10.0.0.12"
weight = 0
[[vip.backend]]
address = "10.0.0.13"
backup = true
[[vip.backend]]
address = "10.0.0.14"
backup = true
"#
        );
        parse(&text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .vips
            .remove(0)
    }

    #[test]
    fn backups_stand_by_while_an_active_backend_takes_new_flows() {
        let v = vip(false);
        assert_eq!(serving(&v, &[Up, Up, Up, Up]), [Up, Up, Drain, Drain]);
        assert_eq!(
            serving(&v, &[Drain, Up, Up, Up]),
            [Drain, Up, Up, Drain],
            "weight 0 does not count"
        );
        assert_eq!(
            serving(&v, &[Down, Up, Down, Up]),
            [Down, Up, Down, Up],
            "the first backup that is up"
        );
        assert_eq!(
            serving(&v, &[Down, Down, Down, Down]),
            [Down, Down, Down, Down]
        );
        assert!(standing_by(true, Up, Drain));
        assert!(!standing_by(true, Drain, Drain));
    }

    #[test]
    fn all_backups_take_new_flows_together() {
        let v = vip(true);
        assert_eq!(serving(&v, &[Down, Up, Up, Up]), [Down, Up, Up, Up]);
        assert_eq!(serving(&v, &[Up, Up, Up, Up]), [Up, Up, Drain, Drain]);
    }
}
