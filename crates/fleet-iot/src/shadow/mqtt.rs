//! The MQTT face of the shadow service.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{Event, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Core, Outgoing, ShadowKey};

/// The request topics the face subscribes to.
pub const REQUEST_FILTERS: [&str; 6] = [
    "$aws/things/+/shadow/update",
    "$aws/things/+/shadow/get",
    "$aws/things/+/shadow/delete",
    "$aws/things/+/shadow/name/+/update",
    "$aws/things/+/shadow/name/+/get",
    "$aws/things/+/shadow/name/+/delete",
];

/// A shadow operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `.../update`
    Update,
    /// `.../get`
    Get,
    /// `.../delete`
    Delete,
}

/// Which shadow and operation a request topic addresses.
pub fn parse_request_topic(topic: &str) -> Option<(ShadowKey, Op)> {
    let levels: Vec<&str> = topic.split('/').collect();
    let (key, op) = match levels.as_slice() {
        ["$aws", "things", thing, "shadow", op] => (ShadowKey::classic(*thing), *op),
        ["$aws", "things", thing, "shadow", "name", name, op] => {
            (ShadowKey::named(*thing, *name), *op)
        }
        _ => return None,
    };
    if key.thing.is_empty() || key.name.as_deref() == Some("") {
        return None;
    }
    let op = match op {
        "update" => Op::Update,
        "get" => Op::Get,
        "delete" => Op::Delete,
        _ => return None,
    };
    Some((key, op))
}

pub(crate) fn spawn(
    core: Core,
    options: rumqttc::MqttOptions,
    mut out_rx: mpsc::UnboundedReceiver<Outgoing>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10_000);
    let publisher = {
        let client = client.clone();
        let stats = core.stats.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    m = out_rx.recv() => match m { Some(m) => m, None => break },
                };
                match client
                    .publish(msg.topic, msg.qos, msg.retain, msg.payload)
                    .await
                {
                    Ok(()) => stats.published.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %e, "shadow service could not publish");
                        stats.publish_failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    let receiver = {
        let mut shutdown = shutdown;
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    ev = eventloop.poll() => ev,
                };
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        core.stats.ready.store(false, Ordering::Release);
                        let subs = REQUEST_FILTERS.iter().map(|f| {
                            rumqttc::SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce)
                        });
                        if let Err(e) = client.try_subscribe_many(subs) {
                            tracing::error!(error = %e, "shadow service cannot subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        core.stats.ready.store(true, Ordering::Release);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Some((key, op)) = parse_request_topic(&p.topic) else {
                            continue;
                        };
                        core.stats.mqtt_requests.fetch_add(1, Ordering::Relaxed);
                        let _ = match op {
                            Op::Update => core.update(&key, &p.payload, true),
                            Op::Get => core.get(&key, &p.payload, true),
                            Op::Delete => core.delete(&key, &p.payload, true),
                        };
                    }
                    Ok(_) => {}
                    Err(e) => {
                        core.stats.ready.store(false, Ordering::Release);
                        tracing::warn!(error = %e, "shadow service mqtt connection error; reconnecting");
                        tokio::select! {
                            _ = shutdown.wait_for(|s| *s) => break,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
            }
            let _ = client.try_disconnect();
        })
    };
    vec![publisher, receiver]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_classic_and_named_request_topics() {
        assert_eq!(
            parse_request_topic("$aws/things/rb-1/shadow/update"),
            Some((ShadowKey::classic("rb-1"), Op::Update))
        );
        assert_eq!(
            parse_request_topic("$aws/things/rb-1/shadow/name/schedule/get"),
            Some((ShadowKey::named("rb-1", "schedule"), Op::Get))
        );
        assert_eq!(
            parse_request_topic("$aws/things/rb-1/shadow/delete"),
            Some((ShadowKey::classic("rb-1"), Op::Delete))
        );
        assert_eq!(
            parse_request_topic("$aws/things/rb-1/shadow/update/accepted"),
            None
        );
        assert_eq!(parse_request_topic("$aws/things/rb-1/shadow/frob"), None);
        assert_eq!(parse_request_topic("robots/rb-1/shadow/update"), None);
    }
}
