//! Flow sync messages on the wire (UDP): a header, records, and an HMAC-SHA256 of
//! both under the pre-shared key. Numbers are big-endian; addresses and ports are
//! the packet's bytes, as the maps hold them.
//!
//! ```text
//! header (36): "LBSY" | version 1 | kind | 0 0 | boot id u64 | seq u64 | unix ms u64 | 0 u32
//! record (93): flow key (src 16, dst 16, sport 2, dport 2, proto 1, family 1)
//!              | backend addr 16, port 2 | snat addr 16, port 2
//!              | flow state 1, seen age u32, ticks left u32
//!              | NAT binding present 1, its state 1, seen age u32, ticks left u32
//! mac (32)
//! ```

use lb_common::FlowKey;
use ring::hmac;

pub const MAGIC: [u8; 4] = *b"LBSY";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 36;
pub const RECORD_LEN: usize = 93;
pub const MAC_LEN: usize = 32;
/// Records per datagram: the whole under 1400 bytes (no fragments on a 1500 MTU).
pub const MAX_RECORDS: usize = (1400 - HEADER_LEN - MAC_LEN) / RECORD_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Flows and their NAT bindings.
    Flows = 1,
    /// "Send me everything": a starting node asks its peers.
    Resync = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    /// Random per agent start: sequence numbers count within it.
    pub boot: u64,
    pub seq: u64,
    pub unix_ms: u64,
}

/// An age and what is left of a lifetime, in the sender's ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Life {
    pub state: u8,
    pub seen_age: u32,
    pub left: u32,
}

/// One flow, with its backend and NAT binding as addresses (slots are per node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: FlowKey,
    pub backend: ([u32; 4], u16),
    pub snat: ([u32; 4], u16),
    pub flow: Life,
    pub nat: Option<Life>,
}

/// Why a message was rejected (counted by reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("too short")]
    Short,
    #[error("not a flow sync message")]
    Magic,
    #[error("version {0}")]
    Version(u8),
    #[error("bad authentication")]
    Mac,
    #[error("bad length")]
    Length,
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("replayed")]
    Replayed,
    #[error("stale timestamp")]
    Stale,
    #[error("from an address that is not a peer")]
    NotAPeer,
}

impl Reject {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::Short | Reject::Length => "length",
            Reject::Magic => "magic",
            Reject::Version(_) => "version",
            Reject::Mac => "auth",
            Reject::Kind(_) => "kind",
            Reject::Replayed => "replayed",
            Reject::Stale => "stale",
            Reject::NotAPeer => "not_a_peer",
        }
    }
}

/// The key for signing and checking.
pub fn key(bytes: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, bytes)
}

fn put_addr(out: &mut Vec<u8>, a: &[u32; 4]) {
    for w in a {
        out.extend_from_slice(&w.to_ne_bytes());
    }
}

fn put_life(out: &mut Vec<u8>, l: &Life) {
    out.push(l.state);
    out.extend_from_slice(&l.seen_age.to_be_bytes());
    out.extend_from_slice(&l.left.to_be_bytes());
}

