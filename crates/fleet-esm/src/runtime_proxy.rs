//! The deadline Lambda gives, in front of `cargo lambda watch`'s Runtime API.
//!
//! Lambda hands every invocation its deadline (`Lambda-Runtime-Deadline-Ms`, milliseconds since
//! the epoch: the invoke time plus the function's `Timeout`), and the functions bound every
//! downstream attempt by it. `cargo lambda watch` sends the constant `600000` instead: ten
//! minutes after 1970, a deadline that has always passed, so every attempt would be cut before
//! it starts. Each function therefore reaches the Runtime API through this proxy, which forwards
//! every request unchanged and sets the deadline of each invocation to what Lambda would: the
//! time it is handed out plus the template's `Timeout` of the function.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use tokio::task::JoinHandle;

/// The header Lambda's Runtime API carries the deadline in.
pub const DEADLINE_HEADER: &str = "lambda-runtime-deadline-ms";

/// Largest request or response body forwarded: Lambda's 6 MB synchronous payload limit, with
/// room for the runtime's framing.
const MAX_BODY: usize = 8 * 1024 * 1024;

struct Proxy {
    upstream: String,
    timeout: Duration,
    http: reqwest::Client,
}

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct RuntimeProxy {
    /// `host:port` to give the function as `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RuntimeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy on a free loopback port that forwards to `upstream` (the Runtime API base,
/// such as `http://127.0.0.1:9000/.rt/mission-ingest`) and gives each invocation `timeout`.
pub async fn start(upstream: &str, timeout: Duration) -> std::io::Result<RuntimeProxy> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_string(),
        timeout,
        // No overall timeout: `invocation/next` is a long poll that waits for work.
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RuntimeProxy { addr, task })
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request<Body>) -> Response<Body> {
    match relay(&p, req).await {
        Ok(r) => r,
        Err(message) => {
            let mut r = Response::new(Body::from(message));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}

async fn relay(p: &Proxy, req: Request<Body>) -> Result<Response<Body>, String> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| format!("runtime proxy: reading the request body: {e}"))?;
    let mut out = p
        .http
        .request(parts.method.clone(), format!("{}{path}", p.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let resp = out
        .send()
        .await
        .map_err(|e| format!("runtime proxy: {}: {e}", p.upstream))?;
    let status = resp.status();
    let mut headers = resp.headers().clone();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("runtime proxy: reading the response: {e}"))?;
    if path.ends_with("/invocation/next") && status.is_success() {
        headers.insert(DEADLINE_HEADER, HeaderValue::from(deadline_ms(p.timeout)));
    }
    headers.remove("content-length");
    headers.remove("transfer-encoding");
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    Ok(r)
}

/// Now plus `timeout`, in milliseconds since the epoch.
fn deadline_ms(timeout: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + timeout).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Runtime API with cargo lambda watch's constant deadline.
    async fn emulator() -> String {
        let app = axum::Router::new().fallback(|req: Request<Body>| async move {
            let path = req.uri().path().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1024).await.unwrap();
            Response::builder()
                .header(DEADLINE_HEADER, "600000")
                .header("lambda-runtime-aws-request-id", "req-1")
                .body(Body::from(format!(
                    "{path}|{}",
                    String::from_utf8_lossy(&body)
                )))
                .unwrap()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/.rt/fn", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn each_invocation_gets_the_deadline_lambda_would_give() {
        let proxy = start(&emulator().await, Duration::from_secs(30))
            .await
            .unwrap();
        let before = deadline_ms(Duration::from_secs(30));
        let r = reqwest::get(format!(
            "http://{}/2018-06-01/runtime/invocation/next",
            proxy.addr
        ))
        .await
        .unwrap();
        let deadline: u64 = r.headers()[DEADLINE_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            deadline >= before && deadline < before + 5_000,
            "{deadline} vs {before}"
        );
        assert_eq!(r.headers()["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(
            r.text().await.unwrap(),
            "/.rt/fn/2018-06-01/runtime/invocation/next|"
        );
        // Other calls pass through unchanged, bodies included.
        let r = reqwest::Client::new()
            .post(format!(
                "http://{}/2018-06-01/runtime/invocation/req-1/response",
                proxy.addr
            ))
            .body("{\"batchItemFailures\":[]}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()[DEADLINE_HEADER], "600000");
        assert_eq!(
            r.text().await.unwrap(),
            "/.rt/fn/2018-06-01/runtime/invocation/req-1/response|{\"batchItemFailures\":[]}"
        );
    }
}
