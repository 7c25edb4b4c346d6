//! Internet checksums: incremental updates (RFC 1624) for rewrites and a full sum for
//! headers we build (RST). All on memory-order 16-bit words.

/// Folds a 32-bit one's complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The accumulated change of a set of 16-bit words: sum of (~old + new).
#[derive(Clone, Copy, Default)]
pub struct Delta(u32);

impl Delta {
    pub const fn new() -> Self {
        Self(0)
    }

    #[inline(always)]
    pub fn word(self, old: u16, new: u16) -> Self {
        Self(fold(self.0 + (!old) as u32 + new as u32) as u32)
    }

    #[inline(always)]
    pub fn word32(self, old: u32, new: u32) -> Self {
        self.word(old as u16, new as u16)
            .word((old >> 16) as u16, (new >> 16) as u16)
    }

    #[inline(always)]
    pub fn addr(self, old: &[u32; 4], new: &[u32; 4]) -> Self {
        self.word32(old[0], new[0])
            .word32(old[1], new[1])
            .word32(old[2], new[2])
            .word32(old[3], new[3])
    }

    /// Both changes together.
    #[inline(always)]
    pub fn plus(self, other: Delta) -> Self {
        Self(fold(self.0 + other.0) as u32)
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + sum(~m + m')).
    #[inline(always)]
    pub fn apply(self, csum: u16) -> u16 {
        !fold((!csum) as u32 + self.0)
    }

    /// As `apply`, for a UDP checksum: 0 stays 0 (IPv4 "no checksum"), and a computed
    /// 0 is sent as 0xffff.
    #[inline(always)]
    pub fn apply_udp(self, csum: u16) -> u16 {
        if csum == 0 {
            return 0;
        }
        match self.apply(csum) {
            0 => 0xffff,
            c => c,
        }
    }
}

/// One's complement sum accumulator for building a checksum from scratch.
#[derive(Clone, Copy, Default)]
pub struct Sum(u32);

impl Sum {
    pub const fn new() -> Self {
        Self(0)
    }

    #[inline(always)]
    pub fn word(self, w: u16) -> Self {
        Self(self.0 + w as u32)
    }

    #[inline(always)]
    pub fn word32(self, w: u32) -> Self {
        self.word(w as u16).word((w >> 16) as u16)
    }

    /// The checksum field value.
    #[inline(always)]
    pub fn finish(self) -> u16 {
        !fold(self.0)
    }
}
