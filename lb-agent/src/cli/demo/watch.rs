//! What the demo knows of its LB nodes: each agent's status over its control socket,
//! and the events worth telling (VRRP transitions, backends going up or down),
//! found by comparing one reading with the last.

use std::{collections::BTreeMap, path::Path, time::Duration};

use lb_agent::{
    agent::{
        ask,
        protocol::{Request, Response},
    },
    status::Status,
};

/// How long one status request may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// One node as last seen.
pub struct NodeSeen {
    pub name: String,
    pub address: String,
    /// "running", "starting", "powered off".
    pub agent: &'static str,
    pub status: Option<Status>,
}

impl NodeSeen {
    pub fn vrrp_state(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.vrrp.first())
            .map_or("-", |v| v.state.as_str())
    }

    pub fn priority(&self) -> Option<u8> {
        self.status
            .as_ref()
            .and_then(|s| s.vrrp.first())
            .map(|v| v.priority)
    }

    pub fn is_master(&self) -> bool {
        self.vrrp_state() == "MASTER"
    }

    /// State changes of its VRRP instance so far.
    fn transitions(&self) -> u64 {
        self.status
            .as_ref()
            .and_then(|s| s.vrrp.first())
            .map_or(0, |v| v.transitions)
    }
}

/// Asks the agent behind `socket` for its status; `None` when it does not answer.
pub fn status(rt: &tokio::runtime::Runtime, socket: &Path) -> Option<Status> {
    let answer = rt
        .block_on(async { tokio::time::timeout(ASK_TIMEOUT, ask(socket, &Request::Status)).await });
    match answer {
        Ok(Ok(Response::Status { status })) => Some(*status),
        _ => None,
    }
}

/// Changes between two readings of the nodes, as sentences.
pub fn changes(before: &[NodeSeen], after: &[NodeSeen]) -> Vec<String> {
    let mut out = Vec::new();
    for (b, a) in before.iter().zip(after) {
        if b.agent != a.agent {
            out.push(format!("{}: agent {}", a.name, a.agent));
        }
        if b.vrrp_state() != a.vrrp_state() && a.vrrp_state() != "-" {
            let why = if a.is_master() {
                " (holds the VIP, announced by gratuitous ARP)"
            } else {
                ""
            };
            // First seen as MASTER after more than one change: it was BACKUP in
            // between (an election starts there), only between two readings.
            let from = if b.vrrp_state() == "-" && a.is_master() && a.transitions() > 1 {
                out.push(format!("{}: VRRP - -> BACKUP", a.name));
                "BACKUP"
            } else {
                b.vrrp_state()
            };
            out.push(format!(
                "{}: VRRP {from} -> {}{why}",
                a.name,
                a.vrrp_state()
            ));
        }
        let health = |n: &NodeSeen| -> BTreeMap<String, (String, String)> {
            n.status
                .iter()
                .flat_map(|s| &s.vips)
                .flat_map(|v| &v.backends)
                .map(|be| {
                    let reason = be
                        .last_check
                        .as_ref()
                        .map(|c| c.reason.clone())
                        .unwrap_or_default();
                    (be.address.clone(), (be.health.clone(), reason))
                })
                .collect()
        };
        let (hb, ha) = (health(b), health(a));
        for (addr, (now, reason)) in &ha {
            if let Some((was, _)) = hb.get(addr)
                && was != now
            {
                out.push(format!(
                    "{}: backend {addr} {} ({reason})",
                    a.name,
                    now.to_uppercase()
                ));
            }
        }
    }
    out
}
