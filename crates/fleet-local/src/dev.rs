//! `robofleet dev`: the whole pipeline on one machine, from template.yaml.
//!
//! [`start`] brings the stack up in this order, and [`RunningStack::shutdown`] takes it down in
//! reverse:
//! 1. stand-ins: moto and osmem started from the venv on free ports, or attached to by URL;
//!    the MQTT broker embedded (rumqttd) or external (`--mqtt-url`);
//! 2. the template is evaluated, its storage created in moto, the template evaluated again with
//!    moto's real queue URLs, then the Lambda control-plane objects and the OpenSearch index
//!    template, index and alias are created;
//! 3. the shadow service (MQTT face and IoT Data Plane face) and the rules engine start;
//! 4. the functions are prepared (in-process handlers, or `cargo lambda watch`), one poller per
//!    event source mapping starts, and the scheduler starts.
//!
//! Tests drive a [`RunningStack`] directly; the CLI ([`crate::run`]) adds the workload, the progress
//! display, the report file and the signal handling.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use fleet_console::parse_duration;
use fleet_esm::invoke::{CountingInvoker, InProcessInvoker, InvokeCounters, RenamingInvoker};
use fleet_esm::scheduler::{ScheduleKind, ScheduleSpec, ScheduleStatus, Scheduler};
use fleet_esm::{Invoker, MappingConfig, Poller, PollerHandle};
use fleet_iot::broker::{BrokerAddr, BrokerOptions, EmbeddedBroker};
use fleet_iot::rules::{RuleDef, RulesEngine, RulesRunner, RunnerConfig, Sinks};
use fleet_iot::shadow::{ShadowHandle, ShadowService};

use crate::error::DevError;
use crate::front as fleet_local_front;
use crate::functions;
use crate::names::{self, DEFAULT_STACK_NAME, LocalEndpoints, LocalResolver, ROBOTS_ALIAS_VAR};
use crate::provision;
use crate::report::{DevReport, DevSummary, Endpoints, Resources, StreamSummary};
use crate::standins::{self, Standin};

/// How functions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvokeMode {
    /// Call the function crates' handlers inside this process.
    #[default]
    InProcess,
    /// Run `cargo lambda watch` and invoke through its Lambda Invoke API.
    Watch,
}

impl InvokeMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::InProcess => "in-process",
            Self::Watch => "watch",
        }
    }
}

/// Everything [`start`] needs. The CLI fills it from flags; tests build it with
/// [`DevOptions::new`] and change what they need.
#[derive(Debug, Clone, clap::Args)]
pub struct DevOptions {
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// The OpenSearch index template (default: opensearch/robots-template.json beside the template).
    #[arg(long)]
    pub index_template: Option<PathBuf>,
    /// Stack name: prefixes every resource name, so stacks can share stand-ins.
    #[arg(long, default_value = DEFAULT_STACK_NAME)]
    pub stack_name: String,
    /// Region the stand-ins pretend to be.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Template parameter overrides, `Key=Value` (repeatable), as `sam deploy` takes them.
    #[arg(long = "parameter-override", value_parser = parse_key_value)]
    pub parameter_overrides: Vec<(String, String)>,
    /// Use this MQTT broker (`mqtt://host:port`, e.g. mosquitto) instead of the embedded one.
    #[arg(long)]
    pub mqtt_url: Option<String>,
    /// Port of the embedded broker (0: a free port).
    #[arg(long, default_value_t = 0)]
    pub mqtt_port: u16,
    /// Use this AWS front (tools/standins.sh's, or another `robofleet dev`'s) instead of
    /// starting one; moto lives inside it.
    #[arg(long)]
    pub aws_endpoint: Option<String>,
    /// The OpenSearch (a running osmem) to put behind this stack's domain, instead of the
    /// front's own (the osmem-server it was started with).
    #[arg(long)]
    pub opensearch_url: Option<String>,
    /// The project's Python venv (moto_server, osmem-server, cargo-lambda); default `.venv`.
    #[arg(long, env = "ROBOFLEET_VENV")]
    pub venv: Option<PathBuf>,
    /// Port of the shadow service's IoT Data Plane face (0: a free port).
    #[arg(long, default_value_t = 0)]
    pub iot_data_port: u16,
    /// How functions run.
    #[arg(long, value_enum, default_value_t = InvokeMode::InProcess)]
    pub invoke: InvokeMode,
    /// Where stand-in logs go (default: `.run/dev-<stack>` beside the template).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// With `--invoke watch`: where the function binaries are (default: beside this program,
    /// `target/<profile>` of the workspace build).
    #[arg(long)]
    pub functions_dir: Option<PathBuf>,
    /// On shutdown, wait up to this long for the streams to drain before stopping.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain: Duration,
}

impl DevOptions {
    /// The options of `robofleet dev --template <template> --stack-name <stack_name>`: every
    /// other field takes its default from the flags' own declarations.
    pub fn new(template: impl Into<PathBuf>, stack_name: impl Into<String>) -> Self {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            options: DevOptions,
        }
        let argv: [std::ffi::OsString; 5] = [
            "dev".into(),
            "--template".into(),
            template.into().into_os_string(),
            "--stack-name".into(),
            stack_name.into().into(),
        ];
        match Flags::try_parse_from(argv) {
            Ok(flags) => flags.options,
            // Only a change to the flag declarations themselves can get here.
            Err(e) => panic!("the default flags of robofleet dev do not parse: {e}"),
        }
    }

    fn root(&self) -> PathBuf {
        match self.template.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn index_template_path(&self) -> PathBuf {
        self.index_template
            .clone()
            .unwrap_or_else(|| self.root().join("opensearch/robots-template.json"))
    }

    fn log_dir(&self) -> PathBuf {
        self.log_dir.clone().unwrap_or_else(|| {
            self.root()
                .join(".run")
                .join(format!("dev-{}", self.stack_name))
        })
    }
}

/// `Key=Value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not Key=Value"))
}

/// One event source mapping's poller and what it reads.
pub struct MappingRun {
    /// Mapping logical id.
    pub logical_id: String,
    /// Stream logical id.
    pub stream_logical_id: String,
    /// Stream name.
    pub stream: String,
    /// Function logical id.
    pub function: String,
    /// Mapping UUID in moto.
    pub uuid: String,
    handle: PollerHandle,
}

