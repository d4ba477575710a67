//! `apikeys create/list/info/revoke` (PLATFORM-API §3).

use serde::Serialize;
use time::OffsetDateTime;

use crate::api::keys::RevokeRequest;
use crate::api::types::{ApiKeyRecord, CreateKeyRequest, CreatedKey};
use crate::api::Auth;
use crate::auth::key::{self, KeyInput};
use crate::auth::login;
use crate::auth::scope::{self, Need};
use crate::cli::{ApikeysCommand, KeyType, Scope};
use crate::ctx::Ctx;
use crate::error::{code, Error, Result};
use crate::output::Outcome;

/// Keys older than this are due for rotation (the seed's "monthly rotation").
const ROTATE_AFTER_DAYS: i64 = 90;
/// Keys unused this long are probably forgotten.
const UNUSED_AFTER_DAYS: i64 = 30;

pub(crate) fn run(ctx: &Ctx, cmd: ApikeysCommand) -> Result<Outcome> {
    match cmd {
        ApikeysCommand::Create {
            name,
            key_type,
            scope,
            expires_in_days,
            ..
        } => create(ctx, name, key_type, scope, expires_in_days),
        ApikeysCommand::List { all, .. } => list(ctx, all),
        ApikeysCommand::Info { key } => info(ctx, key),
        ApikeysCommand::Revoke { target } => revoke(ctx, &target),
    }
}

/// The project a key command acts on: flag, `fluxloop.yaml`, project.json,
/// else the credential's own project (the platform decides).
/// `--project-id` is one source of the project setting (config/registry.rs).
fn project_id(ctx: &Ctx, record: Option<&ApiKeyRecord>) -> Result<Option<String>> {
    if let Some(p) = ctx.settings.text("project_id")? {
        return Ok(Some(p.val));
    }
    Ok(record.and_then(|r| r.project_id.clone()))
}

/// `apikeys create`: the key alone on stdout.
#[derive(Serialize)]
pub(crate) struct CreateReport {
    pub(crate) key: String,
    #[serde(flatten)]
    pub(crate) record: ApiKeyRecord,
}

fn create(
    ctx: &Ctx,
    name: Option<String>,
    key_type: KeyType,
    scope: Scope,
    expires_in_days: Option<u32>,
) -> Result<Outcome> {
    let session = login::session(ctx)?;
    let record = scope::require(ctx, &session.client, &[Need::Admin])?;
    let project = project_id(ctx, record.as_ref())?;
    let name = name.unwrap_or_else(|| {
        let now = OffsetDateTime::now_utc();
        format!("cli-key-{}", crate::results::compact_stamp(now))
    });
    if scope == Scope::Admin && ctx.in_ci() {
        ctx.out
            .warn("creating an admin key in CI; CI jobs need only read-write");
    }
    let body = CreateKeyRequest {
        project_id: project.as_deref(),
        name: &name,
        key_type: key_type.as_str(),
        scope: scope.as_str(),
        expires_in_days,
    };
    let created: CreatedKey = crate::api::keys::create_key(&session.client, &body)?;
    ctx.out.add_mask_stderr(&created.key);
    ctx.out.info(&format!(
        "Created {} key {} (id {}, scope {})",
        created
            .record
            .key_type
            .as_deref()
            .unwrap_or(key_type.as_str()),
        created.record.name.as_deref().unwrap_or(&name),
        created.record.id.as_deref().unwrap_or("?"),
        created.record.scope.as_deref().unwrap_or(scope.as_str()),
    ));
    if ctx.out.stderr_tty {
        ctx.out.notice("This key is shown once — store it now (e.g. as the FLUXLOOP_API_KEY secret of your CI).");
    }
    Ok(Outcome::ok(CreateReport {
        key: created.key,
        record: created.record,
    }))
}

