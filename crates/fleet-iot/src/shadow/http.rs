//! The HTTP face: the IoT Data Plane REST API as `aws-sdk-iotdataplane` calls it.
//!
//! | operation | request |
//! | --- | --- |
//! | GetThingShadow | `GET /things/{thing}/shadow?name=` |
//! | UpdateThingShadow | `POST /things/{thing}/shadow?name=` (body: the update document) |
//! | DeleteThingShadow | `DELETE /things/{thing}/shadow?name=` |
//! | ListNamedShadowsForThing | `GET /api/things/shadow/ListNamedShadowsForThing/{thing}?nextToken=&pageSize=` |
//! | Publish | `POST /topics/{topic}?qos=&retain=` (body: the payload) |
//!
//! Errors are the service's: status 400/404/409/413, header `x-amzn-ErrorType` and a JSON body
//! `{"message": "..."}`, which the SDK turns into `InvalidRequestException`,
//! `ResourceNotFoundException`, `ConflictException` and `RequestEntityTooLargeException`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Core, Outgoing, Rejection, ShadowKey};

/// Default and largest page of ListNamedShadowsForThing.
const MAX_PAGE: usize = 100;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(code: u16, error_type: &'static str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_response(status, &json!({ "message": message }));
    r.headers_mut()
        .insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
    r
}

fn rejection(r: &Rejection) -> Response {
    error_response(r.code, r.error_type(), &r.message)
}

fn key(thing: String, q: &HashMap<String, String>) -> Result<ShadowKey, Box<Response>> {
    if thing.is_empty() {
        return Err(Box::new(error_response(
            400,
            "InvalidRequestException",
            "thingName is empty",
        )));
    }
    match q.get("name") {
        Some(n) if n.is_empty() => Err(Box::new(error_response(
            400,
            "InvalidRequestException",
            "shadowName is empty",
        ))),
        Some(n) => Ok(ShadowKey::named(thing, n.clone())),
        None => Ok(ShadowKey::classic(thing)),
    }
}

async fn get_shadow(
    State(core): State<Core>,
    Path(thing): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    core.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    let key = match key(thing, &q) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match core.get(&key, b"", false) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => rejection(&r),
    }
}

async fn update_shadow(
    State(core): State<Core>,
    Path(thing): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    core.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    let key = match key(thing, &q) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match core.update(&key, &body, false) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => rejection(&r),
    }
}

async fn delete_shadow(
    State(core): State<Core>,
    Path(thing): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    core.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    let key = match key(thing, &q) {
        Ok(k) => k,
        Err(r) => return *r,
    };
    match core.delete(&key, b"", false) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => rejection(&r),
    }
}

async fn list_named(
    State(core): State<Core>,
    Path(thing): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    core.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    let names = core
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .list_named(&thing);
    let page = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => MAX_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return error_response(
                400,
                "InvalidRequestException",
                "pageSize must be between 1 and 100",
            );
        }
    };
    let start = match q.get("nextToken").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error_response(400, "InvalidRequestException", "invalid nextToken");
        }
    };
    let results: Vec<&String> = names.iter().skip(start).take(page).collect();
    let mut body = json!({ "results": results, "timestamp": super::now_s() });
    if start + page < names.len() {
        body["nextToken"] = Value::String((start + page).to_string());
    }
    json_response(StatusCode::OK, &body)
}

async fn publish(
    State(core): State<Core>,
    Path(topic): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    core.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    if topic.is_empty() || topic.contains('+') || topic.contains('#') {
        return error_response(400, "InvalidRequestException", "invalid topic name");
    }
    let qos = match q.get("qos").map(String::as_str) {
        None | Some("0") => rumqttc::QoS::AtMostOnce,
        Some("1") => rumqttc::QoS::AtLeastOnce,
        Some(_) => {
            return error_response(400, "InvalidRequestException", "qos must be 0 or 1");
        }
    };
    let retain = q.get("retain").is_some_and(|r| r == "true");
    if core
        .out
        .send(Outgoing {
            topic,
            payload: body.to_vec(),
            qos,
            retain,
        })
        .is_err()
    {
        return error_response(
            503,
            "ServiceUnavailableException",
            "the broker link is down",
        );
    }
    json_response(StatusCode::OK, &json!({}))
}

async fn fallback() -> Response {
    error_response(
        404,
        "ResourceNotFoundException",
        "this operation is not served by the local shadow service",
    )
}

/// The router, exposed for tests that drive it without a socket.
pub(crate) fn router(core: Core) -> Router {
    Router::new()
        .route(
            "/things/{thing}/shadow",
            get(get_shadow).post(update_shadow).delete(delete_shadow),
        )
        .route(
            "/api/things/shadow/ListNamedShadowsForThing/{thing}",
            get(list_named),
        )
        .route("/topics/{topic}", post(publish))
        .fallback(fallback)
        .with_state(core)
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    core: Core,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(core);
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "shadow http face stopped");
    }
}
