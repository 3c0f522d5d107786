//! Helpers shared by the tests that talk to the local stand-ins.
//!
//! - the stand-ins' endpoints ([`aws_endpoint`], [`opensearch_url`]), an SDK config for them
//!   ([`sdk_config`]) and signed OpenSearch HTTP ([`opensearch`]), all as the local developer;
//! - fresh resources per test: [`unique_name`], and [`tables`] for the template's tables;
//! - [`mosquitto::Mosquitto`], a real external broker on a free port;
//! - [`free_port`].
//!
//! `make test` starts one AWS front (moto inside) and one osmem-server for the whole run and
//! exports their URLs (`tools/standins.sh`); every test then creates its own fresh table, stream, queue or index
//! with [`unique_name`], so tests run in parallel without seeing each other's data.
//!
//! Outside `make test`, `source tools/dev-env.sh` starts the same stand-ins and exports the same
//! variables.
#![allow(clippy::expect_used)]

pub mod mosquitto;
pub mod tables;

use std::sync::atomic::{AtomicU32, Ordering};

/// Environment variable holding the moto server URL.
pub const AWS_ENDPOINT_VAR: &str = "ROBOFLEET_TEST_AWS_ENDPOINT";
/// Environment variable holding the AWS front's endpoint of the test domain (osmem behind it).
pub const OPENSEARCH_URL_VAR: &str = "ROBOFLEET_TEST_OPENSEARCH_URL";
/// Environment variable holding osmem-server's own URL (what stands behind the front).
pub const OSMEM_URL_VAR: &str = "ROBOFLEET_TEST_OSMEM_URL";
/// Environment variable holding the front's IoT Data Plane endpoint (moto's data plane).
pub const IOT_DATA_URL_VAR: &str = "ROBOFLEET_TEST_IOT_DATA_URL";
/// Environment variable holding the project's Python venv (moto_server, osmem-server, cargo-lambda).
pub const VENV_VAR: &str = "ROBOFLEET_VENV";

/// The region every local test uses.
pub const REGION: &str = "us-east-1";

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs the local stand-ins. Run it through `make test`, \
             or `source tools/dev-env.sh` first"
        ),
    }
}

/// URL of the AWS front (DynamoDB, Kinesis, SQS, S3, Lambda control plane, IoT, IAM: moto
/// behind it, every request signed and authorized).
pub fn aws_endpoint() -> String {
    required(AWS_ENDPOINT_VAR)
}

/// The front's endpoint of the test OpenSearch domain: requests must be signed
/// ([`opensearch`] signs as the local developer).
pub fn opensearch_url() -> String {
    required(OPENSEARCH_URL_VAR)
}

/// osmem-server's own URL, behind the front (to stand a domain up on it again).
pub fn osmem_url() -> String {
    required(OSMEM_URL_VAR)
}

/// The front's IoT Data Plane endpoint (moto's shadows behind it), signed requests only.
pub fn iot_data_url() -> String {
    required(IOT_DATA_URL_VAR)
}

/// A signer for OpenSearch requests as the local developer.
pub fn developer_signer() -> fleet_aws::sigv4::Signer {
    fleet_aws::sigv4::Signer::new(
        aws_credential_types::provider::SharedCredentialsProvider::new(
            fleet_aws::config::local_developer_credentials(),
        ),
        REGION,
    )
}

/// HTTP to the test OpenSearch domain, signed as the local developer.
pub fn opensearch() -> fleet_aws::OpenSearchHttp {
    opensearch_at(&opensearch_url())
}

/// HTTP to the OpenSearch domain endpoint `url`, signed as the local developer.
pub fn opensearch_at(url: &str) -> fleet_aws::OpenSearchHttp {
    fleet_aws::OpenSearchHttp::new(reqwest::Client::new(), url, Some(developer_signer()))
}

/// `GET /<index>/_doc/<id>` through `os` (the id's `#` escaped): the whole answer, with
/// `found`, `_version` and `_source`; `Err` when no answer came.
pub async fn try_get_doc(
    os: &fleet_aws::OpenSearchHttp,
    index: &str,
    id: &str,
) -> Result<serde_json::Value, fleet_aws::IndexError> {
    let path = format!("/{index}/_doc/{}", id.replace('#', "%23"));
    Ok(os.call(reqwest::Method::GET, &path, None).await?.json())
}

/// [`try_get_doc`], for a test that expects an answer.
pub async fn get_doc(os: &fleet_aws::OpenSearchHttp, index: &str, id: &str) -> serde_json::Value {
    try_get_doc(os, index, id)
        .await
        .unwrap_or_else(|e| panic!("GET {index}/_doc/{id}: {e}"))
}

/// The concrete indices behind `alias` (`GET /_alias/<alias>`), sorted.
pub async fn alias_indices(os: &fleet_aws::OpenSearchHttp, alias: &str) -> Vec<String> {
    let answer = os
        .call(reqwest::Method::GET, &format!("/_alias/{alias}"), None)
        .await
        .unwrap_or_else(|e| panic!("GET _alias/{alias}: {e}"))
        .json();
    let mut indices: Vec<String> = answer
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    indices.sort();
    indices
}

/// Creates the IAM role `name` (Lambda may assume it) as the local developer; its ARN.
pub async fn create_role(name: &str) -> String {
    let sdk = sdk_config().await;
    fleet_aws::iam::create_role(
        &sdk,
        &aws_endpoint(),
        REGION,
        name,
        fleet_aws::iam::LAMBDA_TRUST,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// Absolute path of the project's Python venv.
pub fn venv() -> String {
    required(VENV_VAR)
}

/// A name no other test in this run (or a parallel run) uses: `<prefix>-<pid>-<n>-<random>`.
/// Lowercase and short enough for tables, streams, queues, buckets and OpenSearch indices.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{n}-{}", std::process::id(), &rand[..8])
}

pub use mosquitto::Mosquitto;

/// A server that accepts every connection and never answers: a downstream that hangs. Returns
/// its URL (`http://127.0.0.1:<port>`); it lives until the test's runtime ends.
pub async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .expect("a bound listener has an address")
    );
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A TCP port that was free a moment ago on 127.0.0.1 ([`fleet_process::free_port`]).
pub fn free_port() -> u16 {
    fleet_process::free_port().expect("binding 127.0.0.1:0 must work on a test machine")
}

/// An SDK config pointed at the AWS front, region us-east-1, signing as the local developer.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_for(&aws_endpoint()).await
}

/// An SDK config pointed at `endpoint`, region us-east-1, signing as the local developer.
pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    fleet_aws::config::sdk_config(Some(endpoint), REGION).await
}
