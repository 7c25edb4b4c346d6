//! Upgrades whose pinned maps differ from the new agent's carry every entry over
//! instead of refusing to start or dropping the flows: a bigger flow table
//! (`flow_table_size` changed across a restart), and the maps of layout 1 (before
//! flow lifecycles: smaller flow, binding and service values, three maps fewer).
//! Long-lived NAT connections stay up and on their backends, new connections keep
//! working throughout, and the old maps are gone afterwards. Needs root.
//!
//! Layout 1's maps are made from a running agent's (each entry written back in
//! the old shape, with `bpftool map create` and the old value types): building the
//! first release's data plane in CI for this would double the build.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use aya::{
    Pod,
    maps::{Array, HashMap as BpfHashMap, Map, MapData, MapInfo, PerCpuArray},
};
use common::{
    AgentLab, BACKENDS, LB, VIP, name,
    servers::EchoServer,
    traffic::{Persistent, Stream},
};
use lb_agent::{
    dataplane::migrate::{
        OLD_MAPS, SWITCHED,
        v1::{FlowEntryV1, NatEntryV1, VipMetaV1},
    },
    lab::{TcpServer, lan_v4},
};
use lb_common::{
    AddrInfo, AddrKey, AddrSlot, Backend, FlowEntry, FlowKey, MAP_ADDR_TABLE, MAP_ADDR_TABLE_LIVE,
    MAP_ADDRS, MAP_BACKEND_STATS, MAP_BACKENDS, MAP_FLOWS, MAP_NAT, MAP_NEXTHOPS, MAP_RINGS,
    MAP_SNAT_ADDRS, MAP_SNAT_CURSORS, MAP_SOCK_REVNAT, MAP_STATS, MAP_TIMEOUTS, MAP_UPGRADE_HOLD,
    MAP_VIP_GENERATIONS, MAP_VIP_STATS, MAP_VIPS, NatEntry, SockKey, SockOrigin, TrafficCounters,
    VipKey, VipMeta,
};

/// The echo VIP's port (long-lived connections) and the banner VIP's (a stream of
/// new ones).
const PORT: u16 = 81;
const BANNER: u16 = 80;
const CONNECTIONS: usize = 30;
/// Entries added to the flow table and the NAT bindings before the upgrade.
const FILLER: usize = 50_000;

fn config() -> String {
    let mut out = String::new();
    for (vip, port) in [("banner", BANNER), ("echo", PORT)] {
        out.push_str(&format!(
            "[[vip]]\nname = \"{vip}\"\naddress = \"{}\"\nport = {port}\nsnat_address = \"{}\"\n\
             [vip.check]\ninterval = \"300ms\"\nfall = 2\nrise = 2\n",
            lan_v4(VIP),
            lan_v4(LB)
        ));
        for b in BACKENDS {
            out.push_str(&format!("[[vip.backend]]\naddress = \"{}\"\n", lan_v4(b)));
        }
    }
    out
}

/// What the backends run.
struct Servers {
    _echo: Vec<EchoServer>,
    _banners: Vec<TcpServer>,
}

/// A lab serving both VIPs, with `CONNECTIONS` long-lived connections open and the
/// answer each gave.
fn serving() -> (AgentLab, Servers, Persistent, Vec<String>) {
    let mut lab = AgentLab::new();
    lab.write_config(&config());
    let echo: Vec<EchoServer> = (0..3)
        .map(|i| {
            EchoServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(BACKENDS[i]), PORT),
                &name(BACKENDS[i]),
            )
        })
        .collect();
    let banners: Vec<TcpServer> = (0..3)
        .map(|i| {
            TcpServer::spawn(
                &lab.backends[i].ns,
                SocketAddr::new(lan_v4(BACKENDS[i]), BANNER),
                &name(BACKENDS[i]),
            )
            .expect("banner")
        })
        .collect();
    lab.start();
    lab.wait_for("health settled", Duration::from_secs(5), |s| {
        s.vip("echo").is_some_and(|v| v.up == 3) && s.vip("banner").is_some_and(|v| v.up == 3)
    });
    let mut long = Persistent::open(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), PORT),
        CONNECTIONS,
    );
    let before = answers(&mut long, "before the upgrade");
    let servers = Servers {
        _echo: echo,
        _banners: banners,
    };
    (lab, servers, long, before)
}

fn answers(long: &mut Persistent, when: &str) -> Vec<String> {
    long.ping()
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("long-lived connection {when}: {e}")))
        .collect()
}

