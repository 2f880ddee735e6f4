//! Both drivers' writes under concurrency, against a private libvirtd: callers write their
//! own calls when no one else is writing (inline, without blocking) and hand the rest to the
//! driver's writer thread or task when the socket is full. Many threads sending calls far larger than
//! the socket buffer (so inline writes stop part-way and the rest is requeued), mixed with
//! small calls, must all arrive intact: a single byte out of order would corrupt the stream
//! and the daemon would drop the connection.
#![cfg(all(feature = "async", feature = "blocking"))]

mod common;

use std::time::Duration;

use futures_util::future::join_all;
use libvirt_client::blocking::Client;
use libvirt_client::libvirt_proto::generated::api::DomainXMLFlags;
use libvirt_client::ClientOptions;

use common::daemon::PrivateDaemon;

fn domain_xml(name: &str, desc: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><description>{desc}</description>\
         <memory>65536</memory><os><type>hvm</type></os></domain>"
    )
}

fn description(thread: usize, round: usize) -> String {
    // Distinct per call, and long: 256-768 KiB, several times a unix socket's buffer.
    let len = (256 << 10) + ((thread * 7919 + round * 104_729) % (512 << 10));
    let unit = format!("t{thread}r{round}-");
    unit.repeat(len / unit.len() + 1)[..len].to_owned()
}

#[test]
fn blocking_concurrent_large_and_small_calls_arrive_intact() {
    let d = PrivateDaemon::start();
    for uri in [d.test_unix(), d.test_tcp()] {
        let c = Client::connect_with(&uri, ClientOptions::default().keepalive(None)).unwrap();
        let (threads, rounds) = (8, 3);
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for r in 0..rounds {
                        let name = format!("w{t}-{r}");
                        let desc = description(t, r);
                        let dom = c.domain_define_xml(domain_xml(&name, &desc)).unwrap();
                        assert_eq!(dom.name, name);
                        // Small calls in between, pipelined with the other threads' big ones.
                        for _ in 0..20 {
                            assert_eq!(c.version().unwrap().to_string(), "0.0.2");
                        }
                        let back = c.domain_get_xml_desc(dom, DomainXMLFlags::empty()).unwrap();
                        assert!(back.contains(&format!("<description>{desc}</description>")));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker failed");
        }
        assert!(c.is_open());
        let names = c.connect_list_defined_domains(1024).unwrap();
        for t in 0..threads {
            for r in 0..rounds {
                let name = format!("w{t}-{r}");
                assert!(names.contains(&name), "{name} missing from {names:?}");
                let dom = c.domain_lookup_by_name(name).unwrap();
                c.domain_undefine(dom).unwrap();
            }
        }
        c.close().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_concurrent_large_and_small_calls_arrive_intact() {
    let d = PrivateDaemon::start();
    for uri in [d.test_unix(), d.test_tcp()] {
        let c =
            libvirt_client::Client::connect_with(&uri, ClientOptions::default().keepalive(None))
                .await
                .unwrap();
        let (tasks, rounds) = (8, 3);
        let workers = (0..tasks).map(|t| {
            let c = c.clone();
            tokio::spawn(async move {
                for r in 0..rounds {
                    let name = format!("a{t}-{r}");
                    let desc = description(t, r);
                    let dom = c.domain_define_xml(domain_xml(&name, &desc)).await.unwrap();
                    assert_eq!(dom.name, name);
                    let small = (0..20).map(|_| c.version());
                    for v in join_all(small).await {
                        assert_eq!(v.unwrap().to_string(), "0.0.2");
                    }
                    let back = c
                        .domain_get_xml_desc(dom, DomainXMLFlags::empty())
                        .await
                        .unwrap();
                    assert!(back.contains(&format!("<description>{desc}</description>")));
                }
            })
        });
        for w in join_all(workers).await {
            w.expect("a worker failed");
        }
        assert!(c.is_open());
        let names = c.connect_list_defined_domains(1024).await.unwrap();
        for t in 0..tasks {
            for r in 0..rounds {
                let name = format!("a{t}-{r}");
                assert!(names.contains(&name), "{name} missing from {names:?}");
                let dom = c.domain_lookup_by_name(name).await.unwrap();
                c.domain_undefine(dom).await.unwrap();
            }
        }
        c.close().await.unwrap();
    }
}
