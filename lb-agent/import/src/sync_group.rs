//! keepalived's `vrrp_sync_group`: instances that change state together. A group's
//! `track_script`/`track_interface` track every member instance, and keepalived
//! ignores the weights of the members' trackers (a failing one puts the whole group
//! in FAULT) unless the group sets `sync_group_tracking_weight`. lb-agent's
//! instances fail over on their own: the members get the group's trackers, weights
//! as keepalived applies them, so they fail together.

use super::{
    keepalived::{Node, script_argv},
    warning::{Diagnostics, Loc},
};

/// One `vrrp_sync_group` block.
#[derive(Clone, Debug)]
pub struct SyncGroup {
    pub name: String,
    pub line: usize,
    pub members: Vec<String>,
    /// `track_script` entries of the group (nodes: name [weight N]).
    pub scripts: Vec<Node>,
    /// `track_interface` entries of the group.
    pub interfaces: Vec<Node>,
    /// `sync_group_tracking_weight`: the members' trackers keep their weights.
    pub tracking_weight: bool,
    /// The group's notify command (`notify`), for members without their own.
    pub notify: Option<Vec<String>>,
}

/// Reads every `vrrp_sync_group`; an instance named by two groups stays in the
/// first, as keepalived keeps it.
pub fn read(nodes: &[Node], file: &str, d: &mut Diagnostics) -> Vec<SyncGroup> {
    let mut out: Vec<SyncGroup> = Vec::new();
    for n in nodes.iter().filter(|n| n.word(0) == "vrrp_sync_group") {
        let at = Loc { file, line: n.line };
        let mut g = SyncGroup {
            name: n.word(1).to_string(),
            line: n.line,
            members: Vec::new(),
            scripts: Vec::new(),
            interfaces: Vec::new(),
            tracking_weight: false,
            notify: None,
        };
        for c in n.children() {
            let at = at.at(c.line);
            match c.word(0) {
                "group" => {
                    for m in c.children() {
                        let name = m.word(0).to_string();
                        if let Some(other) = out.iter().find(|o| o.members.contains(&name)) {
                            d.warn(at.at(m.line), format!("vrrp_instance {name} is already in vrrp_sync_group {} (line {}): keepalived keeps the first membership and ignores this one; so does this config", other.name, other.line));
                        } else if !g.members.contains(&name) {
                            g.members.push(name);
                        }
                    }
                }
                "track_script" => g.scripts.extend(c.children().iter().cloned()),
                "track_interface" => g.interfaces.extend(c.children().iter().cloned()),
                "sync_group_tracking_weight" => g.tracking_weight = true,
                "global_tracking" => d.warn(at, "`global_tracking` (deprecated in keepalived) not converted: the group's trackers are given to every member instance anyway"),
                "notify" => {
                    let cmd = c.words[1..].join(" ");
                    g.notify = Some(script_argv(&cmd).unwrap_or_else(|| {
                        vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
                    }));
                    d.warn(at, "the group's `notify` becomes each member instance's `notify` (where it has none): lb-agent runs it per instance, with instance, state, priority appended; keepalived passed \"GROUP\", the group's name, the state and the priority: adapt the script");
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => d.warn(
                    at,
                    format!("the group's `{}` not converted: lb-agent has no group notifications; each member instance can run one `notify` command, given the new state", c.text()),
                ),
                "smtp_alert" | "notify_priority_changes" => d.warn(at, format!("the group's `{}` not converted: no equivalent", c.text())),
                "track_file" | "track_process" | "track_bfd" => d.warn(
                    at,
                    format!("the group's `{}` not converted: lb-agent tracks scripts, interfaces, the data plane and VIP health", c.word(0)),
                ),
                _ => d.warn(at, format!("vrrp_sync_group `{}` not converted: no equivalent", c.text())),
            }
        }
        if g.members.is_empty() {
            d.warn(
                at,
                format!(
                    "vrrp_sync_group {} has no `group {{ }}` of instances: nothing to convert",
                    g.name
                ),
            );
        } else if g.members.len() == 1 {
            d.warn(at, format!("vrrp_sync_group {} has one instance (keepalived warns about it too): its trackers are the instance's own here", g.name));
        }
        out.push(g);
    }
    out
}

/// The group an instance belongs to.
pub fn of<'a>(groups: &'a [SyncGroup], instance: &str) -> Option<&'a SyncGroup> {
    groups
        .iter()
        .find(|g| g.members.iter().any(|m| m == instance))
}