/// Live numbers of a running stack.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StackStats {
    /// Seconds since start.
    pub elapsed_s: f64,
    /// MQTT messages the rules engine received.
    pub messages_in: u64,
    /// Kinesis records the rules engine put.
    pub records_put: u64,
    /// Rule actions that failed after retries.
    pub rule_errors: u64,
    /// Rule error-action messages that failed too: lost.
    pub rule_errors_lost: u64,
    /// Per mapping (by mapping logical id).
    pub mappings: BTreeMap<String, MappingStats>,
    /// Function invocations.
    pub invocations: u64,
    /// Invocations that failed as a whole.
    pub invocation_errors: u64,
    /// Batch item failures.
    pub item_failures: u64,
    /// Records put and not yet completed by a mapping (the stack-wide backlog).
    pub backlog: u64,
    /// Messages in the rejects queue (from the store counts).
    pub rejects_queued: Option<u64>,
    /// Store counts (refreshed every couple of seconds; `None` until read or on error).
    pub stores: StoreCounts,
}

/// One mapping's numbers.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MappingStats {
    /// Stream name.
    pub stream: String,
    /// Function logical id.
    pub function: String,
    /// Records read from the stream.
    pub records_polled: u64,
    /// Records completed (processed, or given up on).
    pub records_done: u64,
    /// Records read and not yet completed.
    pub records_behind: u64,
    /// Last `MillisBehindLatest`.
    pub millis_behind_latest: i64,
    /// Invocations made by this mapping.
    pub invocations: u64,
    /// Records sent to the on-failure destination.
    pub sent_to_on_failure: u64,
    /// Records dropped with no destination: lost.
    pub discarded: u64,
    /// Whether the mapping is enabled.
    pub enabled: bool,
}

/// Counts read from the stores.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StoreCounts {
    /// Items per table (by logical id).
    pub tables: BTreeMap<String, u64>,
    /// Visible messages per queue (by logical id).
    pub queues: BTreeMap<String, u64>,
    /// Objects per bucket (by logical id).
    pub buckets: BTreeMap<String, u64>,
    /// Documents behind the robots alias.
    pub robots_indexed: Option<u64>,
}

/// A running local stack. Drop it only after [`RunningStack::shutdown`]; dropping it without
/// shutdown still kills the stand-ins it started.
pub struct RunningStack {
    /// The endpoints in use.
    pub endpoints: Endpoints,
    /// What was provisioned.
    pub resources: Resources,
    /// Stack name.
    pub stack_name: String,
    /// Region.
    pub region: String,
    /// Things worth telling the operator (shard counts, reused resources, skipped functions).
    pub notes: Vec<String>,
    /// The SDK config pointed at the AWS stand-in.
    pub sdk: aws_config::SdkConfig,
    invoke_mode: InvokeMode,
    started: Instant,
    started_at: String,
    drain: Duration,
    shutdown_tx: watch::Sender<bool>,
    aws: Option<Standin>,
    opensearch: Option<Standin>,
    front: fleet_local_front::FrontAdmin,
    /// Endpoints the front opened for this stack (its domain, its IoT data endpoint): closed
    /// on shutdown.
    front_endpoints: Vec<String>,
    broker: Option<EmbeddedBroker>,
    lambda_watch: Option<fleet_esm::watch::LambdaWatch>,
    rules: Option<RulesRunner>,
    shadow: Option<ShadowHandle>,
    mappings: Vec<MappingRun>,
    scheduler: Option<JoinHandle<Vec<ScheduleStatus>>>,
    schedules: Vec<ScheduleStatus>,
    counters: Arc<InvokeCounters>,
    store_cache: Mutex<Option<(Instant, StoreCounts)>>,
    report_path: Option<PathBuf>,
    invoker: Option<Arc<dyn Invoker>>,
    /// The functions' Invoke API and the function ARNs the front sends to it.
    invoke_api: Option<(fleet_esm::invoke_api::InvokeApi, Vec<String>)>,
    /// The state machines' runner, its Step Functions API and the machine ARNs the front sends
    /// to it.
    states_api: Option<(fleet_esm::asl::api::StatesApi, Vec<String>)>,
    runner: fleet_esm::asl::Runner,
}

/// Starts the stack. On error, whatever was started is stopped again.
pub async fn start(opts: DevOptions) -> Result<RunningStack, DevError> {
    let started = Instant::now();
    let started_at = fleet_core::timefmt::format_rfc3339(time::OffsetDateTime::now_utc());
    let venv = fleet_process::resolve_venv(opts.venv.as_deref());
    let log_dir = opts.log_dir();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // 1. The AWS front (moto inside) and osmem behind it: attached to, or started here.
    let (aws, opensearch) = match &opts.aws_endpoint {
        Some(url) => {
            let aws = standins::attach("aws front", url).await?;
            fleet_local_front::FrontAdmin::new(&aws.url)
                .health()
                .await
                .map_err(|e| DevError::NotAFront {
                    url: aws.url.clone(),
                    detail: e.to_string(),
                })?;
            (aws, None)
        }
        None => {
            let osmem = match &opts.opensearch_url {
                Some(url) => standins::attach("opensearch (osmem)", url).await?,
                None => standins::start_osmem(&venv, &log_dir).await?,
            };
            match fleet_local_front::start(
                &venv,
                &log_dir,
                &osmem.url,
                &opts.region,
                names::LOCAL_ACCOUNT_ID,
            )
            .await
            {
                Ok(front) => (front.aws, Some(osmem)),
                Err(e) => {
                    osmem.stop().await;
                    return Err(e.into());
                }
            }
        }
    };
    let mut stack = RunningStack {
        endpoints: Endpoints::default(),
        resources: Resources::default(),
        stack_name: opts.stack_name.clone(),
        region: opts.region.clone(),
        notes: Vec::new(),
        sdk: fleet_aws::config::sdk_config(None, &opts.region).await,
        invoke_mode: opts.invoke,
        started,
        started_at,
        drain: opts.drain,
        shutdown_tx,
        front: fleet_local_front::FrontAdmin::new(&aws.url),
        front_endpoints: Vec::new(),
        aws: None,
        opensearch: None,
        broker: None,
        lambda_watch: None,
        rules: None,
        shadow: None,
        mappings: Vec::new(),
        scheduler: None,
        schedules: Vec::new(),
        counters: Arc::new(InvokeCounters::default()),
        store_cache: Mutex::new(None),
        report_path: None,
        invoker: None,
        invoke_api: None,
        states_api: None,
        runner: fleet_esm::asl::Runner::new(),
    };
    stack.endpoints.aws = aws.url.clone();
    stack.aws = Some(aws);
    stack.opensearch = opensearch;
    match bring_up(&mut stack, &opts, shutdown_rx).await {
        Ok(()) => Ok(stack),
        Err(e) => {
            stack.stop_everything().await;
            Err(e)
        }
    }
}

