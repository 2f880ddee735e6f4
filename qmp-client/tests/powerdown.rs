//! `system_powerdown_and_wait` against a real guest: a 512-byte boot sector (assembled below,
//! booted by SeaBIOS from a raw IDE disk) that powers the PC off when the ACPI power button is
//! pressed, the way an OS's ACPI driver would. And the timeout path when no guest reacts.
#![cfg(any(feature = "async", feature = "blocking"))]

mod common;

use common::{Qemu, MACHINE_PC};
use qmp_client::{Error, EventFilter};
use std::path::Path;
use std::time::{Duration, Instant};

#[cfg(feature = "async")]
use common::connect;

/// Port the guest writes `R` to once it listens for the power button (QEMU's isa-debugcon).
const DEBUG_PORT: u8 = 0xe9;

/// A boot sector (16-bit real mode, loaded at 0:7c00) that:
/// 1. reads the PIIX4 power-management function's I/O base (PCI 00:01.3, config register 0x40,
///    bits 15:6) through the 0xcf8/0xcfc configuration ports, as firmware left it;
/// 2. enables the power-button event (PM1_EN at base+2, bit 8) and prints `R` on the debug port;
/// 3. polls PM1_STS (base+0) until the power-button status bit (bit 8) is set;
/// 4. writes SLP_EN (bit 13) with SLP_TYP 0, QEMU's soft-off, to PM1_CNT (base+4), and halts.
fn boot_sector() -> Vec<u8> {
    let mut code: Vec<u8> = Vec::new();
    code.push(0xfa); // cli
    code.extend([0x66, 0xb8]); // mov eax, imm32: enable | bus 0 | dev 1 | fn 3 | reg 0x40
    code.extend(0x8000_0b40u32.to_le_bytes());
    code.extend([0xba, 0xf8, 0x0c]); // mov dx, 0xcf8
    code.extend([0x66, 0xef]); // out dx, eax
    code.extend([0xba, 0xfc, 0x0c]); // mov dx, 0xcfc
    code.extend([0x66, 0xed]); // in eax, dx
    code.extend([0x25, 0xc0, 0xff]); // and ax, 0xffc0
    code.extend([0x89, 0xc3]); // mov bx, ax
    code.extend([0x8d, 0x57, 0x02]); // lea dx, [bx+2]
    code.extend([0xb8, 0x00, 0x01]); // mov ax, 0x0100
    code.push(0xef); // out dx, ax
    code.extend([0xb0, b'R']); // mov al, 'R'
    code.extend([0xe6, DEBUG_PORT]); // out DEBUG_PORT, al
    let poll = code.len();
    code.extend([0x89, 0xda]); // poll: mov dx, bx
    code.push(0xed); // in ax, dx
    code.extend([0xa9, 0x00, 0x01]); // test ax, 0x0100
    let back = poll as isize - (code.len() as isize + 2);
    code.extend([0x74, i8::try_from(back).unwrap() as u8]); // jz poll
    code.extend([0x8d, 0x57, 0x04]); // lea dx, [bx+4]
    code.extend([0xb8, 0x00, 0x20]); // mov ax, 0x2000
    code.push(0xef); // out dx, ax
    code.push(0xf4); // halt: hlt
    code.extend([0xeb, 0xfd]); // jmp halt
    assert!(code.len() <= 510);
    code.resize(510, 0);
    code.extend([0x55, 0xaa]);
    code
}

/// A TCG PC running the boot sector, its debug-port output going to `debug`.
fn guest(dir: &Path) -> (Qemu, std::path::PathBuf) {
    let img = dir.join("boot.img");
    std::fs::write(&img, boot_sector()).unwrap();
    let debug = dir.join("debug.out");
    let q = Qemu::spawn(&[
        "-machine",
        "pc,accel=tcg",
        "-m",
        "16",
        "-drive",
        &format!("file={},format=raw,if=ide,index=0", img.display()),
        "-chardev",
        &format!("file,id=dbg,path={}", debug.display()),
        "-device",
        &format!("isa-debugcon,iobase={DEBUG_PORT:#x},chardev=dbg"),
    ]);
    (q, debug)
}

#[cfg(feature = "async")]
#[tokio::test]
async fn powerdown_waits_for_the_guest_to_power_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, debug) = guest(dir.path());
    let c = connect(&q).await;
    // Wait until the guest listens for the button (a press before that is not latched).
    let start = Instant::now();
    while std::fs::read(&debug).unwrap_or_default() != b"R" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "guest never booted: {}",
            q.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.status().await.unwrap(), "running");
    let mut shutdowns = c.subscribe(EventFilter::name("SHUTDOWN"));
    c.system_powerdown_and_wait(Duration::from_secs(30))
        .await
        .unwrap();
    // The guest powered off: QEMU says so, and exits.
    let e = shutdowns
        .recv_timeout(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(e.data["guest"], true, "{e:?}");
    assert_eq!(e.data["reason"], "guest-shutdown", "{e:?}");
    assert!(q.wait_exit(Duration::from_secs(10)), "{}", q.log());
}

/// Without a guest that handles ACPI the wait ends with a typed timeout, promptly, and the
/// connection stays usable.
#[cfg(feature = "async")]
#[tokio::test]
async fn powerdown_without_a_guest_times_out() {
    let q = Qemu::spawn(MACHINE_PC);
    let c = connect(&q).await;
    let t = Instant::now();
    let r = c
        .system_powerdown_and_wait(Duration::from_millis(500))
        .await;
    let took = t.elapsed();
    match r {
        Err(Error::EventTimeout { what, after }) => {
            assert_eq!(what, "SHUTDOWN");
            assert_eq!(after, Duration::from_millis(500));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(c.status().await.unwrap(), "prelaunch");
}

/// The blocking driver's helper, same guest: the wait ends when the guest powered off.
#[cfg(feature = "blocking")]
#[test]
fn blocking_powerdown_waits_for_the_guest_to_power_off() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, debug) = guest(dir.path());
    let start = Instant::now();
    let c = common::connect_blocking(&q);
    while std::fs::read(&debug).unwrap_or_default() != b"R" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "guest never booted: {}",
            q.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.status().unwrap(), "running");
    let shutdowns = c.subscribe(EventFilter::name("SHUTDOWN"));
    c.system_powerdown_and_wait(Duration::from_secs(30))
        .unwrap();
    let e = shutdowns.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(e.data["reason"], "guest-shutdown", "{e:?}");
    assert!(q.wait_exit(Duration::from_secs(10)), "{}", q.log());
    // Without a guest that reacts: the typed timeout.
    let q = Qemu::spawn(MACHINE_PC);
    let c = common::connect_blocking(&q);
    let r = c.system_powerdown_and_wait(Duration::from_millis(300));
    assert!(matches!(r, Err(Error::EventTimeout { .. })), "{r:?}");
    assert_eq!(c.status().unwrap(), "prelaunch");
}
