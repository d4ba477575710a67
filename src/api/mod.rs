//! The one HTTP client: ureq + rustls (ring) + the bundled Mozilla roots.
//!
//! It owns timeouts, retries with backoff and jitter, `Retry-After`, proxies
//! from the environment, extra CA certificates, the refusal to send
//! credentials over plain HTTP off loopback, request tracing with the
//! credential masked, and the mapping of platform errors to CLI errors.
//! It never prints: traces and retry notices go to an observer callback.

pub(crate) mod batches;
#[cfg(test)]
mod client_tests;
mod endpoint;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod net;
pub(crate) mod oidc;
pub(crate) mod paths;
mod probe;
pub(crate) mod projects;
pub(crate) mod pull;
pub(crate) mod types;
pub(crate) mod upload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::secret::Secret;

pub(crate) use endpoint::{Endpoint, Scheme};
pub(crate) use net::NetOptions;
pub(crate) use probe::{Probe, ProbeFailure};

/// What the client tells the outside world while it works.
#[derive(Debug)]
pub(crate) enum Event {
    /// A `--verbose` trace line (credentials already masked).
    Trace(String),
    /// A retry about to happen: always worth a line on stderr in CI logs.
    Retry(String),
}

pub(crate) type Observer = Arc<dyn Fn(Event) + Send + Sync>;

/// Trades a stored login's refresh token for a fresh access token; with
/// `true`, only when the token in store expires soon (else `None`).
pub(crate) type Refresh = Box<dyn Fn(bool) -> Result<Option<Secret>> + Send + Sync>;

/// How a call may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Safe to repeat: reads, polls, and uploads carrying an Idempotency-Key.
    Idempotent,
    /// Repeating could act twice (creating a key): retried only when the
    /// platform said it did nothing (429, 503).
    Once,
}

/// The credential sent as `Authorization: Bearer`, and what to call it in errors.
#[derive(Clone, Debug)]
pub(crate) struct Auth {
    pub(crate) secret: Secret,
    /// `environment variable FLUXLOOP_API_KEY`, for error messages.
    pub(crate) origin: String,
    pub(crate) is_api_key: bool,
}

/// A response with a success status.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The parsed `Retry-After` header, if any.
    pub(crate) retry_after: Option<Duration>,
    /// The `Location` header of a redirect.
    pub(crate) location: Option<String>,
    /// The `ETag` of the answer.
    pub(crate) etag: Option<String>,
}

/// What [`Client::post_to_file`] received.
pub(crate) struct Spooled {
    /// 304: the copy named by the request's ETag is current.
    pub(crate) not_modified: bool,
    /// The answer's `ETag`, to make the next request conditional.
    pub(crate) etag: Option<String>,
}

/// The platform client.
pub(crate) struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    /// `endpoint` as the prefix of every request URL.
    base: String,
    auth: Option<Auth>,
    /// A refreshed access token, replacing `auth`'s once the platform said
    /// it expired.
    refreshed: std::sync::Mutex<Option<Secret>>,
    refresh: Option<Refresh>,
    opts: NetOptions,
    observer: Observer,
}

/// The biggest response we read into memory (a pull of 100k inputs is ~60 MiB).
const MAX_BODY: u64 = 512 * 1024 * 1024;

impl Client {
    /// Builds a client for `endpoint`, refusing plain `http://` off
    /// loopback. Every request this CLI makes carries a secret, in the
    /// `Authorization` header or in the body (a refresh token, a device
    /// code), so the refusal covers anonymous clients too: this is the one
    /// place that decides whether a secret may go to a URL.
    pub(crate) fn new(
        endpoint: &Endpoint,
        auth: Option<Auth>,
        opts: NetOptions,
        observer: Observer,
    ) -> Result<Client> {
        if !endpoint.may_carry_secrets() {
            return Err(Error::InsecureEndpoint {
                url: endpoint.to_string(),
            });
        }
        let agent = net::build_agent(endpoint, &opts, &observer)?;
        Ok(Client {
            agent,
            endpoint: endpoint.clone(),
            base: endpoint.to_string(),
            auth,
            refreshed: std::sync::Mutex::new(None),
            refresh: None,
            opts,
            observer,
        })
    }

    /// Lets the client refresh a login once when the platform answers
    /// `token_expired`, then repeat the request: a token that expires during
    /// a long `test` must not cost the upload.
    pub(crate) fn with_refresh(mut self, refresh: Refresh) -> Client {
        self.refresh = Some(refresh);
        self
    }

