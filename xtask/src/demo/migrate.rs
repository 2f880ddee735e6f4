//! Demo section: live migration of a tiny TCG guest from the peer daemon A (`libvirt`) to B
//! (`libvirt2`) with `libvirt_client::migrate` (client-driven v3 protocol), with a progress bar.
//!
//! A guest without an OS is nearly all zero pages, which QEMU sends as a few bytes each: it
//! would migrate in a blink and the bar would show nothing. So the guest's RAM carries
//! [`BLOB_MIB`] MiB of pseudo-random bytes (QEMU's `loader` device) and the migration is
//! limited to [`BANDWIDTH_MIB`] MiB/s: the bar moves for a couple of seconds.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libvirt_client::libvirt_proto::generated::api::{
    DomainCreateFlags, DomainJobType, DomainMigrateFlags, DomainState, ErrorNumber,
};
use libvirt_client::migrate::{self, MigrateOptions, Migration, Progress};
use libvirt_client::Client;
use serde_json::Value;

use super::endpoint;

/// MiB of non-zero data in the guest's RAM.
const BLOB_MIB: usize = 24;
/// The migration's bandwidth limit, MiB/s.
const BANDWIDTH_MIB: u64 = 12;

fn guest_xml(name: &str, blob: &std::path::Path) -> String {
    format!(
        "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\
         <name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <serial type='pty'/><console type='pty'/><memballoon model='none'/>\
         </devices><qemu:commandline><qemu:arg value='-device'/>\
         <qemu:arg value='loader,file={},addr=0x1000000,force-raw=on'/>\
         </qemu:commandline></domain>",
        blob.display()
    )
}

/// Writes `mib` MiB of pseudo-random bytes (no zero page) to a world-readable file in
/// /var/tmp (both daemons' QEMUs read it as their own users).
fn write_blob(path: &std::path::Path, mib: usize) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::create(path)?;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in buf.chunks_exact_mut(8) {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.copy_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// Destroys the demo guest on both daemons and removes its data file however the section ends.
struct Guard {
    name: String,
    uris: [String; 2],
    blob: std::path::PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.blob);
        for uri in &self.uris {
            let _ = std::process::Command::new("virsh")
                .args(["-q", "-c", uri, "destroy", &self.name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn bar(p: &Progress) -> String {
    let frac = p.fraction().unwrap_or(0.0);
    let filled = (frac * 30.0).round() as usize;
    format!(
        "  [{}{}] {:5.1}%  {} / {} KiB  {:.1} MiB/s",
        "#".repeat(filled),
        "-".repeat(30 - filled),
        frac * 100.0,
        p.data_processed.unwrap_or(0) / 1024,
        p.data_total.unwrap_or(0) / 1024,
        p.memory_bps.unwrap_or(0) as f64 / (1024.0 * 1024.0),
    )
}

/// The section.
pub fn tour(endpoints: &Value) -> Result<()> {
    let a_uri = endpoint(endpoints, "/libvirt/uris/qemu_unix")?;
    let b_uri = endpoint(endpoints, "/libvirt2/uris/qemu_unix")
        .context("the second daemon is missing: run `cargo xtask peers start`")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let a = Client::connect(&a_uri).await.context("connecting to A")?;
        let b = Client::connect(&b_uri).await.context("connecting to B")?;
        let name = format!("vmwire-demo-migrate-{}", std::process::id());
        let blob = std::path::PathBuf::from(format!("/var/tmp/{name}.ram"));
        let _guard = Guard {
            name: name.clone(),
            uris: [a_uri.clone(), b_uri.clone()],
            blob: blob.clone(),
        };
        write_blob(&blob, BLOB_MIB).context("writing the guest's RAM contents")?;
        let dom = a
            .domain_create_xml(guest_xml(&name, &blob), DomainCreateFlags::empty())
            .await
            .context("starting the guest on A")?;
        println!(
            "  guest {name} running on A ({a_uri}), {BLOB_MIB} MiB of data in its RAM; \
             migrating at {BANDWIDTH_MIB} MiB/s"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let opts = MigrateOptions::new(DomainMigrateFlags::LIVE)
            .uri(format!("tcp:127.0.0.1:{port}"))
            .bandwidth_mib(BANDWIDTH_MIB)
            .progress_interval(Duration::from_millis(100));
        let t = Instant::now();
        let mut polls = 0;
        let mut last = Progress::default();
        let new = Migration::new(a.clone(), b.clone())
            .run(&dom, &opts, |p| {
                polls += 1;
                print!("\r{}", bar(p));
                let _ = std::io::stdout().flush();
                last = p.clone();
                ControlFlow::Continue(())
            })
            .await
            .context("migrating A -> B")?;
        // The job ends between polls; the destination keeps the completed job's totals.
        match migrate::completed_job_progress(&b, &new).await {
            Ok(done) if done.job_type == DomainJobType::COMPLETED => {
                println!("\r{}", bar(&done));
                println!(
                    "  completed job on B: {} ms",
                    done.time_elapsed_ms.unwrap_or(0)
                );
            }
            other => {
                println!("\r{}", bar(&last));
                println!("  (last poll above; no completed-job statistics on B: {other:?})");
            }
        }
        println!(
            "  Begin3 -> Prepare3 -> Perform3 -> Finish3 -> Confirm3 in {:?} ({polls} progress polls)",
            t.elapsed()
        );
        let st = b.domain_get_state(new.clone(), 0).await?;
        if DomainState(st.state) != DomainState::RUNNING {
            bail!("guest is {:?} on B, not running", DomainState(st.state));
        }
        println!("  guest {} now running on B ({b_uri})", new.name);
        match a.domain_lookup_by_name(name.clone()).await {
            // Only "no such domain" means gone; any other error is one.
            Err(e) if e.remote_code() == Some(ErrorNumber::ERR_NO_DOMAIN) => {
                println!("  and gone from A: {}", e)
            }
            Err(e) => return Err(e).context("looking the guest up on A after migration"),
            Ok(_) => bail!("guest still defined on A after migration"),
        }
        b.domain_destroy(new).await?;
        println!("  destroyed on B");
        Ok(())
    })
}
