//! Wire types of PLATFORM-API.md. Field names are the platform's; sections
//! marked (FluxLoop) there match the published FluxLoop CLI exactly.

use serde::{Deserialize, Deserializer, Serialize};

/// For reading files and answers field by field, as untyped getters would:
/// the field's value, or its default when it is missing or of another type.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// `{"error": {"code", "message"}}`; anything else yields empty parts.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, String) {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: Option<String>,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => (o.error.code, o.error.message),
        Err(_) => (None, String::new()),
    }
}

/// The claims of a rejected OIDC token worth showing, in this order, with
/// the names people know them by.
const SHOWN_CLAIMS: &[(&str, &str)] = &[
    ("iss", "issuer"),
    ("sub", "subject"),
    ("aud", "audience"),
    ("repository", "repository"),
    ("ref", "ref"),
    ("event_name", "event"),
    ("environment", "environment"),
    ("project_path", "project_path"),
    ("ref_type", "ref_type"),
    ("pipeline_source", "pipeline_source"),
    ("job_workflow_ref", "job_workflow_ref"),
];

/// The `reason` and `claims` of a 401 `oidc_rejected` body: the claims
/// named, as text (an array `aud` joined with commas), others dropped.
pub(crate) fn oidc_rejection(body: &[u8]) -> (String, Vec<(String, String)>) {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        claims: serde_json::Map<String, serde_json::Value>,
    }
    let Ok(o) = serde_json::from_slice::<Outer>(body) else {
        return ("unknown".into(), vec![]);
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    let claims = SHOWN_CLAIMS
        .iter()
        .filter_map(|(key, label)| {
            o.error
                .claims
                .get(*key)
                .map(|v| (label.to_string(), text(v)))
        })
        .collect();
    let reason = if o.error.reason.is_empty() {
        "unknown".into()
    } else {
        o.error.reason
    };
    (reason, claims)
}

/// The scope an endpoint needs (PLATFORM-API §1), for `Permission denied`.
pub(crate) fn needed_scope(path: &str) -> &'static str {
    if path.starts_with(super::paths::SYNC_UPLOAD) {
        "write"
    } else if path.starts_with(super::paths::API_KEYS) {
        "admin"
    } else {
        "read"
    }
}

/// `POST /api/cli-connect/start` (FluxLoop).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceStart {
    pub(crate) device_code: String,
    pub(crate) user_code: String,
    pub(crate) verification_url: String,
    #[serde(default, deserialize_with = "up_to_a_day")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "up_to_a_day")]
    expires_in_sec: Option<u64>,
    #[serde(default, deserialize_with = "up_to_a_day")]
    interval: Option<u64>,
    #[serde(default, deserialize_with = "up_to_a_day")]
    interval_sec: Option<u64>,
}

/// Longest wait a server may ask for in seconds. The login adds these to
/// an `Instant`; a huge value would overflow it (a panic), so an answer
/// beyond a day is refused as not a FluxLoop answer.
const MAX_SERVER_SECONDS: u64 = 86_400;

fn up_to_a_day<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(n) if n > MAX_SERVER_SECONDS => Err(serde::de::Error::custom(format!(
            "{n} seconds is more than a day ({MAX_SERVER_SECONDS})"
        ))),
        n => Ok(n),
    }
}

impl DeviceStart {
    /// Seconds the code is valid; platforms send either spelling (or both).
    pub(crate) fn expires_in(&self) -> u64 {
        self.expires_in.or(self.expires_in_sec).unwrap_or(600)
    }

    /// Seconds between polls, at least one.
    pub(crate) fn interval(&self) -> u64 {
        self.interval.or(self.interval_sec).unwrap_or(5).max(1)
    }
}

/// `POST /api/cli-connect/complete` (FluxLoop).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceComplete {
    pub(crate) status: String,
    pub(crate) credential: Option<LoginCredential>,
}

/// The tokens of a login (FluxLoop).
#[derive(Debug, Deserialize)]
pub(crate) struct LoginCredential {
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_at: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) user_email: Option<String>,
}

/// `POST /api/cli-connect/refresh` (FluxLoop).
#[derive(Debug, Deserialize)]
pub(crate) struct RefreshResponse {
    pub(crate) credential: LoginCredential,
}

/// A key as the platform describes it (never the key itself).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ApiKeyRecord {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, rename = "type")]
    pub(crate) key_type: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) project_id: Option<String>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) last_used_at: Option<String>,
    #[serde(default)]
    pub(crate) usage_count: Option<u64>,
    #[serde(default)]
    pub(crate) revoked_at: Option<String>,
    #[serde(default)]
    pub(crate) expires_at: Option<String>,
    /// The key's last 4 characters (the platform keeps no more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_suffix: Option<String>,
    /// Present when `/self` describes a login token rather than a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_email: Option<String>,
}

/// `POST /api/api-keys` → 201.
#[derive(Debug, Deserialize)]
pub(crate) struct CreatedKey {
    pub(crate) key: String,
    #[serde(flatten)]
    pub(crate) record: ApiKeyRecord,
}

/// `POST /api/api-keys` body.
#[derive(Debug, Serialize)]
pub(crate) struct CreateKeyRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<&'a str>,
    pub(crate) name: &'a str,
    #[serde(rename = "type")]
    pub(crate) key_type: &'a str,
    pub(crate) scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_in_days: Option<u32>,
}

/// `GET /api/projects` item.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Project {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) workspace_id: Option<String>,
}

/// `GET /api/scenarios` item.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Scenario {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) project_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(br#"{"error":{"code":"forbidden","message":"needs write"}}"#),
            (Some("forbidden".into()), "needs write".into())
        );
        assert_eq!(parse_error_body(b"<html>"), (None, String::new()));
        assert_eq!(
            parse_error_body(br#"{"detail":"x"}"#),
            (None, String::new())
        );
    }

    #[test]
    fn device_start_accepts_both_spellings() {
        let a: DeviceStart = serde_json::from_str(
            r#"{"device_code":"d","user_code":"U","verification_url":"v","expires_in_sec":9,"interval_sec":2}"#,
        )
        .unwrap();
        assert_eq!((a.expires_in(), a.interval()), (9, 2));
        let b: DeviceStart = serde_json::from_str(
            r#"{"device_code":"d","user_code":"U","verification_url":"v","expires_in":9,"interval":2}"#,
        )
        .unwrap();
        assert_eq!((b.expires_in(), b.interval()), (9, 2));
        let both: DeviceStart = serde_json::from_str(
            r#"{"device_code":"d","user_code":"U","verification_url":"v","expires_in":9,"expires_in_sec":9,"interval":0,"interval_sec":0}"#,
        )
        .unwrap();
        assert_eq!((both.expires_in(), both.interval()), (9, 1));
    }
}
