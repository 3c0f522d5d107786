//! The Lambda functions of this workspace, in one registry.
//!
//! Every function crate the local stack can run in-process is listed once, in [`FUNCTIONS`]:
//! its binary name (the crate name, and SAM's `BuildProperties.Binary`), the environment
//! variables its `Config` reads, what it writes to, and how to build its handler. The stack
//! registers handlers from it, the template tests check each template function against it,
//! and `lambda-bench` sets up each function's downstream from it. A new function crate is added
//! here and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_esm::InvokeError;
use fleet_esm::invoke::HandlerFn;
use fleet_lambda::BatchHandler;
use futures::future::BoxFuture;

/// The store a function writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downstream {
    /// The DynamoDB missions table.
    MissionsTable,
    /// The OpenSearch robots index.
    RobotsIndex,
    /// None: a scheduled function, not a stream consumer (the breakers' probe, the
    /// stream-scaler).
    Scheduled,
    /// The robots' shadows: a state machine's task (job-worker), not a stream consumer.
    Shadows,
    /// None: it answers HTTP API requests (fleet-api).
    Api,
}

impl Downstream {
    /// A Kinesis consumer (what lambda-bench measures).
    pub fn is_stream_consumer(self) -> bool {
        matches!(self, Downstream::MissionsTable | Downstream::RobotsIndex)
    }
}

/// Builds a function's in-process handler from its environment, an SDK config, and the
/// function's timeout (the deadline of every invocation, as Lambda gives it).
pub type BuildFn = for<'a> fn(
    &'a BTreeMap<String, String>,
    &'a aws_config::SdkConfig,
    Duration,
) -> BoxFuture<'a, Result<HandlerFn, InvokeError>>;

/// One function of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Binary and crate name (`BuildProperties.Binary` in template.yaml).
    pub binary: &'static str,
    /// The environment variables its `Config` reads; template.yaml sets exactly these.
    pub env_vars: &'static [&'static str],
    /// What it writes to.
    pub downstream: Downstream,
    /// Builds its handler for in-process invocation.
    pub build: BuildFn,
}

/// Every function of the workspace.
pub const FUNCTIONS: &[Function] = &[
    Function {
        binary: "mission-ingest",
        env_vars: mission_ingest::Config::ENV_VARS,
        downstream: Downstream::MissionsTable,
        build: |env, sdk, timeout| {
            Box::pin(async move {
                let config = mission_ingest::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("mission-ingest", e))?;
                let handler = mission_ingest::build(config, sdk).await;
                Ok(in_process("mission-ingest", handler, timeout))
            })
        },
    },
    Function {
        binary: "breaker-probe",
        env_vars: breaker_probe::Config::ENV_VARS,
        downstream: Downstream::Scheduled,
        build: |env, sdk, timeout| {
            Box::pin(async move {
                let config = breaker_probe::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("breaker-probe", e))?;
                let handler = Arc::new(breaker_probe::build(config, sdk));
                let f: HandlerFn = Arc::new(move |_event| {
                    let h = handler.clone();
                    Box::pin(async move {
                        let holder = format!("local-{}", ulid::Ulid::new());
                        Ok(h.handle(&holder, timeout).await)
                    })
                });
                Ok(f)
            })
        },
    },
    Function {
        binary: "stream-scaler",
        env_vars: stream_scaler::Config::ENV_VARS,
        downstream: Downstream::Scheduled,
        build: |env, sdk, _timeout| {
            Box::pin(async move {
                let config = stream_scaler::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("stream-scaler", e))?;
                let handler = Arc::new(stream_scaler::build(config, sdk));
                let f: HandlerFn = Arc::new(move |_event| {
                    let h = handler.clone();
                    Box::pin(async move {
                        h.handle(stream_scaler::now()).await.map_err(|report| {
                            InvokeError::Function {
                                function: "stream-scaler".into(),
                                error_type: fleet_esm::error::UNTYPED_ERROR.into(),
                                message: format!("some part failed: {report}"),
                            }
                        })
                    })
                });
                Ok(f)
            })
        },
    },
    Function {
        binary: "job-worker",
        env_vars: job_worker::Config::ENV_VARS,
        downstream: Downstream::Shadows,
        build: |env, sdk, timeout| {
            Box::pin(async move {
                let config = job_worker::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("job-worker", e))?;
                let handler = Arc::new(job_worker::build_with_shadows(
                    config,
                    sdk,
                    shadows_client(env, sdk),
                ));
                let f: HandlerFn = Arc::new(move |event| {
                    let h = handler.clone();
                    Box::pin(async move {
                        let event: job_worker::Event =
                            serde_json::from_value(event).map_err(|e| InvokeError::Function {
                                function: "job-worker".into(),
                                error_type: "InvalidEvent".into(),
                                message: format!("the event is not a job step or batch: {e}"),
                            })?;
                        let deadline = fleet_lambda::Deadline::after(timeout);
                        h.handle(event, deadline)
                            .await
                            .map_err(|e| InvokeError::Function {
                                function: "job-worker".into(),
                                error_type: e.error_type().into(),
                                message: e.to_string(),
                            })
                    })
                });
                Ok(f)
            })
        },
    },
    Function {
        binary: "fleet-api",
        env_vars: fleet_api::Config::ENV_VARS,
        downstream: Downstream::Api,
        build: |env, sdk, _timeout| {
            Box::pin(async move {
                let config = fleet_api::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("fleet-api", e))?;
                let api = Arc::new(fleet_api::build_with_shadows(
                    config,
                    sdk,
                    shadows_client(env, sdk),
                ));
                let f: HandlerFn = Arc::new(move |event| {
                    let api = api.clone();
                    Box::pin(async move {
                        fleet_api::handle_event(api, event)
                            .await
                            .map_err(|message| InvokeError::Function {
                                function: "fleet-api".into(),
                                error_type: "InvalidEvent".into(),
                                message,
                            })
                    })
                });
                Ok(f)
            })
        },
    },
    Function {
        binary: "shadow-indexer",
        env_vars: shadow_indexer::Config::ENV_VARS,
        downstream: Downstream::RobotsIndex,
        build: |env, sdk, timeout| {
            Box::pin(async move {
                let config = shadow_indexer::Config::from_lookup(|k| env.get(k).cloned())
                    .map_err(|e| build_error("shadow-indexer", e))?;
                let handler = shadow_indexer::build(config, sdk)
                    .await
                    .map_err(|e| build_error("shadow-indexer", e))?;
                Ok(in_process("shadow-indexer", handler, timeout))
            })
        },
    },
];

