//! VRRP advertisements on the wire: RFC 3768 (v2) and RFC 5798 (v3), encoded and
//! parsed without allocation beyond the address list. Checks follow keepalived's:
//! length, version, type, checksum (v3 over IPv4 with or without the pseudo-header,
//! as configured), v2 authentication and interval. Every reject has a reason, which
//! the agent counts; nothing here panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// Advertisement, the only VRRP message type.
const TYPE_ADVERT: u8 = 1;
/// v2 authentication type "simple text password".
pub const AUTH_PASS: u8 = 1;
/// Fixed header before the addresses.
const HEADER: usize = 8;
/// v2 authentication data after the addresses.
const AUTH_DATA: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// Whether a v3 checksum over IPv4 covers the IPv4 pseudo-header (keepalived's
/// default) or not (v2 style, some routers). IPv6 always includes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V3Checksum {
    PseudoHeader,
    NoPseudoHeader,
}

/// One advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: seconds x 100).
    pub interval_cs: u16,
    pub addrs: Vec<IpAddr>,
    /// v2 only: the password (at most 8 bytes) for `AUTH_PASS`, `None` for no auth.
    pub auth: Option<[u8; 8]>,
}

/// Why a received packet was not taken (a counter label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    TooShort,
    BadTtl,
    BadVersion,
    BadType,
    BadChecksum,
    BadAddressFamily,
    AuthMismatch,
    IntervalMismatch,
    UnknownVrid,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::TooShort,
        Reject::BadTtl,
        Reject::BadVersion,
        Reject::BadType,
        Reject::BadChecksum,
        Reject::BadAddressFamily,
        Reject::AuthMismatch,
        Reject::IntervalMismatch,
        Reject::UnknownVrid,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reject::TooShort => "too_short",
            Reject::BadTtl => "bad_ttl",
            Reject::BadVersion => "bad_version",
            Reject::BadType => "bad_type",
            Reject::BadChecksum => "bad_checksum",
            Reject::BadAddressFamily => "bad_address_family",
            Reject::AuthMismatch => "auth_mismatch",
            Reject::IntervalMismatch => "interval_mismatch",
            Reject::UnknownVrid => "unknown_vrid",
        }
    }
}

/// The password as v2 carries it: the first 8 bytes, zero padded.
pub fn auth_data(pass: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(pass.as_bytes()) {
        *o = *b;
    }
    out
}

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The sum of the pseudo-header for `len` bytes of VRRP from `src` to `dst`.
fn pseudo(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let acc = sum16(sum16(0, &s.octets()), &d.octets());
            acc + u32::from(IPPROTO_VRRP) + len as u32
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let acc = sum16(sum16(0, &s.octets()), &d.octets());
            acc + (len as u32 >> 16) + (len as u32 & 0xffff) + u32::from(IPPROTO_VRRP)
        }
        _ => 0,
    }
}

fn covers_pseudo(version: Version, src: IpAddr, mode: V3Checksum) -> bool {
    version == Version::V3 && (src.is_ipv6() || mode == V3Checksum::PseudoHeader)
}

/// The checksum over `msg` (its checksum field taken as zero... or not: a message
/// with a correct checksum sums to 0).
fn checksum(msg: &[u8], pseudo_sum: u32) -> u16 {
    !fold(sum16(pseudo_sum, msg))
}

