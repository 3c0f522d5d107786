//! lambda-bench: runs a function's release binary against a local Lambda Runtime API and the
//! stand-ins (through the AWS front: moto, osmem-server), and measures it from outside the
//! process:
//!
//! - init: process start to the first poll of the runtime API (all clients built by then);
//! - CPU time per record (user + system, every thread) over batches of 1,000 real writes;
//! - peak RSS.
//!
//! `tools/bench.sh` builds the release binaries, starts the stand-ins and runs this for every
//! function of the registry (`lambda-bench --list`); see docs/benchmarks.md. The function runs
//! as a role the front registers for the bench, allowed exactly the bench's table, queue, bucket
//! and domain: every call is signed, verified and authorized, as in AWS.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use fleet_bench::proc::{cpu_time, peak_rss_kib, rss_kib, user_system};
use fleet_bench::runtime_api::{Answer, RuntimeApi};
use fleet_bench::samples;
use fleet_local::functions::{Downstream, FUNCTIONS, find};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure a function binary's init time, CPU per record and peak RSS")]
struct Args {
    /// The function's binary name (`--list` prints them).
    #[arg(long, required_unless_present_any = ["list", "list_init"])]
    function: Option<String>,
    /// Print the stream consumers of the registry (what the batch measurement takes), one per
    /// line, and exit.
    #[arg(long)]
    list: bool,
    /// Print the functions measured by `--init-only` (the fleet API's), one per line, and exit.
    #[arg(long)]
    list_init: bool,
    /// Measure init only: start the binary `--runs` times and time each from process start to
    /// its first poll of the runtime API (the cold start before the first request). For
    /// functions without batches, such as the fleet API's.
    #[arg(long)]
    init_only: bool,
    /// Cold starts measured by `--init-only`.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The binary (default: target/release/<function>).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Measured batches (after one warm-up batch).
    #[arg(long, default_value_t = 5)]
    batches: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// The AWS front's URL (default: $ROBOFLEET_TEST_AWS_ENDPOINT).
    #[arg(long, env = "ROBOFLEET_TEST_AWS_ENDPOINT")]
    aws_endpoint: String,
    /// The front's OpenSearch domain endpoint (default: $ROBOFLEET_TEST_OPENSEARCH_URL).
    #[arg(long, env = "ROBOFLEET_TEST_OPENSEARCH_URL")]
    opensearch_url: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Point DynamoDB at a minimal in-process endpoint that answers every call with `{}` over
    /// kept-alive connections, instead of moto (whose server closes every connection): isolates
    /// the function's own CPU per call, as against DynamoDB, from moto's connection handling.
    #[arg(long)]
    keepalive_dynamodb: bool,
    /// The function's log (stdout + stderr) goes here.
    #[arg(long, default_value = "target/bench/function.log")]
    log: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        // The stream consumers: what this bench measures (a scheduled function has no batches).
        for f in FUNCTIONS
            .iter()
            .filter(|f| f.downstream.is_stream_consumer())
        {
            println!("{}", f.binary);
        }
        return Ok(());
    }
    if args.list_init {
        for f in FUNCTIONS.iter().filter(|f| f.downstream == Downstream::Api) {
            println!("{}", f.binary);
        }
        return Ok(());
    }
    let name = args.function.clone().unwrap_or_default();
    let Some(function) = find(&name) else {
        let known: Vec<&str> = FUNCTIONS.iter().map(|f| f.binary).collect();
        bail!("unknown function {name:?}: use one of {}", known.join(", "));
    };
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("target/release/{}", function.binary)));
    if !binary.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p {}`",
            binary.display(),
            function.binary
        );
    }
    let binary_bytes = std::fs::metadata(&binary)?.len();
    if args.init_only {
        return init_only(&args, function, &binary, binary_bytes).await;
    }
    let moto_keepalive = keeps_alive(&args.aws_endpoint)
        .await
        .with_context(|| format!("probing {}", args.aws_endpoint))?;
    if !moto_keepalive && !args.keepalive_dynamodb {
        eprintln!(
            "note: {} closes every connection, so each DynamoDB call pays a new TCP connection: \
             use the AWS front of tools/standins.sh (HTTP keep-alive) to measure as against DynamoDB",
            args.aws_endpoint
        );
    }
    let sdk = fleet_testkit::sdk_config_for(&args.aws_endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue =
        fleet_testkit::tables::create_queue(&sqs, &fleet_testkit::unique_name("bench-rejects"))
            .await;

    let bucket = fleet_testkit::tables::create_bucket(
        &aws_sdk_s3::Client::new(&sdk),
        &fleet_testkit::unique_name("bench-payloads"),
    )
    .await;
    let queue_arn = format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        queue.rsplit('/').next().unwrap_or_default()
    );
    let mut grants = vec![
        json!({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}),
        json!({"Effect": "Allow", "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}),
    ];
    // The tombstones both consumers read once per batch (template.yaml sets TOMBSTONES_TABLE):
    // an empty table, so the batch is measured with its BatchGetItem and nothing dropped.
    let tombstones = fleet_testkit::unique_name("bench-tombstones");
    fleet_testkit::tables::create_table(
        &aws_sdk_dynamodb::Client::new(&sdk),
        &tombstones,
        "robotId",
        Some("sk"),
    )
    .await;
    grants.push(json!({"Effect": "Allow", "Action": "dynamodb:BatchGetItem",
        "Resource": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{tombstones}")}));
    let mut env: Vec<(String, String)> = vec![
        ("REJECTS_QUEUE_URL".into(), queue),
        ("REJECT_PAYLOADS_BUCKET".into(), bucket),
        ("TOMBSTONES_TABLE".into(), tombstones),
    ];
    let event_for: fn(usize, usize) -> serde_json::Value = match function.downstream {
        Downstream::MissionsTable => {
            let table = fleet_testkit::unique_name("bench-missions");
            fleet_testkit::tables::create_missions_table(
                &aws_sdk_dynamodb::Client::new(&sdk),
                &table,
            )
            .await;
            grants.push(json!({"Effect": "Allow", "Action": "dynamodb:PutItem",
                "Resource": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}")}));
            env.push(("MISSIONS_TABLE".into(), table));
            env.push(("MISSION_TTL_DAYS".into(), "365".into()));
            env.push(("DAY_SHARDS".into(), "8".into()));
            samples::mission_event
        }
        Downstream::RobotsIndex => {
            let url = args
                .opensearch_url
                .clone()
                .context("--opensearch-url (or ROBOFLEET_TEST_OPENSEARCH_URL) is required")?;
            // The front's default domain (tools/standins.sh).
            grants.push(json!({"Effect": "Allow",
                "Action": ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"],
                "Resource": "arn:aws:es:us-east-1:123456789012:domain/robofleet-test/*"}));
            env.push(("OPENSEARCH_ENDPOINT".into(), url));
            env.push((
                "ROBOTS_ALIAS".into(),
                fleet_testkit::unique_name("bench-robots"),
            ));
            samples::shadow_event
        }
        Downstream::Scheduled | Downstream::Shadows | Downstream::Api => {
            bail!("{name} is not a stream consumer: lambda-bench measures batches")
        }
    };

    // The function's role: exactly the bench's resources.
    let role = format!(
        "arn:aws:iam::123456789012:role/lambda-bench-{}",
        function.binary
    );
    let credentials = fleet_local::front::FrontAdmin::new(&args.aws_endpoint)
        .register_principal(
            &role,
            &[json!({"Version": "2012-10-17", "Statement": grants})],
            "lambda-bench",
        )
        .await
        .with_context(|| {
            format!(
                "registering {role} with the AWS front at {}",
                args.aws_endpoint
            )
        })?;
    env.extend(credentials.env());

    if args.keepalive_dynamodb {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        env.push((
            "AWS_ENDPOINT_URL_DYNAMODB".into(),
            format!("http://{}", listener.local_addr()?),
        ));
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(|| async {
                ([("content-type", "application/x-amz-json-1.0")], "{}")
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let api = RuntimeApi::start(Duration::from_secs(120)).await?;
    let (mut child, started, first_poll) =
        start_function(&args, function.binary, &binary, &api, &env).await?;
    let pid = child.id().context("the function exited at once")?;
    let init = first_poll - started;
    if let Some(e) = api.init_error().await {
        bail!("init error: {e}");
    }
    let cpu_after_init = cpu_time(pid)?;
    let rss_after_init_kib = rss_kib(pid)?;

    let check = |answer: Answer, batch: usize| -> anyhow::Result<()> {
        match answer {
            Answer::Response(v)
                if v["batchItemFailures"]
                    .as_array()
                    .is_some_and(|a| a.is_empty()) =>
            {
                Ok(())
            }
            Answer::Response(v) => bail!("batch {batch} had item failures: {v}"),
            Answer::Error(v) => bail!("batch {batch} failed: {v}"),
        }
    };
    // Warm-up: connections, and for the indexer the index template.
    let warm_started = Instant::now();
    let cpu0 = cpu_time(pid)?;
    check(api.invoke(event_for(args.batch_size, 0)).await?, 0)?;
    let first_batch_cpu = cpu_time(pid)? - cpu0;
    let first_batch_wall = warm_started.elapsed();

    let cpu_start = cpu_time(pid)?;
    let (user_start, system_start) = user_system(pid)?;
    let wall_start = Instant::now();
    for b in 1..=args.batches {
        check(api.invoke(event_for(args.batch_size, b)).await?, b)?;
        eprintln!("  batch {b}/{} done", args.batches);
    }
    let wall = wall_start.elapsed();
    let cpu = cpu_time(pid)? - cpu_start;
    let (user_end, system_end) = user_system(pid)?;
    let system_share = (system_end - system_start).as_secs_f64()
        / ((user_end - user_start) + (system_end - system_start))
            .as_secs_f64()
            .max(1e-9);
    let rss_kib = peak_rss_kib(pid)?;
    let _ = child.kill().await;

    let records = (args.batches * args.batch_size) as f64;
    let cpu_us_per_record = cpu.as_secs_f64() * 1e6 / records;
    let report = json!({
        "function": function.binary,
        "dynamodb": if args.keepalive_dynamodb { "keep-alive stub" } else { "moto" },
        "moto_keeps_connections_alive": moto_keepalive,
        "binary": binary.display().to_string(),
        "binary_bytes": binary_bytes,
        "init_ms": init.as_secs_f64() * 1e3,
        "init_cpu_ms": cpu_after_init.as_secs_f64() * 1e3,
        "batch_size": args.batch_size,
        "batches_measured": args.batches,
        "cpu_us_per_record": cpu_us_per_record,
        "wall_ms_per_batch": wall.as_secs_f64() * 1e3 / args.batches as f64,
        "first_batch": {"cpu_us_per_record": first_batch_cpu.as_secs_f64() * 1e6 / args.batch_size as f64,
                        "wall_ms": first_batch_wall.as_secs_f64() * 1e3},
        "system_cpu_share": system_share,
        "rss_after_init_mib": rss_after_init_kib as f64 / 1024.0,
        "peak_rss_mib": rss_kib as f64 / 1024.0,
        "targets": {"init_ms": 20, "cpu_us_per_record": 290, "peak_rss_mib": 24},
        "meets_targets": {
            "init": init <= Duration::from_millis(20),
            "cpu": cpu_us_per_record <= 290.0,
            "rss": rss_kib <= 24 * 1024,
        },
    });
    println!(
        "{}: init {:.1} ms, {:.0} µs CPU/record ({:.0}% in the kernel) over {} × {} records ({:.0} ms wall per batch), RSS {:.1} MiB after init, peak {:.1} MiB, binary {:.1} MiB",
        function.binary,
        init.as_secs_f64() * 1e3,
        cpu_us_per_record,
        system_share * 100.0,
        args.batches,
        args.batch_size,
        wall.as_secs_f64() * 1e3 / args.batches as f64,
        rss_after_init_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0,
        binary_bytes as f64 / 1048576.0
    );
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Whether the HTTP server at `url` (`http://host:port`) keeps a connection open after a response,
/// i.e. does not answer `Connection: close` to an HTTP/1.1 request.
async fn keeps_alive(url: &str) -> anyhow::Result<bool> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let mut conn = tokio::net::TcpStream::connect(authority).await?;
    let request = format!("GET /moto-api/ HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await??;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !head.starts_with("http/1.1") {
        bail!("not an HTTP/1.1 answer: {:?}", head.lines().next());
    }
    Ok(!head.lines().any(|l| l.trim() == "connection: close"))
}

