//! Typed errors of the local stack.
//!
//! Each enum belongs to one job (stand-ins, provisioning, the report file) and [`DevError`]
//! gathers them, with the errors of the parts it starts (broker, rules, shadow service, event
//! source mappings, scheduler, functions), for `robofleet dev`. Every variant keeps its cause;
//! messages are lowercase and say what to do next.

use std::path::PathBuf;

use fleet_process::ProcessError;

/// A stand-in (moto server, osmem-server) could not be started, or an attached one does not
/// answer.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// The process could not be found, started, or did not answer.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The moto launcher could not be written beside the logs.
    #[error("cannot write the moto launcher {path}: {source}")]
    Launcher {
        /// Where it was written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An attached endpoint does not answer.
    #[error(
        "{what} at {url} does not answer ({source}); start it or drop the flag to let `robofleet dev` start one"
    )]
    Unreachable {
        /// Which stand-in.
        what: &'static str,
        /// Its URL.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
}

/// Creating a template resource in the stand-ins failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An AWS API call against moto failed.
    #[error(
        "creating {kind} `{name}` failed: {source}; check that moto answers at the aws endpoint"
    )]
    Aws {
        /// Resource kind (table, stream, queue, ...).
        kind: &'static str,
        /// Physical name.
        name: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An OpenSearch call against osmem failed.
    #[error("opensearch {what} failed: {detail}; check that the opensearch url answers")]
    OpenSearch {
        /// What was being done.
        what: String,
        /// Status and body, or the transport error.
        detail: String,
    },
    /// The index template file could not be read.
    #[error(
        "cannot read the index template {path}: {source}; run from the repository root or pass --root"
    )]
    IndexTemplate {
        /// Path of the file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The template asks for something the local stack cannot build.
    #[error("template resource `{logical_id}`: {detail}")]
    Unsupported {
        /// Logical id in template.yaml.
        logical_id: String,
        /// What is unsupported and what to do.
        detail: String,
    },
    /// The AWS front refused or did not answer an admin call.
    #[error("the aws front's /_front/{route} failed: {detail}")]
    Front {
        /// The admin route.
        route: String,
        /// Status and message, or the transport error.
        detail: String,
    },
    /// A resource did not become ready in time.
    #[error("{kind} `{name}` did not become ready within {secs} s")]
    NotReady {
        /// Resource kind.
        kind: &'static str,
        /// Physical name.
        name: String,
        /// How long we waited.
        secs: u64,
    },
}

/// The dev report file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read (missing: `robofleet dev` is not running here).
    #[error(
        "cannot read the dev report {path}: {source}; is `robofleet dev` running from this directory?"
    )]
    Read {
        /// Path of the report.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a dev report.
    #[error("the dev report {path} is not valid: {source}")]
    Parse {
        /// Path of the report.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// `robofleet dev` could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A stand-in failed.
    #[error(transparent)]
    Standin(#[from] StandinError),
    /// The functions' Invoke API could not listen.
    #[error("the functions' Invoke API could not start: {0}")]
    InvokeApi(String),
    /// The template's state machines cannot be run by the local runner.
    #[error("the state machines: {0}")]
    Machines(#[from] fleet_esm::asl::AslError),
    /// `--aws-endpoint` answers, but not as the AWS front (a bare moto, say).
    #[error(
        "{url} is not the AWS front ({detail}); start the stand-ins with tools/standins.sh, or drop --aws-endpoint to let robofleet dev start them"
    )]
    NotAFront {
        /// The endpoint given.
        url: String,
        /// What the health check said.
        detail: String,
    },
    /// Provisioning failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A schedule in the template is malformed.
    #[error(transparent)]
    Schedule(#[from] fleet_esm::ScheduleError),
    /// A function could not be prepared.
    #[error(transparent)]
    Invoke(#[from] fleet_esm::InvokeError),
    /// `cargo lambda watch` could not be started.
    #[error(transparent)]
    Watch(#[from] fleet_esm::WatchError),
    /// The template could not be loaded.
    #[error("cannot load the template {path}: {source}")]
    Template {
        /// Path of template.yaml.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: fleet_template::TemplateError,
    },
    /// `--mqtt-url` is not a usable broker URL.
    #[error("--mqtt-url: {0}")]
    MqttUrl(#[source] fleet_sim::SimError),
    /// `--mqtt-url` asks for TLS, which the stack's own clients do not speak.
    #[error(
        "--mqtt-url {0}: the local stack connects to its broker over plain tcp; give an mqtt:// url"
    )]
    MqttTls(String),
    /// The embedded MQTT broker failed to start.
    #[error("the embedded mqtt broker failed to start: {0}")]
    Broker(#[from] fleet_iot::BrokerError),
    /// The shadow service failed to start.
    #[error("the shadow service failed to start: {0}")]
    Shadow(#[from] fleet_iot::ShadowError),
    /// The template's topic rules cannot run.
    #[error("the rules engine cannot run the template's rules: {0}")]
    Rules(#[from] fleet_iot::RuleError),
    /// An event source mapping cannot run.
    #[error("event source mapping {mapping} cannot run: {source}")]
    Mapping {
        /// Mapping logical id.
        mapping: String,
        /// The cause.
        #[source]
        source: fleet_esm::MappingError,
    },
    /// An event source mapping's on-failure destination cannot be used.
    #[error("event source mapping {mapping}: its on-failure destination cannot be used: {source}")]
    OnFailure {
        /// Mapping logical id.
        mapping: String,
        /// The cause.
        #[source]
        source: fleet_esm::SinkError,
    },
    /// A part did not subscribe to the broker in time.
    #[error("the {component} had no subscription acknowledged by {broker} within {secs} s")]
    NotReady {
        /// Which part.
        component: &'static str,
        /// The broker.
        broker: String,
        /// How long it waited.
        secs: u64,
    },
    /// The report file could not be written.
    #[error("cannot write the report {path}: {source}; pick another --report path")]
    Report {
        /// Path of the report.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The simulator's flags (`--sim-arg`) do not parse.
    #[error("--sim-arg: {0}")]
    SimArgs(#[source] clap::Error),
    /// Ctrl-C or SIGTERM arrived before the stack was up, or a second Ctrl-C skipped the drain.
    #[error("{0}")]
    Interrupted(&'static str),
    /// The workload ran but its own check failed (the simulator's verification).
    #[error("the fleet simulator's verification failed: {0}")]
    Workload(String),
}
