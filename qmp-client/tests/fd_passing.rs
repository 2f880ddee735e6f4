//! Several fd-carrying commands at once on a real QEMU: each fd must arrive under its own name
//! or fd set. QEMU's socket chardev throws away fds it has not handed out when new ones arrive
//! and its monitor reads ahead, so the client holds an fd-carrying command back until the
//! previous one is answered.
#![cfg(all(unix, any(feature = "async", feature = "blocking")))]

mod common;

use common::{Qemu, MACHINE_NONE};
use serde_json::{json, Value};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

const N: usize = 4;

/// `N` distinct empty files in the QEMU's folder, canonical paths.
fn files(q: &Qemu, prefix: &str) -> Vec<PathBuf> {
    (0..N)
        .map(|i| {
            let p = q.path(&format!("{prefix}{i}"));
            std::fs::File::create(&p).unwrap();
            std::fs::canonicalize(&p).unwrap()
        })
        .collect()
}

fn open(p: &PathBuf) -> OwnedFd {
    OwnedFd::from(std::fs::File::open(p).unwrap())
}

/// What QEMU's fd `fd` is open on.
fn qemu_fd_target(q: &Qemu, fd: i64) -> PathBuf {
    std::fs::read_link(format!("/proc/{}/fd/{fd}", q.pid())).unwrap()
}

/// Every path QEMU has open.
fn qemu_open_files(q: &Qemu) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{}/fd", q.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

/// The add-fd replies (in file order) and query-fdsets agree with the files sent: fd set
/// `10 + i` holds exactly one fd, open on file `i`, with opaque `f<i>`.
fn check_fdsets(q: &Qemu, files: &[PathBuf], replies: &[Value], fdsets: &Value) {
    for (i, (path, reply)) in files.iter().zip(replies).enumerate() {
        assert_eq!(reply["fdset-id"], json!(10 + i), "{reply}");
        let fd = reply["fd"].as_i64().unwrap();
        assert_eq!(&qemu_fd_target(q, fd), path, "add-fd #{i} got {reply}");
        let set = fdsets
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["fdset-id"] == json!(10 + i))
            .unwrap_or_else(|| panic!("fd set {} missing: {fdsets}", 10 + i));
        let fds = set["fds"].as_array().unwrap();
        assert_eq!(fds.len(), 1, "{set}");
        assert_eq!(fds[0]["fd"], json!(fd), "{set}");
        assert_eq!(fds[0]["opaque"], json!(format!("f{i}")), "{set}");
    }
}

/// getfd under names `n<i>` all succeeded: QEMU holds every file; closing `n<i>` closes file
/// `i` and no other, which proves each name holds its own file.
fn check_named(q: &Qemu, files: &[PathBuf], closefd: impl Fn(&str) -> Value) {
    let open = qemu_open_files(q);
    for p in files {
        assert!(open.contains(p), "QEMU lacks {}: {open:?}", p.display());
    }
    for i in 0..N {
        closefd(&format!("n{i}"));
        let open = qemu_open_files(q);
        for (j, p) in files.iter().enumerate() {
            assert_eq!(
                open.contains(p),
                j > i,
                "after closefd n{i}, file {j} open: {}",
                open.contains(p)
            );
        }
    }
}

#[cfg(feature = "async")]
mod asynchronous {
    use super::*;
    use qmp_client::Exec;

    use common::connect;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_add_fd_and_getfd_each_fd_where_it_belongs() {
        let q = Qemu::spawn(MACHINE_NONE);
        let c = connect(&q).await;
        let sets = files(&q, "f");
        let tasks: Vec<_> = sets
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = c.clone();
                let fd = open(p);
                tokio::spawn(async move {
                    let args = json!({"fdset-id": 10 + i, "opaque": format!("f{i}")});
                    c.execute_with("add-fd", Some(args), Exec::fds(vec![fd]))
                        .await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for t in tasks {
            replies.push(t.await.unwrap().expect("add-fd"));
        }
        let fdsets = c.execute("query-fdsets", None).await.unwrap();
        check_fdsets(&q, &sets, &replies, &fdsets);

        let named = files(&q, "g");
        let tasks: Vec<_> = named
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = c.clone();
                let fd = open(p);
                tokio::spawn(async move { c.get_fd(&format!("n{i}"), fd).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("getfd");
        }
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| {
            check_named(&q, &named, |name| {
                rt.block_on(c.execute("closefd", Some(json!({ "fdname": name }))))
                    .unwrap()
            })
        });
    }
}

#[cfg(feature = "blocking")]
mod blocking {
    use super::*;
    use qmp_client::Exec;

    use common::connect_blocking as connect;

    #[test]
    fn concurrent_add_fd_and_getfd_each_fd_where_it_belongs() {
        let q = Qemu::spawn(MACHINE_NONE);
        let c = connect(&q);
        let sets = files(&q, "f");
        let threads: Vec<_> = sets
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = c.clone();
                let fd = open(p);
                std::thread::spawn(move || {
                    let args = json!({"fdset-id": 10 + i, "opaque": format!("f{i}")});
                    c.execute_with("add-fd", Some(args), Exec::fds(vec![fd]))
                })
            })
            .collect();
        let replies: Vec<Value> = threads
            .into_iter()
            .map(|t| t.join().unwrap().expect("add-fd"))
            .collect();
        let fdsets = c.execute("query-fdsets", None).unwrap();
        check_fdsets(&q, &sets, &replies, &fdsets);

        let named = files(&q, "g");
        let threads: Vec<_> = named
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = c.clone();
                let fd = open(p);
                std::thread::spawn(move || {
                    c.execute_with(
                        "getfd",
                        Some(json!({ "fdname": format!("n{i}") })),
                        Exec::fds(vec![fd]),
                    )
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().expect("getfd");
        }
        check_named(&q, &named, |name| {
            c.execute("closefd", Some(json!({ "fdname": name })))
                .unwrap()
        });
    }
}
