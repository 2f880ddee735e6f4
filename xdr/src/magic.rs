//! Newtype-struct names that carry a number from a `with` module to this crate's (de)serializer.
//!
//! `limit` and `opaque_fixed` must pass a compile-time number (the declared maximum, the fixed
//! length) to our `Serializer`/`Deserializer` while staying transparent for every other format.
//! They wrap the value in a newtype struct whose *name* is `"\0xd"`, a kind byte (`L`/`F`) and the
//! number in ten 7-bit groups (bytes 0..=127, valid UTF-8): other formats treat newtype structs as
//! their inner value (so the wrapper vanishes), ours recognise the name and read the number. The
//! names are built at compile time per `N`.

/// 7-bit groups of the number (each a byte 0..=127, so the name stays valid UTF-8).
const GROUPS: usize = 10;
const PREFIX_LEN: usize = 4;
const LEN: usize = PREFIX_LEN + GROUPS;

/// Name prefix for a declared maximum (`limit`).
const LIMIT: &[u8; PREFIX_LEN] = b"\0xdL";
/// Name prefix for the maximum of each item of the next sequence (`limit::serialize_items`).
const ITEM_LIMIT: &[u8; PREFIX_LEN] = b"\0xdI";
/// Name prefix for a fixed-length opaque (`opaque_fixed`).
const FIXED_OPAQUE: &[u8; PREFIX_LEN] = b"\0xdF";

const fn build(prefix: &[u8; PREFIX_LEN], n: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    let mut i = 0;
    while i < PREFIX_LEN {
        out[i] = prefix[i];
        i += 1;
    }
    let mut g = 0;
    while g < GROUPS {
        out[PREFIX_LEN + g] = ((n >> (7 * (GROUPS - 1 - g))) & 0x7f) as u8;
        g += 1;
    }
    out
}

const fn as_str(bytes: &'static [u8]) -> &'static str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("magic names are ASCII"),
    }
}

/// The magic name of `limit::<N>`.
pub(crate) struct LimitName<const N: u32>;

impl<const N: u32> LimitName<N> {
    const BYTES: [u8; LEN] = build(LIMIT, N as u64);
    pub(crate) const NAME: &'static str = as_str(&Self::BYTES);
}

/// The magic name of the item maximum `N` in `limit::serialize_items`.
pub(crate) struct ItemLimitName<const N: u32>;

impl<const N: u32> ItemLimitName<N> {
    const BYTES: [u8; LEN] = build(ITEM_LIMIT, N as u64);
    pub(crate) const NAME: &'static str = as_str(&Self::BYTES);
}

/// The magic name of `opaque_fixed` for `[u8; N]`.
pub(crate) struct FixedOpaqueName<const N: usize>;

impl<const N: usize> FixedOpaqueName<N> {
    const BYTES: [u8; LEN] = build(FIXED_OPAQUE, N as u64);
    pub(crate) const NAME: &'static str = as_str(&Self::BYTES);
}

/// What a newtype struct name asks of our (de)serializer.
pub(crate) enum Magic {
    /// Not one of ours: an ordinary newtype struct.
    None,
    /// Apply this maximum to the next length prefix.
    Limit(u64),
    /// Apply this maximum to the first length prefix of each item of the next sequence.
    ItemLimit(u64),
    /// The next `bytes` is a fixed opaque of this length (no length prefix).
    FixedOpaque(u64),
}

/// Recognise one of our names (cheap: called for every newtype struct, on the hot path).
#[inline]
pub(crate) fn parse(name: &str) -> Magic {
    let Ok(b) = <&[u8; LEN]>::try_from(name.as_bytes()) else {
        return Magic::None;
    };
    let mut n: u64 = 0;
    for &g in &b[PREFIX_LEN..] {
        n = (n << 7) | u64::from(g);
    }
    match b[..PREFIX_LEN].try_into() {
        Ok(LIMIT) => Magic::Limit(n),
        Ok(ITEM_LIMIT) => Magic::ItemLimit(n),
        Ok(FIXED_OPAQUE) => Magic::FixedOpaque(n),
        _ => Magic::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert!(matches!(parse(LimitName::<0>::NAME), Magic::Limit(0)));
        assert!(matches!(
            parse(LimitName::<{ u32::MAX }>::NAME),
            Magic::Limit(4294967295)
        ));
        assert!(matches!(
            parse(FixedOpaqueName::<16>::NAME),
            Magic::FixedOpaque(16)
        ));
        assert!(matches!(
            parse(FixedOpaqueName::<{ usize::MAX }>::NAME),
            Magic::FixedOpaque(n) if n == usize::MAX as u64
        ));
        assert!(matches!(
            parse(ItemLimitName::<65536>::NAME),
            Magic::ItemLimit(65536)
        ));
        assert!(matches!(parse("remote_uuid"), Magic::None));
        assert!(matches!(parse("fourteen_bytes"), Magic::None));
        assert!(matches!(parse("\0xdX\0\0\0\0\0\0\0\0\0\0"), Magic::None));
    }
}
