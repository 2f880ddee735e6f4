//! XDR `quadruple` (RFC 4506 §4.8): IEEE 754 binary128, 16 bytes big-endian.
//!
//! Rust has no stable 128-bit float, so [`Quadruple`] holds the bits. It converts exactly from
//! `f64`, `f32`, `i64` and `u64` (binary128 holds all of them), and back to `f64` only when that is
//! exact ([`Quadruple::to_f64`]).
//!
//! ```
//! use xdr::Quadruple;
//!
//! let q = Quadruple::from(1.0f64);
//! assert_eq!(q.to_bits(), 0x3fff_0000_0000_0000_0000_0000_0000_0000);
//! assert_eq!(q.to_f64(), Some(1.0));
//! assert_eq!(xdr::to_bytes(&q)?, q.to_be_bytes()); // 16 bytes, no length prefix
//! assert_eq!(xdr::from_bytes::<Quadruple>(&q.to_be_bytes())?, q);
//! // One more bit of precision than a double has: not an f64.
//! assert_eq!(Quadruple::from_bits(q.to_bits() | 1).to_f64(), None);
//! # Ok::<(), xdr::Error>(())
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bits of the binary128 fraction field.
const FRAC_BITS: u32 = 112;
const FRAC_MASK: u128 = (1 << FRAC_BITS) - 1;
const EXP_MASK: u128 = 0x7fff;
const SIGN: u128 = 1 << 127;
/// binary128 exponent bias.
const BIAS: i32 = 16383;
/// binary64 exponent bias.
const BIAS64: i32 = 1023;
/// The fraction bits binary128 has beyond binary64's 52.
const WIDEN: u32 = FRAC_BITS - 52;

/// An XDR `quadruple`: an IEEE 754 binary128 value, held as its bits.
///
/// Equality and hashing are bitwise: `+0` and `-0` differ, a NaN equals a NaN with the same bits.
/// On the wire (with this crate's serializer) it is exactly its 16 big-endian bytes, like an
/// `opaque[16]`; other serde formats see 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quadruple(u128);

impl Quadruple {
    /// `+0`.
    pub const ZERO: Quadruple = Quadruple(0);
    /// `+∞`.
    pub const INFINITY: Quadruple = Quadruple(EXP_MASK << FRAC_BITS);
    /// `-∞`.
    pub const NEG_INFINITY: Quadruple = Quadruple(SIGN | EXP_MASK << FRAC_BITS);
    /// The quiet NaN `f64::NAN` widens to (positive, only the quiet bit set).
    pub const NAN: Quadruple = Quadruple(EXP_MASK << FRAC_BITS | 1 << (FRAC_BITS - 1));

    /// The value with these bits (sign, 15-bit exponent, 112-bit fraction).
    pub const fn from_bits(bits: u128) -> Self {
        Quadruple(bits)
    }

    /// The bits.
    pub const fn to_bits(self) -> u128 {
        self.0
    }

    /// From the 16 bytes of the XDR encoding (big-endian).
    pub const fn from_be_bytes(bytes: [u8; 16]) -> Self {
        Quadruple(u128::from_be_bytes(bytes))
    }

    /// The 16 bytes of the XDR encoding (big-endian).
    pub const fn to_be_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    fn exponent(self) -> u128 {
        (self.0 >> FRAC_BITS) & EXP_MASK
    }

    fn fraction(self) -> u128 {
        self.0 & FRAC_MASK
    }

    /// Is this a NaN (any payload, either sign)?
    pub fn is_nan(self) -> bool {
        self.exponent() == EXP_MASK && self.fraction() != 0
    }

    /// Is this `+∞` or `-∞`?
    pub fn is_infinite(self) -> bool {
        self.exponent() == EXP_MASK && self.fraction() == 0
    }

    /// Neither infinite nor NaN?
    pub fn is_finite(self) -> bool {
        self.exponent() != EXP_MASK
    }

    /// Is the sign bit set (also for `-0` and negative NaNs)?
    pub fn is_sign_negative(self) -> bool {
        self.0 & SIGN != 0
    }