async fn bring_up(
    stack: &mut RunningStack,
    opts: &DevOptions,
    shutdown_rx: watch::Receiver<bool>,
) -> Result<(), DevError> {
    let aws_url = stack.endpoints.aws.clone();
    // Provisioning, the summary counts and the simulator act as the local developer.
    stack.sdk = fleet_aws::config::sdk_config(Some(&aws_url), &opts.region).await;
    let sdk = stack.sdk.clone();
    let front = stack.front.clone();

    // MQTT broker.
    let broker_addr = match &opts.mqtt_url {
        Some(url) => external_broker(url)?,
        None => {
            let broker = EmbeddedBroker::start(BrokerOptions {
                port: opts.mqtt_port,
                ..BrokerOptions::default()
            })
            .await?;
            let addr = broker.addr.clone();
            stack.broker = Some(broker);
            addr
        }
    };
    stack.endpoints.mqtt = broker_addr.to_string();

    // 2. Template, pass 1: names. Storage.
    let load_opts = load_options(&opts.stack_name, &opts.region, &opts.parameter_overrides);
    let template_err = |source: fleet_template::TemplateError| DevError::Template {
        path: opts.template.clone(),
        source,
    };
    let first = fleet_template::load_with(&opts.template, &load_opts, &LocalResolver::default())
        .map_err(template_err)?;
    let storage = provision::provision_storage(&sdk, &first).await?;
    stack.notes.extend(storage.notes.iter().cloned());

    // Pass 2: with moto's queue URLs.
    let resolver = LocalResolver {
        queue_urls: storage.queue_urls_by_name.clone(),
    };
    let tpl =
        fleet_template::load_with(&opts.template, &load_opts, &resolver).map_err(template_err)?;

    // The template's access rules, for the front: roles and their policies, resource policies,
    // encrypted resources. Each role gets credentials; every call is checked against them.
    let access = fleet_local_front::access_model(&tpl)?;
    let role_credentials = fleet_local_front::register(&front, &access, &opts.stack_name).await?;
    let role_sdk = |role: &str| {
        let creds = role_credentials.get(role).map(|c| c.to_sdk());
        let aws_url = aws_url.clone();
        let region = opts.region.clone();
        async move {
            match creds {
                Some(c) => Some(fleet_aws::config::sdk_config_as(&aws_url, &region, c).await),
                None => None,
            }
        }
    };
    let mut function_sdks: BTreeMap<String, aws_config::SdkConfig> = BTreeMap::new();
    for (function, role) in &access.function_roles {
        if let Some(s) = role_sdk(role).await {
            function_sdks.insert(function.clone(), s);
        }
    }

    // The domain's endpoint: one per domain, in front of osmem.
    let os_url = match tpl
        .resources()
        .find(|r| r.type_ == "AWS::OpenSearchService::Domain")
    {
        Some(domain) => {
            let arn = tpl.arn(domain).unwrap_or_default();
            let url = front
                .opensearch_domain(&arn, opts.opensearch_url.as_deref())
                .await?;
            stack.front_endpoints.push(url.clone());
            url
        }
        None => String::new(),
    };
    stack.endpoints.opensearch = os_url.clone();

    // Shadow service first: its URL goes into the functions' environment.
    let shadow = ShadowService::start(
        &broker_addr,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.iot_data_port),
        shutdown_rx.clone(),
    )
    .await?;
    // Its IoT Data Plane face, behind the front (one endpoint per stack, as per account in AWS).
    let iot_url = front.iot_endpoint(&opts.stack_name, &shadow.http_url).await;
    stack.shadow = Some(shadow);
    let iot_url = iot_url?;
    stack.front_endpoints.push(iot_url.clone());
    stack.endpoints.iot_data = iot_url;

    // Function environments.
    let local = LocalEndpoints {
        aws: aws_url.clone(),
        opensearch: os_url.clone(),
        iot_data: stack.endpoints.iot_data.clone(),
        region: opts.region.clone(),
    };
    let mut environments: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut robots_alias: Option<String> = None;
    let mut rejects_queue: Option<String> = None;
    for f in tpl.functions() {
        let (env, unknown) = names::template_environment(f);
        if !unknown.is_empty() {
            stack.notes.push(format!(
                "function {}: {} cannot be evaluated locally and is left unset",
                f.logical_id,
                unknown.join(", ")
            ));
        }
        let credentials = access
            .function_roles
            .get(&f.logical_id)
            .and_then(|role| role_credentials.get(role))
            .map(|c| c.env())
            .unwrap_or_default();
        let mut env = names::function_environment(&env, &local, &credentials);
        if let Some(alias) = env.get(ROBOTS_ALIAS_VAR).cloned() {
            let local_alias = names::local_robots_alias(&opts.stack_name, &alias);
            env.insert(ROBOTS_ALIAS_VAR.to_string(), local_alias.clone());
            robots_alias.get_or_insert(local_alias);
        }
        if let Some(q) = env.get("REJECTS_QUEUE_URL") {
            rejects_queue.get_or_insert(q.clone());
        }
        env.insert("ROBOFLEET_METRICS".into(), "off".into());
        environments.insert(f.logical_id.clone(), env);
    }

    // Lambda control plane and OpenSearch.
    let lambda = provision::provision_lambda(
        &sdk,
        &aws_url,
        &tpl,
        &access,
        &environments,
        &storage.streams,
    )
    .await?;
    let alias =
        robots_alias.unwrap_or_else(|| names::local_robots_alias(&opts.stack_name, "robots"));
    let os_info = provision::provision_opensearch(
        &fleet_aws::OpenSearchHttp::from_sdk(&sdk, &os_url),
        &opts.index_template_path(),
        &alias,
    )
    .await?;
    stack.resources = Resources {
        tables: storage.tables.clone(),
        streams: storage.streams.clone(),
        queues: storage.queues.clone(),
        buckets: storage.buckets.clone(),
        functions: lambda.functions.clone(),
        event_source_mappings: lambda.mappings.clone(),
        opensearch: os_info,
        rejects_queue_url: rejects_queue,
        state_machines: BTreeMap::new(),
    };

    // 3. Rules engine.
    let rules = rule_defs(&tpl)?;
    let mut sinks = Sinks::default();
    for s in tpl.streams() {
        sinks
            .streams
            .insert(s.stream_name.clone(), s.stream_name.clone());
    }
    for q in tpl.queues() {
        if let Some(url) = storage.queue_urls_by_name.get(&q.queue_name) {
            sinks.queues.insert(q.queue_name.clone(), url.clone());
        }
    }
    let engine = RulesEngine::new(rules, &sinks)?;
    // The rules act as their role, as IoT Core does.
    let rules_sdk = match &access.rules_role {
        Some(role) => role_sdk(role).await.unwrap_or_else(|| sdk.clone()),
        None => sdk.clone(),
    };
    let runner = fleet_iot::rules::run(
        Arc::new(engine),
        RunnerConfig::new(broker_addr.clone()),
        aws_sdk_kinesis::Client::new(&rules_sdk),
        aws_sdk_sqs::Client::new(&rules_sdk),
        shutdown_rx.clone(),
    );
    stack.rules = Some(runner);

    // 4. Functions.
    let mut invokable: Vec<String> = Vec::new();
    let inner: Arc<dyn Invoker> = match opts.invoke {
        InvokeMode::InProcess => {
            let mut inv = InProcessInvoker::new();
            for f in tpl.functions() {
                let env = environments.get(&f.logical_id).cloned().unwrap_or_default();
                let timeout = Duration::from_secs(u64::from(f.timeout_s));
                let function_sdk = function_sdks.get(&f.logical_id).unwrap_or(&sdk);
                let Some(handler) =
                    functions::in_process_handler(&f.binary, &env, function_sdk, timeout).await?
                else {
                    stack.notes.push(format!(
                        "function {} (binary {}) has no in-process handler in this build; its mappings and schedules are not run (use --invoke watch)",
                        f.logical_id, f.binary
                    ));
                    continue;
                };
                for name in [&f.logical_id, &f.function_name, &f.binary] {
                    inv.register(name.clone(), handler.clone());
                }
                invokable.push(f.logical_id.clone());
            }
            Arc::new(inv)
        }
        InvokeMode::Watch => {
            let venv = fleet_process::resolve_venv(opts.venv.as_deref());
            let functions_dir = opts
                .functions_dir
                .clone()
                .or_else(fleet_esm::watch::build_dir_of_current_exe)
                .unwrap_or_else(|| opts.root().join("target/debug"));
            let mut watched: Vec<fleet_esm::watch::WatchedFunction> = Vec::new();
            let mut rename = BTreeMap::new();
            for f in tpl.functions() {
                rename.insert(f.logical_id.clone(), f.binary.clone());
                rename.insert(f.function_name.clone(), f.binary.clone());
                invokable.push(f.logical_id.clone());
                if !watched.iter().any(|w| w.binary == f.binary) {
                    watched.push(fleet_esm::watch::WatchedFunction {
                        binary: f.binary.clone(),
                        environment: environments.get(&f.logical_id).cloned().unwrap_or_default(),
                        timeout: Duration::from_secs(u64::from(f.timeout_s)),
                    });
                }
            }
            let watch = fleet_esm::watch::start(
                &venv,
                &opts.root(),
                &opts.log_dir(),
                &functions_dir,
                &watched,
            )
            .await?;
            let url = watch.url.clone();
            stack.endpoints.lambda = Some(url.clone());
            stack.lambda_watch = Some(watch);
            Arc::new(RenamingInvoker::new(
                Arc::new(fleet_esm::HttpInvoker::new(&url)),
                rename,
            ))
        }
    };
    let invoker: Arc<dyn Invoker> = Arc::new(CountingInvoker::new(inner, stack.counters.clone()));
    stack.invoker = Some(invoker.clone());

    // The functions' Invoke API, behind the front: a caller with credentials of its own (a
    // state machine's role, a tool) invokes them as on Lambda, authorized by the front.
    let api = fleet_esm::invoke_api::serve(invoker.clone())
        .await
        .map_err(|e| DevError::InvokeApi(e.to_string()))?;
    let function_arns: Vec<String> = tpl
        .functions()
        .iter()
        .filter(|f| invokable.contains(&f.logical_id))
        .filter_map(|f| tpl.resource(&f.logical_id).and_then(|r| tpl.arn(r)))
        .collect();
    front.lambda_backend(&function_arns, Some(&api.url)).await?;
    // The HTTP APIs: the front serves each on a port of its own (route, SigV4,
    // execute-api:Invoke) and calls the routes' functions through the same Invoke API.
    let mut apis: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    for r in tpl.http_routes() {
        if !invokable.contains(&r.function_logical_id) {
            continue;
        }
        let Some(arn) = tpl
            .resource(&r.function_logical_id)
            .and_then(|f| tpl.arn(f))
        else {
            continue;
        };
        apis.entry(r.api_logical_id.as_str())
            .or_default()
            .push(serde_json::json!({
                "routeKey": format!("{} {}", r.method, r.path),
                "functionArn": arn,
                "timeoutMs": r.timeout_ms,
                "authorization": r.authorization,
            }));
    }
    for (logical_id, routes) in apis {
        let api_id = tpl
            .api_id(logical_id)
            .ok_or_else(|| DevError::InvokeApi(format!("no id for the HTTP API {logical_id}")))?;
        let url = front.execute_api(&api_id, &api.url, routes).await?;
        stack.front_endpoints.push(url.clone());
        stack.endpoints.apis.insert(logical_id.to_string(), url);
    }
    stack.invoke_api = Some((api, function_arns));

    // The state machines: the local runner runs them, every task as the machine's role through
    // the front (its invokes reach the functions above). Their executions are started and
    // watched through the front's Step Functions API, which authorizes each call as its caller
    // (the fleet API's role, an operator, a machine continuing as new) and sends it here.
    let machines = fleet_esm::asl::machines(&tpl)?;
    if !machines.is_empty() {
        for m in &machines {
            let role = access.machine_roles.get(&m.logical_id);
            let Some(machine_sdk) = (match role {
                Some(r) => role_sdk(r).await,
                None => None,
            }) else {
                return Err(DevError::Machines(fleet_esm::asl::AslError::Definition {
                    at: m.logical_id.clone(),
                    problem: "its Role is not a role of this template".into(),
                }));
            };
            stack
                .resources
                .state_machines
                .insert(m.logical_id.clone(), m.arn.clone());
            stack.runner.add_machine(
                &m.arn,
                m.machine.clone(),
                Arc::new(fleet_esm::asl::AwsServices::new(&machine_sdk)),
            );
        }
        let api = fleet_esm::asl::api::serve(stack.runner.clone())
            .await
            .map_err(|e| DevError::InvokeApi(format!("the state machines' API: {e}")))?;
        let arns: Vec<String> = machines.iter().map(|m| m.arn.clone()).collect();
        front.states_backend(&arns, Some(&api.url)).await?;
        stack.states_api = Some((api, arns));
    }

    // Pollers: Lambda reads the stream and writes the on-failure destination as the
    // function's role; the mapping's own state is the Lambda service's.
    let lambda_client = aws_sdk_lambda::Client::new(&sdk);
    for m in tpl.event_source_mappings() {
        if !invokable.contains(&m.function_logical_id) {
            continue;
        }
        let Some(uuid) = lambda.mappings.get(&m.logical_id).cloned() else {
            continue;
        };
        let function_name = lambda
            .functions
            .get(&m.function_logical_id)
            .cloned()
            .unwrap_or_else(|| m.function_logical_id.clone());
        let config = MappingConfig::from_template(m, &uuid, &function_name);
        let mapping_err = |source: fleet_esm::MappingError| DevError::Mapping {
            mapping: m.logical_id.clone(),
            source,
        };
        let function_sdk = function_sdks
            .get(&m.function_logical_id)
            .unwrap_or(&sdk)
            .clone();
        let kinesis = aws_sdk_kinesis::Client::new(&function_sdk);
        let sink = match &config.on_failure {
            Some(dest) => Some(fleet_esm::failure_sink(&function_sdk, dest).await.map_err(
                |source| DevError::OnFailure {
                    mapping: m.logical_id.clone(),
                    source,
                },
            )?),
            None => None,
        };
        let mut poller = Poller::new(
            config,
            Arc::new(fleet_esm::KinesisSource::new(
                kinesis.clone(),
                &m.stream_name,
            )),
            invoker.clone(),
            Arc::new(fleet_esm::LambdaMappingState::new(
                lambda_client.clone(),
                &uuid,
            )),
        );
        if let Some(sink) = sink {
            poller = poller.on_failure(sink);
        }
        let handle = poller.spawn(shutdown_rx.clone()).map_err(mapping_err)?;
        stack.mappings.push(MappingRun {
            logical_id: m.logical_id.clone(),
            stream_logical_id: m.stream_logical_id.clone(),
            stream: m.stream_name.clone(),
            function: m.function_logical_id.clone(),
            uuid,
            handle,
        });
    }

    // Scheduler.
    let specs = schedule_specs(&tpl, &invokable);
    let scheduler = Scheduler::new(
        specs,
        invoker.clone(),
        &opts.region,
        names::LOCAL_ACCOUNT_ID,
        time::OffsetDateTime::now_utc(),
    )?;
    stack.schedules = scheduler.status();
    stack.scheduler = Some(scheduler.spawn(shutdown_rx.clone()));

    // The stack's outputs, where `robofleet status --stack` reads them (CloudFormation).
    provision::register_stack_outputs(&sdk, &tpl).await?;

    // Ready when the MQTT subscribers are.
    let ready = Duration::from_secs(20);
    let not_ready = |component| DevError::NotReady {
        component,
        broker: broker_addr.to_string(),
        secs: ready.as_secs(),
    };
    if let Some(r) = &stack.rules
        && !r.wait_ready(ready).await
    {
        return Err(not_ready("rules engine"));
    }
    if let Some(s) = &stack.shadow
        && !s.wait_ready(ready).await
    {
        return Err(not_ready("shadow service"));
    }
    Ok(())
}

