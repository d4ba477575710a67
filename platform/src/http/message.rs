//! The messages the routes see, independent of the HTTP crate: a [`Request`]
//! (built from hyper's, body included), a [`Response`] to send, and
//! [`ApiError`], every failure in the documented JSON shape
//! `{"error": {"code", "message"}}`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::guard::Csrf;

/// A failure answered as `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Extra response headers, e.g. `Allow` on 405.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Extra members of the `error` object (an OIDC refusal's `reason`
    /// and `claims`).
    pub(crate) details: serde_json::Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            headers: Vec::new(),
            details: serde_json::Map::new(),
        }
    }
    pub(crate) fn unauthenticated(message: &str) -> ApiError {
        ApiError::new(401, "unauthenticated", message.to_owned())
    }
    pub(crate) fn not_found(message: String) -> ApiError {
        ApiError::new(404, "not_found", message)
    }
    /// 400: the body is not the JSON it should be (syntax or types).
    pub(crate) fn invalid(message: String) -> ApiError {
        ApiError::new(400, "invalid_request", message)
    }
    /// 422: well-formed, but the values cannot be used.
    pub(crate) fn unprocessable(message: String) -> ApiError {
        ApiError::new(422, "invalid_request", message)
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> ApiError {
        ApiError::new(500, "internal_error", format!("database error: {e}"))
    }
}

/// A parsed request, body included.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path as sent, without the query.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// `scheme://host[:port]` as the client addressed us, one of the names the
    /// `Host` check allows (never the raw header).
    pub(crate) origin: String,
    /// The server's CSRF key, for pages with forms.
    pub(crate) csrf: Arc<Csrf>,
}

impl Request {
    /// First header of that name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First query parameter of that name.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as a JSON object into `T`; 400 `invalid_request` when it
    /// is not JSON, not an object, a known field has the wrong type, or a field
    /// is unknown (every body struct is `deny_unknown_fields`): a field a client
    /// misspells or adds would otherwise be dropped without anyone noticing.
    /// The message names the field and the ones expected.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        let text = if self.body.iter().all(u8::is_ascii_whitespace) {
            // An empty body reads as `{}`: `start` is documented with an empty
            // object and some clients send nothing at all.
            &b"{}"[..]
        } else {
            &self.body[..]
        };
        let value: Value = serde_json::from_slice(text)
            .map_err(|e| ApiError::invalid(format!("request body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::invalid(
                "request body must be a JSON object".to_owned(),
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
    }

    /// `scheme://host[:port]` as the client addressed us, for links we hand out.
    pub(crate) fn base_url(&self) -> String {
        self.origin.clone()
    }
}

/// A response ready to write.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Response {
    pub(crate) fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }
    /// An HTML answer, with the framing and content policy of every page.
    pub(crate) fn html(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            headers: crate::guard::page_headers(),
        }
    }
    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
    /// 304: the client's copy (named by `If-None-Match`) is current.
    pub(crate) fn not_modified(etag: String) -> Response {
        Response {
            status: 304,
            content_type: "application/json",
            body: Vec::new(),
            headers: vec![("etag", etag)],
        }
    }
    /// A stored response body replayed verbatim (idempotent upload).
    pub(crate) fn raw_json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }
    /// A status without a body (204).
    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: Vec::new(),
            headers: Vec::new(),
        }
    }
    pub(crate) fn error(e: ApiError) -> Response {
        let mut error = e.details;
        error.insert("code".to_owned(), json!(e.code));
        error.insert("message".to_owned(), json!(e.message));
        let mut r = Response::json(e.status, &json!({ "error": error }));
        r.headers = e.headers;
        r
    }
}