/// Encodes `a` as sent from `src` to `dst` (the addresses enter the v3 checksum).
/// Addresses of the other family than `src` are left out.
pub fn encode(a: &Advert, src: IpAddr, dst: IpAddr, mode: V3Checksum) -> Vec<u8> {
    let addrs: Vec<&IpAddr> = a
        .addrs
        .iter()
        .filter(|x| x.is_ipv4() == src.is_ipv4())
        .take(255)
        .collect();
    let mut m = Vec::with_capacity(HEADER + 16 * addrs.len() + AUTH_DATA);
    let (vbits, b4, b5) = match a.version {
        Version::V2 => (
            2u8,
            if a.auth.is_some() { AUTH_PASS } else { 0 },
            (a.interval_cs / 100).clamp(1, 255) as u8,
        ),
        Version::V3 => {
            let i = a.interval_cs & 0x0fff;
            (3u8, (i >> 8) as u8, (i & 0xff) as u8)
        }
    };
    m.extend_from_slice(&[
        vbits << 4 | TYPE_ADVERT,
        a.vrid,
        a.priority,
        addrs.len() as u8,
        b4,
        b5,
        0,
        0,
    ]);
    for x in addrs {
        match x {
            IpAddr::V4(v) => m.extend_from_slice(&v.octets()),
            IpAddr::V6(v) => m.extend_from_slice(&v.octets()),
        }
    }
    if a.version == Version::V2 {
        m.extend_from_slice(&a.auth.unwrap_or([0; 8]));
    }
    let p = if covers_pseudo(a.version, src, mode) {
        pseudo(src, dst, m.len())
    } else {
        0
    };
    let c = checksum(&m, p);
    m[6..8].copy_from_slice(&c.to_be_bytes());
    m
}

/// What the receiver expects of an instance's adverts.
#[derive(Clone, Debug)]
pub struct Expect {
    pub version: Version,
    pub mode: V3Checksum,
    /// v2: the password configured (`None`: no authentication).
    pub auth: Option<[u8; 8]>,
    /// v2: the instance's own interval in seconds (a different one is rejected).
    pub interval_s: u8,
}

/// Parses a VRRP message (the IP payload) received from `src` to `dst` with `ttl`.
/// `multicast` says whether it came to the VRRP group (TTL must then be 255).
pub fn parse(
    msg: &[u8],
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    multicast: bool,
    expect: &Expect,
) -> Result<Advert, Reject> {
    if multicast && ttl != 255 {
        return Err(Reject::BadTtl);
    }
    if msg.len() < HEADER {
        return Err(Reject::TooShort);
    }
    let version = match msg[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        _ => return Err(Reject::BadVersion),
    };
    if version != expect.version {
        return Err(Reject::BadVersion);
    }
    if msg[0] & 0x0f != TYPE_ADVERT {
        return Err(Reject::BadType);
    }
    if version == Version::V2 && src.is_ipv6() {
        return Err(Reject::BadAddressFamily);
    }
    let count = usize::from(msg[3]);
    let alen = if src.is_ipv4() { 4 } else { 16 };
    let need = HEADER + count * alen + if version == Version::V2 { AUTH_DATA } else { 0 };
    if msg.len() < need {
        return Err(Reject::TooShort);
    }
    let body = &msg[..need];
    let p = if covers_pseudo(version, src, expect.mode) {
        pseudo(src, dst, body.len())
    } else {
        0
    };
    if fold(sum16(p, body)) != 0xffff {
        return Err(Reject::BadChecksum);
    }
    let addrs = body[HEADER..HEADER + count * alen]
        .chunks_exact(alen)
        .map(|c| match c.len() {
            4 => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            _ => {
                let mut o = [0u8; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            }
        })
        .collect();
    let (interval_cs, auth) = match version {
        Version::V2 => {
            let mut data = [0u8; 8];
            data.copy_from_slice(&body[need - AUTH_DATA..]);
            let auth = match (msg[4], expect.auth) {
                (0, None) => None,
                (AUTH_PASS, Some(want)) if want == data => Some(data),
                _ => return Err(Reject::AuthMismatch),
            };
            if msg[5] != expect.interval_s {
                return Err(Reject::IntervalMismatch);
            }
            (u16::from(msg[5]) * 100, auth)
        }
        Version::V3 => (u16::from_be_bytes([msg[4] & 0x0f, msg[5]]), None),
    };
    Ok(Advert {
        version,
        vrid: msg[1],
        priority: msg[2],
        interval_cs,
        addrs,
        auth,
    })
}
