//! The demo's lab: one LAN (a bridge in its own namespace) with LB nodes each
//! running the real `lb-agent run` with VRRP, servers, and clients. Two layouts:
//! - classic: a client, two LB nodes and three web backends of their own;
//! - stacked (`--stacked`): three nodes that are each an LB node, a backend (an
//!   HTTPS stand-in for kube-apiserver on the node's address, :6443) and a client
//!   (to the VIP, and to the node-local VIP 127.0.0.1:6443), and a client outside,
//!   as examples/k8s-api.toml lays it out.
//!
//! Every node gets the same services; VRRP decides which one holds the VIP.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use lb_agent::lab::{AgentNode, ApiServer, Host, Lan, TcpServer, lan_v4, self_signed};

pub const VIP: u8 = 10;
pub const CLIENT: u8 = 100;
pub const VRID: u8 = 51;
pub const ADVERT_MS: u32 = 100;
pub const CHECK_INTERVAL_MS: u32 = 300;
pub const FALL: u32 = 2;
pub const RISE: u32 = 2;

/// How the lab is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Two LB nodes in front of three web backends.
    Classic,
    /// Three nodes, each LB, API server and client.
    Stacked,
}

impl Layout {
    /// LB nodes: (host index, VRRP priority); the first is the preferred master.
    pub fn nodes(self) -> &'static [(u8, u8)] {
        match self {
            Layout::Classic => &[(1, 150), (2, 100)],
            Layout::Stacked => &[(1, 150), (2, 100), (3, 90)],
        }
    }

    /// Hosts of the backends.
    pub fn backends(self) -> &'static [u8] {
        match self {
            Layout::Classic => &[11, 12, 13],
            Layout::Stacked => &[1, 2, 3],
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Layout::Classic => 80,
            Layout::Stacked => 6443,
        }
    }

    /// What backend N answers.
    pub fn server_name(self, index: u8) -> String {
        match self {
            Layout::Classic => format!("backend-{index}"),
            Layout::Stacked => format!("apiserver-{index}"),
        }
    }
}

/// A backend's server, kept for its Drop (the server stops when it goes).
#[expect(dead_code, reason = "held only so that dropping it stops the server")]
pub enum Server {
    Web(TcpServer),
    Api(ApiServer),
}

/// Everything the demo made; dropping it removes all of it (agents first, then
/// servers, then namespaces).
pub struct DemoLab {
    pub layout: Layout,
    pub nodes: Vec<AgentNode>,
    pub servers: Vec<Option<Server>>,
    pub client: Host,
    /// The backends' own hosts (classic layout; in the stacked one the nodes are).
    pub backends: Vec<Host>,
    pub exe: PathBuf,
    dsr: bool,
    tls: Option<Arc<rustls::ServerConfig>>,
    _lan: Lan,
}

impl DemoLab {
    /// Builds the LAN and hosts, starts the servers, writes every node's config.
    pub fn build(layout: Layout, forwarding: &str, exe: &Path) -> Result<Self> {
        let lan = Lan::new().context("creating the lab's switch")?;
        let client = lan.host("lbdc", CLIENT).context("creating the client")?;
        let mut backends = Vec::new();
        if layout == Layout::Classic {
            for &n in layout.backends() {
                let b = lan.host("lbdb", n).context("creating a backend")?;
                if forwarding == "dsr" {
                    dsr_backend(&b)?;
                }
                backends.push(b);
            }
        }
        let mut nodes = Vec::new();
        for &(index, priority) in layout.nodes() {
            let node = AgentNode::new(&lan, "lbdl", index).context("creating an LB node")?;
            if layout == Layout::Stacked && forwarding == "dsr" {
                dsr_backend(&node.lb)?;
            }
            node.write_config(&config(layout, forwarding, index, priority))?;
            nodes.push(node);
        }
        let tls = match layout {
            Layout::Stacked => Some(self_signed("apiserver.lab")?.0),
            Layout::Classic => None,
        };
        let mut lab = Self {
            layout,
            nodes,
            servers: Vec::new(),
            client,
            backends,
            exe: exe.to_path_buf(),
            dsr: forwarding == "dsr",
            tls,
            _lan: lan,
        };
        for i in 0..layout.backends().len() {
            lab.servers.push(None);
            lab.start_server(i)?;
        }
        Ok(lab)
    }

    /// The host backend `i` runs on.
    pub fn server_host(&self, i: usize) -> &Host {
        match self.layout {
            Layout::Classic => &self.backends[i],
            Layout::Stacked => &self.nodes[i].lb,
        }
    }