/// How the local stack loads template.yaml: its name, region, the local account, and
/// [`local_overrides`]. The tests that read the real template load it the same way.
pub fn load_options(
    stack_name: &str,
    region: &str,
    user: &[(String, String)],
) -> fleet_template::LoadOptions {
    fleet_template::LoadOptions {
        stack_name: stack_name.to_string(),
        region: region.to_string(),
        account_id: names::LOCAL_ACCOUNT_ID.to_string(),
        parameter_overrides: local_overrides(stack_name, user),
    }
}

/// The template's parameters as the local stack deploys them: the user's overrides, plus the
/// local developer as the OpenSearch master user when none is given (the template requires one).
///
/// The OpenSearch domain is named after the stack unless the user names it: each local stack
/// is its own deployment, and the front gives each domain its own endpoint, as AWS does.
pub fn local_overrides(stack_name: &str, user: &[(String, String)]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = user.iter().cloned().collect();
    out.entry(names::MASTER_USER_PARAMETER.to_string())
        .or_insert_with(|| names::LOCAL_DEVELOPER_ARN.to_string());
    out.entry(names::DOMAIN_NAME_PARAMETER.to_string())
        .or_insert_with(|| names::local_domain_name(stack_name));
    out
}

/// The broker of `--mqtt-url`, parsed by the simulator's parser (the one of the workspace);
/// the stack's own clients speak plain MQTT over TCP.
fn external_broker(url: &str) -> Result<BrokerAddr, DevError> {
    let target = fleet_sim::MqttTarget::parse_url(url).map_err(DevError::MqttUrl)?;
    if target.tls.is_some() {
        return Err(DevError::MqttTls(url.to_string()));
    }
    Ok(BrokerAddr::new(target.host, target.port))
}