/// A signed message.
pub fn encode(h: &Header, records: &[Record], key: &hmac::Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len() * RECORD_LEN + MAC_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(h.kind as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&h.boot.to_be_bytes());
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.unix_ms.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for r in records {
        put_addr(&mut out, &r.key.src);
        put_addr(&mut out, &r.key.dst);
        out.extend_from_slice(&r.key.sport.to_ne_bytes());
        out.extend_from_slice(&r.key.dport.to_ne_bytes());
        out.push(r.key.proto);
        out.push(r.key.family);
        put_addr(&mut out, &r.backend.0);
        out.extend_from_slice(&r.backend.1.to_ne_bytes());
        put_addr(&mut out, &r.snat.0);
        out.extend_from_slice(&r.snat.1.to_ne_bytes());
        put_life(&mut out, &r.flow);
        out.push(u8::from(r.nat.is_some()));
        put_life(&mut out, &r.nat.unwrap_or_default());
    }
    let tag = hmac::sign(key, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// Reads `n` bytes at `*at`, advancing it (the length was checked before).
fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> &'a [u8] {
    let s = &b[*at..*at + n];
    *at += n;
    s
}

fn get_u32(b: &[u8], at: &mut usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(take(b, at, 4));
    u32::from_be_bytes(w)
}

fn get_u64(b: &[u8], at: &mut usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(take(b, at, 8));
    u64::from_be_bytes(w)
}

fn get_ne16(b: &[u8], at: &mut usize) -> u16 {
    let mut w = [0u8; 2];
    w.copy_from_slice(take(b, at, 2));
    u16::from_ne_bytes(w)
}

fn get_addr(b: &[u8], at: &mut usize) -> [u32; 4] {
    let mut a = [0u32; 4];
    for w in &mut a {
        let mut x = [0u8; 4];
        x.copy_from_slice(take(b, at, 4));
        *w = u32::from_ne_bytes(x);
    }
    a
}

fn get_life(b: &[u8], at: &mut usize) -> Life {
    let state = take(b, at, 1)[0];
    Life {
        state,
        seen_age: get_u32(b, at),
        left: get_u32(b, at),
    }
}

/// A checked message: authentic (the MAC first, nothing else is read before),
/// of this version, whole.
pub fn decode(b: &[u8], key: &hmac::Key) -> Result<(Header, Vec<Record>), Reject> {
    if b.len() < HEADER_LEN + MAC_LEN {
        return Err(Reject::Short);
    }
    let (body, tag) = b.split_at(b.len() - MAC_LEN);
    hmac::verify(key, body, tag).map_err(|_| Reject::Mac)?;
    if body[..4] != MAGIC {
        return Err(Reject::Magic);
    }
    if body[4] != VERSION {
        return Err(Reject::Version(body[4]));
    }
    let kind = match body[5] {
        1 => Kind::Flows,
        2 => Kind::Resync,
        k => return Err(Reject::Kind(k)),
    };
    if !(body.len() - HEADER_LEN).is_multiple_of(RECORD_LEN) {
        return Err(Reject::Length);
    }
    let mut at = 8;
    let boot = get_u64(body, &mut at);
    let seq = get_u64(body, &mut at);
    let unix_ms = get_u64(body, &mut at);
    at = HEADER_LEN;
    let mut records = Vec::with_capacity((body.len() - HEADER_LEN) / RECORD_LEN);
    while at < body.len() {
        let key = FlowKey {
            src: get_addr(body, &mut at),
            dst: get_addr(body, &mut at),
            sport: get_ne16(body, &mut at),
            dport: get_ne16(body, &mut at),
            proto: take(body, &mut at, 1)[0],
            family: take(body, &mut at, 1)[0],
            _pad: [0; 2],
        };
        let backend = (get_addr(body, &mut at), get_ne16(body, &mut at));
        let snat = (get_addr(body, &mut at), get_ne16(body, &mut at));
        let flow = get_life(body, &mut at);
        let has_nat = take(body, &mut at, 1)[0] != 0;
        let nat = get_life(body, &mut at);
        records.push(Record {
            key,
            backend,
            snat,
            flow,
            nat: has_nat.then_some(nat),
        });
    }
    Ok((
        Header {
            kind,
            boot,
            seq,
            unix_ms,
        },
        records,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u8) -> Record {
        Record {
            key: FlowKey {
                src: [u32::from_ne_bytes([10, 0, 0, i]), 0, 0, 0],
                dst: [u32::from_ne_bytes([198, 18, 1, 10]), 0, 0, 0],
                sport: 40000u16.to_be(),
                dport: 443u16.to_be(),
                proto: 6,
                family: 4,
                _pad: [0; 2],
            },
            backend: (
                [u32::from_ne_bytes([198, 18, 1, 11]), 0, 0, 0],
                443u16.to_be(),
            ),
            snat: (
                [u32::from_ne_bytes([198, 18, 1, 20]), 0, 0, 0],
                2048u16.to_be(),
            ),
            flow: Life {
                state: 2,
                seen_age: 1,
                left: 9000,
            },
            nat: i.is_multiple_of(2).then_some(Life {
                state: 2,
                seen_age: 1,
                left: 9000,
            }),
        }
    }

    #[test]
    fn messages_round_trip_and_reject_tampering() {
        let k = key(b"a key of at least sixteen bytes");
        let h = Header {
            kind: Kind::Flows,
            boot: 7,
            seq: 42,
            unix_ms: 1_700_000_000_000,
        };
        let recs: Vec<Record> = (0..MAX_RECORDS as u8).map(record).collect();
        let msg = encode(&h, &recs, &k);
        assert!(msg.len() <= 1400, "{}", msg.len());
        assert_eq!(decode(&msg, &k), Ok((h, recs)));
        let mut bad = msg.clone();
        bad[HEADER_LEN + 3] ^= 1;
        assert_eq!(decode(&bad, &k), Err(Reject::Mac), "a changed byte");
        assert_eq!(
            decode(&msg, &key(b"another key of sixteen bytes")),
            Err(Reject::Mac),
            "another key"
        );
        assert_eq!(decode(&msg[..20], &k), Err(Reject::Short));
    }
}
