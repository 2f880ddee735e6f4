use super::*;

fn one(src: &str) -> Spec {
    match parse("t.x", src) {
        Ok(s) => s,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn err(src: &str) -> String {
    match parse("t.x", src) {
        Ok(s) => panic!("expected an error, parsed {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn constants_in_every_base() {
    let s = one("const A = 10;\nconst B = 0x1F;\nconst C = 017;\nconst D = -5;\nconst E = 0;\nconst F = A;\nconst G = -0x10;\n");
    let schema = Schema::new(vec![s]).unwrap();
    assert_eq!(schema.constant("A"), Some(10));
    assert_eq!(schema.constant("B"), Some(31));
    assert_eq!(schema.constant("C"), Some(15));
    assert_eq!(schema.constant("D"), Some(-5));
    assert_eq!(schema.constant("E"), Some(0));
    assert_eq!(schema.constant("F"), Some(10));
    assert_eq!(schema.constant("G"), Some(-16));
}

#[test]
fn enums_with_comments_and_annotations() {
    let s = one(r#"
/* The colours. */
enum colour {
    /* no annotation here */
    RED = 1, /* trailing for red */

    /**
     * @generate: both
     * @acl: domain:read
     * @acl: domain:write:VIR_FLAG
     * @readstream: 1
     * @priority: high
     */
    GREEN = 2,
    BLUE = GREEN,
    CYAN
};
"#);
    let item = &s.items[0];
    assert_eq!(
        item.comments.doc_comment(item.pos.line).unwrap().lines(),
        vec!["The colours."]
    );
    let Definition::Enum(e) = &item.def else {
        panic!()
    };
    assert_eq!(e.name, "colour");
    assert_eq!(e.members.len(), 4);
    assert_eq!(
        e.members[0].comments.trailing[0].text.trim(),
        "trailing for red"
    );
    assert_eq!(
        e.members[0].comments.leading[0].text.trim(),
        "no annotation here"
    );
    let ann = e.members[1].annotations();
    let keys: Vec<_> = ann
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("generate", "both"),
            ("acl", "domain:read"),
            ("acl", "domain:write:VIR_FLAG"),
            ("readstream", "1"),
            ("priority", "high"),
        ]
    );
    assert!(e.members[2].comments.is_empty());
    let schema = Schema::new(vec![s.clone()]).unwrap();
    assert_eq!(schema.constant("BLUE"), Some(2));
    assert_eq!(schema.constant("CYAN"), Some(3));
    assert_eq!(
        schema.enum_values(e),
        vec![
            ("RED".to_string(), 1),
            ("GREEN".to_string(), 2),
            ("BLUE".to_string(), 2),
            ("CYAN".to_string(), 3)
        ]
    );
}

#[test]
fn struct_with_every_declaration_shape() {
    let s = one(r#"
const MAX = 16;
typedef string name_t<MAX>;
struct s { /* insert@1 */
    int a;
    unsigned int b;
    unsigned c;            /* rpcgen's unsigned int */
    hyper d;
    unsigned hyper e;
    char f[32];
    unsigned char g;
    short h;
    unsigned short i;
    float j;
    double k;
    bool l;
    string m<>;
    string n<MAX>;
    opaque o[16];
    opaque p<MAX>;
    opaque q<>;
    name_t r<4>;
    name_t *t;
    struct s *next;
    int fixed[3];
};
"#);
    let Definition::Struct(st) = &s.items[2].def else {
        panic!()
    };
    assert_eq!(st.fields.len(), 21);
    let ann = s.items[2].comments.annotations();
    assert_eq!(ann[0].key, "insert");
    assert_eq!(ann[0].value, "1");
    let shapes: Vec<(String, TypeSpec, Shape)> = st
        .fields
        .iter()
        .map(|f| match &f.decl {
            Declaration::Named { name, ty, shape } => (name.clone(), ty.clone(), shape.clone()),
            Declaration::Void => panic!(),
        })
        .collect();
    use Shape::*;
    use TypeSpec as T;
    let max = || Some(Value::Name("MAX".into()));
    let expected = vec![
        ("a", T::Int, Scalar),
        ("b", T::UInt, Scalar),
        ("c", T::UInt, Scalar),
        ("d", T::Hyper, Scalar),
        ("e", T::UHyper, Scalar),
        ("f", T::Char, Fixed(Value::Int(32))),
        ("g", T::UChar, Scalar),
        ("h", T::Short, Scalar),
        ("i", T::UShort, Scalar),
        ("j", T::Float, Scalar),
        ("k", T::Double, Scalar),
        ("l", T::Bool, Scalar),
        ("m", T::String, Variable(None)),
        ("n", T::String, Variable(max())),
        ("o", T::Opaque, Fixed(Value::Int(16))),
        ("p", T::Opaque, Variable(max())),
        ("q", T::Opaque, Variable(None)),
        (
            "r",
            T::Named("name_t".into()),
            Variable(Some(Value::Int(4))),
        ),
        ("t", T::Named("name_t".into()), Optional),
        ("next", T::Named("s".into()), Optional),
        ("fixed", T::Int, Fixed(Value::Int(3))),
    ];
    let expected: Vec<(String, TypeSpec, Shape)> = expected
        .into_iter()
        .map(|(n, t, s)| (n.to_string(), t, s))
        .collect();
    assert_eq!(shapes, expected);
    assert_eq!(
        st.fields[2].comments.trailing[0].text.trim(),
        "rpcgen's unsigned int"
    );
    Schema::new(vec![s]).unwrap();
}

#[test]
fn unions_with_default_void_and_multiple_labels() {
    let s = one(r#"
enum kind { K_A = 0, K_B = 1, K_C = 2, K_D = 3 };
union u switch (kind k) {
 case K_A:
 case K_B:
     int ab;
 case K_C:
     void;
 default:
     string other<>;
};
union v switch (unsigned int d) { case 1: hyper x; case 0x2: void; };
union w switch (bool present) { case TRUE: int x; case FALSE: void; };
const TRUE = 1;
const FALSE = 0;
"#);
    let Definition::Union(u) = &s.items[1].def else {
        panic!()
    };
    assert_eq!(u.name, "u");
    assert_eq!(u.discriminant.decl.name(), Some("k"));
    assert_eq!(u.arms.len(), 2);
    assert_eq!(
        u.arms[0].labels,
        vec![Value::Name("K_A".into()), Value::Name("K_B".into())]
    );
    assert_eq!(u.arms[1].field.decl, Declaration::Void);
    assert_eq!(u.default.as_ref().unwrap().decl.name(), Some("other"));
    let Definition::Union(v) = &s.items[2].def else {
        panic!()
    };
    assert_eq!(v.arms[1].labels, vec![Value::Int(2)]);
    assert!(v.default.is_none());
    Schema::new(vec![s]).unwrap();
}

#[test]
fn nested_anonymous_types() {
    let s = one(r#"
struct outer {
    struct { int a; hyper b; } inner;
    enum { IN_X = 5, IN_Y } e;
    union switch (int d) { case 0: int z; default: void; } un;
};
"#);
    let Definition::Struct(o) = &s.items[0].def else {
        panic!()
    };
    assert!(matches!(
        &o.fields[0].decl,
        Declaration::Named { ty: TypeSpec::Struct(st), .. } if st.fields.len() == 2
    ));
    assert!(matches!(
        &o.fields[2].decl,
        Declaration::Named { ty: TypeSpec::Union(u), .. } if u.default.is_some()
    ));
    let schema = Schema::new(vec![s]).unwrap();
    assert_eq!(schema.constant("IN_Y"), Some(6));
}

#[test]
fn pass_through_and_includes() {
    let s = one("%#include \"remote_protocol.h\"\n%#include <libvirt/libvirt.h>\n% plain text\nconst A = 1;\n");
    assert_eq!(
        s.items[0].def,
        Definition::PassThrough("#include \"remote_protocol.h\"".into())
    );
    assert_eq!(
        s.items[2].def,
        Definition::PassThrough(" plain text".into())
    );
    assert_eq!(s.includes(), vec!["remote_protocol.h", "libvirt/libvirt.h"]);
}

#[test]
fn typedef_chains() {
    let s = one(
        "typedef string nn<10>;\ntypedef nn *maybe;\ntypedef maybe alias;\nstruct x { alias a; };\n",
    );
    let schema = Schema::new(vec![s]).unwrap();
    assert!(matches!(
        schema.typedef_target("alias"),
        Some(Declaration::Named {
            shape: Shape::Optional,
            ..
        })
    ));
    assert!(matches!(
        schema.typedef_target("nn"),
        Some(Declaration::Named {
            ty: TypeSpec::String,
            ..
        })
    ));
    assert!(schema.typedef_target("x").is_none());
}

#[test]
fn errors_carry_file_line_and_column() {
    assert_eq!(
        err("const A = 1;\nstruct s {\n    int a\n};\n"),
        "t.x:4:1: expected `;`, found `};`"
    );
    assert_eq!(
        err("enum e { A = 1, B = };"),
        "t.x:1:21: expected an enum value, found `};`"
    );
    assert!(err("const A = 12abc;").starts_with("t.x:1:11: malformed number"));
    assert!(err("const A = 99999999999999999999;").contains("out of range"));
    assert!(err("struct s { int a; ").starts_with("t.x:1:19: expected a type"));
    assert!(err("/* open").starts_with("t.x:1:1: unterminated comment"));
    assert!(err("struct s { string x; };").contains("`string` must be declared"));
    assert!(err("struct s { opaque x; };").contains("`opaque` must be declared"));
    assert!(err("struct s { void; };").contains("`void` is not allowed"));
    assert!(err("struct s { };").contains("at least one field"));
    assert!(err("union u switch (string s<>) { case 1: void; };").contains("discriminant"));
    assert!(
        err("union u switch (int d) { case 1: void; default: void; case 2: void; };")
            .contains("after the `default` arm")
    );
    assert!(err("bogus x;").starts_with("t.x:1:1: expected a definition"));
    assert!(err("typedef int struct;").contains("keyword"));
    assert!(err("\n\n  typedef long x;").starts_with("t.x:3:11: `long` is not an XDR type"));
    // Columns count characters, not bytes.
    assert!(err("/* é */ bogus;").starts_with("t.x:1:9:"));
}

#[test]
fn resolution_errors() {
    let unknown_type = Schema::new(vec![one("struct s { missing_t m; };")]).unwrap_err();
    assert_eq!(
        unknown_type.to_string(),
        "t.x:1:12: unknown type `missing_t` (load the file that defines it)"
    );
    let unknown_const = Schema::new(vec![one("typedef opaque x[NOPE];")]).unwrap_err();
    assert!(unknown_const
        .to_string()
        .contains("unknown constant `NOPE`"));
    let dup = Schema::new(vec![one("const A = 1;\nconst A = 2;")]).unwrap_err();
    assert_eq!(
        dup.to_string(),
        "t.x:2:1: `A` is already defined in t.x:1:1"
    );
    let cycle = Schema::new(vec![one("const A = B;\nconst B = A;")]).unwrap_err();
    assert!(matches!(cycle, Error::ConstantCycle { .. }), "{cycle}");
    let bad_label =
        Schema::new(vec![one("union u switch (int d) { case NOPE: void; };")]).unwrap_err();
    assert!(bad_label.to_string().contains("unknown constant `NOPE`"));
}

#[test]
fn c_constants_resolve() {
    let schema = Schema::new(vec![one("typedef opaque uuid[VIR_UUID_BUFLEN];")]).unwrap();
    assert_eq!(schema.constant("VIR_UUID_BUFLEN"), Some(16));
    assert_eq!(
        schema.constant_origin("VIR_UUID_BUFLEN"),
        Some(&ConstOrigin::CHeader("libvirt-host.h"))
    );
}
