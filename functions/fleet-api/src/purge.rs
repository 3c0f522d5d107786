//! Decommission and factory reset: `DELETE /robots/{id}?mode=decommission|reset` and its status
//! resource `GET /robots/{id}/decommission`.
//!
//! The request writes the robot's tombstone first (fleet_aws::tombstones): from then on
//! mission-ingest and the shadow-indexer drop the robot's records from before the cutoff, so a
//! record still in a stream cannot bring anything back. It records who asked, then invokes this
//! function asynchronously with a purge event and answers 202: the purge runs beyond HTTP API's
//! 30 s. The purge deletes, in order:
//! - the robot's missions (a `Query` of its partition, `BatchWriteItem` deletes);
//! - its index documents: shadow, named shadows, presence, summary (`_search` on `robotId`,
//!   `_bulk` deletes);
//! - its shadows, classic and named (`DeleteThingShadow`);
//! - for a decommission, its certificates: each policy detached, the certificate detached from
//!   the thing and revoked (`UpdateCertificate REVOKED`).
//!
//! Then the tombstone says `done` with the counts, and an audit item records them. Index and
//! missions are purged twice, 5 s apart: a consumer batch that read the tombstones just before
//! the tombstone was written may still write once. Every step is idempotent. A second DELETE
//! answers the existing status and starts nothing, unless the purge failed: then it runs again.

use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use fleet_aws::OpenSearchHttp;
use fleet_aws::tombstones::{Mode, Tombstone, Tombstones};
use fleet_core::ids::RobotId;
use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};
use serde_json::{Value, json};

use crate::problem::Problem;

/// Pause before the second pass over the index and the missions.
const SECOND_PASS: Duration = Duration::from_secs(5);

type Answer = Result<(StatusCode, Value), Problem>;

/// What a purge needs.
#[derive(Debug)]
pub struct Purger {
    pub tombstones: Tombstones,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub missions_table: String,
    pub index: OpenSearchHttp,
    pub alias: String,
    pub shadows: aws_sdk_iotdataplane::Client,
    pub iot: aws_sdk_iot::Client,
    pub lambda: aws_sdk_lambda::Client,
    /// The function to invoke with the purge event (this one).
    pub function: String,
}

fn caller_of(request: &Request) -> String {
    use lambda_http::request::RequestContext;
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone())
            .unwrap_or_else(|| "unknown".into()),
        _ => "unknown".into(),
    }
}

fn status_doc(t: &Tombstone) -> Value {
    let mut doc = t.to_json();
    doc["statusUrl"] = json!(format!("/robots/{}/decommission", t.robot_id));
    doc
}

impl Purger {
    /// `DELETE /robots/{id}`.
    pub async fn request(&self, id: &RobotId, request: &Request) -> Answer {
        let params = request.query_string_parameters();
        let mode = match params.first("mode") {
            None => Mode::Decommission,
            Some(v) => Mode::parse(v).ok_or_else(|| {
                Problem::invalid_parameter("mode", format!("{v:?} is not decommission or reset"))
            })?,
        };
        let tombstone = Tombstone {
            robot_id: id.as_str().to_string(),
            mode,
            state: "purging".into(),
            requested_at_ms: fleet_core::timefmt::now_unix_ms() as i64,
            caller: caller_of(request),
            counts: Value::Null,
            reason: None,
        };
        let existing = self
            .tombstones
            .create(&tombstone)
            .await
            .map_err(Problem::unavailable)?;
        let current = match existing {
            Some(t) if t.state != "failed" => return Ok((StatusCode::ACCEPTED, status_doc(&t))),
            Some(mut t) => {
                // The last purge failed: run it again.
                self.tombstones
                    .finish(&t.robot_id, "purging", &t.counts, None)
                    .await
                    .map_err(Problem::unavailable)?;
                t.state = "purging".into();
                t.reason = None;
                self.audit(&t.robot_id, "retried", json!({"caller": tombstone.caller}))
                    .await?;
                t
            }
            None => {
                self.audit(
                    id.as_str(),
                    "requested",
                    json!({"mode": mode.as_str(), "caller": tombstone.caller}),
                )
                .await?;
                tombstone
            }
        };
        self.start(id.as_str()).await?;
        Ok((StatusCode::ACCEPTED, status_doc(&current)))
    }

