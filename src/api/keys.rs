//! API keys (PLATFORM-API §3, `/api/api-keys*`): the request bodies and one
//! call each. The records are [`ApiKeyRecord`]s.

use serde::Serialize;

use super::types::{ApiKeyRecord, CreateKeyRequest, CreatedKey};
use super::{paths, query_escape, Client, Probe, ProbeFailure, Retry};
use crate::error::Result;

/// `POST /api/api-keys/revoke` body: which key.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum RevokeRequest<'a> {
    /// By id: needs an admin credential.
    Id { id: Option<&'a str> },
    /// By the key itself, sent with that key (holding it is the authority).
    Key { key: &'a str },
}

/// The credential in use, as the platform describes it.
pub(crate) fn key_self(client: &Client) -> Result<ApiKeyRecord> {
    client.get(paths::API_KEYS_SELF)
}

/// `doctor`'s one unretried request: the same question as [`key_self`],
/// answered with the raw status, `Date` and body whatever they are.
pub(crate) fn probe_key_self(client: &Client) -> std::result::Result<Probe, ProbeFailure> {
    client.probe(paths::API_KEYS_SELF)
}

/// The keys of `project`, or of the credential's project.
pub(crate) fn list_keys(client: &Client, project: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
    match project {
        Some(p) => client.get(&format!(
            "{}?project_id={}",
            paths::API_KEYS,
            query_escape(p)
        )),
        None => client.get(paths::API_KEYS),
    }
}

/// Creates a key. Not repeated: a repeat could create two.
pub(crate) fn create_key(client: &Client, body: &CreateKeyRequest<'_>) -> Result<CreatedKey> {
    client.post(paths::API_KEYS, body, Retry::Once)
}

/// Revokes a key (repeatable: revoking twice is revoking once).
pub(crate) fn revoke_key(client: &Client, which: &RevokeRequest<'_>) -> Result<ApiKeyRecord> {
    client.post(paths::API_KEYS_REVOKE, which, Retry::Idempotent)
}
