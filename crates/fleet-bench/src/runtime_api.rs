//! A local Lambda Runtime API (the interface a custom runtime polls), enough to drive one
//! function process: `GET /runtime/invocation/next`, `POST …/{id}/response`, `POST …/{id}/error`,
//! `POST /runtime/init/error`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot};

/// What the function answered.
#[derive(Debug)]
pub enum Answer {
    /// `POST …/response`.
    Response(Value),
    /// `POST …/error` or `POST /runtime/init/error`.
    Error(Value),
}

struct Shared {
    queue: Mutex<mpsc::Receiver<(Value, oneshot::Sender<Answer>)>>,
    pending: Mutex<Option<(String, oneshot::Sender<Answer>)>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    timeout: Duration,
    counter: std::sync::atomic::AtomicU64,
}

/// The server: hand it events with [`RuntimeApi::invoke`].
pub struct RuntimeApi {
    /// `host:port` to put in `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    sender: mpsc::Sender<(Value, oneshot::Sender<Answer>)>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts the server on a free loopback port. `timeout` is the function's deadline per
    /// invocation.
    pub async fn start(timeout: Duration) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(receiver),
            pending: Mutex::new(None),
            first_poll: Mutex::new(None),
            init_error: Mutex::new(None),
            timeout,
            counter: Default::default(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            address,
            sender,
            shared,
        })
    }

    /// When the function first asked for work (its init is over then).
    pub async fn first_poll(&self) -> Option<Instant> {
        *self.shared.first_poll.lock().await
    }

    /// The init error the function reported, if any.
    pub async fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().await.clone()
    }

    /// Invokes the function with `event` and waits for its answer.
    pub async fn invoke(&self, event: Value) -> anyhow::Result<Answer> {
        let (tx, rx) = oneshot::channel();
        self.sender
            .send((event, tx))
            .await
            .map_err(|_| anyhow::anyhow!("runtime api stopped"))?;
        Ok(rx.await?)
    }
}

async fn next(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    {
        let mut first = s.first_poll.lock().await;
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }
    let Some((event, answer)) = s.queue.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let n = s.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("bench-{n:08}");
    *s.pending.lock().await = Some((id.clone(), answer));
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + s.timeout;
    let mut headers = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", id);
    put(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    (StatusCode::OK, headers, event.to_string())
}

async fn finish(s: &Shared, id: &str, answer: Answer) -> StatusCode {
    let mut pending = s.pending.lock().await;
    match pending.take() {
        Some((pid, tx)) if pid == id => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        other => {
            *pending = other;
            StatusCode::BAD_REQUEST
        }
    }
}

async fn response(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    finish(&s, &id, Answer::Response(v)).await
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: String) -> StatusCode {
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    finish(&s, &id, Answer::Error(v)).await
}

async fn init_error(State(s): State<Arc<Shared>>, body: String) -> StatusCode {
    *s.init_error.lock().await = Some(serde_json::from_str(&body).unwrap_or(Value::String(body)));
    StatusCode::ACCEPTED
}