/// The function with this binary name.
pub fn find(binary: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.binary == binary)
}

/// The in-process handler of a function binary with its timeout, or `None` for a binary this
/// registry does not list (the stack then says so, and `--invoke watch` can still run it).
pub async fn in_process_handler(
    binary: &str,
    env: &BTreeMap<String, String>,
    sdk: &aws_config::SdkConfig,
    timeout: Duration,
) -> Result<Option<HandlerFn>, InvokeError> {
    match find(binary) {
        Some(f) => (f.build)(env, sdk, timeout).await.map(Some),
        None => Ok(None),
    }
}

/// An IoT Data Plane client at the endpoint the function's environment names, as the SDK reads
/// it (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`; the local stack sets it to the front's IoT port).
fn shadows_client(
    env: &BTreeMap<String, String>,
    sdk: &aws_config::SdkConfig,
) -> aws_sdk_iotdataplane::Client {
    let mut shadows = aws_sdk_iotdataplane::config::Builder::from(sdk);
    if let Some(url) = env.get("AWS_ENDPOINT_URL_IOT_DATA_PLANE") {
        shadows = shadows.endpoint_url(url);
    }
    aws_sdk_iotdataplane::Client::from_conf(shadows.build())
}

fn build_error(function: &str, e: impl std::fmt::Display) -> InvokeError {
    InvokeError::Build {
        function: function.to_string(),
        message: e.to_string(),
    }
}

/// A built handler as the invoker calls it: every invocation gets `timeout` to spend.
fn in_process<H: BatchHandler + 'static>(
    function: &'static str,
    handler: H,
    timeout: Duration,
) -> HandlerFn {
    let handler = Arc::new(handler);
    Arc::new(move |event| {
        let h = handler.clone();
        Box::pin(async move {
            h.handle_within(event, timeout)
                .await
                .map_err(|e| InvokeError::Function {
                    function: function.to_string(),
                    error_type: fleet_esm::error::UNTYPED_ERROR.into(),
                    message: e.to_string(),
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_of_the_template_is_registered_and_no_other() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let opts = crate::dev::load_options("fns", "us-east-1", &[]);
        let tpl = fleet_template::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        let mut in_template: Vec<String> =
            tpl.functions().iter().map(|f| f.binary.clone()).collect();
        in_template.sort();
        in_template.dedup();
        let mut registered: Vec<String> = FUNCTIONS.iter().map(|f| f.binary.to_string()).collect();
        registered.sort();
        assert_eq!(in_template, registered);
        assert!(find("no-such-function").is_none());
    }
}
