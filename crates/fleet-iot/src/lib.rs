//! fleet-iot: the stand-in for AWS IoT Core on one machine. Robots (real firmware, the fleet
//! simulator, `mosquitto_pub`) connect to it as to IoT Core, and what IoT Core would do with
//! their messages happens here too, from the same template.yaml.
//!
//! How the parts fit, in the order a message meets them:
//! - [`broker`]: the MQTT front. rumqttd carries the messages; a small MQTT-aware TCP front lets
//!   it route IoT Core's `$aws/...` topics (rumqttd refuses them) and sees every connect and
//!   disconnect. Any external broker (mosquitto) can take its place: the other parts are
//!   ordinary MQTT clients of a [`broker::BrokerAddr`].
//! - [`presence`]: `$aws/events/presence/connected|disconnected/<clientId>` for the front's
//!   clients, as IoT Core publishes them.
//! - [`rules`]: the topic rules of template.yaml. [`rules::sql`] is the IoT SQL subset (a pure
//!   parser and evaluator, `topic(n)` included); [`rules::engine`] routes one message through
//!   every rule (Basic Ingest, WHERE, SELECT, error actions); [`rules::runner`] subscribes to
//!   the broker and batches the results into Kinesis `PutRecords` and SQS.
//! - [`shadow`]: the device shadow service, one state and two faces: MQTT
//!   (`$aws/things/+/shadow/...`) and HTTP (the IoT Data Plane API of aws-sdk-iotdataplane). An
//!   update through either face publishes `accepted`, `documents` and `delta` as IoT Core does.
//!
//! This crate links no Lambda function and not the simulator; the local stack (`fleet-local`)
//! starts these parts and wires them to the event source mappings.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broker;
pub mod presence;
pub mod rules;
pub mod shadow;

pub use broker::{BrokerAddr, BrokerError, BrokerOptions, EmbeddedBroker};

/// Polls `ready` every 10 ms until it holds or `timeout` passes; its last answer.
pub(crate) async fn wait_until(timeout: std::time::Duration, ready: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if ready() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ready()
}
pub use rules::{RuleError, RulesEngine, RulesRunner};
pub use shadow::{ShadowError, ShadowHandle, ShadowService};