    async fn audit(&self, robot: &str, event: &str, detail: Value) -> Result<(), Problem> {
        self.tombstones
            .audit(robot, event, &detail)
            .await
            .map_err(Problem::unavailable)
    }

    /// Invokes the purge asynchronously.
    async fn start(&self, robot: &str) -> Result<(), Problem> {
        let payload = json!({ "purge": { "robotId": robot } }).to_string();
        let sent = self
            .lambda
            .invoke()
            .function_name(&self.function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await;
        if let Err(e) = sent {
            let reason = format!(
                "starting the purge failed: {}",
                fleet_aws::error::describe(&e)
            );
            let _ = self
                .tombstones
                .finish(robot, "failed", &Value::Null, Some(&reason))
                .await;
            return Err(Problem::unavailable(format!(
                "{reason}; send the DELETE again"
            )));
        }
        Ok(())
    }

    /// `GET /robots/{id}/decommission`: the tombstone and the audit trail.
    pub async fn status(&self, id: &RobotId) -> Answer {
        let t = self
            .tombstones
            .get(id.as_str())
            .await
            .map_err(Problem::unavailable)?
            .ok_or_else(|| {
                Problem::not_found(format!(
                    "robot {} was not decommissioned or reset",
                    id.as_str()
                ))
            })?;
        let mut doc = status_doc(&t);
        doc["audit"] = json!(
            self.tombstones
                .audits(id.as_str())
                .await
                .map_err(Problem::unavailable)?
        );
        Ok((StatusCode::OK, doc))
    }

    /// The purge event: purges the robot and records the outcome on its tombstone.
    pub async fn run(&self, robot: &str) -> Result<Value, String> {
        let t = self
            .tombstones
            .get(robot)
            .await?
            .ok_or_else(|| format!("no tombstone for {robot}: nothing to purge"))?;
        if t.state == "done" {
            return Ok(t.counts);
        }
        match self.purge(robot, t.mode).await {
            Ok(counts) => {
                self.tombstones.finish(robot, "done", &counts, None).await?;
                self.tombstones.audit(robot, "purged", &counts).await?;
                Ok(counts)
            }
            Err(e) => {
                let _ = self
                    .tombstones
                    .finish(robot, "failed", &Value::Null, Some(&e))
                    .await;
                let _ = self
                    .tombstones
                    .audit(robot, "failed", &json!({ "reason": e }))
                    .await;
                Err(e)
            }
        }
    }

    async fn purge(&self, robot: &str, mode: Mode) -> Result<Value, String> {
        let mut missions = self.delete_missions(robot).await?;
        let mut docs = self.delete_index_docs(robot).await?;
        let shadows = self.delete_shadows(robot).await?;
        let certificates = match mode {
            Mode::Decommission => self.revoke(robot).await?,
            Mode::Reset => 0,
        };
        tokio::time::sleep(SECOND_PASS).await;
        missions += self.delete_missions(robot).await?;
        docs += self.delete_index_docs(robot).await?;
        Ok(json!({
            "missions": missions,
            "indexDocuments": docs,
            "shadows": shadows,
            "certificates": certificates,
        }))
    }

    async fn delete_missions(&self, robot: &str) -> Result<u64, String> {
        let fail = |e: String| format!("missions table: {e}");
        let pk = format!("ROBOT#{robot}");
        let mut deleted = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .query()
                .table_name(&self.missions_table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| fail(fleet_aws::error::describe(&e)))?;
            for chunk in page.items().chunks(25) {
                let mut writes: Vec<WriteRequest> = chunk
                    .iter()
                    .map(|item| {
                        let delete = DeleteRequest::builder().set_key(Some(item.clone())).build();
                        delete.map(|d| WriteRequest::builder().delete_request(d).build())
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| fail(e.to_string()))?;
                deleted += writes.len() as u64;
                for _ in 0..5 {
                    let out = self
                        .dynamodb
                        .batch_write_item()
                        .request_items(&self.missions_table, writes.clone())
                        .send()
                        .await
                        .map_err(|e| fail(fleet_aws::error::describe(&e)))?;
                    writes = out
                        .unprocessed_items()
                        .and_then(|u| u.get(&self.missions_table))
                        .cloned()
                        .unwrap_or_default();
                    if writes.is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if !writes.is_empty() {
                    return Err(fail(format!("{} deletes left unprocessed", writes.len())));
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(deleted),
            }
        }
    }

    async fn delete_index_docs(&self, robot: &str) -> Result<u64, String> {
        let fail = |e: String| format!("robots index: {e}");
        let mut deleted = 0;
        for _ in 0..20 {
            let _ = self
                .index
                .call(
                    reqwest::Method::POST,
                    &format!("/{}/_refresh", self.alias),
                    None,
                )
                .await;
            let found = self
                .index
                .call(
                    reqwest::Method::POST,
                    &format!("/{}/_search", self.alias),
                    Some(&json!({"size": 1000, "_source": false,
                                 "query": {"term": {"robotId": robot}}})),
                )
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_json()
                .map_err(|e| fail(format!("search got {e}")))?;
            let hits = found["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if hits.is_empty() {
                return Ok(deleted);
            }
            let mut body = String::new();
            for h in &hits {
                body.push_str(
                    &json!({"delete": {"_index": h["_index"], "_id": h["_id"]}}).to_string(),
                );
                body.push('\n');
            }
            self.index
                .send(
                    reqwest::Method::POST,
                    "/_bulk",
                    Some((body.into(), "application/x-ndjson")),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_json()
                .map_err(|e| fail(format!("bulk delete got {e}")))?;
            deleted += hits.len() as u64;
        }
        Err(fail(format!("documents of {robot} keep appearing")))
    }

    async fn delete_shadows(&self, robot: &str) -> Result<u64, String> {
        use aws_sdk_iotdataplane::error::ProvideErrorMetadata as _;
        let fail = |e: String| format!("device shadows: {e}");
        let mut names: Vec<Option<String>> = vec![None];
        let mut token = None;
        loop {
            let page = match self
                .shadows
                .list_named_shadows_for_thing()
                .thing_name(robot)
                .set_next_token(token)
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) if e.code() == Some("ResourceNotFoundException") => break,
                Err(e) => return Err(fail(fleet_aws::error::describe(&e))),
            };
            names.extend(page.results().iter().cloned().map(Some));
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let mut deleted = 0;
        for name in names {
            match self
                .shadows
                .delete_thing_shadow()
                .thing_name(robot)
                .set_shadow_name(name)
                .send()
                .await
            {
                Ok(_) => deleted += 1,
                Err(e) if e.code() == Some("ResourceNotFoundException") => {}
                Err(e) => return Err(fail(fleet_aws::error::describe(&e))),
            }
        }
        Ok(deleted)
    }

    /// Detaches every policy from each of the thing's certificates, detaches the certificate
    /// from the thing and revokes it. Returns the certificates revoked.
    async fn revoke(&self, robot: &str) -> Result<u64, String> {
        use aws_sdk_iot::error::ProvideErrorMetadata as _;
        let fail = |call: &str, e: String| format!("iot {call}: {e}");
        let principals = match self
            .iot
            .list_thing_principals()
            .thing_name(robot)
            .send()
            .await
        {
            Ok(out) => out.principals().to_vec(),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Vec::new(),
            Err(e) => return Err(fail("ListThingPrincipals", fleet_aws::error::describe(&e))),
        };
        let mut revoked = 0;
        for principal in principals {
            let Some(cert_id) = principal.rsplit_once("cert/").map(|(_, id)| id.to_string()) else {
                continue;
            };
            let policies = self
                .iot
                .list_attached_policies()
                .target(&principal)
                .send()
                .await
                .map_err(|e| fail("ListAttachedPolicies", fleet_aws::error::describe(&e)))?;
            for p in policies.policies() {
                if let Some(name) = p.policy_name() {
                    self.iot
                        .detach_policy()
                        .policy_name(name)
                        .target(&principal)
                        .send()
                        .await
                        .map_err(|e| fail("DetachPolicy", fleet_aws::error::describe(&e)))?;
                }
            }
            self.iot
                .detach_thing_principal()
                .thing_name(robot)
                .principal(&principal)
                .send()
                .await
                .map_err(|e| fail("DetachThingPrincipal", fleet_aws::error::describe(&e)))?;
            self.iot
                .update_certificate()
                .certificate_id(&cert_id)
                .new_status(aws_sdk_iot::types::CertificateStatus::Revoked)
                .send()
                .await
                .map_err(|e| fail("UpdateCertificate", fleet_aws::error::describe(&e)))?;
            revoked += 1;
        }
        Ok(revoked)
    }
}