    /// The `f64` with exactly this value, if there is one: `Some(f)` exactly when
    /// `Quadruple::from(f) == self` (bitwise). Infinities, zeros and NaNs whose payload fits
    /// binary64's 52 fraction bits convert; values needing more precision or range do not.
    pub fn to_f64(self) -> Option<f64> {
        let sign = if self.is_sign_negative() {
            1u64 << 63
        } else {
            0
        };
        let exp = self.exponent();
        let frac = self.fraction();
        let low_mask = (1u128 << WIDEN) - 1;
        let bits = if exp == EXP_MASK {
            // Infinity or NaN: the payload must fit 52 bits.
            if frac & low_mask != 0 {
                return None;
            }
            sign | 0x7ff << 52 | (frac >> WIDEN) as u64
        } else if exp == 0 {
            // Zero, or a binary128 subnormal (far below f64's range).
            if frac != 0 {
                return None;
            }
            sign
        } else {
            let e = exp as i32 - BIAS;
            if e > BIAS64 {
                return None;
            } else if e >= 1 - BIAS64 {
                // Normal in f64.
                if frac & low_mask != 0 {
                    return None;
                }
                sign | ((e + BIAS64) as u64) << 52 | (frac >> WIDEN) as u64
            } else if e >= 1 - BIAS64 - 52 {
                // Subnormal in f64: the value is (2^112 + frac) * 2^(e - 112), and an f64
                // subnormal is m * 2^-1074, so m = (2^112 + frac) >> (112 - (e + 1074)).
                let shift = (FRAC_BITS as i32 - (e + BIAS64 - 1 + 52)) as u32;
                let full = (1u128 << FRAC_BITS) | frac;
                if full & ((1u128 << shift) - 1) != 0 {
                    return None;
                }
                sign | (full >> shift) as u64
            } else {
                return None;
            }
        };
        let f = f64::from_bits(bits);
        // Guard: the conversion must be the exact inverse of `From<f64>`.
        (Quadruple::from(f) == self).then_some(f)
    }

    fn from_parts(negative: bool, exp: u128, frac: u128) -> Self {
        Quadruple(if negative { SIGN } else { 0 } | exp << FRAC_BITS | frac)
    }
}

impl From<f64> for Quadruple {
    /// Exact: every `f64` (zeros, subnormals, infinities, NaN payloads) is a binary128 value.
    fn from(f: f64) -> Self {
        let bits = f.to_bits();
        let negative = bits >> 63 != 0;
        let exp = (bits >> 52) & 0x7ff;
        let frac = u128::from(bits & ((1 << 52) - 1));
        if exp == 0x7ff {
            // Infinity or NaN: the payload moves to the top of the wider fraction (the quiet bit
            // stays the fraction's first bit).
            Quadruple::from_parts(negative, EXP_MASK, frac << WIDEN)
        } else if exp == 0 {
            if frac == 0 {
                return Quadruple::from_parts(negative, 0, 0);
            }
            // f64 subnormal frac * 2^-1074: normal in binary128. Highest set bit p (0..=51):
            // 1.rest * 2^(p - 1074).
            let p = 127 - frac.leading_zeros();
            let e = p as i32 - (BIAS64 - 1 + 52) + BIAS;
            let rest = frac & !(1u128 << p);
            Quadruple::from_parts(negative, e as u128, rest << (FRAC_BITS - p))
        } else {
            let e = exp as i32 - BIAS64 + BIAS;
            Quadruple::from_parts(negative, e as u128, frac << WIDEN)
        }
    }
}

impl From<f32> for Quadruple {
    /// Exact (through the exact `f64` widening, which keeps NaN payloads).
    fn from(f: f32) -> Self {
        Quadruple::from(f64::from(f))
    }
}

impl From<u64> for Quadruple {
    /// Exact: binary128 has 113 bits of precision.
    fn from(n: u64) -> Self {
        Quadruple::from_magnitude(false, n)
    }
}

impl From<i64> for Quadruple {
    /// Exact: binary128 has 113 bits of precision. `0` is `+0`.
    fn from(n: i64) -> Self {
        Quadruple::from_magnitude(n < 0, n.unsigned_abs())
    }
}

