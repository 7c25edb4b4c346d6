//! Packet frames for `BPF_PROG_TEST_RUN` tests: a builder for input frames and an
//! independent decoder that verifies output frames.
//!
//! The builder computes checksums with [`checksum`]. The decoder never calls it: it
//! checks every checksum with its own RFC 1071 verifier (the one's-complement sum over
//! the data *including* the checksum field must fold to `0xffff`), so a bug in one
//! cannot hide a bug in the other.

/// TCP FIN flag bit.
pub const FIN: u8 = 0x01;
/// TCP SYN flag bit.
pub const SYN: u8 = 0x02;
/// TCP RST flag bit.
pub const RST: u8 = 0x04;
/// TCP PSH flag bit.
pub const PSH: u8 = 0x08;
/// TCP ACK flag bit.
pub const ACK: u8 = 0x10;

pub(super) const ETH_P_IP: u16 = 0x0800;
pub(super) const ETH_P_IPV6: u16 = 0x86dd;
pub(super) const ETH_P_ARP: u16 = 0x0806;
pub(super) const ETH_P_8021Q: u16 = 0x8100;

/// Source MAC of built frames unless [`Frame::macs`] says otherwise.
pub const DEFAULT_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC of built frames unless [`Frame::macs`] says otherwise.
pub const DEFAULT_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

mod build;
mod decode;
mod report;
#[cfg(test)]
mod tests;

pub use build::*;
pub use decode::*;
pub use report::*;
