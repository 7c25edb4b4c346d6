//! The control socket's protocol: one JSON request per line, one JSON response per
//! line. The CLI speaks it; so can scripts (`socat - UNIX:/run/lb-agent.sock`).

use serde::{Deserialize, Serialize};

use crate::status::Status;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    Status,
    Flows {
        vip: Option<String>,
        backend: Option<String>,
        limit: usize,
    },
    Drain {
        vip: String,
        backend: String,
    },
    Enable {
        vip: String,
        backend: String,
    },
    Reload,
    /// Leave for a restart: masters keep the VIP for the next agent (started by the
    /// supervisor), which resumes as master.
    Restart,
    /// Step down now (masters send priority 0) and stay out of the election, or
    /// (`undo`) rejoin it.
    Handover {
        #[serde(default)]
        undo: bool,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status { status: Box<Status> },
    Flows { flows: FlowList },
    Done { message: String },
    Error { message: String },
}

/// Flows matching a filter: how many, and the first `limit`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FlowList {
    pub matched: usize,
    pub flows: Vec<FlowRow>,
}

/// One entry of the flow table.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowRow {
    pub protocol: String,
    pub client: String,
    pub vip_name: String,
    pub vip: String,
    pub backend: String,
    /// NAT source address:port used towards the backend ("" in DSR mode).
    pub snat: String,
    /// Written from a peer's flow sync (the mark stays when this node's program
    /// serves the flow later).
    #[serde(default)]
    pub learned: bool,
    /// `syn`, `established`, `closing`, `time_wait`, `reset`, `udp`, `udp_replied`.
    #[serde(default)]
    pub state: String,
    /// Seconds since the flow's last refresh (at most about a second behind its
    /// last packet), and until it expires without another.
    #[serde(default)]
    pub idle_s: u64,
    #[serde(default)]
    pub expires_in_s: i64,
}
