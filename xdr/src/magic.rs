//! Newtype-struct names that carry a number from a `with` module to this crate's (de)serializer.
//!
//! `limit` and `opaque_fixed` must pass a compile-time number (the declared maximum, the fixed
//! length) to our `Serializer`/`Deserializer` while staying transparent for every other format.
//! They wrap the value in a newtype struct whose *name* is `"\0xdr:<kind>:<20 digits>"`: other
//! formats treat newtype structs as their inner value (so the wrapper vanishes), ours recognise the
//! leading NUL byte and parse the number. The names are built at compile time per `N`.

const DIGITS: usize = 20;
const PREFIX_LEN: usize = 12;
const LEN: usize = PREFIX_LEN + DIGITS;

/// Name prefix for a declared maximum (`limit`).
pub(crate) const LIMIT: &[u8; PREFIX_LEN] = b"\0xdr:limit_:";
/// Name prefix for a fixed-length opaque (`opaque_fixed`).
pub(crate) const FIXED_OPAQUE: &[u8; PREFIX_LEN] = b"\0xdr:fixopq:";

const fn build(prefix: &[u8; PREFIX_LEN], mut n: u64) -> [u8; LEN] {
    let mut out = [b'0'; LEN];
    let mut i = 0;
    while i < PREFIX_LEN {
        out[i] = prefix[i];
        i += 1;
    }
    let mut j = LEN;
    while j > PREFIX_LEN {
        j -= 1;
        out[j] = b'0' + (n % 10) as u8;
        n /= 10;
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
    /// The next `bytes` is a fixed opaque of this length (no length prefix).
    FixedOpaque(u64),
}

#[inline]
pub(crate) fn parse(name: &str) -> Magic {
    let b = name.as_bytes();
    if b.first() != Some(&0) || b.len() != LEN {
        return Magic::None;
    }
    parse_cold(b)
}

#[cold]
fn parse_cold(b: &[u8]) -> Magic {
    let (prefix, digits) = b.split_at(PREFIX_LEN);
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Magic::None;
        }
        n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
    }
    if prefix == LIMIT {
        Magic::Limit(n)
    } else if prefix == FIXED_OPAQUE {
        Magic::FixedOpaque(n)
    } else {
        Magic::None
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
        assert!(matches!(parse("remote_uuid"), Magic::None));
    }
}
