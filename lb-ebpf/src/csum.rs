//! Internet checksums: incremental updates (RFC 1624) for rewrites and a full sum for
//! headers we build (RST). All on memory-order 16-bit words.

/// Folds a 32-bit one's complement accumulator to 16 bits.
#[inline(always)]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Folds a 64-bit one's complement accumulator to 16 bits.
#[inline(always)]
pub fn fold64(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    fold(s as u32)
}

/// The accumulated change of a set of words: sum of (~old + new). Summed in 64
/// bits and folded once, when applied: a one's complement sum may add 32-bit words
/// (2^16 and 2^32 are both 1 modulo 0xffff), and 64 bits hold millions of them.
#[derive(Clone, Copy, Default)]
pub struct Delta(u64);

impl Delta {
    pub const fn new() -> Self {
        Self(0)
    }

    #[inline(always)]
    pub fn word(self, old: u16, new: u16) -> Self {
        Self(self.0 + u64::from(!old) + u64::from(new))
    }

    #[inline(always)]
    pub fn word32(self, old: u32, new: u32) -> Self {
        Self(self.0 + u64::from(!old) + u64::from(new))
    }

    /// An address change: the first word only for IPv4 (the others are zero).
    #[inline(always)]
    pub fn addr(self, v4: bool, old: &[u32; 4], new: &[u32; 4]) -> Self {
        let d = self.word32(old[0], new[0]);
        if v4 {
            return d;
        }
        d.word32(old[1], new[1])
            .word32(old[2], new[2])
            .word32(old[3], new[3])
    }

    /// Both changes together.
    #[inline(always)]
    pub fn plus(self, other: Delta) -> Self {
        Self(self.0 + other.0)
    }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + sum(~m + m')).
    #[inline(always)]
    pub fn apply(self, csum: u16) -> u16 {
        !fold64(u64::from(!csum) + self.0)
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
        Self(self.0 + u32::from(w))
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
