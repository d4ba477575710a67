//! Keyless CI (issue 19): a job trades the OIDC ID token its CI signed for a
//! short-lived access token of one project, under that project's trust
//! policy. No secret is stored anywhere to rotate or leak.
//!
//! `verify` reads and checks a token, `jwks` finds the issuer's keys,
//! `policy` owns the trust policies. This module runs an exchange in order
//! (algorithm, issuer, keys, signature, times, audience, conditions,
//! replay), issues `flx_oidc_` tokens, and authenticates them, counting each
//! exchange and each request as a use of the policy.

pub(crate) mod jwks;
pub(crate) mod policy;
mod verify;

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::KeyRecord;
use crate::http::ApiError;
use crate::store::State;
use crate::util::{new_id, now_ms, rfc3339, secret, sha256};
use policy::{check_issuer, normalize_issuer, IssuerProblem, TrustPolicy};

/// Prefix of the access tokens an exchange issues.
pub(crate) const TOKEN_PREFIX: &str = "flx_oidc_";
/// Random characters after the prefix.
const TOKEN_LEN: usize = 40;
/// The longest lifetime an issued token may have.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Issued tokens are kept this long after expiry, so they answer
/// `token_expired` rather than `unknown`; then they are dropped.
const EXPIRED_KEPT_MS: i64 = 24 * 3600 * 1000;

/// The claims a refusal may show: who the token says it is, never the token
/// or its signature.
const SHOWN_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "repository",
    "ref",
    "event_name",
    "environment",
    "project_path",
    "ref_type",
    "pipeline_source",
    "job_workflow_ref",
];

/// Why an exchange was refused (the wire's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Malformed,
    UnsupportedAlg,
    IssuerNotTrusted,
    IssuerNotHttps,
    DiscoveryFailed,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    AudienceMismatch,
    NoMatchingPolicy,
    Replayed,
    AmbiguousPolicy,
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlg => "unsupported_alg",
            Reason::IssuerNotTrusted => "issuer_not_trusted",
            Reason::IssuerNotHttps => "issuer_not_https",
            Reason::DiscoveryFailed => "discovery_failed",
            Reason::UnknownKid => "unknown_kid",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::NoMatchingPolicy => "no_matching_policy",
            Reason::Replayed => "replayed",
            Reason::AmbiguousPolicy => "ambiguous_policy",
        }
    }
}

/// A refused exchange: the reason, one line for people, and the presented
/// token's non-secret claims.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) reason: Reason,
    pub(crate) message: String,
    pub(crate) claims: Map<String, Value>,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, message: String) -> Rejection {
        Rejection {
            reason,
            message,
            claims: Map::new(),
        }
    }

    /// The 401 `oidc_rejected` answer.
    pub(crate) fn into_api_error(self) -> ApiError {
        let mut e = ApiError::new(401, "oidc_rejected", self.message);
        e.details
            .insert("reason".to_owned(), json!(self.reason.as_str()));
        e.details
            .insert("claims".to_owned(), Value::Object(self.claims));
        e
    }
}

/// An exchange that did not succeed: refused, or the server failed.
#[derive(Debug)]
pub(crate) enum Refusal {
    Rejected(Rejection),
    Failed(ApiError),
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Refusal {
        Refusal::Rejected(r)
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Refusal {
        Refusal::Failed(e.into())
    }
}

/// The OIDC part of the server state: the key cache and the settings.
pub(crate) struct Oidc {
    jwks: jwks::Jwks,
    token_ttl: Duration,
    platform_on_loopback: bool,
}

impl Oidc {
    /// `token_ttl` is capped at [`MAX_TOKEN_TTL`].
    pub(crate) fn new(token_ttl: Duration, jwks_min_refresh: Duration, on_loopback: bool) -> Oidc {
        Oidc {
            jwks: jwks::Jwks::new(jwks_min_refresh, on_loopback),
            token_ttl: token_ttl.min(MAX_TOKEN_TTL),
            platform_on_loopback: on_loopback,
        }
    }