/// The template's schedules that target a function this stack can invoke, as the scheduler
/// takes them. Rules and schedules keep their physical names; a SAM `Schedule` event (no resource
/// of its own here) is named `<stack>-<Function><Event>`.
pub fn schedule_specs(tpl: &fleet_template::Stack, invokable: &[String]) -> Vec<ScheduleSpec> {
    tpl.schedules()
        .into_iter()
        .filter(|s| invokable.contains(&s.target_function_logical_id))
        .map(|s| {
            let resource = tpl.resource(&s.logical_id);
            ScheduleSpec {
                name: resource.map_or_else(
                    || {
                        names::default_physical_name(
                            tpl.stack_name(),
                            &s.logical_id,
                            names::ResourceKind::Schedule,
                        )
                    },
                    |r| r.physical_name.clone(),
                ),
                function: s.target_function_logical_id.clone(),
                expression: s.expression.clone(),
                input: s
                    .input
                    .as_deref()
                    .and_then(|i| serde_json::from_str(i).ok()),
                enabled: s.enabled,
                kind: if resource.is_some_and(|r| r.type_ == "AWS::Scheduler::Schedule") {
                    ScheduleKind::Scheduler
                } else {
                    ScheduleKind::Rule
                },
            }
        })
        .collect()
}

/// The template's topic rules as the rules engine takes them.
pub fn rule_defs(tpl: &fleet_template::Stack) -> Result<Vec<RuleDef>, DevError> {
    Ok(tpl
        .topic_rules()
        .into_iter()
        .map(RuleDef::from_spec)
        .collect::<Result<_, _>>()?)
}

