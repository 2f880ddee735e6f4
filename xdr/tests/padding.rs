//! The padding policy of the serde decoder: `Padding::Strict` (the default) rejects non-zero
//! padding with the field path, `Padding::Lenient` skips it like libvirt's C decoder, for every
//! padded form (string, `&str`, variable opaque as `Opaque`, `&[u8]`, `Vec<u8>`, fixed opaque).

use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use xdr::{
    from_bytes, from_bytes_prefix_with, from_bytes_with, from_shared_with, to_bytes, DecodeOptions,
    Deserializer, Error, Opaque, Padding,
};

fn lenient() -> DecodeOptions {
    DecodeOptions::new().with_padding(Padding::Lenient)
}

fn strict() -> DecodeOptions {
    DecodeOptions::default()
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Padded {
    name: String,
    data: Opaque,
    #[serde(with = "serde_bytes")]
    buf: Vec<u8>,
    #[serde(with = "xdr::opaque_fixed")]
    odd: [u8; 5],
    names: Vec<String>,
    id: u32,
}

#[derive(Deserialize, Debug, PartialEq)]
struct PaddedRef<'a> {
    name: &'a str,
    data: &'a [u8],
}

fn sample() -> Padded {
    Padded {
        name: "a".into(),               // 3 bytes of padding
        data: Opaque::from(vec![1, 2]), // 2
        buf: vec![3, 4, 5],             // 1
        odd: [6; 5],                    // 3
        names: vec!["xyzzy".into(), "ok".into()],
        id: 7,
    }
}