    pub(crate) fn platform_on_loopback(&self) -> bool {
        self.platform_on_loopback
    }
}

/// What a successful exchange hands out.
#[derive(Debug)]
pub(crate) struct Grant {
    access_token: String,
    expires_ms: i64,
    ttl_secs: u64,
    scope: String,
    project_id: String,
    pub(crate) policy_id: String,
    pub(crate) matched: Map<String, Value>,
}

impl Grant {
    /// The 200 body of the exchange.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_at": rfc3339(self.expires_ms),
            "expires_in": self.ttl_secs,
            "scope": self.scope,
            "project_id": self.project_id,
            "policy_id": self.policy_id,
            "matched": self.matched,
        })
    }
}

/// Who an issued token was granted to (shown by `/api/api-keys/self`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) subject: String,
    pub(crate) policy_id: String,
}

/// Trades `jwt` for an access token. A refusal carries the token's
/// non-secret claims (none when it could not be decoded).
pub(crate) fn exchange(
    state: &State,
    jwt: &str,
    project_id: Option<&str>,
) -> Result<Grant, Refusal> {
    let token = verify::parse(jwt.trim())?;
    admit(state, &token, project_id).map_err(|refusal| match refusal {
        Refusal::Rejected(mut r) => {
            r.claims = shown_claims(&token.claims);
            Refusal::Rejected(r)
        }
        failed => failed,
    })
}

/// The claims of [`SHOWN_CLAIMS`] that `claims` has.
pub(crate) fn shown_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    SHOWN_CLAIMS
        .iter()
        .filter_map(|name| claims.get(*name).map(|v| ((*name).to_owned(), v.clone())))
        .collect()
}

/// Every check, in order; the key fetch happens without the database lock.
fn admit(
    state: &State,
    token: &verify::Token<'_>,
    project_id: Option<&str>,
) -> Result<Grant, Refusal> {
    let alg = token.algorithm()?;
    let claim = |name: &str| token.claims.get(name).and_then(Value::as_str);
    let (Some(iss), Some(sub)) = (claim("iss"), claim("sub")) else {
        let why = "the token has no `iss` or no `sub`".to_owned();
        return Err(Rejection::new(Reason::Malformed, why).into());
    };
    let issuer = normalize_issuer(iss);
    match check_issuer(issuer, state.oidc.platform_on_loopback) {
        Ok(()) => {}
        Err(IssuerProblem::Invalid(why)) => {
            return Err(Rejection::new(Reason::IssuerNotTrusted, why).into())
        }
        Err(IssuerProblem::NotHttps) => {
            let why = format!("the issuer {issuer} is not https; plain http is trusted only for a loopback issuer of a platform on loopback");
            return Err(Rejection::new(Reason::IssuerNotHttps, why).into());
        }
    }
    let candidates = policy::for_issuer(&state.db(), issuer, project_id)?;
    if candidates.is_empty() {
        let of = project_id.map_or(String::new(), |p| format!(" of project {p}"));
        let why = format!("no trust policy{of} trusts the issuer {issuer}");
        return Err(Rejection::new(Reason::IssuerNotTrusted, why).into());
    }
    let kty = if alg == jsonwebtoken::Algorithm::RS256 {
        "RSA"
    } else {
        "EC"
    };
    let jwk = state
        .oidc
        .jwks
        .key(issuer, token.kid.as_deref(), kty)
        .map_err(|e| match e {
            jwks::KeyError::Discovery(why) => Rejection::new(
                Reason::DiscoveryFailed,
                format!("cannot read the keys of the issuer {issuer}: {why}"),
            ),
            jwks::KeyError::UnknownKid => Rejection::new(
                Reason::UnknownKid,
                format!(
                    "the issuer {issuer} publishes no key with kid {}",
                    token.kid.as_deref().unwrap_or("(none given)")
                ),
            ),
        })?;
    token.check_signature(alg, &jwk)?;
    token.check_times(now_ms() / 1000)?;
    let chosen = choose(&candidates, token, project_id, issuer, sub)?;
    let matched = matched_claims(chosen, token, issuer, sub);
    commit(state, chosen, token, sub, matched)
}