impl RunningStack {
    /// The report as it stands (no summary while running).
    pub fn report(&self) -> DevReport {
        DevReport {
            state: "running".into(),
            stack_name: self.stack_name.clone(),
            region: self.region.clone(),
            started_at: self.started_at.clone(),
            endpoints: self.endpoints.clone(),
            resources: self.resources.clone(),
            invoke: self.invoke_mode.as_str().into(),
            summary: None,
        }
    }

    /// Writes the report to `path` now, and again with the summary at shutdown.
    pub fn write_report(&mut self, path: &Path) -> Result<(), DevError> {
        self.report().write(path)?;
        self.report_path = Some(path.to_path_buf());
        Ok(())
    }

    /// Invokes a function of the stack now (by logical id, physical name or binary), as its
    /// schedule or mapping would: for tests that fire a scheduled function without waiting.
    pub async fn invoke(
        &self,
        function: &str,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, fleet_esm::InvokeError> {
        let invoker = self
            .invoker
            .as_ref()
            .ok_or_else(|| fleet_esm::InvokeError::UnknownFunction(function.to_string()))?;
        Ok(invoker.invoke(function, event).await?.payload)
    }

    /// The AWS front's admin API (the stack's roles, domain and IoT endpoints live there).
    pub fn front(&self) -> &fleet_local_front::FrontAdmin {
        &self.front
    }

    /// The counters, without store queries.
    pub fn counters(&self) -> StackStats {
        let mut s = StackStats {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            ..StackStats::default()
        };
        if let Some(r) = &self.rules {
            let g = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            s.messages_in = g(&r.stats.messages_in);
            s.records_put = g(&r.stats.records_put);
            s.rule_errors = g(&r.stats.errors);
            s.rule_errors_lost = g(&r.stats.error_actions_failed);
        }
        let mut done = 0;
        for m in &self.mappings {
            let snap = m.handle.stats().snapshot();
            done += snap.records_done;
            s.mappings.insert(
                m.logical_id.clone(),
                MappingStats {
                    stream: m.stream.clone(),
                    function: m.function.clone(),
                    records_polled: snap.records_polled,
                    records_done: snap.records_done,
                    records_behind: snap.records_behind,
                    millis_behind_latest: snap.millis_behind_latest,
                    invocations: snap.invocations,
                    sent_to_on_failure: snap.sent_to_on_failure,
                    discarded: snap.discarded,
                    enabled: snap.enabled,
                },
            );
        }
        let (inv, errs, items) = self.counters.snapshot();
        s.invocations = inv;
        s.invocation_errors = errs;
        s.item_failures = items;
        // Records put and not completed; the pollers' own in-flight count is a floor (their
        // counters and the rules engine's are read at slightly different moments).
        let in_flight: u64 = s.mappings.values().map(|m| m.records_behind).sum();
        s.backlog = s.records_put.saturating_sub(done).max(in_flight);
        if let Ok(cache) = self.store_cache.lock()
            && let Some((_, c)) = cache.as_ref()
        {
            s.stores = c.clone();
        }
        s.rejects_queued = self
            .resources
            .rejects_queue_url
            .as_ref()
            .and_then(|url| self.resources.queues.iter().find(|(_, u)| *u == url))
            .and_then(|(l, _)| s.stores.queues.get(l).copied());
        s
    }

    /// Counters plus store counts (read at most every two seconds).
    pub async fn stats(&self) -> StackStats {
        let fresh = self
            .store_cache
            .lock()
            .ok()
            .and_then(|c| {
                c.as_ref()
                    .map(|(at, _)| at.elapsed() < Duration::from_secs(2))
            })
            .unwrap_or(false);
        if !fresh {
            let counts = self.read_stores().await;
            if let Ok(mut cache) = self.store_cache.lock() {
                *cache = Some((Instant::now(), counts));
            }
        }
        self.counters()
    }

    /// Reads the stores now.
    pub async fn read_stores(&self) -> StoreCounts {
        let mut c = StoreCounts::default();
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        for (logical, table) in &self.resources.tables {
            if let Some(n) = count_items(&ddb, table).await {
                c.tables.insert(logical.clone(), n);
            }
        }
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for (logical, url) in &self.resources.queues {
            let r = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await;
            if let Ok(r) = r
                && let Some(n) = r
                    .attributes
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                            .cloned()
                    })
                    .and_then(|v| v.parse().ok())
            {
                c.queues.insert(logical.clone(), n);
            }
        }
        let s3 = fleet_aws::config::s3_client(&self.sdk);
        for (logical, bucket) in &self.resources.buckets {
            if let Ok(r) = s3.list_objects_v2().bucket(bucket).send().await {
                c.buckets
                    .insert(logical.clone(), r.key_count.unwrap_or(0).max(0) as u64);
            }
        }
        c.robots_indexed = count_robots(
            &fleet_aws::OpenSearchHttp::from_sdk(&self.sdk, &self.endpoints.opensearch),
            &self.resources.opensearch.alias,
        )
        .await;
        c
    }

    /// Waits until every record the rules engine put has been completed by a mapping and no
    /// message is in flight, or until `timeout`. True when drained.
    pub async fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last_in = u64::MAX;
        let mut stable = 0;
        loop {
            let s = self.counters();
            let behind: u64 = s.mappings.values().map(|m| m.records_behind).sum();
            if s.backlog == 0 && behind == 0 && s.messages_in == last_in {
                stable += 1;
                if stable >= 3 {
                    return true;
                }
            } else {
                stable = 0;
            }
            last_in = s.messages_in;
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop_everything(&mut self) {
        self.shutdown_tx.send_replace(true);
        if let Some(r) = self.rules.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), r.handle).await;
        }
        for m in self.mappings.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), m.handle.shutdown()).await;
        }
        if let Some(s) = self.scheduler.take()
            && let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), s).await
        {
            self.schedules = status;
        }
        if let Some(s) = self.shadow.take() {
            for t in s.tasks {
                let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
            }
        }
        if let Some(b) = self.broker.take() {
            b.stop();
        }
        if let Some(w) = self.lambda_watch.take() {
            w.stop().await;
        }
        if let Some((api, arns)) = self.states_api.take() {
            if let Err(e) = self.front.states_backend(&arns, None).await {
                tracing::warn!(error = %e, "forgetting the state machines' API failed");
            }
            drop(api);
        }
        if let Some((api, arns)) = self.invoke_api.take() {
            if let Err(e) = self.front.lambda_backend(&arns, None).await {
                tracing::warn!(error = %e, "forgetting the functions' Invoke API failed");
            }
            drop(api);
        }
        for url in std::mem::take(&mut self.front_endpoints) {
            if let Err(e) = self.front.close(&url).await {
                tracing::warn!(error = %e, %url, "closing a front endpoint failed");
            }
        }
        if let Some(a) = self.aws.take() {
            a.stop().await;
        }
        if let Some(o) = self.opensearch.take() {
            o.stop().await;
        }
    }

    /// Drains (up to `--drain`), stops everything in reverse order, stops the stand-ins it
    /// started, and returns the summary (also written to the report file, if any).
    pub async fn shutdown(mut self) -> DevSummary {
        let mut warnings = Vec::new();
        if !self.wait_drained(self.drain).await {
            warnings.push(format!(
                "the streams did not drain within {} s; the rest stays in the streams (retention applies)",
                self.drain.as_secs()
            ));
        }
        let final_counts = self.read_stores().await;
        if let Ok(mut cache) = self.store_cache.lock() {
            *cache = Some((Instant::now(), final_counts));
        }
        let stats = self.counters();
        self.stop_everything().await;
        let summary = summarize(&stats, &self.resources, &self.schedules, warnings);
        if let Some(path) = &self.report_path {
            let mut report = self.report();
            report.state = "stopped".into();
            report.summary = Some(summary.clone());
            if let Err(e) = report.write(path) {
                tracing::error!(error = %e, "writing the dev report");
            }
        }
        summary
    }
}

