//! Arbitrary text into `libvirt_client::uri::Uri::parse`: never a panic; a parsed URI prints
//! as text that parses to the same URI, and everything derived from it (transport, socket
//! choice, ssh helper URI, parameters) is computed without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use libvirt_client::uri::{LocalEnv, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(uri) = Uri::parse(text) else { return };
    let printed = uri.to_string();
    let again = Uri::parse(&printed).expect("a printed URI parses");
    assert_eq!(again, uri, "{text:?} printed as {printed:?}");

    let _ = (uri.transport(), uri.effective_port(), uri.host_or_localhost());
    let _ = (uri.remote_name(), uri.ssh_helper_uri());
    let _ = uri.passthrough_params().count();
    let _ = uri.with_param("name", "x");
    for root in [false, true] {
        let env = LocalEnv::new(root, "/run/user/1000/libvirt".into());
        let _ = uri.wants_session_daemon(root);
        for read_only in [false, true] {
            let _ = uri.unix_socket_in(&env, read_only, |_| read_only);
        }
    }
});
