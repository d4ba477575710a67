//! Keyless CI (issue 19): a CI's OIDC identity token traded for a
//! short-lived access token, `POST /api/auth/oidc/exchange`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{paths, Client, Retry};
use crate::error::Result;
use crate::secret::Secret;

/// The request body.
#[derive(Serialize)]
struct ExchangeRequest<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
}

/// The platform's answer: a bearer for one project with the policy's scope.
#[derive(Deserialize)]
pub(crate) struct Exchanged {
    pub(crate) access_token: String,
    pub(crate) expires_at: String,
    pub(crate) expires_in: u64,
    pub(crate) scope: String,
    pub(crate) project_id: String,
    /// The claims the policy matched (`iss`, `sub`, `aud`, …).
    #[serde(default)]
    pub(crate) matched: BTreeMap<String, serde_json::Value>,
}

/// Trades the identity token. Sent once: the platform records the token's
/// `jti`, so a repeat after a lost answer would be refused as a replay
/// (only a 429 or 503, where nothing was done, is retried).
pub(crate) fn exchange(
    client: &Client,
    token: &Secret,
    project_id: Option<&str>,
) -> Result<Exchanged> {
    client.post(
        paths::OIDC_EXCHANGE,
        &ExchangeRequest {
            token: token.expose(),
            project_id,
        },
        Retry::Once,
    )
}