impl Drop for RunningStack {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
    }
}

/// The summary of a run from its final numbers.
pub fn summarize(
    stats: &StackStats,
    resources: &Resources,
    schedules: &[ScheduleStatus],
    warnings: Vec<String>,
) -> DevSummary {
    let mut streams: BTreeMap<String, StreamSummary> = BTreeMap::new();
    for m in stats.mappings.values() {
        let logical = resources
            .streams
            .iter()
            .find(|(_, s)| s.name == m.stream)
            .map(|(l, _)| l.clone())
            .unwrap_or_else(|| m.stream.clone());
        let e = streams.entry(logical).or_default();
        e.records_processed += m
            .records_done
            .saturating_sub(m.sent_to_on_failure + m.discarded);
        e.records_to_on_failure += m.sent_to_on_failure;
        e.backlog += m.records_behind;
    }
    let discarded: u64 = stats.mappings.values().map(|m| m.discarded).sum();
    let rejects_queued = stats.rejects_queued.unwrap_or_else(|| {
        resources
            .rejects_queue_url
            .as_ref()
            .and_then(|url| resources.queues.iter().find(|(_, u)| *u == url))
            .and_then(|(l, _)| stats.stores.queues.get(l).copied())
            .unwrap_or(0)
    });
    DevSummary {
        duration_s: stats.elapsed_s,
        messages_in: stats.messages_in,
        rule_errors: stats.rule_errors,
        invocations: stats.invocations,
        invocation_errors: stats.invocation_errors,
        item_failures: stats.item_failures,
        rejects_queued,
        queues: stats.stores.queues.clone(),
        bucket_objects: stats.stores.buckets.clone(),
        missions_stored: stats.stores.tables.values().sum(),
        robots_indexed: stats.stores.robots_indexed.unwrap_or(0),
        streams,
        schedules: schedules.to_vec(),
        records_lost: discarded + stats.rule_errors_lost,
        records_put: stats.records_put,
        backlog: stats.backlog,
        warnings,
    }
}

async fn count_items(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut start = None;
    loop {
        let r = ddb
            .scan()
            .table_name(table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .ok()?;
        total += r.count.max(0) as u64;
        match r.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Some(total),
        }
    }
}

