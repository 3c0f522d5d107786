//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every error the API returns is one of these: `type` names the class of problem (a URN under
//! `urn:robofleet:problem:`, listed in openapi/fleet-api.yaml), `title` is that class in words,
//! `status` repeats the HTTP status, `detail` says what was wrong with this request, and
//! `instance` is the request's path.

use lambda_http::Body;
use lambda_http::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// One problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// The last part of the type URN (`not-found`, `invalid-parameter`, ...).
    pub kind: &'static str,
    /// The class in words.
    pub title: &'static str,
    /// What was wrong with this request.
    pub detail: String,
    /// Seconds to wait before trying again (429 and 503).
    pub retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        Problem {
            status,
            kind,
            title,
            detail,
            retry_after: None,
        }
    }

    /// 404: no such robot, job or route.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            detail.into(),
        )
    }

    /// 400: a path or query parameter is malformed.
    pub fn invalid_parameter(name: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
            "Invalid parameter",
            format!("{name}: {problem}"),
        )
    }

    /// 400: the body is not the JSON the route takes.
    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-body",
            "Invalid request body",
            detail.into(),
        )
    }

    /// 415: the body is not `application/json`.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("the body must be application/json, not {got:?}"),
        )
    }

    /// 422: a command that does not pass schemas/job-command.schema.json.
    pub fn invalid_command(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-command",
            "Invalid command",
            detail.into(),
        )
    }

    /// 422: a job document that cannot run (`POST /jobs`): the field and the problem.
    pub fn invalid_job(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-job",
            "Invalid job",
            detail.into(),
        )
    }

    /// 409: the resource is not in a state that allows this.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail.into())
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("{method} is not a method of {path}"),
        )
    }

    /// 429: a downstream throttled us; try again later.
    pub fn throttled(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many requests",
            detail.into(),
        );
        p.retry_after = Some(1);
        p
    }

    /// 503: a store the answer needs is unavailable; try again later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail.into(),
        );
        p.retry_after = Some(5);
        p
    }

    /// 500: the stack is not set up for this (a grant or a resource is missing); retrying will
    /// not help until it is fixed.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail.into(),
        )
    }

    /// The problem document.
    pub fn to_json(&self, instance: &str) -> Value {
        json!({
            "type": format!("urn:robofleet:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": instance,
        })
    }

    /// The HTTP response.
    pub fn response(&self, instance: &str) -> Response<Body> {
        let mut response = Response::new(Body::Text(self.to_json(instance).to_string()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_problem_is_declared_in_the_openapi_document() {
        let doc = include_str!("../../../openapi/fleet-api.yaml");
        for p in [
            Problem::not_found(""),
            Problem::invalid_parameter("", ""),
            Problem::invalid_body(""),
            Problem::unsupported_media_type(""),
            Problem::invalid_command(""),
            Problem::invalid_job(""),
            Problem::conflict(""),
            Problem::method_not_allowed("", ""),
            Problem::throttled(""),
            Problem::unavailable(""),
            Problem::internal(""),
        ] {
            let urn = format!("- urn:robofleet:problem:{}\n", p.kind);
            assert!(doc.contains(&urn), "{urn} is not in openapi/fleet-api.yaml");
        }
    }

    #[test]
    fn a_problem_is_an_rfc_9457_document_with_retry_after_when_it_helps() {
        let r = Problem::unavailable("the robots index did not answer").response("/robots/rb-1");
        assert_eq!(r.status(), 503);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let Body::Text(text) = r.body() else {
            panic!("a text body")
        };
        let doc: Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc["type"], "urn:robofleet:problem:unavailable");
        assert_eq!(doc["status"], 503);
        assert_eq!(doc["instance"], "/robots/rb-1");
        assert_eq!(doc["detail"], "the robots index did not answer");
        let r = Problem::invalid_parameter("limit", "must be 1 to 100").response("/x");
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
