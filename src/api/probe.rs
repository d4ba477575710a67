//! One request for `doctor`, never retried: the status and `Date` header
//! whatever the status, and on failure whether it was TLS that failed.

use super::{net, Client};
use crate::error::Error;

/// What the server answered.
pub(crate) struct Probe {
    pub(crate) status: u16,
    /// The raw `Date` header.
    pub(crate) date: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Why no answer came.
pub(crate) struct ProbeFailure {
    pub(crate) detail: String,
    pub(crate) tls: bool,
}

impl Client {
    /// `GET path` once, with the client's credential, proxy and trust.
    pub(crate) fn probe(&self, path: &str) -> Result<Probe, ProbeFailure> {
        let url = format!("{}{path}", self.base);
        self.trace(format!("> GET {url}"));
        let mut builder = ureq::http::Request::builder()
            .method("GET")
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(auth) = &self.auth {
            self.trace(format!("> authorization: Bearer {}", auth.secret.masked()));
            builder = builder.header("Authorization", format!("Bearer {}", auth.secret.expose()));
        }
        let req = builder.body(()).map_err(|e| ProbeFailure {
            detail: e.to_string(),
            tls: false,
        })?;
        let mut resp = self.agent.run(req).map_err(|e| ProbeFailure {
            detail: self.scrub(&net::describe_error(&e)),
            tls: net::is_tls_failure(&e),
        })?;
        let status = resp.status().as_u16();
        self.trace(format!("< {status}"));
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Ok(Probe { status, date, body })
    }

    /// The error a non-2xx answer to `GET path` maps to, as for any call.
    pub(crate) fn probe_error(&self, path: &str, status: u16, body: &[u8]) -> Error {
        let url = format!("{}{path}", self.base);
        self.map_status("GET", &url, path, status, body)
    }
}