/// The carry summary the agent logged since `from`.
fn carried(lab: &AgentLab, from: usize) -> String {
    let log = lab.log();
    log[from..]
        .lines()
        .find(|l| l.contains("carried the pinned maps"))
        .unwrap_or_else(|| panic!("no carry logged:\n{}", &log[from..]))
        .to_string()
}

/// The number before `what` in `line` ("... 30 flows, ...").
fn count(line: &str, what: &str) -> usize {
    let at = line
        .find(what)
        .unwrap_or_else(|| panic!("{what} in {line}"));
    line[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count before {what} in {line}"))
}

fn flows_json(lab: &AgentLab) -> serde_json::Value {
    let out = lab.cli(&["flows", "--vip", "echo", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("flows JSON")
}

/// Adds `n` flows and NAT bindings, copies of a real one's, for addresses in
/// 203.0.113.0/24 (TEST-NET-3).
fn fill(pins: &Path, n: usize) {
    let maps = pins.join("maps");
    let (mut flows, mut nat) = (open(&maps.join(MAP_FLOWS)), open(&maps.join(MAP_NAT)));
    let mut flows: BpfHashMap<&mut MapData, FlowKey, FlowEntry> = hash_of_mut(&mut flows);
    let mut nat: BpfHashMap<&mut MapData, FlowKey, NatEntry> = hash_of_mut(&mut nat);
    let (fk, fv) = flows.iter().next().expect("a flow").expect("flow entry");
    let (nk, nv) = nat
        .iter()
        .next()
        .expect("a binding")
        .expect("binding entry");
    for i in 0..n {
        let host = u32::from_be_bytes([203, 0, 113, (i / 50_000) as u8]).to_be();
        let port = (10_000 + i % 50_000) as u16;
        let key = FlowKey {
            src: [host, 0, 0, 0],
            sport: port.to_be(),
            ..fk
        };
        flows.insert(key, fv, 0).expect("filler flow");
        let key = FlowKey {
            src: [host, 0, 0, 0],
            sport: port.to_be(),
            ..nk
        };
        nat.insert(key, nv, 0).expect("filler binding");
    }
}

/// The tick until which the program holds NAT packets missing their state.
fn upgrade_hold(pins: &Path) -> u32 {
    let map = open(&pins.join("maps").join(MAP_UPGRADE_HOLD));
    let hold: Array<&MapData, u32> = Array::try_from(&map).expect("array");
    hold.get(&0, 0).expect("the hold")
}

fn max_entries(pins: &Path, map: &str) -> u32 {
    MapInfo::from_pin(pins.join("maps").join(map))
        .expect("pinned map")
        .max_entries()
}

#[test]
fn a_bigger_flow_table_carries_every_connection_over() {
    let (mut lab, _echo, mut long, before) = serving();
    let stream = Stream::start(
        &lab.client.ns,
        SocketAddr::new(lan_v4(VIP), BANNER),
        Duration::from_millis(2),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(max_entries(&lab.pins, MAP_FLOWS), 65_536);
    // A table about full, as on a busy node: the real flows' entries again for
    // clients and backends that do not exist (never matched by a packet).
    fill(&lab.pins, FILLER);

    lab.terminate();
    let text = std::fs::read_to_string(&lab.config).expect("config");
    let bigger = text.replace("flow_table_size = 65536", "flow_table_size = 131072");
    assert_ne!(text, bigger, "the lab's config names its flow table size");
    std::fs::write(&lab.config, bigger).expect("config");
    let from = lab.log().len();
    lab.start();
    let line = carried(&lab, from);
    eprintln!("{line}");
    assert!(
        line.contains("the same layout with other capacities"),
        "{line}"
    );
    assert!(count(&line, "flows") >= FILLER + CONNECTIONS, "{line}");
    assert!(
        count(&line, "NAT bindings") >= FILLER + CONNECTIONS,
        "{line}"
    );
    assert_eq!(count(&line, "services"), 2, "{line}");
    assert_eq!(max_entries(&lab.pins, MAP_FLOWS), 131_072);
    assert_eq!(max_entries(&lab.pins, MAP_NAT), 131_072);
    assert!(!lab.pins.join(OLD_MAPS).exists(), "the old maps stayed");
    assert_eq!(upgrade_hold(&lab.pins), 0, "the hold ends with the upgrade");
    std::thread::sleep(Duration::from_secs(1));

    let seen = stream.stop();
    let held = lab
        .status()
        .counters
        .iter()
        .find(|c| c.name == "drop_upgrade_hold")
        .map_or(0, |c| c.value);
    eprintln!(
        "new connections through the upgrade: {:?}, {} failed; {held} packets held",
        seen.answers,
        seen.failures.len()
    );
    assert!(
        seen.failures.is_empty(),
        "{} failed, first: {:?}",
        seen.failures.len(),
        seen.failures.first()
    );
    assert!(seen.ok() > 300, "{seen:?}");
    assert_eq!(
        answers(&mut long, "after the upgrade"),
        before,
        "connections moved"
    );
    let flows = flows_json(&lab);
    assert!(
        flows["matched"].as_u64() >= Some(CONNECTIONS as u64),
        "{flows}"
    );
    // Health resumed from the carried backends: nothing flapped.
    assert!(!lab.log()[from..].contains(" DOWN: "), "{}", lab.log());
    // A start after the upgrade adopts the maps as they are: nothing is carried.
    lab.terminate();
    let from = lab.log().len();
    lab.start();
    assert!(!lab.log()[from..].contains("carried the pinned maps"));
    assert!(lab.log()[from..].contains("adopted the maps pinned under"));
    assert_eq!(answers(&mut long, "after another restart"), before);
}

#[test]
fn layout_1_maps_are_converted_and_every_connection_kept() {
    let (mut lab, _echo, mut long, before) = serving();
    lab.terminate();
    let written = downgrade_to_layout_1(&lab.pins);
    assert!(
        written >= CONNECTIONS,
        "{written} flows written in layout 1"
    );

    let from = lab.log().len();
    lab.start();
    let line = carried(&lab, from);
    eprintln!("{line}");
    assert!(line.contains("layout 1"), "{line}");
    assert!(count(&line, "flows") >= CONNECTIONS, "{line}");
    assert!(count(&line, "NAT bindings") >= CONNECTIONS, "{line}");
    assert!(!lab.pins.join(OLD_MAPS).exists(), "the old maps stayed");
    // Every map has this agent's shape again, the three new ones included.
    for shape in lb_agent::dataplane::map_shapes(&lb_agent::dataplane::Capacities {
        flow_table_size: 65_536,
        ..Default::default()
    }) {
        let info = MapInfo::from_pin(lab.pins.join("maps").join(shape.name)).expect("pinned");
        assert_eq!(
            (info.key_size(), info.value_size(), info.max_entries()),
            (shape.key_size, shape.value_size, shape.max_entries),
            "{}",
            shape.name
        );
    }

    // The converted bindings carry the replies: every connection answers, from the
    // backend it had.
    assert_eq!(
        answers(&mut long, "after the upgrade"),
        before,
        "connections moved"
    );
    let flows = flows_json(&lab);
    let rows = flows["flows"].as_array().expect("flow rows");
    assert!(rows.len() >= CONNECTIONS, "{flows}");
    assert!(
        rows.iter().all(|r| r["state"] == "established"),
        "converted flows are established: {flows}"
    );
    // New connections are served.
    let mut fresh = Persistent::open(&lab.client.ns, SocketAddr::new(lan_v4(VIP), PORT), 10);
    answers(&mut fresh, "opened after the upgrade");
    // The service kept its slot and SNAT address: it was not reprogrammed as new.
    let s = lab.status();
    assert_eq!(s.vip("echo").map(|v| v.up), Some(3));
    assert_eq!(s.vip("banner").map(|v| v.up), Some(3));
    assert!(!lab.log()[from..].contains(" DOWN: "), "{}", lab.log());

    // An upgrade cut short before any link switched (the agent killed while
    // copying): the next start drops the copy and carries the old maps again.
    lab.kill9();
    layout_1_copy(&lab.pins.join("maps"), &lab.pins.join(OLD_MAPS));
    let from = lab.log().len();
    lab.start();
    let line = carried(&lab, from);
    eprintln!("{line}");
    assert!(!line.contains("interrupted"), "{line}");
    assert_eq!(count(&line, "services"), 2, "{line}");
    assert!(!lab.pins.join(OLD_MAPS).exists(), "the old maps stayed");
    assert_eq!(answers(&mut long, "after the redone upgrade"), before);
    answers(&mut fresh, "after the redone upgrade");

    // Cut short after the switch (killed before it removed the old maps): the new
    // program wrote the new maps, so the next start keeps them, adds what only the
    // old maps hold and finishes.
    lab.kill9();
    layout_1_copy(&lab.pins.join("maps"), &lab.pins.join(OLD_MAPS));
    std::fs::create_dir(lab.pins.join(OLD_MAPS).join(SWITCHED)).expect("marker");
    let from = lab.log().len();
    lab.start();
    let line = carried(&lab, from);
    eprintln!("{line}");
    assert!(line.contains("finishing an interrupted upgrade"), "{line}");
    assert_eq!(count(&line, "services"), 0, "{line}");
    assert!(!lab.pins.join(OLD_MAPS).exists(), "the old maps stayed");
    assert_eq!(answers(&mut long, "after the finished upgrade"), before);
    answers(&mut fresh, "after the finished upgrade");
}

#[test]
fn maps_of_an_unknown_layout_are_refused_with_nothing_touched() {
    let (mut lab, _servers, mut long, before) = serving();
    lab.terminate();
    // A flow value no agent of ours had (a newer agent's, say).
    let maps = lab.pins.join("maps");
    std::fs::remove_file(maps.join(MAP_FLOWS)).expect("unpin FLOWS");
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(maps.join(MAP_FLOWS))
        .args([
            "type", "lru_hash", "key", "40", "value", "56", "entries", "65536", "name", "FLOWS",
        ])
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pinned = || {
        let mut names: Vec<String> = std::fs::read_dir(&maps)
            .expect("maps dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let was = pinned();
    let log = lab.start_refused();
    assert!(
        log.contains("FLOWS") && log.contains("knows no layout with 40/56"),
        "{log}"
    );
    assert!(log.contains("remove the pin directory"), "{log}");
    assert_eq!(pinned(), was, "pins changed");
    assert!(!lab.pins.join(OLD_MAPS).exists());
    // The program pinned before forwards on (with the maps it holds).
    assert_eq!(answers(&mut long, "after the refused start"), before);
}

/// Rewrites the maps pinned under `pins` as an agent of layout 1 left them.
/// Returns the flows written.
fn downgrade_to_layout_1(pins: &Path) -> usize {
    let maps = pins.join("maps");
    let old = pins.join("maps-layout1");
    let flows = layout_1_copy(&maps, &old);
    std::fs::remove_dir_all(&maps).expect("remove the agent's pins");
    std::fs::rename(&old, &maps).expect("layout 1 in place");
    flows
}

/// Pins in `old` (a new directory) what an agent of layout 1 would hold for the
/// maps pinned in `maps`: every map of that layout, each entry in its old value
/// type; `TIMEOUTS`, `SNAT_ADDRS`, `SNAT_CURSORS` and `UPGRADE_HOLD` did not
/// exist. Returns the flows written.
fn layout_1_copy(maps: &Path, old: &Path) -> usize {
    std::fs::create_dir(old).expect("dir for layout 1");
    // Layout 1's shapes at the default capacities (flow tables as the lab's).
    let (vips, backends, ring, flows, socks) = (64u32, 4096u32, 65_537u32, 65_536u32, 65_536u32);
    let make = |name: &str, kind: &str, key: usize, value: usize, entries: u32| -> PathBuf {
        let path = old.join(name);
        let mut cmd = Command::new("bpftool");
        cmd.args(["map", "create"])
            .arg(&path)
            .args(["type", kind, "key", &key.to_string(), "value"])
            .arg(value.to_string())
            .args(["entries", &entries.to_string(), "name", name]);
        if kind == "hash" {
            cmd.args(["flags", "1"]); // BPF_F_NO_PREALLOC, as the program declares
        }
        let out = cmd.output().expect("bpftool");
        assert!(
            out.status.success(),
            "bpftool map create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    };
    let s = size_of::<u32>();
    let flow_count = hash::<FlowKey, FlowEntry, FlowEntryV1>(
        &maps.join(MAP_FLOWS),
        &make(MAP_FLOWS, "lru_hash", 40, 40, flows),
        |e| FlowEntryV1 {
            backend: e.backend,
            generation: e.generation,
            vip_id: e.vip_id,
            vip_generation: e.vip_generation,
            vip_flags: e.vip_flags,
            snat_addr: e.snat_addr,
            snat_port: e.snat_port,
            _pad: 0,
        },
    );
    let bindings = hash::<FlowKey, NatEntry, NatEntryV1>(
        &maps.join(MAP_NAT),
        &make(MAP_NAT, "lru_hash", 40, 72, flows),
        |e| NatEntryV1 {
            client: e.client,
            vip: e.vip,
            client_port: e.client_port,
            vip_port: e.vip_port,
            vip_id: e.vip_id,
            backend: e.backend,
            _pad: 0,
            nh: e.nh,
        },
    );
    assert_eq!(flow_count, bindings, "one binding per NAT flow");
    hash::<VipKey, VipMeta, VipMetaV1>(
        &maps.join(MAP_VIPS),
        &make(MAP_VIPS, "hash", 20, 32, vips),
        |m| VipMetaV1 {
            id: m.id,
            flags: m.flags,
            ring: m.ring,
            snat_addr: m.snat_addr,
            generation: m.generation,
        },
    );
    hash::<AddrKey, AddrInfo, AddrInfo>(
        &maps.join(MAP_ADDRS),
        &make(MAP_ADDRS, "hash", 20, 4, vips * 2 + backends),
        |a| *a,
    );
    hash::<SockKey, SockOrigin, SockOrigin>(
        &maps.join(MAP_SOCK_REVNAT),
        &make(MAP_SOCK_REVNAT, "lru_hash", 32, 32, socks),
        |a| *a,
    );
    array::<AddrSlot>(
        &maps.join(MAP_ADDR_TABLE),
        &make(MAP_ADDR_TABLE, "array", s, 24, 2 * 4096),
    );
    array::<u32>(
        &maps.join(MAP_ADDR_TABLE_LIVE),
        &make(MAP_ADDR_TABLE_LIVE, "array", s, 4, 1),
    );
    array::<u32>(
        &maps.join(MAP_VIP_GENERATIONS),
        &make(MAP_VIP_GENERATIONS, "array", s, 4, vips),
    );
    array::<Backend>(
        &maps.join(MAP_BACKENDS),
        &make(MAP_BACKENDS, "array", s, 32, backends),
    );
    // The rings and next-hop caches are rebuilt, not carried: their shapes only.
    make(MAP_RINGS, "array", s, 4, vips * 2 * ring);
    make(MAP_NEXTHOPS, "percpu_array", s, 24, backends);
    per_cpu::<u64>(
        &maps.join(MAP_STATS),
        &make(MAP_STATS, "percpu_array", s, 8, 23),
    );
    per_cpu::<TrafficCounters>(
        &maps.join(MAP_VIP_STATS),
        &make(MAP_VIP_STATS, "percpu_array", s, 24, vips),
    );
    per_cpu::<TrafficCounters>(
        &maps.join(MAP_BACKEND_STATS),
        &make(MAP_BACKEND_STATS, "percpu_array", s, 24, backends),
    );
    for gone in [
        MAP_TIMEOUTS,
        MAP_SNAT_ADDRS,
        MAP_SNAT_CURSORS,
        MAP_UPGRADE_HOLD,
    ] {
        assert!(maps.join(gone).exists(), "{gone} pinned by the agent");
    }
    flow_count
}

fn open(path: &Path) -> Map {
    Map::from_map_data(MapData::from_pin(path).expect("pinned map")).expect("map")
}

/// Copies every entry of hash `from` into `to`, each value through `f`.
fn hash<K: Pod, A: Pod, B: Pod>(from: &Path, to: &Path, f: impl Fn(&A) -> B) -> usize {
    let (from, mut to) = (open(from), open(to));
    let from: BpfHashMap<&MapData, K, A> = hash_of(&from);
    let mut to: BpfHashMap<&mut MapData, K, B> = hash_of_mut(&mut to);
    let mut n = 0;
    for entry in from.iter() {
        let (k, v) = entry.expect("entry");
        to.insert(k, f(&v), 0).expect("insert");
        n += 1;
    }
    n
}

fn hash_of<K: Pod, V: Pod>(m: &Map) -> BpfHashMap<&MapData, K, V> {
    BpfHashMap::try_from(m).expect("a hash map")
}

fn hash_of_mut<K: Pod, V: Pod>(m: &mut Map) -> BpfHashMap<&mut MapData, K, V> {
    BpfHashMap::try_from(m).expect("a hash map")
}

/// Copies every slot of array `from` that `to` has.
fn array<V: Pod>(from: &Path, to: &Path) {
    let (from, mut to) = (open(from), open(to));
    let from: Array<&MapData, V> = Array::try_from(&from).expect("array");
    let mut to: Array<&mut MapData, V> = Array::try_from(&mut to).expect("array");
    for i in 0..from.len().min(to.len()) {
        to.set(i, from.get(&i, 0).expect("get"), 0).expect("set");
    }
}

/// Copies every slot of per-CPU array `from` that `to` has.
fn per_cpu<V: Pod>(from: &Path, to: &Path) {
    let (from, mut to) = (open(from), open(to));
    let from: PerCpuArray<&MapData, V> = PerCpuArray::try_from(&from).expect("per-CPU array");
    let mut to: PerCpuArray<&mut MapData, V> =
        PerCpuArray::try_from(&mut to).expect("per-CPU array");
    for i in 0..from.len().min(to.len()) {
        to.set(i, from.get(&i, 0).expect("get"), 0).expect("set");
    }
}
