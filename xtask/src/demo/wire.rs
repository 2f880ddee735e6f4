//! Demo section: calls to the live libvirtd encoded with `libvirt-proto` (generated types, packet
//! header), and the call/reply pairs as `cargo xtask xdr dissect` shows them.

use crate::demo::endpoint;
use crate::xdr_cmd;
use anyhow::{bail, Context, Result};
use libvirt_proto::generated::remote::{
    self, RemoteConnectGetLibVersionRet, RemoteConnectListAllDomainsArgs,
    RemoteConnectListAllDomainsRet, RemoteConnectOpenArgs,
};
use libvirt_proto::packet::encode_packet;
use libvirt_proto::{Header, MessageStatus, MessageType};
use serde::Serialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

// Procedure numbers of the remote program, from libvirt-proto's generated `Procedure`.
const CONNECT_OPEN: i32 = remote::Procedure::ConnectOpen as i32;
const CONNECT_CLOSE: i32 = remote::Procedure::ConnectClose as i32;
const CONNECT_GET_LIB_VERSION: i32 = remote::Procedure::ConnectGetLibVersion as i32;
const CONNECT_LIST_ALL_DOMAINS: i32 = remote::Procedure::ConnectListAllDomains as i32;

pub fn tour(endpoints: &Value) -> Result<()> {
    let socket = endpoint(endpoints, "/libvirt/socket")?;
    let dissector = xdr_cmd::load_dissector(&xdr_cmd::spec_dir(None)?)?;
    let mut s = UnixStream::connect(&socket).with_context(|| format!("connecting to {socket}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    println!(
        "  {socket}: four calls encoded by libvirt-proto; each packet as `xdr dissect` shows it:"
    );

    let mut serial = 0;
    let mut call =
        |s: &mut UnixStream, procedure: i32, body: Vec<u8>| -> Result<(Vec<u8>, Vec<u8>)> {
            serial += 1;
            let header = Header {
                program: remote::PROGRAM,
                version: remote::VERSION,
                procedure,
                kind: MessageType::Call,
                serial,
                status: MessageStatus::Ok,
            };
            let mut packet = Vec::new();
            encode_packet(&header, 0, &body, &mut packet)?;
            s.write_all(&packet)?;
            let reply = read_packet(s)?;
            Ok((packet, reply))
        };
    let open = RemoteConnectOpenArgs {
        name: Some("test:///default".into()),
        flags: 0,
    };
    let pairs = [
        call(&mut s, CONNECT_OPEN, args(&open)?)?,
        call(&mut s, CONNECT_GET_LIB_VERSION, Vec::new())?,
        call(
            &mut s,
            CONNECT_LIST_ALL_DOMAINS,
            args(&RemoteConnectListAllDomainsArgs {
                need_results: 1,
                flags: 0,
            })?,
        )?,
        call(&mut s, CONNECT_CLOSE, Vec::new())?,
    ];

    for (i, (call_bytes, reply_bytes)) in pairs.iter().enumerate() {
        for (dir, bytes) in [("->", call_bytes), ("<-", reply_bytes)] {
            let packet = dissector.packets(bytes).next().context("one packet")??;
            // Exactly the line `cargo xtask xdr dissect` prints for this packet.
            let json = serde_json::to_string(&packet)?;
            println!("  {dir} {json}");
            if packet.decode_error.is_some() || packet.error.is_some() {
                bail!("call {i} failed: {json}");
            }
        }
    }

    // The same replies through the generated types: both decoders agree.
    let lib: RemoteConnectGetLibVersionRet = xdr::from_bytes(&pairs[1].1[28..])?;
    let list: RemoteConnectListAllDomainsRet = xdr::from_bytes(&pairs[2].1[28..])?;
    let names: Vec<&str> = list.domains.iter().map(|d| d.name.as_str()).collect();
    println!(
        "  typed decode agrees: libvirt {}.{}.{}, domains {names:?}",
        lib.lib_ver / 1_000_000,
        lib.lib_ver / 1000 % 1000,
        lib.lib_ver % 1000
    );
    Ok(())
}

/// One whole packet from the socket (length word included).
fn read_packet(s: &mut UnixStream) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).context("reading a reply")?;
    let n = u32::from_be_bytes(len);
    libvirt_proto::header::check_length(n, libvirt_proto::header::PACKET_MAX)?;
    let mut packet = vec![0u8; n as usize];
    packet[..4].copy_from_slice(&len);
    s.read_exact(&mut packet[4..]).context("reading a reply")?;
    Ok(packet)
}

/// A call's arguments as XDR, through the generated serde types.
fn args<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(xdr::to_bytes(v)?)
}
