//! `LIBVIRT_DEFAULT_URI` handling (its own test binary: it changes the process environment).
#![cfg(feature = "blocking")]

mod common;

use libvirt_client::uri::Uri;
use libvirt_client::Error;

#[test]
fn default_uri_from_the_environment() {
    std::env::set_var("LIBVIRT_DEFAULT_URI", "test+tcp://127.0.0.1:16599/default");
    let u = Uri::from_env().unwrap().unwrap();
    assert_eq!(u.remote_name(), "test:///default");
    assert_eq!(Uri::default_uri().unwrap(), u);

    std::env::set_var("LIBVIRT_DEFAULT_URI", "qemu+nosuch:///system");
    assert!(matches!(
        Uri::from_env(),
        Err(Error::InvalidDefaultUri { .. })
    ));
    assert!(matches!(
        Uri::default_uri(),
        Err(Error::InvalidDefaultUri { .. })
    ));

    // empty means unset: libvirt then asks the local daemon to choose (Uri::local_probe, name "")
    std::env::set_var("LIBVIRT_DEFAULT_URI", "");
    assert_eq!(Uri::from_env().unwrap(), None);
    std::env::remove_var("LIBVIRT_DEFAULT_URI");
    assert_eq!(Uri::from_env().unwrap(), None);

    // connect("") opens the default URI like virConnectOpen(NULL) (the peers' test driver
    // here); an unusable default is a typed error.
    #[cfg(feature = "blocking")]
    {
        let want = common::uri("test_unix");
        std::env::set_var("LIBVIRT_DEFAULT_URI", &want);
        let c = libvirt_client::blocking::Client::connect("").unwrap();
        assert_eq!(c.uri().unwrap(), &Uri::parse(&want).unwrap());
        assert_eq!(c.version().unwrap().to_string(), "0.0.2");
        let name = c.connect_get_uri().unwrap();
        assert_eq!(name, "test:///default");
        std::env::set_var("LIBVIRT_DEFAULT_URI", "qemu+nosuch:///system");
        assert!(matches!(
            libvirt_client::blocking::Client::connect(""),
            Err(Error::InvalidDefaultUri { .. })
        ));
        std::env::remove_var("LIBVIRT_DEFAULT_URI");
    }
}
