//! The demo's lab: one LAN (a bridge in its own namespace) with a client, two LB
//! nodes each running the real `lb-agent run` with VRRP, and three web backends.
//! Both agents get the same services; VRRP decides which one holds the VIP.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use lb_agent::lab::{AgentNode, Host, Lan, TcpServer, lan_v4};

pub const VIP: u8 = 10;
pub const PORT: u16 = 80;
pub const CLIENT: u8 = 100;
/// LB nodes (host index, VRRP priority): the first is the preferred master.
pub const NODES: [(u8, u8); 2] = [(1, 150), (2, 100)];
pub const BACKENDS: [u8; 3] = [11, 12, 13];
pub const VRID: u8 = 51;
pub const ADVERT_MS: u32 = 100;
pub const CHECK_INTERVAL_MS: u32 = 300;
pub const FALL: u32 = 2;
pub const RISE: u32 = 2;

/// Everything the demo made; dropping it removes all of it (agents first, then
/// servers, then namespaces).
pub struct DemoLab {
    pub nodes: Vec<AgentNode>,
    pub servers: Vec<Option<TcpServer>>,
    pub client: Host,
    pub backends: Vec<Host>,
    pub exe: PathBuf,
    _lan: Lan,
}

impl DemoLab {
    /// Builds the LAN and hosts, starts the web servers, writes both configs.
    pub fn build(forwarding: &str, exe: &Path) -> Result<Self> {
        let lan = Lan::new().context("creating the lab's switch")?;
        let client = lan.host("lbdc", CLIENT).context("creating the client")?;
        let mut backends = Vec::new();
        let mut servers = Vec::new();
        for &n in &BACKENDS {
            let b = lan.host("lbdb", n).context("creating a backend")?;
            if forwarding == "dsr" {
                // DSR backends hold the VIP on loopback and answer the client directly.
                b.ns.ip(&["addr", "add", &format!("{}/32", vip()), "dev", "lo"])?;
                for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
                    for dev in ["all", "eth0"] {
                        b.ns.sysctl(&format!("net.ipv4.conf.{dev}.{k}"), v)?;
                    }
                }
            }
            servers.push(Some(web_server(&b)?));
            backends.push(b);
        }
        let mut nodes = Vec::new();
        for (index, priority) in NODES {
            let node = AgentNode::new(&lan, "lbdl", index).context("creating an LB node")?;
            node.write_config(&config(forwarding, index, priority))?;
            nodes.push(node);
        }
        Ok(Self {
            nodes,
            servers,
            client,
            backends,
            exe: exe.to_path_buf(),
            _lan: lan,
        })
    }

    /// (Re)starts backend `i`'s web server.
    pub fn start_server(&mut self, i: usize) -> Result<()> {
        if self.servers[i].is_none() {
            self.servers[i] = Some(web_server(&self.backends[i])?);
        }
        Ok(())
    }

    pub fn stop_server(&mut self, i: usize) {
        self.servers[i] = None;
    }
}

fn web_server(b: &Host) -> Result<TcpServer> {
    TcpServer::web(
        &b.ns,
        SocketAddr::new(IpAddr::from([0u8; 16]), PORT),
        &backend_name(b.index),
    )
    .with_context(|| format!("starting the web server on {}", b.v4()))
}

pub fn vip() -> IpAddr {
    lan_v4(VIP)
}

pub fn node_name(index: u8) -> String {
    format!("lb{index}")
}

/// What backend N's web server answers.
pub fn backend_name(index: u8) -> String {
    format!("backend-{index}")
}

/// The services and VRRP of LB node `index` (after the node's `[agent]` section).
fn config(forwarding: &str, index: u8, priority: u8) -> String {
    let snat = if forwarding == "nat" {
        format!("snat_address = \"{}\"\n", lan_v4(index))
    } else {
        String::new()
    };
    let backends: String = BACKENDS
        .iter()
        .map(|&b| format!("[[vip.backend]]\naddress = \"{}\"\n\n", lan_v4(b)))
        .collect();
    format!(
        "# lb-agent demo: node {node}. Both nodes serve the VIP; VRRP decides which one holds it.\n\
         [[vip]]\nname = \"web\"\naddress = \"{vip}\"\nport = {PORT}\nforwarding = \"{forwarding}\"\n{snat}\n\
         [vip.check]\ntype = \"http\"\npath = \"/\"\ninterval = \"{CHECK_INTERVAL_MS}ms\"\nfall = {FALL}\nrise = {RISE}\n\n\
         {backends}\
         [[vrrp]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = {VRID}\npriority = {priority}\n\
         advert_interval = \"{ADVERT_MS}ms\"\naddresses = [\"{vip}/24\"]\n\n\
         # No healthy backend here: FAULT, the VIP goes to a node that has one.\n\
         [[vrrp.track]]\nkind = \"vip_healthy\"\nvip = \"web\"\nweight = 0\n",
        node = node_name(index),
        vip = vip(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configs_pass_the_check() {
        for forwarding in ["nat", "dsr"] {
            for (index, priority) in NODES {
                let text = format!(
                    "[agent]\ninterfaces = [\"eth0\"]\n\n{}",
                    config(forwarding, index, priority)
                );
                let checked = lb_agent::config::parse(&text, Path::new("demo.toml"));
                assert!(checked.is_ok(), "{forwarding} node {index}: {checked:?}");
            }
        }
    }
}
