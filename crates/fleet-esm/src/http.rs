//! [`HttpInvoker`]: invokes a function through the Lambda Invoke API that `cargo lambda watch`
//! serves (`POST {base}/2015-03-31/functions/{name}/invocations`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::InvokeError;
use crate::ports::{InvokeOutcome, Invoker};

/// Invokes over HTTP. A function error comes back as a 200 with `X-Amz-Function-Error` (the
/// Lambda Invoke API) or as a 500 with Lambda's error document (`cargo lambda watch`); a
/// transport error or any other status means the function was not reached.
#[derive(Debug, Clone)]
pub struct HttpInvoker {
    client: reqwest::Client,
    base: String,
}

impl HttpInvoker {
    /// Invokes through the Invoke API at `base` (e.g. `http://127.0.0.1:9000`). No timeout:
    /// `cargo lambda watch` compiles the function on its first invocation.
    pub fn new(base: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15 * 60))
            .build()
            .unwrap_or_default();
        Self::with_client(client, base)
    }

    /// Same, with a client of the caller's.
    pub fn with_client(client: reqwest::Client, base: &str) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The invocation URL of `function`.
    pub fn url(&self, function: &str) -> String {
        format!("{}/2015-03-31/functions/{function}/invocations", self.base)
    }
}

impl Invoker for HttpInvoker {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Value,
    ) -> BoxFuture<'a, Result<InvokeOutcome, InvokeError>> {
        Box::pin(async move {
            let http = |detail: String| InvokeError::Http {
                function: function.to_owned(),
                detail,
            };
            let resp = self
                .client
                .post(self.url(function))
                .json(&event)
                .send()
                .await
                .map_err(|e| {
                    http(format!(
                        "{e}; is `cargo lambda watch` running at {}?",
                        self.base
                    ))
                })?;
            let status = resp.status();
            let function_error = resp
                .headers()
                .get("X-Amz-Function-Error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .bytes()
                .await
                .map_err(|e| http(format!("reading the response: {e}")))?;
            let payload = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
            };
            if status.is_success() || function_error.is_some() {
                return Ok(InvokeOutcome {
                    payload,
                    function_error,
                });
            }
            // `cargo lambda watch` answers a function error (the runtime's /error call) with a
            // 500 carrying Lambda's error document and no X-Amz-Function-Error header: the
            // function ran and failed. Any other status (404 missing function, 5xx without an
            // error document) means it was not reached.
            let error_document =
                payload.get("errorMessage").is_some() || payload.get("errorType").is_some();
            if status.is_server_error() && error_document {
                let function_error = Some("Unhandled".to_owned());
                return Ok(InvokeOutcome {
                    payload,
                    function_error,
                });
            }
            let text = String::from_utf8_lossy(&body);
            Err(http(format!(
                "status {status}: {}",
                text.chars().take(500).collect::<String>()
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use serde_json::json;

    use super::*;

    async fn fake_watch() -> String {
        async fn invoke(
            axum::extract::Path(name): axum::extract::Path<String>,
            axum::Json(event): axum::Json<Value>,
        ) -> (StatusCode, HeaderMap, String) {
            let mut headers = HeaderMap::new();
            match name.as_str() {
                "echo" => (StatusCode::OK, headers, json!({"got": event}).to_string()),
                "boom" => {
                    headers.insert(
                        "X-Amz-Function-Error",
                        "Unhandled".parse().unwrap_or_else(|_| unreachable!()),
                    );
                    (
                        StatusCode::OK,
                        headers,
                        json!({"errorMessage": "boom"}).to_string(),
                    )
                }
                "watch-error" => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    headers,
                    json!({"errorType": "alloc::boxed::Box<dyn Error>", "errorMessage": "boom"})
                        .to_string(),
                ),
                "crashed" => (StatusCode::BAD_GATEWAY, headers, "upstream gone".to_owned()),
                _ => (
                    StatusCode::NOT_FOUND,
                    headers,
                    "no such function".to_owned(),
                ),
            }
        }
        let app = Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn posts_the_event_and_tells_function_errors_from_unreachable_functions() {
        let base = fake_watch().await;
        let inv = HttpInvoker::new(&format!("{base}/"));
        let ok = inv.invoke("echo", json!({"Records": []})).await;
        assert!(
            matches!(&ok, Ok(o) if o.function_error.is_none() && o.payload == json!({"got": {"Records": []}})),
            "{ok:?}"
        );
        let failed = inv.invoke("boom", json!({})).await;
        assert!(
            matches!(&failed, Ok(o) if o.function_error.as_deref() == Some("Unhandled")),
            "{failed:?}"
        );
        let watch = inv.invoke("watch-error", json!({})).await;
        assert!(
            matches!(&watch, Ok(o) if o.function_error.as_deref() == Some("Unhandled") && o.payload["errorMessage"] == "boom"),
            "cargo lambda watch's 500 with an error document is a function error: {watch:?}"
        );
        let missing = inv.invoke("nope", json!({})).await;
        assert!(matches!(missing, Err(InvokeError::Http { .. })));
        let crashed = inv.invoke("crashed", json!({})).await;
        assert!(matches!(crashed, Err(InvokeError::Http { .. })));
    }

    #[tokio::test]
    async fn an_unreachable_watcher_is_an_http_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
        };
        let inv = HttpInvoker::new(&format!("http://127.0.0.1:{port}"));
        let r = inv.invoke("fn", json!({})).await;
        assert!(matches!(r, Err(InvokeError::Http { .. })), "{r:?}");
    }
}