    /// Refreshes a stored login that expires soon, before a stage that
    /// needs the platform (a long `test` run ends in an upload).
    pub(crate) fn refresh_ahead(&self) -> Result<()> {
        if let Some(refresh) = &self.refresh {
            if let Some(fresh) = refresh(true)? {
                self.use_token(fresh);
            }
        }
        Ok(())
    }

    fn use_token(&self, token: Secret) {
        if let Ok(mut slot) = self.refreshed.lock() {
            *slot = Some(token);
        }
    }

    /// The bearer token sent now.
    fn bearer(&self) -> Option<Secret> {
        let fresh = self.refreshed.lock().ok().and_then(|g| g.clone());
        fresh.or_else(|| self.auth.as_ref().map(|a| a.secret.clone()))
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(crate) fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// `GET path` and decode JSON.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self.send("GET", path, None, &[], Retry::Idempotent)?;
        self.decode("GET", path, &resp)
    }

    /// `POST path` with a JSON body and decode JSON.
    pub(crate) fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: Retry,
    ) -> Result<T> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::config(format!("cannot encode request: {e}"), None))?;
        let resp = self.send("POST", path, Some(&bytes), &[], retry)?;
        self.decode("POST", path, &resp)
    }

    /// `POST path` with an `Idempotency-Key`, reused on every retry so the
    /// platform applies the request at most once.
    pub(crate) fn post_idempotent<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &[u8],
        idempotency_key: &str,
    ) -> Result<T> {
        let resp = self.send(
            "POST",
            path,
            Some(body),
            &[("Idempotency-Key", idempotency_key)],
            Retry::Idempotent,
        )?;
        self.decode("POST", path, &resp)
    }

    /// `POST path` with a JSON body (a retried read such as a pull), the
    /// successful response's body streamed into `spool` rather than memory:
    /// a pull of 100,000 inputs stays a file until it is parsed item by item.
    /// `spool` is rewound and truncated before each attempt.
    /// With `etag`, the request is conditional (`If-None-Match`): a 304
    /// comes back as such, with nothing spooled.
    pub(crate) fn post_to_file<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        spool: &std::fs::File,
        etag: Option<&str>,
    ) -> Result<Spooled> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::config(format!("cannot encode request: {e}"), None))?;
        let headers: Vec<(&'static str, &str)> =
            etag.map(|e| ("If-None-Match", e)).into_iter().collect();
        let resp = self.send_inner(
            "POST",
            path,
            Some(&bytes),
            &headers,
            Retry::Idempotent,
            Some(spool),
        )?;
        Ok(Spooled {
            not_modified: resp.status == 304,
            etag: resp.etag,
        })
    }

    fn decode<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        resp: &Response,
    ) -> Result<T> {
        serde_json::from_slice(&resp.body).map_err(|e| Error::Network {
            url: format!("{}{path}", self.base),
            detail: format!(
                "{method} answered HTTP {} with a body that is not the expected JSON ({e}); is the endpoint a FluxLoop platform?",
                resp.status
            ),
        })
    }

    fn trace(&self, line: String) {
        (self.observer)(Event::Trace(line));
    }

    /// Sends with retries; returns a 2xx response or the mapped error.
    pub(crate) fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&'static str, &str)],
        retry: Retry,
    ) -> Result<Response> {
        self.send_inner(method, path, body, headers, retry, None)
    }

    fn send_inner(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&'static str, &str)],
        retry: Retry,
        spool: Option<&std::fs::File>,
    ) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let started = Instant::now();
        let max_attempts = self.opts.retries + 1;
        let mut attempt = 1;
        let mut may_refresh = self.refresh.is_some();
        loop {
            let outcome = self.attempt(method, &url, body, headers, spool);
            let (retryable, wait_hint, failure) =
                match self.judge(outcome, method, &url, path, headers, retry) {
                    Judged::Done(result) => return result,
                    Judged::Failed {
                        retryable,
                        wait_hint,
                        failure,
                    } => (retryable, wait_hint, failure),
                };
            if let (Error::TokenExpired { .. }, true) = (&failure, may_refresh) {
                may_refresh = false;
                if let Some(refresh) = &self.refresh {
                    if let Some(fresh) = refresh(false)? {
                        self.use_token(fresh);
                    }
                    self.trace(
                        "* the access token expired; refreshed the login, repeating the request"
                            .into(),
                    );
                    continue;
                }
            }
            if !retryable || attempt >= max_attempts {
                return Err(self.final_error(failure, attempt));
            }
            let backoff = wait_hint.unwrap_or_else(|| backoff(attempt, self.opts.backoff_base));
            let elapsed = started.elapsed();
            if elapsed + backoff > self.opts.retry_budget {
                return Err(self.final_error(failure, attempt));
            }
            (self.observer)(Event::Retry(format!(
                "{method} {path}: {failure}; retrying in {:.1}s (attempt {} of {max_attempts})",
                backoff.as_secs_f64(),
                attempt + 1
            )));
            std::thread::sleep(backoff);
            attempt += 1;
        }
    }

    /// What one attempt's outcome means: an answer to return, or a failure
    /// that may be retried.
    fn judge(
        &self,
        outcome: std::result::Result<Response, AttemptError>,
        method: &'static str,
        url: &str,
        path: &str,
        headers: &[(&'static str, &str)],
        retry: Retry,
    ) -> Judged {
        match outcome {
            Ok(resp) if (200..300).contains(&resp.status) => Judged::Done(Ok(resp)),
            // The answer to an If-None-Match: the caller's copy is current.
            Ok(resp)
                if resp.status == 304 && headers.iter().any(|(n, _)| *n == "If-None-Match") =>
            {
                Judged::Done(Ok(resp))
            }
            Ok(resp) if (300..400).contains(&resp.status) => Judged::Done(Err(Error::Redirect {
                method,
                url: url.to_string(),
                status: resp.status,
                location: resp
                    .location
                    .as_deref()
                    .map(|l| self.scrub(l))
                    .unwrap_or_else(|| "nowhere (no Location header)".into()),
            })),
            Ok(resp) => {
                let status = resp.status;
                let retryable = match retry {
                    Retry::Idempotent => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
                    Retry::Once => matches!(status, 429 | 503),
                };
                Judged::Failed {
                    retryable,
                    wait_hint: resp.retry_after,
                    failure: self.map_status(method, url, path, status, &resp.body),
                }
            }
            Err(AttemptError {
                detail,
                sent,
                permanent,
            }) => Judged::Failed {
                retryable: !permanent && (retry == Retry::Idempotent || !sent),
                wait_hint: None,
                failure: Error::Network {
                    url: url.to_string(),
                    detail,
                },
            },
        }
    }

    fn final_error(&self, failure: Error, attempts: u32) -> Error {
        match failure {
            Error::Network { url, detail } if attempts > 1 => Error::Network {
                url,
                detail: format!("{detail} (after {attempts} attempts)"),
            },
            other => other,
        }
    }

    fn attempt(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&'static str, &str)],
        spool: Option<&std::fs::File>,
    ) -> std::result::Result<Response, AttemptError> {
        let start = Instant::now();
        self.trace(format!("> {method} {url}"));
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/json");
        if let Some(secret) = self.bearer() {
            self.trace(format!("> authorization: Bearer {}", secret.masked()));
            builder = builder.header("Authorization", format!("Bearer {}", secret.expose()));
        }
        for (name, value) in headers {
            self.trace(format!("> {}: {value}", name.to_ascii_lowercase()));
            builder = builder.header(*name, *value);
        }
        let result = match body {
            Some(bytes) => {
                self.trace(format!("> content-length: {}", bytes.len()));
                let req = builder
                    .header("Content-Type", "application/json")
                    .body(bytes)
                    .map_err(|e| AttemptError::unsent(e.to_string()))?;
                self.agent.run(req)
            }
            None => {
                let req = builder
                    .body(())
                    .map_err(|e| AttemptError::unsent(e.to_string()))?;
                self.agent.run(req)
            }
        };
        let mut resp = result.map_err(|e| {
            let detail = net::describe_error(&e);
            self.trace(format!("< {detail} ({} ms)", start.elapsed().as_millis()));
            AttemptError {
                sent: net::was_sent(&e),
                permanent: net::is_tls_failure(&e),
                detail,
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let location = header("location");
        let etag = header("etag");
        let (body, spooled) = read_body(&mut resp, status, spool)?;
        self.trace(format!(
            "< {status} ({} ms, {spooled} bytes)",
            start.elapsed().as_millis(),
        ));
        Ok(Response {
            status,
            body,
            retry_after,
            location,
            etag,
        })
    }

    /// Maps a non-2xx status and the platform's error body to a CLI error.
    fn map_status(
        &self,
        method: &'static str,
        url: &str,
        path: &str,
        status: u16,
        body: &[u8],
    ) -> Error {
        let (code, message) = types::parse_error_body(body);
        let code = code.map(|c| self.scrub(&c));
        let message = self.scrub(&message);
        let origin = self
            .auth
            .as_ref()
            .map(|a| a.origin.clone())
            .unwrap_or_else(|| "no credential".into());
        let is_key = self.auth.as_ref().is_some_and(|a| a.is_api_key);
        match (status, code.as_deref()) {
            (401, Some("token_expired")) => Error::TokenExpired {
                refreshable: !is_key,
                detail: if message.is_empty() {
                    "the platform rejected the access token as expired".into()
                } else {
                    message
                },
            },
            (401, Some("key_revoked")) => Error::KeyRevoked { origin },
            (401, Some("oidc_rejected")) => {
                let (reason, claims) = types::oidc_rejection(body);
                Error::OidcRejected {
                    reason: self.scrub(&reason),
                    message,
                    claims: claims
                        .into_iter()
                        .map(|(name, value)| (name, self.scrub(&value)))
                        .collect(),
                }
            }
            (401, _) => Error::InvalidCredential {
                is_key,
                origin,
                detail: if message.is_empty() {
                    "the platform does not accept this credential".into()
                } else {
                    message
                },
            },
            (403, _) => Error::PermissionDenied {
                have: None,
                need: types::needed_scope(path).to_string(),
                detail: message,
            },
            (404, _) if code.as_deref() == Some("not_found") && !message.is_empty() => {
                Error::NotFound {
                    what: message.trim_end_matches(" not found").to_string(),
                    hint: None,
                }
            }
            _ => Error::Api {
                method,
                url: url.to_string(),
                status,
                code,
                message: if message.is_empty() {
                    // Not the platform's error shape: a proxy page, or a
                    // server echoing the request, Authorization header and all.
                    self.scrub(&String::from_utf8_lossy(body))
                } else {
                    message
                },
            },
        }
    }
}

impl Client {
    /// Server text made fit to print: control characters gone, cut short,
    /// and any credential in it masked (ours, or anything shaped like one).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let fresh = self.bearer();
        let own: Vec<&Secret> = self
            .auth
            .iter()
            .map(|a| &a.secret)
            .chain(fresh.as_ref())
            .collect();
        crate::secret::scrub(text, &own, 300)
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters pass).
pub(crate) fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `Retry-After`: delta-seconds or an HTTP date; capped so a hostile value
/// cannot park a CI job.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(120);
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO).min(CAP))
}

/// Exponential backoff with full jitter: uniform in [base·2^(n-1)/2, base·2^(n-1)], capped at 30 s.
fn backoff(attempt: u32, base: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(10));
    let cap = exp.min(Duration::from_secs(30));
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    cap.mul_f64(0.5 + jitter / 2.0)
}