/// The first policy (creation order) whose audience and conditions match;
/// refused when policies of several projects match and none was named.
fn choose<'p>(
    candidates: &'p [TrustPolicy],
    token: &verify::Token<'_>,
    project_id: Option<&str>,
    issuer: &str,
    sub: &str,
) -> Result<&'p TrustPolicy, Rejection> {
    let heard: Vec<&TrustPolicy> = candidates
        .iter()
        .filter(|p| token.has_audience(&p.audience))
        .collect();
    if heard.is_empty() {
        let mut wanted: Vec<&str> = candidates.iter().map(|p| p.audience.as_str()).collect();
        wanted.dedup();
        let aud = token
            .claims
            .get("aud")
            .map_or("none".to_owned(), Value::to_string);
        let why = format!("the token's audience {aud} is not {}", wanted.join(" or "));
        return Err(Rejection::new(Reason::AudienceMismatch, why));
    }
    let matching: Vec<&TrustPolicy> = heard
        .into_iter()
        .filter(|p| p.matches(&token.claims))
        .collect();
    let Some(first) = matching.first() else {
        let why = format!("the token (sub {sub}) matches no trust policy of the issuer {issuer}");
        return Err(Rejection::new(Reason::NoMatchingPolicy, why));
    };
    let mut projects: Vec<&str> = matching.iter().map(|p| p.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    if project_id.is_none() && projects.len() > 1 {
        let why = format!(
            "the token matches trust policies of several projects ({}); send project_id",
            projects.join(", ")
        );
        return Err(Rejection::new(Reason::AmbiguousPolicy, why));
    }
    Ok(first)
}

/// `iss`, `sub`, the audience heard, and every claim the policy named.
fn matched_claims(
    policy: &TrustPolicy,
    token: &verify::Token<'_>,
    issuer: &str,
    sub: &str,
) -> Map<String, Value> {
    let mut matched = Map::new();
    matched.insert("iss".to_owned(), json!(issuer));
    matched.insert("sub".to_owned(), json!(sub));
    matched.insert("aud".to_owned(), json!(policy.audience));
    for name in policy.conditions.keys() {
        if let Some(text) = policy::claim_text(token.claims.get(name)) {
            matched.insert(name.clone(), json!(text));
        }
    }
    matched
}

/// The replay check, the token and the accounting, in one transaction: a
/// token exchanged twice at the same moment still wins only once.
fn commit(
    state: &State,
    policy: &TrustPolicy,
    token: &verify::Token<'_>,
    sub: &str,
    matched: Map<String, Value>,
) -> Result<Grant, Refusal> {
    let now = now_ms();
    // Kept until the token could no longer pass the expiry check at all.
    let exp_ms = token
        .seconds("exp")
        .unwrap_or(now / 1000)
        .saturating_add(verify::LEEWAY_SECS)
        .saturating_mul(1000);
    let replay_key = match token.claims.get("jti") {
        Some(Value::String(jti)) => format!("jti:{jti}"),
        Some(other) if !other.is_null() => format!("jti:{other}"),
        _ => format!(
            "sha256:{:x}",
            Sha256::digest(token.signed_part().as_bytes())
        ),
    };
    let conn = state.db();
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM oidc_replay WHERE expires_ms < ?1", [now])?;
    let fresh = tx.execute(
        "INSERT OR IGNORE INTO oidc_replay (issuer, key, expires_ms) VALUES (?1, ?2, ?3)",
        params![policy.issuer, replay_key, exp_ms],
    )?;
    if fresh == 0 {
        let shown = replay_key
            .strip_prefix("jti:")
            .map_or(String::new(), |j| format!(" (jti {j})"));
        let why = format!("this token was already exchanged{shown}; request a fresh one");
        return Err(Rejection::new(Reason::Replayed, why).into());
    }
    let ttl_ms = i64::try_from(state.oidc.token_ttl.as_millis()).unwrap_or(i64::MAX);
    let grant = Grant {
        access_token: secret(TOKEN_PREFIX, TOKEN_LEN),
        expires_ms: now.saturating_add(ttl_ms),
        ttl_secs: state.oidc.token_ttl.as_secs(),
        scope: policy::scope_of(policy).as_str().to_owned(),
        project_id: policy.project_id.clone(),
        policy_id: policy.id.clone(),
        matched,
    };
    tx.execute(
        "DELETE FROM oidc_tokens WHERE expires_ms < ?1",
        [now.saturating_sub(EXPIRED_KEPT_MS)],
    )?;
    tx.execute(
        "INSERT INTO oidc_tokens (token_hash, id, policy_id, project_id, scope, subject, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![sha256(&grant.access_token), new_id(), policy.id, policy.project_id, grant.scope, sub, now, grant.expires_ms],
    )?;
    tx.execute(
        "INSERT INTO oidc_exchanges (policy_id, at_ms, subject, matched) VALUES (?1, ?2, ?3, ?4)",
        params![
            policy.id,
            now,
            sub,
            Value::Object(grant.matched.clone()).to_string()
        ],
    )?;
    policy::count_use(&tx, &policy.id, now)?;
    tx.commit()?;
    Ok(grant)
}

