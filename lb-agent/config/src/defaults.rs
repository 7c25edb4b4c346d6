//! Every default of the config file, in one place (docs/config.md lists the same).

use std::time::Duration;

use lb_common::DEFAULT_FLOW_TABLE_SIZE;

/// `[agent] xdp_mode`: native (driver) mode, falling back to generic.
pub const XDP_MODE: &str = "auto";
/// `[agent] pin_path`: where program, link and maps are pinned.
pub const PIN_PATH: &str = "/sys/fs/bpf/lb";
/// `[agent] api_listen`: metrics, readiness and status page.
pub const API_LISTEN: &str = "127.0.0.1:9100";
/// `[agent] control_socket`: the CLI's socket (root only).
pub const CONTROL_SOCKET: &str = "/run/lb-agent.sock";
/// `[agent] flow_table_size`.
pub const FLOW_TABLE_SIZE: u32 = DEFAULT_FLOW_TABLE_SIZE;
/// `[agent] socket_lb`: this node's own connects to a VIP are balanced too.
pub const SOCKET_LB: bool = true;
/// `[agent] socket_lb_namespaces`: only sockets of the agent's network namespace.
pub const SOCKET_LB_NAMESPACES: &str = "own";
/// `[agent] on_sigterm`: SIGTERM hands the VIP over unless systemd is restarting
/// the unit (keepalived's behaviour, with restarts kept).
pub const ON_SIGTERM: &str = "handover";
/// `[agent] dataplane_log`: the programs' rare events reach the agent's log.
pub const DATAPLANE_LOG: bool = true;
/// `[agent] log_format`: text lines for people.
pub const LOG_FORMAT: &str = "text";
/// `[agent.sync] port`: UDP port of flow sync messages.
pub const SYNC_PORT: u16 = 4739;
/// `[agent.sync] min_age`: flows younger than this are not sent.
pub const SYNC_MIN_AGE: Duration = Duration::from_secs(1);
/// `[agent.sync] key`: at least this many bytes.
pub const SYNC_KEY_MIN: usize = 16;
/// `[agent] manage_forwarding`: the agent turns on forwarding on its interfaces.
pub const MANAGE_FORWARDING: bool = true;
/// `[agent] snat_port_range`: below the kernel's ephemeral range (32768-60999), so
/// the LB's own connections (health checks) never meet a NAT binding.
pub const SNAT_PORT_RANGE: (u16, u16) = (
    lb_common::DEFAULT_SNAT_PORT_MIN,
    lb_common::DEFAULT_SNAT_PORT_MAX,
);
/// `[agent.timeouts]`: see `crate::timeouts::FlowTimeouts`, where each default
/// stands beside its reason.
pub fn timeouts() -> crate::timeouts::FlowTimeouts {
    crate::timeouts::FlowTimeouts::default()
}

/// `[[vip]] protocol`.
pub const PROTOCOL: &str = "tcp";
/// `[[vip]] forwarding`.
pub const FORWARDING: &str = "nat";
/// `[[vip]] on_no_backend` for TCP services (clients fail fast); UDP always drops.
pub const ON_NO_BACKEND_TCP: &str = "reset";
/// `[[vip]] on_no_backend` for UDP services.
pub const ON_NO_BACKEND_UDP: &str = "drop";

/// `[vip.check] type`.
pub const CHECK_TYPE: &str = "tcp";
/// `[vip.check] path` (http, https).
pub const CHECK_PATH: &str = "/";
/// `[vip.check] expect_status` (http, https).
pub const CHECK_EXPECT_STATUS: &[u16] = &[200];
/// `[vip.check] interval` (HAProxy's `inter` default); `fastinter` and `downinter`
/// default to the interval.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// `[vip.check] timeout`, capped at the interval.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// `[vip.check] rise` (HAProxy's default).
pub const CHECK_RISE: u32 = 2;
/// `[vip.check] fall` (HAProxy's default).
pub const CHECK_FALL: u32 = 3;
/// `[vip.check] tls_verify` (https): verification on, against the system roots or
/// `ca_file`.
pub const CHECK_TLS_VERIFY: bool = true;

/// `[[vip.backend]] weight`.
pub const BACKEND_WEIGHT: u32 = 1;
/// `[[vip.backend]] state`.
pub const BACKEND_STATE: &str = "enabled";

/// The config file the CLI reads when `--config` is not given (for the control
/// socket and pin_path of the agent to talk to).
pub const CONFIG_FILE: &str = "/etc/lb-agent/lb-agent.toml";

/// `[[vrrp]] advert_interval`.
pub const VRRP_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// `[[vrrp]] version`.
pub const VRRP_VERSION: i64 = 3;
/// `[[vrrp]] preempt`.
pub const VRRP_PREEMPT: bool = true;
/// `[[vrrp]] garp_repeat`: gratuitous ARPs / unsolicited NAs sent on becoming master.
pub const VRRP_GARP_REPEAT: u32 = 3;
/// `[[vrrp]] garp_interval`: between those.
pub const VRRP_GARP_INTERVAL: Duration = Duration::from_millis(100);
/// `[[vrrp]] garp_refresh`: one more while master, this often ("0s" = never).
pub const VRRP_GARP_REFRESH: Duration = Duration::from_secs(3);
/// `[[vrrp]] v3_checksum`: keepalived's default.
pub const VRRP_V3_CHECKSUM: &str = "pseudo-header";
/// `[[vrrp.track]] rise` and `fall`.
pub const TRACK_RISE: u32 = 1;
pub const TRACK_FALL: u32 = 1;
/// `[[vrrp.track]] interval` (script).
pub const TRACK_INTERVAL: Duration = Duration::from_secs(2);

// ---- Routed VIPs (the proxy path) ----

/// How long a routed VIP waits for the ClientHello or request head (HAProxy's
/// `tcp-request inspect-delay`).
pub const ROUTED_INSPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to a pool's backend (`timeout connect`).
pub const ROUTED_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A proxied connection with no bytes either way (`timeout tunnel`).
pub const ROUTED_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Proxied connections of one routed VIP at once (`maxconn`).
pub const ROUTED_MAX_CONNECTIONS: u32 = 10_000;
/// The ClientHello or request head at most.
pub const ROUTED_FIRST_BYTES: usize = 16 * 1024;
