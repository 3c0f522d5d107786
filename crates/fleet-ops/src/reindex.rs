//! `robofleet reindex`: rebuilds the robots index from the source of truth (the thing registry
//! and the robots' shadows) into a new index `<alias>-v(n+1)`, then swaps the alias to it
//! atomically, while the shadow-indexer keeps writing live updates.
//!
//! 1. **Prepare.** The current index is the alias's one index, `<alias>-vN`. The tool puts the
//!    index template again (it adds no alias) and creates `<alias>-v(N+1)` behind a rebuild
//!    alias `<alias>-rebuild`, which only this tool writes through.
//! 2. **Backfill.** It walks `ListThings` page by page (IoT control plane). For each thing it
//!    reads the classic shadow and every named shadow (`GetThingShadow`,
//!    `ListNamedShadowsForThing`, IoT Data Plane), paced at `--rate` reads per second. It writes
//!    the documents with the external versions the indexer uses, and merges each robot's
//!    summary.
//! 3. **Swap.** One `_aliases` request removes the old index from the alias and adds the new
//!    one. It is atomic: a reader or writer sees one index or the other, never neither or both.
//! 4. **Catch-up.** A second walk over every thing writes through the alias, which is now the
//!    new index.
//!
//! **How no update is lost across the swap.** Before the swap, live updates go to the old
//! index. An update that lands after the backfill read its robot is therefore missing from the
//! new index until the swap. After the swap, every live update goes to the new index. The
//! catch-up pass then reads every shadow again, after the swap: it sees each robot's shadow as
//! it is now, including everything that went to the old index only. External versions order
//! the catch-up's writes and the live ones, so neither overwrites a newer document (a 409 is a
//! stale write, as in the indexer). The window is the time between a robot's backfill read and
//! the swap, and the catch-up pass covers all of it.
//!
//! **Presence** cannot be rebuilt from shadows, and IoT Core's connectivity data
//! (`GetThingConnectivityData`) needs fleet indexing, which this stack does not enable. So a
//! rebuilt robot's connection is `unknown` until its next presence event, which the live
//! indexer writes into the new index and its summary.
//!
//! **Resumable.** The state file (`--state`) records the indices, the phase and the
//! `ListThings` token of the next page; it is written after every page. Run the same command
//! again to go on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleet_aws::OpenSearchHttp;
use fleet_aws::robots::{IndexDoc, ItemResult, RobotIndex, template_for_alias};
use fleet_aws::summary::Parts;
use fleet_core::ShadowRecord;
use fleet_jobs::Pacer;
use fleet_lambda::Deadline;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `ListThings` page size (its maximum is 250).
const PAGE: i32 = 100;
/// Shadow reads in flight.
const IN_FLIGHT: usize = 8;

/// Where and how to rebuild.
#[derive(Debug, Clone, clap::Args)]
pub struct ReindexArgs {
    /// The OpenSearch endpoint (the stack's `OpenSearchEndpoint` output); default: the dev
    /// report's.
    #[arg(long)]
    pub opensearch_endpoint: Option<String>,
    /// The alias the indexer writes through.
    #[arg(long, default_value = "robots")]
    pub alias: String,
    /// Shadow reads per second (`GetThingShadow` shares the account's Device Shadow quota with
    /// the robots and the jobs; 4,000/s by default in the largest regions).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Where the progress is kept (run again to resume); default `.run/reindex-<alias>.json`.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// The IoT Data Plane endpoint (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`);
    /// default: the dev report's, else the SDK's.
    #[arg(long)]
    pub iot_data_endpoint: Option<String>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Swap even when the new index has fewer than 90 % of the old one's shadow documents.
    #[arg(long)]
    pub force: bool,
}

/// The share of the old index's shadow documents the new one must have before the swap,
/// unless `--force`: a thing registry that does not list every robot would otherwise empty the
/// index.
pub const MIN_KEPT: f64 = 0.9;

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Backfill,
    CatchUp,
    Done,
}

