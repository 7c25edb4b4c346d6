//! Every netlink exchange the agent has with the kernel, through the rust-netlink
//! crates' message types (no hand-built messages): [`route`] for links and addresses
//! (`netlink-packet-route`), the data plane's sock_diag (`netlink-packet-sock-diag`)
//! through [`request`]. Blocking and one socket per request: the callers are the data
//! plane's programming and VRRP's transitions, each a kernel round trip of
//! microseconds, and a fresh socket can hold no stale reply.

pub mod route;

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr};

/// How a request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One change or lookup: the kernel's answer (if any), then its acknowledgement.
    Do,
    /// A dump: every object, then `NLMSG_DONE`.
    Dump,
}

/// Sends `payload` on a new socket of `protocol` (with `extra` header flags, e.g.
/// `NLM_F_CREATE`) and returns the messages of the answer. A kernel error is an
/// [`io::Error`] with its errno (`raw_os_error`), so callers can accept the ones that
/// mean "already done".
pub fn request<I, O>(protocol: isize, kind: Kind, extra: u16, payload: I) -> io::Result<Vec<O>>
where
    I: NetlinkSerializable,
    O: NetlinkDeserializable,
{
    let mut s = Socket::new(protocol)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST
        | extra
        | match kind {
            Kind::Do => NLM_F_ACK,
            Kind::Dump => NLM_F_DUMP,
        };
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    s.send(&buf, 0)?;
    let mut out = Vec::new();
    loop {
        let (buf, _) = s.recv_from_full()?;
        if buf.is_empty() {
            return Err(io::Error::other("netlink: empty reply"));
        }
        let mut offset = 0;
        while offset < buf.len() {
            let msg = NetlinkMessage::<O>::deserialize(&buf[offset..])
                .map_err(|e| io::Error::other(format!("netlink: unparsable reply: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        // The acknowledgement.
                        None => Ok(out),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::Overrun(_) => {
                    return Err(io::Error::other("netlink: the reply overran its buffer"));
                }
                _ => {}
            }
            if len == 0 {
                return Err(io::Error::other("netlink: a reply message of length 0"));
            }
            offset += len;
        }
    }
}