/// What an attempt came to (see `Client::judge`).
enum Judged {
    Done(Result<Response>),
    Failed {
        retryable: bool,
        wait_hint: Option<Duration>,
        failure: Error,
    },
}

/// Reads a response's body: a 2xx into `spool` when there is one (its
/// length is returned), else into memory; at most `MAX_BODY` either way.
fn read_body(
    resp: &mut ureq::http::Response<ureq::Body>,
    status: u16,
    spool: Option<&std::fs::File>,
) -> std::result::Result<(Vec<u8>, u64), AttemptError> {
    let read_failed = |detail: String| AttemptError {
        sent: true,
        permanent: false,
        detail: format!("reading the response failed: {detail}"),
    };
    match spool {
        Some(mut file) if (200..300).contains(&status) => {
            use std::io::{Seek, Write};
            let mut reader = resp.body_mut().with_config().limit(MAX_BODY).reader();
            let n = file
                .set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| {
                    let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut file);
                    let n = std::io::copy(&mut reader, &mut w)?;
                    w.flush()?;
                    Ok(n)
                })
                .map_err(|e| read_failed(e.to_string()))?;
            Ok((Vec::new(), n))
        }
        _ => {
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|e| read_failed(net::describe_error(&e)))?;
            let n = body.len() as u64;
            Ok((body, n))
        }
    }
}

struct AttemptError {
    detail: String,
    /// Whether the request may have reached the server.
    sent: bool,
    /// A failure that repeating cannot fix (a certificate nobody trusts).
    permanent: bool,
}

impl AttemptError {
    /// The request could not even be built (a header value that is not
    /// valid): nothing was sent and repeating cannot help.
    fn unsent(detail: String) -> Self {
        AttemptError {
            detail,
            sent: false,
            permanent: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("100000"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let base = Duration::from_millis(100);
        for _ in 0..50 {
            let b1 = backoff(1, base);
            assert!(b1 >= Duration::from_millis(50) && b1 <= base, "{b1:?}");
            let b3 = backoff(3, base);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            assert!(backoff(30, base) <= Duration::from_secs(30));
        }
    }
}