impl Phase {
    /// As the state file and the progress line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Backfill => "backfill",
            Phase::CatchUp => "catch-up",
            Phase::Done => "done",
        }
    }
}

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexState {
    pub alias: String,
    pub source: Option<String>,
    pub target: String,
    pub phase: Phase,
    /// `ListThings` token of the next page of the phase (none: from the start).
    pub next_token: Option<String>,
    pub things: u64,
    pub shadows: u64,
}

/// The summary of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReindexReport {
    pub alias: String,
    pub source: Option<String>,
    pub target: String,
    /// Things walked in each pass.
    pub things: u64,
    /// Shadow documents written in the backfill (classic and named).
    pub shadows: u64,
    /// Writes the catch-up found newer than the backfill's (updates of the window).
    pub caught_up: u64,
    pub backfill_seconds: f64,
    pub catch_up_seconds: f64,
    /// Robots per second of the backfill.
    pub robots_per_second: f64,
}

impl ReindexReport {
    /// Readable lines.
    pub fn to_text(&self) -> String {
        format!(
            "reindex of {}: {} -> {}\n  {} things, {} shadow documents; backfill {:.1} s ({:.0} robots/s), catch-up {:.1} s ({} newer documents)\n  the old index {} is kept: delete it when the new one is checked (DELETE /{})\n",
            self.alias,
            self.source.as_deref().unwrap_or("(none)"),
            self.target,
            self.things,
            self.shadows,
            self.backfill_seconds,
            self.robots_per_second,
            self.catch_up_seconds,
            self.caught_up,
            self.source.as_deref().unwrap_or("(none)"),
            self.source.as_deref().unwrap_or("-"),
        )
    }
}