/// Robots in the index: their summary documents (one per robot, fleet_aws::summary), not the
/// shadow and presence documents (several per robot).
async fn count_robots(os: &fleet_aws::OpenSearchHttp, alias: &str) -> Option<u64> {
    let _ = os
        .call(reqwest::Method::POST, &format!("/{alias}/_refresh"), None)
        .await;
    let query =
        serde_json::json!({"query": {"term": {"docType": fleet_aws::summary::SUMMARY_DOC_TYPE}}});
    let reply = os
        .call(
            reqwest::Method::POST,
            &format!("/{alias}/_count"),
            Some(&query),
        )
        .await
        .ok()?;
    reply
        .json()
        .get("count")
        .and_then(serde_json::Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_on_the_first_equals() {
        assert_eq!(
            parse_key_value("StreamMode=PROVISIONED"),
            Ok(("StreamMode".into(), "PROVISIONED".into()))
        );
        assert_eq!(parse_key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("nope").is_err());
    }

    #[test]
    fn the_real_template_gives_rules_the_engine_accepts() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let opts = load_options("rules", "us-east-1", &[]);
        let tpl = fleet_template::load(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
        let rules = rule_defs(&tpl).unwrap_or_else(|e| panic!("{e}"));
        assert!(rules.iter().any(|r| r.name == "mission_reports"));
        let mut sinks = Sinks::default();
        for s in tpl.streams() {
            sinks
                .streams
                .insert(s.stream_name.clone(), s.stream_name.clone());
        }
        for q in tpl.queues() {
            sinks
                .queues
                .insert(q.queue_name.clone(), format!("http://q/{}", q.queue_name));
        }
        RulesEngine::new(rules, &sinks).unwrap_or_else(|e| panic!("{e}"));
    }

    const SCHEDULED: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  ProbeFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: breaker-probe
    Properties:
      FunctionName: !Sub "${AWS::StackName}-probe"
      Runtime: provided.al2023
      Handler: bootstrap
      CodeUri: ./
      Events:
        Every5:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
            Input: '{"probe": true}'
  NightlyRule:
    Type: AWS::Events::Rule
    Properties:
      Name: !Sub "${AWS::StackName}-nightly"
      ScheduleExpression: cron(0 2 * * ? *)
      Targets:
        - Id: probe
          Arn: !GetAtt ProbeFunction.Arn
  MorningSchedule:
    Type: AWS::Scheduler::Schedule
    Properties:
      Name: !Sub "${AWS::StackName}-morning"
      ScheduleExpression: cron(0 9 ? * MON-FRI *)
      FlexibleTimeWindow:
        Mode: "OFF"
      Target:
        Arn: !GetAtt ProbeFunction.Arn
        RoleArn: arn:aws:iam::123456789012:role/x
"#;

    fn scheduled_stack() -> fleet_template::Stack {
        let opts = fleet_template::LoadOptions {
            stack_name: "sch".into(),
            ..fleet_template::LoadOptions::default()
        };
        fleet_template::load_str(SCHEDULED, &opts).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn template_schedules_become_scheduler_specs_with_physical_names() {
        let tpl = scheduled_stack();
        let mut specs = schedule_specs(&tpl, &["ProbeFunction".to_string()]);
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["sch-ProbeFunctionEvery5", "sch-morning", "sch-nightly"]
        );
        assert_eq!(specs[0].input, Some(serde_json::json!({"probe": true})));
        assert_eq!(specs[0].kind, ScheduleKind::Rule);
        assert_eq!(specs[1].kind, ScheduleKind::Scheduler);
        assert_eq!(specs[2].expression, "cron(0 2 * * ? *)");
        assert!(
            specs
                .iter()
                .all(|s| s.function == "ProbeFunction" && s.enabled)
        );
        // A function the stack cannot run gets no schedules (and a start-up note instead).
        assert!(schedule_specs(&tpl, &[]).is_empty());
    }

    #[tokio::test]
    async fn template_schedules_fire_their_function_with_the_scheduled_event() {
        use fleet_esm::InvokeError;
        use fleet_esm::InvokeOutcome;
        use futures::future::BoxFuture;
        #[derive(Default)]
        struct Rec(Mutex<Vec<(String, serde_json::Value)>>);
        impl Invoker for Rec {
            fn invoke<'a>(
                &'a self,
                function: &'a str,
                event: serde_json::Value,
            ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
                Box::pin(async move {
                    if let Ok(mut v) = self.0.lock() {
                        v.push((function.to_string(), event));
                    }
                    Ok(InvokeOutcome::ok(serde_json::Value::Null))
                })
            }
        }
        let tpl = scheduled_stack();
        let rec = Arc::new(Rec::default());
        // Monday 2026-11-23 08:59:30 UTC: the morning schedule is due at 09:00, the rate five
        // minutes after start, the nightly rule at 02:00 tomorrow.
        let start = time::macros::datetime!(2026-11-23 08:59:30 UTC);
        let mut s = Scheduler::new(
            schedule_specs(&tpl, &["ProbeFunction".to_string()]),
            rec.clone(),
            "us-east-1",
            names::LOCAL_ACCOUNT_ID,
            start,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let fired = s
            .fire_due(time::macros::datetime!(2026-11-23 09:00:00 UTC))
            .await;
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].name, "sch-morning");
        let calls = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(calls[0].0, "ProbeFunction");
        assert_eq!(calls[0].1["detail-type"], "Scheduled Event");
        assert_eq!(
            calls[0].1["resources"][0],
            "arn:aws:scheduler:us-east-1:123456789012:schedule/default/sch-morning"
        );
        let fired = s
            .fire_due(time::macros::datetime!(2026-11-23 09:04:30 UTC))
            .await;
        assert_eq!(fired.len(), 1);
        let calls = rec.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(calls[1].1, serde_json::json!({"probe": true}));
    }

    #[test]
    fn summary_counts_lost_records_and_finds_the_rejects_queue() {
        let mut resources = Resources::default();
        resources
            .queues
            .insert("RejectsQueue".into(), "http://q/rejects".into());
        resources.rejects_queue_url = Some("http://q/rejects".into());
        resources.streams.insert(
            "MissionsStream".into(),
            crate::report::StreamInfo {
                name: "s-missions".into(),
                ..Default::default()
            },
        );
        let mut stats = StackStats {
            records_put: 10,
            rule_errors_lost: 1,
            ..StackStats::default()
        };
        stats.stores.queues.insert("RejectsQueue".into(), 2);
        stats.mappings.insert(
            "M".into(),
            MappingStats {
                stream: "s-missions".into(),
                records_done: 10,
                sent_to_on_failure: 1,
                discarded: 2,
                ..MappingStats::default()
            },
        );
        let s = summarize(&stats, &resources, &[], Vec::new());
        assert_eq!(s.rejects_queued, 2);
        assert_eq!(s.records_lost, 3);
        assert_eq!(s.streams["MissionsStream"].records_processed, 7);
        assert_eq!(s.streams["MissionsStream"].records_to_on_failure, 1);
    }
}
