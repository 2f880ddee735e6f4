//! QMP through libvirt (feature `libvirt`): a [`Client`] whose commands go through
//! `virDomainQemuMonitorCommand` (the QEMU program's `DOMAIN_MONITOR_COMMAND`) of a
//! [`libvirt_client::Client`] and whose events come from its QEMU monitor event subscription.
//! Everything built on [`Client::execute`] (typed [`Client::call`], the helpers, the govmm
//! layer, subscriptions) then works the same for libvirt-managed guests.
//!
//! Differences from a direct socket: no fd passing ([`Error::FdPassingUnsupported`]), no
//! `exec-oob` (`Error::Protocol(OobNotNegotiated)`, as with a QEMU that does not offer it), and the greeting is made up from `query-version` (capabilities empty: libvirt
//! owns the monitor and negotiated it).
//!
//! Errors: QEMU's error replies (relayed by libvirt as the monitor's JSON) are [`Error::Qmp`]
//! with QEMU's class; anything libvirt itself refuses or fails at (domain not running, lost
//! connection, ...) is [`Error::Libvirt`] carrying `libvirt_client::Error` (its
//! `remote_code()` gives libvirt's error number).

use crate::{Client, Error, Result};
use libvirt_client::events::{EventItem, Subscription as LvSubscription};
use libvirt_client::Domain;
use qmp_proto::{ErrorClass, Event, QmpError, Timestamp};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The libvirt side of a [`Client`] made by [`Client::via_libvirt`].
pub(crate) struct Via {
    conn: libvirt_client::Client,
    dom: Domain,
}

impl Drop for Via {
    fn drop(&mut self) {
        tracing::debug!(domain = %self.dom.name, "QMP-over-libvirt client dropped");
    }
}

fn libvirt_error(command: &str, e: libvirt_client::Error) -> Error {
    Error::Libvirt {
        command: command.to_owned(),
        source: Arc::new(e),
    }
}

/// Turn the monitor's reply object into the command's value or error.
pub(crate) fn decode_reply(command: &str, reply: Value) -> Result<Value> {
    if let Some(v) = reply.get("return") {
        return Ok(v.clone());
    }
    if let Some(e) = reply.get("error") {
        let class = e["class"].as_str().unwrap_or("GenericError");
        let desc = e["desc"].as_str().unwrap_or("(no description)");
        return Err(Error::Qmp {
            command: command.to_owned(),
            error: QmpError {
                class: ErrorClass::from_name(class),
                desc: desc.to_owned(),
            },
        });
    }
    Err(Error::Protocol(qmp_proto::Error::BadReturn {
        command: command.to_owned(),
        reason: format!("libvirt's monitor answer has neither return nor error: {reply}"),
    }))
}

/// A QEMU monitor event as libvirt relays it, as a QMP event (`details` is the data as JSON
/// text; absent for events without data).
pub(crate) fn monitor_event(
    event: String,
    seconds: i64,
    micros: u32,
    details: Option<&str>,
) -> Result<Event> {
    let data = match details {
        None => Value::Object(Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            Error::Protocol(qmp_proto::Error::BadEvent {
                event: event.clone(),
                reason: format!("libvirt's event details are not JSON ({e}): {text}"),
            })
        })?,
    };
    Ok(Event {
        event,
        data,
        timestamp: Timestamp {
            seconds,
            microseconds: i64::from(micros),
        },
    })
}

impl Via {
    pub(crate) async fn execute(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            if !a.is_object() {
                return Err(Error::Protocol(qmp_proto::Error::ArgumentsNotObject {
                    command: command.to_owned(),
                    got: "not an object",
                }));
            }
            msg["arguments"] = a;
        }
        let call = self.conn.qmp(&self.dom, &msg);
        let reply = match timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| Error::Timeout {
                    command: command.to_owned(),
                    after: t,
                })?,
            None => call.await,
        }
        // libvirt's own refusals (domain not running, no such domain, access denied, the
        // connection gone) stay libvirt errors; only what QEMU's monitor answered becomes
        // `Error::Qmp` (libvirt hands the monitor's error reply back as JSON).
        .map_err(|e| libvirt_error(command, e))?;
        decode_reply(command, reply)
    }
}

impl Client {
    /// QMP to `dom` through the libvirt connection `conn` (the guest must run under libvirt's
    /// QEMU driver). Events come from a QEMU monitor event subscription for `dom`, fanned out to
    /// [`Client::subscribe`]rs like a direct connection's.
    pub async fn via_libvirt(
        conn: libvirt_client::Client,
        dom: Domain,
        options: crate::ConnectOptions,
    ) -> Result<Client> {
        let mut events = conn
            .subscribe(LvSubscription::qemu_monitor(Some(dom.clone()), None))
            .await
            .map_err(|e| libvirt_error("(monitor event subscription)", e))?;
        let via = Arc::new(Via { conn, dom });
        let version = via
            .execute("query-version", None, options.command_timeout)
            .await?;
        let version: qmp_proto::Version = serde_json::from_value(version).map_err(|e| {
            Error::Protocol(qmp_proto::Error::BadReturn {
                command: "query-version".into(),
                reason: e.to_string(),
            })
        })?;
        let greeting = qmp_proto::Greeting {
            version,
            capabilities: Vec::new(),
        };
        let client = Client::for_backend(greeting, options, via);
        let shared = client.shared_for_backend();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    _ = shared.wake.notified() => {
                        if shared.shutdown.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        continue;
                    }
                    item = events.next() => item,
                };
                match item {
                    Some(Ok(EventItem::Event(
                        libvirt_client::TypedEvent::QemuDomainMonitorEvent(m),
                    ))) => {
                        match monitor_event(m.event, m.seconds, m.micros, m.details.as_deref()) {
                            Ok(e) => shared.lock().router.events.dispatch(&e),
                            Err(e) => tracing::warn!(error = %e, "bad monitor event from libvirt"),
                        }
                    }
                    Some(Ok(EventItem::Closed(_))) | None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "libvirt event stream"),
                }
            }
            // As a socket's EOF: subscribers see the end, later subscriptions end at once,
            // `is_closed` turns true.
            let _ = shared.lock().eof();
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_errors() {
        assert_eq!(
            decode_reply("q", json!({"return": {"a": 1}, "id": "libvirt-7"})).unwrap(),
            json!({"a": 1})
        );
        let e = decode_reply(
            "q",
            json!({"error": {"class": "CommandNotFound", "desc": "no"}}),
        )
        .unwrap_err();
        assert_eq!(e.qmp_class(), Some(&ErrorClass::CommandNotFound));
        assert!(matches!(
            decode_reply("q", json!({"id": 1})),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn monitor_events() {
        let e = monitor_event("STOP".into(), 5, 6, None).unwrap();
        assert_eq!(e.data, json!({}));
        assert_eq!(e.timestamp.microseconds, 6);
        let e = monitor_event("DEVICE_DELETED".into(), 5, 6, Some(r#"{"path":"/x"}"#)).unwrap();
        assert_eq!(e.data["path"], "/x");
        assert!(monitor_event("X".into(), 0, 0, Some("{nope")).is_err());
    }
}
