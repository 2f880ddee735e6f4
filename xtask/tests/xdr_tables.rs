//! The dissector derives programs, procedures and body types from the `.x` files alone; the
//! generated tables in `libvirt-proto` derive them through the code generator. Both must agree
//! on every procedure of every program.

use libvirt_proto::generated::PROGRAMS;
use std::path::PathBuf;
use xdr::dynamic::dissect::Dissector;
use xdr::schema::Schema;

fn protocol_dir() -> PathBuf {
    std::env::var_os("VMWIRE_LIBVIRT_PROTOCOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/libvirt-protocol/11.3.0")
        })
}

#[test]
fn dissector_agrees_with_generated_procedure_tables() {
    let dir = protocol_dir();
    let d = Dissector::new(Schema::load(&Dissector::spec_files(&dir).unwrap()).unwrap()).unwrap();
    let schema = d.schema();
    let mut checked = 0;
    for info in PROGRAMS {
        let prog = d
            .programs()
            .iter()
            .find(|p| p.number == info.number)
            .unwrap_or_else(|| panic!("dissector lacks program {}", info.name));
        assert_eq!(prog.name, info.name);
        assert_eq!(
            prog.procedures.len(),
            info.procedures.len(),
            "{}",
            info.name
        );
        for p in info.procedures {
            let name = &prog.procedures[&(p.number as i32)];
            assert_eq!(name, p.name);
            let base = prog.type_base(name).unwrap();
            let found = |suffix: &str| {
                let t = format!("{base}_{suffix}");
                schema.definition(&t).is_some().then_some(t)
            };
            assert_eq!(found("args").as_deref(), p.args, "{name} args");
            assert_eq!(found("ret").as_deref(), p.ret, "{name} ret");
            assert_eq!(found("msg").as_deref(), p.message, "{name} msg");
            checked += 1;
        }
    }
    assert!(checked > 480, "only {checked} procedures");
}