/// Offsets of one padding byte of each padded field of `sample()`'s encoding.
fn padding_offsets() -> [(usize, &'static str); 6] {
    // name: 4 + 1 (+3), data: 4 + 2 (+2), buf: 4 + 3 (+1), odd: 5 (+3), names: 4, 4 + 5 (+3),
    // 4 + 2 (+2), id.
    [
        (4 + 1, "Padded.name"),
        (8 + 4 + 2 + 1, "Padded.data"),
        (16 + 4 + 3, "Padded.buf"),
        (24 + 5 + 2, "Padded.odd"),
        (32 + 4 + 4 + 5, "Padded.names[0]"),
        (32 + 4 + 12 + 4 + 2 + 1, "Padded.names[1]"),
    ]
}

#[test]
fn strict_is_the_default_and_names_the_field() {
    let good = to_bytes(&sample()).unwrap();
    assert_eq!(good.len(), 32 + 4 + 12 + 8 + 4);
    assert_eq!(from_bytes::<Padded>(&good).unwrap(), sample());
    for (at, path) in padding_offsets() {
        assert_eq!(good[at], 0, "{path}: offset {at} is not padding");
        let mut bad = good.clone();
        bad[at] = 0xff;
        let want = Err(Error::NonZeroPadding { path: path.into() });
        assert_eq!(from_bytes::<Padded>(&bad), want, "{path}");
        assert_eq!(from_bytes_with::<Padded>(&bad, strict()), want, "{path}");
        let mut de = Deserializer::from_bytes(&bad).with_padding(Padding::Strict);
        assert!(matches!(
            Padded::deserialize(&mut de),
            Err(Error::NonZeroPadding { .. })
        ));
    }
}

#[test]
fn lenient_accepts_non_zero_padding_and_yields_the_same_value() {
    let good = to_bytes(&sample()).unwrap();
    let mut bad = good.clone();
    for (at, _) in padding_offsets() {
        bad[at] = 0xa5;
    }
    assert_eq!(
        from_bytes_with::<Padded>(&bad, lenient()).unwrap(),
        sample()
    );
    let (v, used) = from_bytes_prefix_with::<Padded>(&bad, lenient()).unwrap();
    assert_eq!((v, used), (sample(), bad.len()));
    let shared = bytes::Bytes::from(bad.clone());
    assert_eq!(
        from_shared_with::<Padded>(&shared, lenient()).unwrap(),
        sample()
    );
    let mut de = Deserializer::from_bytes(&bad).with_padding(Padding::Lenient);
    assert_eq!(Padded::deserialize(&mut de).unwrap(), sample());
    de.end().unwrap();
    // Re-encoding writes zero padding: the input bytes do not come back.
    assert_eq!(to_bytes(&sample()).unwrap(), good);
    assert_ne!(good, bad);
}

#[test]
fn lenient_borrowed_forms() {
    // "hi" + 2 padding bytes, then opaque [9] + 3 padding bytes.
    let b = [0, 0, 0, 2, b'h', b'i', 1, 2, 0, 0, 0, 1, 9, 3, 4, 5];
    assert_eq!(
        from_bytes::<PaddedRef<'_>>(&b),
        Err(Error::NonZeroPadding {
            path: "PaddedRef.name".into()
        })
    );
    let v: PaddedRef<'_> = from_bytes_with(&b, lenient()).unwrap();
    assert_eq!(
        v,
        PaddedRef {
            name: "hi",
            data: &[9]
        }
    );
    // Top-level values: the path is empty.
    assert_eq!(
        from_bytes::<String>(&b[..8]),
        Err(Error::NonZeroPadding {
            path: String::new()
        })
    );
    assert_eq!(from_bytes_with::<String>(&b[..8], lenient()).unwrap(), "hi");
}

#[test]
fn lenient_still_needs_the_padding_bytes() {
    // "hi" without its 2 padding bytes: truncated under either policy.
    let b = [0, 0, 0, 2, b'h', b'i'];
    for opts in [strict(), lenient()] {
        assert!(matches!(
            from_bytes_with::<String>(&b, opts),
            Err(Error::LengthOverInput { .. })
        ));
    }
    // A fixed opaque of 3 needs its padding byte too.
    let mut de = Deserializer::from_bytes(&[1, 2, 3]).with_padding(Padding::Lenient);
    assert!(xdr::opaque_fixed::deserialize::<_, 3>(&mut de).is_err());
    let mut de = Deserializer::from_bytes(&[1, 2, 3, 4]).with_padding(Padding::Lenient);
    assert_eq!(
        xdr::opaque_fixed::deserialize::<_, 3>(&mut de).unwrap(),
        [1, 2, 3]
    );
}

#[test]
fn options_builders() {
    let o = DecodeOptions::new();
    assert_eq!(o, DecodeOptions::default());
    assert_eq!(o.padding, Padding::Strict);
    assert_eq!(o.max_depth, xdr::de::DEFAULT_MAX_DEPTH);
    let o = o.with_max_depth(2).with_padding(Padding::Lenient);
    assert_eq!((o.max_depth, o.padding), (2, Padding::Lenient));
    assert_eq!(Padding::default(), Padding::Strict);
    // The depth limit travels with the options too.
    let nested = to_bytes(&vec![vec![vec![1u32]]]).unwrap();
    assert!(matches!(
        from_bytes_with::<Vec<Vec<Vec<u32>>>>(&nested, o),
        Err(Error::DepthLimitExceeded { max: 2, .. })
    ));
}

fn padded() -> impl Strategy<Value = Padded> {
    (
        ".{0,9}",
        vec(any::<u8>(), 0..9),
        vec(any::<u8>(), 0..9),
        any::<[u8; 5]>(),
        vec(".{0,6}", 0..4),
        any::<u32>(),
    )
        .prop_map(|(name, data, buf, odd, names, id)| Padded {
            name,
            data: Opaque::from(data),
            buf,
            odd,
            names,
            id,
        })
}

/// Offsets of every padding byte of `v`'s encoding (an independent model of the layout).
fn padding_positions(v: &Padded) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut body = |pos: &mut usize, len: usize| {
        *pos += len;
        let pad = (4 - len % 4) % 4;
        out.extend(*pos..*pos + pad);
        *pos += pad;
    };
    for len in [v.name.len(), v.data.len(), v.buf.len()] {
        pos += 4;
        body(&mut pos, len);
    }
    body(&mut pos, 5);
    pos += 4;
    for n in &v.names {
        pos += 4;
        body(&mut pos, n.len());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// On valid input (zero padding) the policies agree.
    #[test]
    fn lenient_equals_strict_on_valid_input(v in padded()) {
        let bytes = to_bytes(&v).unwrap();
        let s = from_bytes_with::<Padded>(&bytes, strict()).unwrap();
        let l = from_bytes_with::<Padded>(&bytes, lenient()).unwrap();
        prop_assert_eq!(&s, &v);
        prop_assert_eq!(&l, &v);
    }

    /// Every padding byte non-zero: strict rejects (when there is padding), lenient decodes the
    /// same value.
    #[test]
    fn lenient_skips_any_padding(v in padded(), fill in vec(1u8.., 64)) {
        let mut bytes = to_bytes(&v).unwrap();
        let pads = padding_positions(&v);
        for (i, &p) in pads.iter().enumerate() {
            prop_assert_eq!(bytes[p], 0, "model: {} is not padding", p);
            bytes[p] = fill[i % fill.len()];
        }
        let s = from_bytes_with::<Padded>(&bytes, strict());
        if pads.is_empty() {
            prop_assert_eq!(&s, &Ok(v.clone()));
        } else {
            prop_assert!(matches!(s, Err(Error::NonZeroPadding { .. })), "{:?}", s);
        }
        prop_assert_eq!(from_bytes_with::<Padded>(&bytes, lenient()), Ok(v));
    }

    /// One byte changed anywhere: where strict decodes, lenient gives the same value, and any
    /// strict error other than non-zero padding is lenient's error too (the policies differ only
    /// in the padding check).
    #[test]
    fn lenient_differs_from_strict_only_on_padding(
        v in padded(),
        pos in any::<prop::sample::Index>(),
        byte in 1u8..,
    ) {
        let mut bytes = to_bytes(&v).unwrap();
        let p = pos.index(bytes.len());
        bytes[p] ^= byte;
        let s = from_bytes_with::<Padded>(&bytes, strict());
        let l = from_bytes_with::<Padded>(&bytes, lenient());
        if !matches!(s, Err(Error::NonZeroPadding { .. })) {
            prop_assert_eq!(l, s);
        }
    }
}