/// A key in `apikeys list`, with what the seed's security advice asks about it.
#[derive(Serialize)]
pub(crate) struct ListedKey {
    #[serde(flatten)]
    pub(crate) record: ApiKeyRecord,
    pub(crate) age_days: Option<i64>,
    /// Why the key should be rotated, if it should.
    pub(crate) rotation: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ListReport {
    pub(crate) keys: Vec<ListedKey>,
    /// Revoked keys left out (without `--all`).
    pub(crate) revoked_hidden: usize,
}

pub(crate) fn days_since(ts: Option<&str>, now: OffsetDateTime) -> Option<i64> {
    login::parse_time(ts).map(|t| (now - t).whole_days())
}

fn list(ctx: &Ctx, all: bool) -> Result<Outcome> {
    let session = login::session(ctx)?;
    let record = scope::require(ctx, &session.client, &[Need::Admin])?;
    let records = project_keys(ctx, &session.client, record.as_ref())?;
    let now = OffsetDateTime::now_utc();
    let hidden = records.iter().filter(|r| r.revoked_at.is_some()).count();
    let keys = records
        .into_iter()
        .filter(|r| all || r.revoked_at.is_none())
        .map(|record| {
            let age = days_since(record.created_at.as_deref(), now);
            let idle = days_since(record.last_used_at.as_deref(), now).or(age);
            let rotation = if age.is_some_and(|a| a > ROTATE_AFTER_DAYS) {
                Some(format!("older than {ROTATE_AFTER_DAYS} days"))
            } else if idle.is_some_and(|d| d > UNUSED_AFTER_DAYS) {
                Some(format!("unused for {UNUSED_AFTER_DAYS}+ days"))
            } else {
                None
            };
            ListedKey {
                record,
                age_days: age,
                rotation,
            }
        })
        .collect();
    Ok(Outcome::ok(ListReport {
        keys,
        revoked_hidden: if all { 0 } else { hidden },
    }))
}

/// Every key record of the project a key command acts on.
fn project_keys(
    ctx: &Ctx,
    client: &crate::api::Client,
    own: Option<&ApiKeyRecord>,
) -> Result<Vec<ApiKeyRecord>> {
    let project = project_id(ctx, own)?;
    crate::api::keys::list_keys(client, project.as_deref())
}

/// How a key is shown without the key: its prefix, then its last four.
pub(crate) fn shown_suffix(r: &ApiKeyRecord) -> String {
    let prefix = match r.key_type.as_deref() {
        Some("service-account") => "flx_sa_",
        Some("user") => "flx_api_",
        _ => "",
    };
    match &r.key_suffix {
        Some(s) => format!("{prefix}…{s}"),
        None => "-".into(),
    }
}

/// `apikeys info`.
#[derive(Serialize)]
pub(crate) struct InfoReport {
    pub(crate) key: String,
    pub(crate) status: &'static str,
    /// Whether the platform described the key (a revoked key cannot ask).
    pub(crate) known: bool,
    #[serde(flatten)]
    pub(crate) record: ApiKeyRecord,
}

fn info(ctx: &Ctx, key_arg: Option<String>) -> Result<Outcome> {
    let (client, shown) = match key_arg {
        Some(raw) if !key::is_api_key(raw.trim()) => return info_by_id(ctx, raw.trim()),
        Some(raw) => {
            let secret = key::api_key_from(&raw, KeyInput::Typed, "the KEY argument")?;
            ctx.out.add_mask_stderr(secret.expose());
            let endpoint = ctx.endpoint()?;
            let shown = secret.masked();
            let auth = Auth {
                secret,
                origin: "the KEY argument".into(),
                is_api_key: true,
            };
            (ctx.client_with(&endpoint.val, auth)?, shown)
        }
        None => {
            let session = login::session(ctx)?;
            if !session.resolved.credential.val.is_api_key() {
                return Err(Error::config(
                    format!("the credential in effect ({}) is a login, not an API key", session.resolved.credential.origin),
                    Some("pass the key, or its id or name: `fluxloop apikeys info KEY|ID|NAME`; see `fluxloop auth status` for the login".into()),
                ));
            }
            let shown = session.resolved.credential.val.secret.masked();
            (session.client, shown)
        }
    };
    match crate::api::keys::key_self(&client) {
        Ok(record) => Ok(info_report(shown, record)),
        // A revoked key can no longer ask about itself: show what is known.
        Err(Error::KeyRevoked { .. }) => Ok(Outcome {
            report: Box::new(InfoReport {
                key: shown,
                status: "revoked",
                known: false,
                record: ApiKeyRecord::default(),
            }),
            code: code::AUTH,
        }),
        Err(Error::NotFound { .. }) | Err(Error::Api { status: 404, .. }) => {
            Err(Error::Unsupported {
                what: format!(
                    "the platform at {} does not support `apikeys info` (no /api/api-keys/self)",
                    client.base()
                ),
                hint: Some("check the key on the platform's settings/api-keys page".into()),
            })
        }
        Err(e) => Err(e),
    }
}

fn info_report(shown: String, record: ApiKeyRecord) -> Outcome {
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else {
        "active"
    };
    Outcome::ok(InfoReport {
        key: shown,
        status,
        known: true,
        record,
    })
}

/// `apikeys info ID|NAME`: a login or an admin key looks the key up.
fn info_by_id(ctx: &Ctx, target: &str) -> Result<Outcome> {
    let session = login::session(ctx)?;
    let own = scope::require(ctx, &session.client, &[Need::Admin])?;
    let record = find_record(ctx, &session.client, own.as_ref(), target)?;
    Ok(info_report(shown_suffix(&record), record))
}

/// `apikeys revoke`.
#[derive(Serialize)]
pub(crate) struct RevokeReport {
    pub(crate) target: String,
    /// The key had been revoked before.
    pub(crate) already: bool,
    #[serde(flatten)]
    pub(crate) record: ApiKeyRecord,
    #[serde(skip)]
    pub(crate) was_in_use: bool,
}

fn revoke(ctx: &Ctx, target: &str) -> Result<Outcome> {
    if key::is_api_key(target.trim()) {
        return revoke_by_possession(ctx, target);
    }
    if target.trim().is_empty() {
        return Err(Error::config(
            "KEY_OR_ID is empty",
            Some("pass the key, or its id or name from `fluxloop apikeys list`".into()),
        ));
    }
    let session = login::session(ctx)?;
    let own = scope::require(ctx, &session.client, &[Need::Admin])?;
    let found = find_record(ctx, &session.client, own.as_ref(), target)?;
    if found.revoked_at.is_some() {
        return Ok(Outcome::ok(RevokeReport {
            target: target.to_string(),
            already: true,
            record: found,
            was_in_use: false,
        }));
    }
    if !ctx.confirm(&format!("Revoke key {target}? It stops working at once"))? {
        return Err(Error::Interrupted);
    }
    let which = RevokeRequest::Id {
        id: found.id.as_deref(),
    };
    let record = crate::api::keys::revoke_key(&session.client, &which)?;
    let was_in_use = own
        .and_then(|o| o.id)
        .is_some_and(|id| record.id.as_deref() == Some(id.as_str()));
    Ok(Outcome::ok(RevokeReport {
        target: target.to_string(),
        already: false,
        record,
        was_in_use,
    }))
}

/// Revoking by the full key value is authorised by holding it: the request
/// is sent with that key itself (GitHub's credential-revocation model), so
/// the seed's rotation works with a read-write key in the environment.
fn revoke_by_possession(ctx: &Ctx, target: &str) -> Result<Outcome> {
    let secret = key::api_key_from(target, KeyInput::Typed, "the KEY_OR_ID argument")?;
    ctx.out.add_mask_stderr(secret.expose());
    let shown = secret.masked();
    if !ctx.confirm(&format!("Revoke key {shown}? It stops working at once"))? {
        return Err(Error::Interrupted);
    }
    let endpoint = ctx.endpoint()?;
    let in_use = ctx
        .credential()
        .is_ok_and(|r| r.credential.val.secret.expose() == secret.expose());
    let auth = Auth {
        secret: secret.clone(),
        origin: "the KEY_OR_ID argument".into(),
        is_api_key: true,
    };
    let client = ctx.client_with(&endpoint.val, auth)?;
    let which = RevokeRequest::Key {
        key: secret.expose(),
    };
    match crate::api::keys::revoke_key(&client, &which) {
        Ok(record) => Ok(Outcome::ok(RevokeReport {
            target: shown,
            already: false,
            record,
            was_in_use: in_use,
        })),
        Err(Error::KeyRevoked { .. }) => Ok(Outcome::ok(RevokeReport {
            target: shown,
            already: true,
            record: ApiKeyRecord::default(),
            was_in_use: false,
        })),
        Err(e) => Err(e),
    }
}

/// The record of the key `target` names: an id, a unique id prefix of at
/// least 8 characters (as `list` shows), or a name unique among the
/// project's active keys.
fn find_record(
    ctx: &Ctx,
    client: &crate::api::Client,
    own: Option<&ApiKeyRecord>,
    target: &str,
) -> Result<ApiKeyRecord> {
    let records = match project_keys(ctx, client, own) {
        Ok(r) => r,
        // No listing on this platform: the target can only be an id.
        Err(Error::NotFound { .. }) | Err(Error::Api { status: 404, .. }) => {
            return Ok(ApiKeyRecord {
                id: Some(target.to_string()),
                ..Default::default()
            })
        }
        Err(e) => return Err(e),
    };
    let by_id = |r: &&ApiKeyRecord| r.id.as_deref() == Some(target);
    let by_prefix = |r: &&ApiKeyRecord| {
        target.len() >= 8 && r.id.as_deref().is_some_and(|id| id.starts_with(target))
    };
    let by_name = |r: &&ApiKeyRecord| r.name.as_deref() == Some(target) && r.revoked_at.is_none();
    for (how, matches) in [
        ("id", records.iter().filter(by_id).collect::<Vec<_>>()),
        ("id prefix", records.iter().filter(by_prefix).collect()),
        ("name", records.iter().filter(by_name).collect()),
    ] {
        match matches.as_slice() {
            [] => continue,
            [one] => return Ok((*one).clone()),
            many => {
                return Err(Error::config(
                    format!("{} active keys have the {how} {target:?}", many.len()),
                    Some(format!(
                        "name one by id: {}",
                        many.iter()
                            .filter_map(|r| r.id.as_deref())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ))
            }
        }
    }
    Err(Error::NotFound {
        what: format!("API key {target}"),
        hint: Some("see the ids and names with `fluxloop apikeys list --all`".into()),
    })
}