/// A failed reindex: what failed, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error("opensearch: {0}")]
    OpenSearch(String),
    #[error("iot {call}: {message}")]
    Iot { call: &'static str, message: String },
    #[error("the state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The clients a reindex uses.
pub struct Clients {
    pub opensearch_endpoint: String,
    pub iot: aws_sdk_iot::Client,
    pub shadows: aws_sdk_iotdataplane::Client,
    pub sdk: aws_config::SdkConfig,
}

fn os_err(e: impl std::fmt::Display) -> ReindexError {
    ReindexError::OpenSearch(e.to_string())
}

/// The next version's index name: `<alias>-v(N+1)` after `<alias>-vN`.
pub fn next_index(alias: &str, current: Option<&str>) -> String {
    let n = current
        .and_then(|c| c.strip_prefix(&format!("{alias}-v")))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    format!("{alias}-v{}", n + 1)
}

fn load_state(path: &Path) -> Result<Option<ReindexState>, ReindexError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ReindexError::State {
                path: path.to_path_buf(),
                message: format!("not a reindex state ({e}); remove it to start again"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReindexError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn save_state(path: &Path, state: &ReindexState) -> Result<(), ReindexError> {
    let fail = |e: std::io::Error| ReindexError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state).unwrap_or_default()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The indices behind `alias` (none when it does not exist).
async fn alias_indices(os: &OpenSearchHttp, alias: &str) -> Result<Vec<String>, ReindexError> {
    let reply = os
        .call(reqwest::Method::GET, &format!("/_alias/{alias}"), None)
        .await
        .map_err(os_err)?;
    if reply.status == 404 {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = reply
        .ok_json()
        .map_err(|e| os_err(format!("GET /_alias/{alias}: {e}")))?
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    Ok(names)
}

async fn checked(
    os: &OpenSearchHttp,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ReindexError> {
    os.call(method.clone(), path, body)
        .await
        .map_err(os_err)?
        .ok_json()
        .map_err(|e| os_err(format!("{method} {path}: {e}")))
}

/// The shadow documents (classic and named) of `index`.
async fn shadow_docs(os: &OpenSearchHttp, index: &str) -> Result<u64, ReindexError> {
    let _ = os
        .call(reqwest::Method::POST, &format!("/{index}/_refresh"), None)
        .await;
    let v = checked(
        os,
        reqwest::Method::POST,
        &format!("/{index}/_count"),
        Some(&json!({"query": {"term": {"docType": "shadow"}}})),
    )
    .await?;
    Ok(v["count"].as_u64().unwrap_or(0))
}

/// Waits for a token of `pacer` at `per_minute` (the jobs' token bucket: at most one second's
/// worth of calls at once).
async fn paced(pacer: &tokio::sync::Mutex<Pacer>, per_minute: f64) {
    loop {
        let now = fleet_core::timefmt::now_unix_ms() as f64 / 1000.0;
        let Some(wait) = pacer.lock().await.take(now, per_minute) else {
            return;
        };
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// One shadow as an index document, as the indexer would write it from its documents message.
fn shadow_doc(thing: &str, name: Option<&str>, shadow: &Value) -> Option<ShadowRecord> {
    let mut message = json!({
        "current": {
            "state": {
                "reported": shadow["state"].get("reported").cloned().unwrap_or(json!({})),
                "desired": shadow["state"].get("desired").cloned().unwrap_or(Value::Null),
            },
            "metadata": {},
            "version": shadow["version"],
        },
        "timestamp": shadow["timestamp"],
        "thingName": thing,
    });
    if message["current"]["state"]["desired"].is_null()
        && let Some(state) = message["current"]["state"].as_object_mut()
    {
        state.remove("desired");
    }
    if let Some(n) = name {
        message["shadowName"] = json!(n);
    }
    let bytes = serde_json::to_vec(&message).ok()?;
    ShadowRecord::from_record_current(&bytes, thing).ok()
}

/// The shadows of one thing: the classic one and each named one.
async fn read_thing(
    clients: &Clients,
    thing: &str,
    pacer: &tokio::sync::Mutex<Pacer>,
    per_minute: f64,
) -> Result<Vec<ShadowRecord>, ReindexError> {
    let iot_err = |call: &'static str, e: String| ReindexError::Iot { call, message: e };
    let get = |name: Option<String>| async move {
        paced(pacer, per_minute).await;
        let mut req = clients.shadows.get_thing_shadow().thing_name(thing);
        if let Some(n) = &name {
            req = req.shadow_name(n);
        }
        match req.send().await {
            Ok(out) => {
                let v: Value = out
                    .payload()
                    .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
                    .unwrap_or(Value::Null);
                Ok(shadow_doc(thing, name.as_deref(), &v))
            }
            Err(e)
                if aws_sdk_iotdataplane::error::ProvideErrorMetadata::code(&e)
                    == Some("ResourceNotFoundException") =>
            {
                Ok(None)
            }
            Err(e) => Err(iot_err("GetThingShadow", fleet_aws::error::describe(&e))),
        }
    };
    let mut out = Vec::new();
    if let Some(doc) = get(None).await? {
        out.push(doc);
    }
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .shadows
            .list_named_shadows_for_thing()
            .thing_name(thing)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| iot_err("ListNamedShadowsForThing", fleet_aws::error::describe(&e)))?;
        for name in page.results() {
            if let Some(doc) = get(Some(name.clone())).await? {
                out.push(doc);
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Writes one page's shadows through `index`, and merges its robots' summaries. Returns how
/// many documents were newer than what the index held.
async fn write_page(
    index: &RobotIndex,
    template: &Value,
    records: Vec<ShadowRecord>,
) -> Result<u64, ReindexError> {
    let deadline = Deadline::after(Duration::from_secs(120));
    let mut parts: std::collections::BTreeMap<String, Parts> = Default::default();
    let mut docs = Vec::with_capacity(records.len());
    for r in records {
        if let ShadowRecord::Documents(d) = &r
            && d.shadow_name.is_none()
        {
            parts
                .entry(d.thing_name.as_str().to_string())
                .or_default()
                .shadow = Some((r.external_version(), r.index_source()));
        }
        docs.push(IndexDoc {
            id: r.doc_id(),
            version: r.external_version(),
            source: r.into_index_source(),
        });
    }
    let mut newer = 0;
    for (doc, result) in docs.iter().zip(index.bulk(&docs, template, deadline).await) {
        match result {
            ItemResult::Indexed => newer += 1,
            ItemResult::Stale => {}
            other => return Err(os_err(format!("writing {}: {other:?}", doc.id))),
        }
    }
    for (robot, result) in index.merge_summaries(&parts, template, deadline).await {
        if let ItemResult::Retry { .. } | ItemResult::Permanent(_) = result {
            return Err(os_err(format!("the summary of {robot}: {result:?}")));
        }
    }
    Ok(newer)
}

/// What every walk over the things shares.
struct Walker<'a> {
    clients: &'a Clients,
    template: &'a Value,
    rate: f64,
    state_path: &'a Path,
    progress: &'a fleet_console::Progress,
}

/// What one walk did.
struct Walked {
    things: u64,
    written: u64,
    newer: u64,
    seconds: f64,
}

impl Walker<'_> {
    /// One walk over every thing from the state's token, writing through `index`; saves the
    /// state after every page.
    async fn walk(
        &self,
        index: &RobotIndex,
        state: &mut ReindexState,
    ) -> Result<Walked, ReindexError> {
        let (clients, template, state_path, progress) =
            (self.clients, self.template, self.state_path, self.progress);
        let now = fleet_core::timefmt::now_unix_ms() as f64 / 1000.0;
        let pacer = tokio::sync::Mutex::new(Pacer::new(now));
        let per_minute = self.rate.max(0.1) * 60.0;
        let (mut things, mut written, mut newer) = (0u64, 0u64, 0u64);
        let started = Instant::now();
        loop {
            let page = clients
                .iot
                .list_things()
                .max_results(PAGE)
                .set_next_token(state.next_token.clone())
                .send()
                .await
                .map_err(|e| ReindexError::Iot {
                    call: "ListThings",
                    message: fleet_aws::error::describe(&e),
                })?;
            let names: Vec<String> = page
                .things()
                .iter()
                .filter_map(|t| t.thing_name().map(str::to_string))
                .collect();
            use futures::StreamExt as _;
            let read: Vec<Result<Vec<ShadowRecord>, ReindexError>> = futures::stream::iter(
                names
                    .iter()
                    .map(|n| read_thing(clients, n, &pacer, per_minute)),
            )
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
            let mut records = Vec::new();
            for r in read {
                records.extend(r?);
            }
            things += names.len() as u64;
            written += records.len() as u64;
            newer += write_page(index, template, records).await?;
            state.next_token = page.next_token().map(str::to_string);
            state.things += names.len() as u64;
            save_state(state_path, state)?;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            progress.say(&format!(
                "  {}: {things} things, {written} shadows ({:.0} things/s)",
                state.phase.as_str(),
                things as f64 / secs
            ));
            if state.next_token.is_none() {
                break;
            }
        }
        Ok(Walked {
            things,
            written,
            newer,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Runs (or resumes) a reindex.
pub async fn run(
    args: &ReindexArgs,
    clients: &Clients,
    template_file: &Path,
    progress: &fleet_console::Progress,
) -> Result<ReindexReport, ReindexError> {
    let alias = args.alias.clone();
    let os = OpenSearchHttp::from_sdk(&clients.sdk, &clients.opensearch_endpoint);
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!(".run/reindex-{alias}.json")));
    let template_text = std::fs::read_to_string(template_file).map_err(|e| {
        ReindexError::Invalid(format!(
            "the index template {}: {e}",
            template_file.display()
        ))
    })?;
    let template: Value = serde_json::from_str(&template_text).map_err(|e| {
        ReindexError::Invalid(format!(
            "the index template {}: {e}",
            template_file.display()
        ))
    })?;
    let rebuild_alias = format!("{alias}-rebuild");
    let mut state = match load_state(&state_path)? {
        Some(s) if s.alias == alias && s.phase != Phase::Done => {
            progress.say(&format!(
                "resuming the reindex of {alias} into {} ({}, {} things done)",
                s.target,
                s.phase.as_str(),
                s.things
            ));
            s
        }
        _ => {
            let current = alias_indices(&os, &alias).await?;
            if current.len() > 1 {
                return Err(ReindexError::Invalid(format!(
                    "the alias {alias} points to {current:?}: it must name one index"
                )));
            }
            let source = current.first().cloned();
            let target = next_index(&alias, source.as_deref());
            // The template again (it adds no alias), then the new index behind the rebuild
            // alias only.
            checked(
                &os,
                reqwest::Method::PUT,
                &format!("/_index_template/{alias}"),
                Some(&template_for_alias(&template, &alias)),
            )
            .await?;
            checked(
                &os,
                reqwest::Method::PUT,
                &format!("/{target}"),
                Some(&json!({ "aliases": { &rebuild_alias: {} } })),
            )
            .await?;
            let s = ReindexState {
                alias: alias.clone(),
                source,
                target,
                phase: Phase::Backfill,
                next_token: None,
                things: 0,
                shadows: 0,
            };
            save_state(&state_path, &s)?;
            progress.say(&format!(
                "reindex of {alias}: {} -> {} (state in {})",
                s.source.as_deref().unwrap_or("(none)"),
                s.target,
                state_path.display()
            ));
            s
        }
    };
    let index_for = |alias: &str| RobotIndex::over(os.clone(), alias);
    let mut report = ReindexReport {
        alias: alias.clone(),
        source: state.source.clone(),
        target: state.target.clone(),
        ..ReindexReport::default()
    };
    let walker = Walker {
        clients,
        template: &template,
        rate: args.rate,
        state_path: &state_path,
        progress,
    };
    if state.phase == Phase::Backfill {
        let w = walker.walk(&index_for(&rebuild_alias), &mut state).await?;
        report.backfill_seconds = w.seconds;
        report.things = w.things;
        report.shadows = w.written;
        report.robots_per_second = w.things as f64 / w.seconds.max(1e-3);
        // A registry that lists fewer robots than the index holds would shrink the index.
        if let Some(source) = &state.source {
            let (old, new) = (
                shadow_docs(&os, source).await?,
                shadow_docs(&os, &state.target).await?,
            );
            if !args.force && (new as f64) < (old as f64) * MIN_KEPT {
                return Err(ReindexError::Invalid(format!(
                    "the new index {} has {new} shadow documents and the old one {source} {old}: the thing registry (ListThings) may not list every robot. The alias was not swapped; check the registry, or run again with --force",
                    state.target
                )));
            }
        }
        // The swap: one request, atomic.
        let mut actions = vec![
            json!({"add": {"index": state.target, "alias": alias}}),
            json!({"remove": {"index": state.target, "alias": rebuild_alias}}),
        ];
        if let Some(source) = &state.source {
            actions.insert(0, json!({"remove": {"index": source, "alias": alias}}));
        }
        checked(
            &os,
            reqwest::Method::POST,
            "/_aliases",
            Some(&json!({ "actions": actions })),
        )
        .await?;
        progress.say(&format!("swapped: {alias} -> {}", state.target));
        state.phase = Phase::CatchUp;
        state.next_token = None;
        save_state(&state_path, &state)?;
    }
    if state.phase == Phase::CatchUp {
        let w = walker.walk(&index_for(&alias), &mut state).await?;
        report.catch_up_seconds = w.seconds;
        report.caught_up = w.newer;
        report.things = report.things.max(w.things);
        state.phase = Phase::Done;
        save_state(&state_path, &state)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_index_follows_the_current_version() {
        assert_eq!(next_index("robots", Some("robots-v1")), "robots-v2");
        assert_eq!(next_index("robots", Some("robots-v41")), "robots-v42");
        assert_eq!(next_index("robots", None), "robots-v1");
        assert_eq!(next_index("robots", Some("legacy")), "robots-v1");
    }

    #[test]
    fn a_shadow_becomes_the_indexers_document_with_its_external_version() {
        let shadow = json!({"state": {"reported": {"battery": 40}, "desired": {"command": null}},
                            "metadata": {}, "version": 7, "timestamp": 1_795_900_000});
        let r = shadow_doc("rb-1", None, &shadow).unwrap();
        assert_eq!(r.doc_id(), "rb-1");
        assert_eq!(
            r.external_version(),
            fleet_core::shadow::shadow_external_version(1_795_900_000, 7)
        );
        assert_eq!(r.index_source()["reported"]["battery"], 40);
        let named = shadow_doc("rb-1", Some("lidar"), &shadow).unwrap();
        assert_eq!(named.doc_id(), "rb-1#lidar");
    }
}
