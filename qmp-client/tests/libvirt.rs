//! QMP through libvirt (feature `libvirt`): the typed API and helpers on a tiny TCG domain of
//! the real peer libvirtd (`qemu:///session`), commands via its monitor passthrough and
//! events via its QEMU monitor event subscription.
#![cfg(feature = "libvirt")]

mod common;

use qmp_client::qmp_proto::generated::{commands as c, types as t, TypedEvent};
use qmp_client::{Client, ConnectOptions, Error, EventFilter, Exec};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn uri() -> String {
    common::endpoints()["libvirt"]["uris"]["qemu_unix"]
        .as_str()
        .expect("endpoints file lacks libvirt.uris.qemu_unix; run `cargo xtask peers start`")
        .to_owned()
}

/// Destroys and undefines the domain however the test ends.
struct DomainGuard {
    uri: String,
    name: String,
}

impl Drop for DomainGuard {
    fn drop(&mut self) {
        let virsh = common::endpoints()["virsh"]
            .as_str()
            .unwrap_or("virsh")
            .to_owned();
        for cmd in ["destroy", "undefine"] {
            let _ = std::process::Command::new(&virsh)
                .args(["-c", &self.uri, cmd, &self.name])
                .output();
        }
    }
}

/// A diskless 64 MiB TCG PC (the firmware finds nothing to boot and idles).
fn domain_xml(name: &str) -> String {
    format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\
         <devices><emulator>{}</emulator><memballoon model='none'/></devices></domain>",
        common::endpoints()["qemu"]["binary"]
            .as_str()
            .unwrap_or("/usr/bin/qemu-system-x86_64"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_qmp_through_libvirt() {
    let uri = uri();
    let lv = libvirt_client::Client::connect(&uri).await.unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("qmp-via-libvirt-{}-{nanos}", std::process::id());
    let _guard = DomainGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    let dom = lv.define_xml(&domain_xml(&name)).await.unwrap();
    lv.start(&dom).await.unwrap();

    let qmp = Client::via_libvirt(lv.clone(), dom.clone(), ConnectOptions::default())
        .await
        .unwrap();
    assert!(qmp.greeting().version.qemu.major >= 7);
    assert!(!qmp.oob_enabled());

    let status = qmp.call(&c::QueryStatus {}).await.unwrap();
    assert_eq!(status.status, t::RunState::Running);
    assert!(status.running);
    let props = qmp
        .call(&c::QomList {
            path: "/machine".into(),
        })
        .await
        .unwrap();
    assert!(props.iter().any(|p| p.name == "type"), "{props:?}");
    assert!(props.iter().any(|p| p.r#type.starts_with("child<")));
    let ty = qmp.qom_get("/machine", "type").await.unwrap();
    assert!(ty.as_str().is_some_and(|t| t.contains("pc")), "{ty}");

    // QEMU's refusal comes back as the same typed error as over a socket.
    let err = qmp
        .call(&c::QomList {
            path: "/no/such/object".into(),
        })
        .await
        .unwrap_err();
    // QEMU's own error reply, relayed by libvirt as JSON: a QMP error with QEMU's class.
    assert!(
        matches!(&err, Error::Qmp { command, error } if command == "qom-list"
            && error.class == qmp_client::qmp_proto::ErrorClass::DeviceNotFound),
        "{err:?}"
    );
    // Fds cannot travel through libvirt's monitor passthrough.
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(matches!(
        qmp.get_fd("x", a.into()).await,
        Err(Error::FdPassingUnsupported)
    ));
    // Nor exec-oob: refused, not silently sent in-band.
    let oob = Exec {
        oob: true,
        ..Exec::default()
    };
    assert!(
        matches!(
            qmp.execute_with("query-status", None, oob).await,
            Err(Error::Protocol(
                qmp_client::qmp_proto::Error::OobNotNegotiated
            ))
        ),
        "exec-oob through libvirt"
    );

    // Events: the govmm helpers' stop/cont, seen through libvirt's monitor events.
    let mut events = qmp.subscribe(EventFilter::names(["STOP", "RESUME"]));
    qmp.stop().await.unwrap();
    assert_eq!(
        qmp.query_status().await.unwrap().status,
        t::RunState::Paused
    );
    let e = events.recv_timeout(Duration::from_secs(30)).await.unwrap();
    assert!(
        matches!(TypedEvent::from_event(&e).unwrap(), TypedEvent::Stop(_)),
        "{e:?}"
    );
    qmp.cont().await.unwrap();
    let e = events.recv_timeout(Duration::from_secs(30)).await.unwrap();
    assert!(
        matches!(TypedEvent::from_event(&e).unwrap(), TypedEvent::Resume(_)),
        "{e:?}"
    );
    assert!(e.timestamp.seconds > 0);

    lv.destroy(&dom).await.unwrap();
    // The domain is shut off: libvirt itself refuses (VIR_ERR_OPERATION_INVALID, "domain is
    // not running"), reported as libvirt's error, not as a QMP error QEMU never sent.
    let r = qmp.call(&c::QueryStatus {}).await;
    match &r {
        Err(Error::Libvirt { command, source }) => {
            assert_eq!(command, "query-status");
            assert_eq!(
                source.remote_code(),
                Some(libvirt_client::libvirt_proto::generated::api::ErrorNumber::ERR_OPERATION_INVALID),
                "{source:?}"
            );
        }
        other => panic!("expected Error::Libvirt, got {other:?}"),
    }
    assert_eq!(r.unwrap_err().qmp_class(), None);
    lv.undefine(&dom, Default::default()).await.unwrap();
    // Close before the runtime ends (it would cut the connection at any point, and libvirtd
    // 9.0 can crash when a client leaves mid-(de)registration of its monitor events).
    drop(qmp);
    lv.close().await.unwrap();
}