/// Starts the function's binary against `api` with `env` (and the allocator settings every
/// function gets), and waits for its first poll of the runtime API: the child, when it was
/// started, and when it first polled.
async fn start_function(
    args: &Args,
    name: &str,
    binary: &std::path::Path,
    api: &RuntimeApi,
    env: &[(String, String)],
) -> anyhow::Result<(tokio::process::Child, Instant, Instant)> {
    if let Some(dir) = args.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::File::create(&args.log)?;
    // The allocator settings template.yaml gives every function (Globals), then any `MIMALLOC_*`
    // of our own environment, for tuning.
    let mut allocator_env: Vec<(String, String)> = fleet_lambda::ALLOCATOR_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    allocator_env.extend(std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(allocator_env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &args.aws_endpoint)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let first_poll = loop {
        if let Some(t) = api.first_poll().await {
            break t;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the function exited during init ({status}); see {}",
                args.log.display()
            );
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!(
                "no poll of the runtime api within 20 s; see {}",
                args.log.display()
            );
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    Ok((child, started, first_poll))
}

/// `--init-only`: `--runs` cold starts of the binary, each timed from process start to its first
/// poll of the runtime API. Its configuration names resources that need not exist: init builds
/// clients and makes no call.
async fn init_only(
    args: &Args,
    function: &fleet_local::functions::Function,
    binary: &std::path::Path,
    binary_bytes: u64,
) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = function
        .env_vars
        .iter()
        .map(|k| {
            let v = match *k {
                "OPENSEARCH_ENDPOINT" => args
                    .opensearch_url
                    .clone()
                    .unwrap_or_else(|| "http://127.0.0.1:9".into()),
                other => format!("bench-{}", other.to_lowercase().replace('_', "-")),
            };
            (k.to_string(), v)
        })
        .chain([
            ("AWS_ACCESS_KEY_ID".to_string(), "bench".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "bench".to_string()),
        ])
        .collect();
    let mut init_ms = Vec::with_capacity(args.runs);
    let mut rss_mib = Vec::with_capacity(args.runs);
    for run in 1..=args.runs.max(1) {
        let api = RuntimeApi::start(Duration::from_secs(30)).await?;
        let (mut child, started, first_poll) =
            start_function(args, function.binary, binary, &api, &env).await?;
        if let Some(e) = api.init_error().await {
            bail!("init error: {e}");
        }
        if let Some(pid) = child.id() {
            rss_mib.push(rss_kib(pid)? as f64 / 1024.0);
        }
        let _ = child.kill().await;
        init_ms.push((first_poll - started).as_secs_f64() * 1e3);
        eprintln!(
            "  cold start {run}/{}: {:.1} ms",
            args.runs,
            init_ms[run - 1]
        );
    }
    init_ms.sort_by(f64::total_cmp);
    let at = |q: f64| init_ms[((init_ms.len() - 1) as f64 * q).round() as usize];
    let (p50, p99, max) = (at(0.5), at(0.99), init_ms[init_ms.len() - 1]);
    let target_ms = 30.0;
    println!(
        "{}: init p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} cold starts (target {target_ms} ms), RSS {:.1} MiB after init, binary {:.1} MiB",
        function.binary,
        init_ms.len(),
        rss_mib.iter().copied().fold(0.0, f64::max),
        binary_bytes as f64 / 1048576.0
    );
    let report = json!({
        "function": function.binary,
        "binary": binary.display().to_string(),
        "binary_bytes": binary_bytes,
        "cold_starts": init_ms.len(),
        "init_ms": {"p50": p50, "p99": p99, "max": max, "all": init_ms},
        "rss_after_init_mib_max": rss_mib.iter().copied().fold(0.0, f64::max),
        "targets": {"init_ms": target_ms},
        "meets_targets": {"init": p99 <= target_ms},
    });
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
