//! Borrowed decode: `&str`, `&[u8]` point into the input; `Opaque` shares the input `Bytes` when
//! decoded with `from_shared`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use xdr::{from_bytes, from_shared, to_bytes, Opaque};

fn within(input: &[u8], part: &[u8]) -> bool {
    let start = input.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + input.len()
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Borrowed<'a> {
    name: &'a str,
    #[serde(borrow)]
    names: Vec<&'a str>,
    #[serde(with = "serde_bytes")]
    data: &'a [u8],
    id: i32,
}

#[test]
fn str_and_bytes_borrow_from_the_input() {
    let v = Borrowed {
        name: "guest-1",
        names: vec!["a", "bcdef"],
        data: &[1, 2, 3, 4, 5, 6],
        id: 3,
    };
    let bytes = to_bytes(&v).unwrap();
    let back: Borrowed<'_> = from_bytes(&bytes).unwrap();
    assert_eq!(back, v);
    assert!(within(&bytes, back.name.as_bytes()));
    assert!(within(&bytes, back.names[1].as_bytes()));
    assert!(within(&bytes, back.data));
    // The exact offsets: name's bytes start right after its length word.
    assert_eq!(back.name.as_ptr() as usize, bytes.as_ptr() as usize + 4);
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Owned {
    name: String,
    data: Opaque,
    more: Vec<Opaque>,
    maybe: Option<Opaque>,
}

#[test]
fn from_shared_makes_opaque_a_slice_of_the_input() {
    let v = Owned {
        name: "x".into(),
        data: Opaque::from(vec![7u8; 1000]),
        more: vec![Opaque::from(vec![1, 2, 3]), Opaque::from(vec![])],
        maybe: Some(Opaque::from(vec![9; 5])),
    };
    let input = Bytes::from(to_bytes(&v).unwrap());
    let back: Owned = from_shared(&input).unwrap();
    assert_eq!(back, v);
    assert!(within(&input, &back.data));
    assert_eq!(back.data.as_ptr() as usize, input.as_ptr() as usize + 12);
    assert!(within(&input, &back.more[0]));
    assert!(within(&input, back.maybe.as_ref().unwrap()));
    // The slices keep the input alive: dropping our handle leaves the data intact.
    let ptr = back.data.as_ptr();
    drop(input);
    assert_eq!(back.data.as_ptr(), ptr);
    assert!(back.data.iter().all(|&b| b == 7));
}

#[test]
fn from_bytes_copies_opaque_and_leaves_no_shared_state_behind() {
    let v = Owned {
        name: String::new(),
        data: Opaque::from(vec![1u8; 16]),
        more: vec![],
        maybe: None,
    };
    let input = Bytes::from(to_bytes(&v).unwrap());
    // After a from_shared call has finished, plain decoding of the same memory copies.
    let _: Owned = from_shared(&input).unwrap();
    let back: Owned = from_bytes(&input).unwrap();
    assert_eq!(back, v);
    assert!(!within(&input, &back.data));
}

#[test]
fn from_shared_rejects_trailing_bytes() {
    let mut raw = to_bytes(&Opaque::from(vec![1u8])).unwrap();
    raw.push(0);
    assert_eq!(
        from_shared::<Opaque>(&Bytes::from(raw)),
        Err(xdr::Error::TrailingBytes { count: 1 })
    );
}
