//! Typed errors of the local stack.
//!
//! Each enum belongs to one job (stand-ins, provisioning, scheduling, invoking, rejects) and
//! [`DevError`] gathers them for `robofleet dev`. Messages are lowercase and say what to do next.

use std::path::PathBuf;

/// A stand-in process (moto server, osmem-server, `cargo lambda watch`) could not be started or
/// did not answer.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// The venv lacks the program.
    #[error("{program} not found at {path}: run `make venv` (or pass --venv / set ROBOFLEET_VENV)")]
    Missing {
        /// Name of the program.
        program: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Spawning the process failed.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// Name of the program.
        program: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before it answered.
    #[error("{program} exited before it answered ({status}); its log is {log}")]
    Exited {
        /// Name of the program.
        program: &'static str,
        /// Exit status as text.
        status: String,
        /// Path of its log file.
        log: PathBuf,
    },
    /// The process did not answer in time.
    #[error("{program} did not answer at {url} within {secs} s; see its log {log}")]
    Timeout {
        /// Name of the program.
        program: &'static str,
        /// URL that was probed.
        url: String,
        /// How long we waited.
        secs: u64,
        /// Path of its log file.
        log: PathBuf,
    },
    /// An attached endpoint does not answer.
    #[error(
        "{what} at {url} does not answer ({detail}); start it or drop the flag to let `robofleet dev` start one"
    )]
    Unreachable {
        /// Which stand-in.
        what: &'static str,
        /// Its URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Local I/O around the process (log file, free port).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
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

/// A schedule expression is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not `rate(...)`, `cron(...)` or `at(...)`.
    #[error(
        "schedule expression `{0}` is not rate(...), cron(...) or at(...); fix it in template.yaml"
    )]
    Syntax(String),
    /// A rate expression is wrong.
    #[error("rate expression `{expr}`: {problem}")]
    Rate {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// A cron expression is wrong.
    #[error("cron expression `{expr}`: {problem}")]
    Cron {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
    /// An at expression is wrong.
    #[error("at expression `{expr}`: {problem}; use at(yyyy-mm-ddThh:mm:ss)")]
    At {
        /// The expression.
        expr: String,
        /// What is wrong.
        problem: String,
    },
}

/// Invoking a function failed as a whole (not an item failure inside a good response).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No function with that name is known to the invoker.
    #[error("no function named `{0}` in this stack; check the template's function logical ids")]
    UnknownFunction(String),
    /// The handler returned an error (the whole batch failed, as a Lambda error would).
    #[error("function `{function}` failed: {message}")]
    Function {
        /// Function name.
        function: String,
        /// The handler's error text.
        message: String,
    },
    /// The handler could not be built (bad config, client set-up).
    #[error(
        "function `{function}` could not start: {message}; check its environment in template.yaml"
    )]
    Build {
        /// Function name.
        function: String,
        /// The cause as text (the build error types differ per function crate).
        message: String,
    },
    /// The HTTP call to `cargo lambda watch` failed.
    #[error("invoking `{function}` through cargo lambda watch failed: {detail}")]
    Http {
        /// Function name.
        function: String,
        /// Transport error or status and body.
        detail: String,
    },
}

/// `robofleet rejects` failed.
#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    /// Neither a flag nor the dev report names the queue.
    #[error("no rejects queue known: pass --queue-url, or run `robofleet dev` so that {0} exists")]
    NoQueue(PathBuf),
    /// The dev report could not be read.
    #[error(
        "cannot read the dev report {path}: {detail}; pass --aws-endpoint and --queue-url instead"
    )]
    Report {
        /// Path of the report.
        path: PathBuf,
        /// The cause.
        detail: String,
    },
    /// An SQS or Kinesis call failed.
    #[error("{what} failed: {source}; check the aws endpoint and the queue url")]
    Aws {
        /// The call.
        what: &'static str,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Replay was asked without a selection.
    #[error("nothing selected: pass --kind, --robot or --all")]
    NoSelection,
}

/// `robofleet dev` could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A stand-in failed.
    #[error(transparent)]
    Standin(#[from] StandinError),
    /// Provisioning failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A schedule in the template is malformed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A function could not be prepared.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The template could not be loaded.
    #[error("cannot load the template {path}: {detail}")]
    Template {
        /// Path of template.yaml.
        path: PathBuf,
        /// The loader's message.
        detail: String,
    },
    /// A component (broker, rules, shadow service, poller) failed to start.
    #[error("{component} failed to start: {detail}")]
    Component {
        /// Which component.
        component: &'static str,
        /// The cause.
        detail: String,
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
    /// A flag is wrong.
    #[error("{0}")]
    Usage(String),
    /// The workload ran but its own check failed (the simulator's verification).
    #[error("the fleet simulator's verification failed: {0}")]
    Workload(String),
}