/// The key record behind an issued token, counted as a use of the token and
/// of its policy; 401 when unknown, expired, or its policy was removed.
pub(crate) fn authenticate(
    conn: &Connection,
    token: &str,
    now: i64,
) -> Result<KeyRecord, ApiError> {
    let hash = sha256(token);
    let row = conn
        .prepare_cached(
            "SELECT t.token_hash, t.id, t.policy_id, t.project_id, t.scope, t.subject, t.created_ms,
                    t.expires_ms, t.usage_count, p.name, p.removed_ms
             FROM oidc_tokens t JOIN trust_policies p ON p.id = t.policy_id
             WHERE t.token_hash = ?1",
        )?
        .query_row([&hash], |r| {
            let stored: Vec<u8> = r.get(0)?;
            let scope: String = r.get(4)?;
            let record = KeyRecord {
                id: r.get(1)?,
                project_id: r.get(3)?,
                name: r.get(9)?,
                key_type: "oidc".to_owned(),
                scope: crate::auth::Scope::parse(&scope)
                    .filter(|s| *s != crate::auth::Scope::Admin)
                    .unwrap_or(crate::auth::Scope::Read),
                created_ms: r.get(6)?,
                expires_ms: Some(r.get(7)?),
                last_used_ms: Some(now),
                usage_count: r.get::<_, i64>(8)? + 1,
                revoked_ms: None,
                oidc: Some(Identity {
                    subject: r.get(5)?,
                    policy_id: r.get(2)?,
                }),
            };
            Ok((stored, record, r.get::<_, Option<i64>>(10)?))
        })
        .optional()?;
    let Some((_, record, removed)) = row.filter(|(s, _, _)| bool::from(s.ct_eq(&hash))) else {
        return Err(ApiError::unauthenticated("unknown OIDC access token"));
    };
    if removed.is_some() {
        let why = "the trust policy that issued this token has been removed".to_owned();
        return Err(ApiError::new(401, "key_revoked", why));
    }
    if record.expires_ms.is_some_and(|e| now >= e) {
        let why = "this OIDC access token has expired; exchange a fresh ID token".to_owned();
        return Err(ApiError::new(401, "token_expired", why));
    }
    conn.prepare_cached(
        "UPDATE oidc_tokens SET last_used_ms = ?1, usage_count = usage_count + 1 WHERE id = ?2",
    )?
    .execute(params![now, record.id])?;
    if let Some(identity) = &record.oidc {
        policy::count_use(conn, &identity.policy_id, now)?;
    }
    Ok(record)
}