impl Quadruple {
    fn from_magnitude(negative: bool, n: u64) -> Self {
        if n == 0 {
            return Quadruple::from_parts(negative, 0, 0);
        }
        let p = 63 - n.leading_zeros();
        let rest = u128::from(n) & !(1u128 << p);
        Quadruple::from_parts(negative, (BIAS + p as i32) as u128, rest << (FRAC_BITS - p))
    }
}

impl fmt::Debug for Quadruple {
    /// `Quadruple(1.5)` when an `f64` holds the value exactly, else `Quadruple(0x…)` with the
    /// 32 hex digits of the bits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_f64() {
            Some(v) if !v.is_nan() => write!(f, "Quadruple({v:?})"),
            _ => write!(f, "Quadruple({:#034x})", self.0),
        }
    }
}

impl Serialize for Quadruple {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::opaque_fixed::serialize(&self.to_be_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for Quadruple {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::opaque_fixed::deserialize::<D, 16>(d).map(Quadruple::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(f: f64) -> u128 {
        Quadruple::from(f).to_bits()
    }

    #[test]
    fn known_bit_patterns() {
        assert_eq!(q(1.0), 0x3fff_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(q(-2.0), 0xc000_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(q(0.5), 0x3ffe_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(q(0.0), 0);
        assert_eq!(q(-0.0), 0x8000_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(q(f64::INFINITY), 0x7fff_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(
            q(f64::NEG_INFINITY),
            0xffff_0000_0000_0000_0000_0000_0000_0000
        );
        assert_eq!(q(f64::NAN), 0x7fff_8000_0000_0000_0000_0000_0000_0000);
        assert_eq!(Quadruple::NAN.to_bits(), q(f64::NAN));
        // 1/3 as a double: its 52 fraction bits, then zeros.
        assert_eq!(q(1.0 / 3.0), 0x3ffd_5555_5555_5555_5000_0000_0000_0000);
        // Largest finite double: exponent 1023 -> 0x43fe.
        assert_eq!(q(f64::MAX), 0x43fe_ffff_ffff_ffff_f000_0000_0000_0000);
        // Smallest normal double: 2^-1022 -> 0x3c01.
        assert_eq!(
            q(f64::MIN_POSITIVE),
            0x3c01_0000_0000_0000_0000_0000_0000_0000
        );
        // Smallest subnormal double 2^-1074: a normal binary128, exponent 16383 - 1074 = 0x3bcd.
        assert_eq!(
            q(f64::from_bits(1)),
            0x3bcd_0000_0000_0000_0000_0000_0000_0000
        );
        // Largest subnormal double (1 - 2^-52) * 2^-1022: exponent 0x3c00, 51 ones after the
        // leading one.
        assert_eq!(
            q(f64::from_bits((1 << 52) - 1)),
            0x3c00_ffff_ffff_ffff_e000_0000_0000_0000
        );
        // A NaN payload keeps its bits at the top of the fraction, and its sign.
        assert_eq!(
            q(f64::from_bits(0xfff0_0000_0000_0001)),
            0xffff_0000_0000_0000_1000_0000_0000_0000
        );
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(Quadruple::from(1u64), Quadruple::from(1.0));
        assert_eq!(Quadruple::from(-2i64), Quadruple::from(-2.0));
        assert_eq!(Quadruple::from(0i64), Quadruple::ZERO);
        assert_eq!(
            Quadruple::from(u64::MAX).to_bits(),
            0x403e_ffff_ffff_ffff_fffe_0000_0000_0000
        );
        assert_eq!(Quadruple::from(u64::MAX).to_f64(), None);
        assert_eq!(
            Quadruple::from(i64::MIN),
            Quadruple::from(-9_223_372_036_854_775_808.0)
        );
    }

    #[test]
    fn to_f64_only_when_exact() {
        let one = Quadruple::from(1.0);
        assert_eq!(one.to_f64(), Some(1.0));
        // A fraction bit below binary64's precision.
        assert_eq!(Quadruple::from_bits(one.to_bits() | 1).to_f64(), None);
        // Out of f64's range: 2^1024 and 2^-1075.
        assert_eq!(Quadruple::from_bits(0x43ff_u128 << 112).to_f64(), None);
        assert_eq!(Quadruple::from_bits(0x3bcc_u128 << 112).to_f64(), None);
        // binary128 subnormals and the largest binary128.
        assert_eq!(Quadruple::from_bits(1).to_f64(), None);
        assert_eq!(
            Quadruple::from_bits(0x7ffe_u128 << 112 | FRAC_MASK).to_f64(),
            None
        );
        // A NaN payload in the low bits has no f64.
        assert_eq!(Quadruple::from_bits(0x7fff_u128 << 112 | 1).to_f64(), None);
        assert!(Quadruple::from_bits(0x7fff_u128 << 112 | 1).is_nan());
        // Subnormal doubles come back, and one bit too fine does not.
        let tiny = Quadruple::from(f64::from_bits(3));
        assert_eq!(tiny.to_f64().map(f64::to_bits), Some(3));
        assert_eq!(
            Quadruple::from_bits(tiny.to_bits() | 1 << 20).to_f64(),
            None
        );
        assert_eq!(Quadruple::INFINITY.to_f64(), Some(f64::INFINITY));
        assert_eq!(Quadruple::NEG_INFINITY.to_f64(), Some(f64::NEG_INFINITY));
        assert!(Quadruple::NAN.to_f64().is_some_and(f64::is_nan));
        assert_eq!(
            Quadruple::from(-0.0).to_f64().map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }

    #[test]
    fn classification() {
        assert!(Quadruple::NAN.is_nan() && !Quadruple::NAN.is_finite());
        assert!(Quadruple::INFINITY.is_infinite() && !Quadruple::INFINITY.is_nan());
        assert!(Quadruple::NEG_INFINITY.is_sign_negative());
        assert!(Quadruple::ZERO.is_finite() && !Quadruple::ZERO.is_sign_negative());
    }

    #[test]
    fn wire_form_is_16_bytes_no_length() {
        let v = Quadruple::from(-2.0);
        let bytes = crate::to_bytes(&v).unwrap();
        assert_eq!(bytes, [0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(crate::from_bytes::<Quadruple>(&bytes).unwrap(), v);
        let pair = crate::to_bytes(&(Quadruple::ZERO, 7u32)).unwrap();
        assert_eq!(pair.len(), 20);
        assert!(matches!(
            crate::from_bytes::<Quadruple>(&bytes[..15]),
            Err(crate::Error::LengthOverInput { .. } | crate::Error::UnexpectedEof { .. })
        ));
        assert_eq!(format!("{v:?}"), "Quadruple(-2.0)");
        assert_eq!(
            format!("{:?}", Quadruple::from_bits(1)),
            "Quadruple(0x00000000000000000000000000000001)"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_f64_round_trips_bit_exact(bits in proptest::prelude::any::<u64>()) {
            let f = f64::from_bits(bits);
            let q = Quadruple::from(f);
            proptest::prop_assert_eq!(q.to_f64().map(f64::to_bits), Some(bits));
            proptest::prop_assert_eq!(q.is_nan(), f.is_nan());
            proptest::prop_assert_eq!(q.is_sign_negative(), f.is_sign_negative());
        }

        #[test]
        fn to_f64_is_some_exactly_for_widened_doubles(
            bits in proptest::prelude::any::<u128>(),
            clear_low in proptest::prelude::any::<bool>(),
        ) {
            // Half the cases have binary64's precision (the low 60 fraction bits clear).
            let q = Quadruple::from_bits(if clear_low { bits & !((1 << WIDEN) - 1) } else { bits });
            // With `every_f64_round_trips_bit_exact`: Some exactly for the widened doubles.
            if let Some(f) = q.to_f64() {
                proptest::prop_assert_eq!(Quadruple::from(f), q);
            }
        }

        #[test]
        fn integers_agree_with_doubles_when_exact(n in proptest::prelude::any::<i64>()) {
            let f = n as f64;
            if f as i64 == n && f != 9_223_372_036_854_775_808.0 {
                proptest::prop_assert_eq!(Quadruple::from(n), Quadruple::from(f));
            }
        }
    }
}