    /// (Re)starts backend `i`'s server.
    pub fn start_server(&mut self, i: usize) -> Result<()> {
        if self.servers[i].is_some() {
            return Ok(());
        }
        let host = self.server_host(i);
        let index = self.layout.backends()[i];
        let name = self.layout.server_name(index);
        let server = match &self.tls {
            // On the node's own address, as kube-apiserver's --bind-address; a DSR
            // backend serves on the VIP too, so it listens on every address.
            Some(tls) => {
                let ip = if self.dsr {
                    IpAddr::from([0u8; 4])
                } else {
                    host.v4()
                };
                Server::Api(ApiServer::spawn(
                    &host.ns,
                    SocketAddr::new(ip, self.layout.port()),
                    &name,
                    tls.clone(),
                )?)
            }
            None => Server::Web(TcpServer::web(
                &host.ns,
                SocketAddr::new(IpAddr::from([0u8; 16]), self.layout.port()),
                &name,
            )?),
        };
        self.servers[i] = Some(server);
        Ok(())
    }

    pub fn stop_server(&mut self, i: usize) {
        self.servers[i] = None;
    }
}

/// A DSR backend holds the VIP on loopback and answers the client directly.
fn dsr_backend(b: &Host) -> Result<()> {
    b.ns.ip(&["addr", "add", &format!("{}/32", vip()), "dev", "lo"])?;
    for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
        for dev in ["all", "eth0"] {
            b.ns.sysctl(&format!("net.ipv4.conf.{dev}.{k}"), v)?;
        }
    }
    Ok(())
}

pub fn vip() -> IpAddr {
    lan_v4(VIP)
}

pub fn node_name(index: u8) -> String {
    format!("lb{index}")
}

/// The services and VRRP of LB node `index` (after the node's `[agent]` section).
fn config(layout: Layout, forwarding: &str, index: u8, priority: u8) -> String {
    let snat = if forwarding == "nat" {
        format!("snat_address = \"{}\"\n", lan_v4(index))
    } else {
        String::new()
    };
    let backends: String = layout
        .backends()
        .iter()
        .map(|&b| format!("[[vip.backend]]\naddress = \"{}\"\n\n", lan_v4(b)))
        .collect();
    let port = layout.port();
    let (name, check) = match layout {
        Layout::Classic => ("web", "type = \"http\"\npath = \"/\"\n"),
        Layout::Stacked => (
            "k8s-api",
            "type = \"https\"\npath = \"/readyz\"\ntls_verify = false\n",
        ),
    };
    let check = format!(
        "[vip.check]\n{check}interval = \"{CHECK_INTERVAL_MS}ms\"\nfall = {FALL}\nrise = {RISE}\n\n"
    );
    let node_local = match layout {
        Layout::Classic => String::new(),
        Layout::Stacked => format!(
            "# This node's own clients of 127.0.0.1:{port} (kubespray's localhost LB).\n\
             [[vip]]\nname = \"k8s-api-local\"\naddress = \"127.0.0.1\"\nport = {port}\n{check}{backends}"
        ),
    };
    format!(
        "# lb-agent demo: node {node}. Every node serves the VIP; VRRP decides which one holds it.\n\
         [[vip]]\nname = \"{name}\"\naddress = \"{vip}\"\nport = {port}\nforwarding = \"{forwarding}\"\n{snat}\n\
         {check}{backends}{node_local}\
         [[vrrp]]\nname = \"{name}\"\ninterface = \"eth0\"\nvrid = {VRID}\npriority = {priority}\n\
         advert_interval = \"{ADVERT_MS}ms\"\naddresses = [\"{vip}/24\"]\n\n\
         # No healthy backend here: FAULT, the VIP goes to a node that has one.\n\
         [[vrrp.track]]\nkind = \"vip_healthy\"\nvip = \"{name}\"\nweight = 0\n",
        node = node_name(index),
        vip = vip(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_passes_the_check() {
        for layout in [Layout::Classic, Layout::Stacked] {
            for forwarding in ["nat", "dsr"] {
                for &(index, priority) in layout.nodes() {
                    let text = format!(
                        "[agent]\ninterfaces = [\"eth0\"]\n\n{}",
                        config(layout, forwarding, index, priority)
                    );
                    let checked = lb_agent::config::parse(&text, Path::new("demo.toml"));
                    assert!(
                        checked.is_ok(),
                        "{layout:?} {forwarding} node {index}: {checked:?}"
                    );
                }
            }
        }
    }
}
