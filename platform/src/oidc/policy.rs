//! Trust policies: which OIDC identities may trade their ID tokens for an
//! access token of a project. Owns the rules a new policy must meet (an
//! issuer over https, or loopback http for a platform on loopback; at least
//! one identity claim pinned), their storage, and matching claims against
//! their conditions.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use crate::auth::Scope;
use crate::util::{new_id, now_ms, rfc3339, rfc3339_opt};

/// The audience a policy accepts unless it names another.
pub(crate) const DEFAULT_AUDIENCE: &str = "fluxloop";

/// Claims that name who is running: a policy must pin one of them, or it
/// would trust every repository (every fork's pull request included) on its
/// issuer.
pub(crate) const IDENTITY_CLAIMS: &[&str] = &[
    "sub",
    "repository",
    "repository_id",
    "repository_owner",
    "project_path",
    "namespace_path",
    "job_workflow_ref",
];

/// Longest name, audience, claim name and pattern accepted.
const MAX_NAME: usize = 200;
const MAX_PATTERN: usize = 500;
/// Most conditions on one policy.
const MAX_CONDITIONS: usize = 32;

/// A stored trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Its id.
    pub id: String,
    /// The project whose tokens it grants.
    pub project_id: String,
    /// A name for people (the keys page, `trust list`).
    pub name: String,
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    /// The audience a token must carry.
    pub audience: String,
    /// Claim name → exact value or glob (`*`, `?`); every one must match.
    pub conditions: BTreeMap<String, String>,
    /// `read`, `write` or `read-write`.
    pub scope: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: i64,
    /// Last exchange or request made with one of its tokens.
    pub last_used_ms: Option<i64>,
    /// Exchanges plus requests made with its tokens.
    pub use_count: i64,
}

impl TrustPolicy {
    /// The API's policy record.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "issuer": self.issuer,
            "audience": self.audience,
            "conditions": self.conditions,
            "scope": self.scope,
            "created_at": rfc3339(self.created_ms),
            "last_used_at": rfc3339_opt(self.last_used_ms),
            "use_count": self.use_count,
        })
    }

    /// When it was last used, RFC 3339; `None` before its first use.
    pub fn last_used_at(&self) -> Option<String> {
        rfc3339_opt(self.last_used_ms)
    }

    /// The conditions as `claim=pattern`, comma-separated, for people.
    pub fn conditions_text(&self) -> String {
        self.conditions
            .iter()
            .map(|(claim, pattern)| format!("{claim}={pattern}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether every condition matches the claim's string form; a missing
    /// claim matches nothing.
    pub(crate) fn matches(&self, claims: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|(name, pattern)| {
            claim_text(claims.get(name)).is_some_and(|text| glob(pattern, &text))
        })
    }
}

/// What a new policy asks for, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTrustPolicy {
    /// The issuer URL.
    pub issuer: String,
    /// `None` for [`DEFAULT_AUDIENCE`].
    pub audience: Option<String>,
    /// Claim name → pattern.
    pub conditions: BTreeMap<String, String>,
    /// `read`, `write` or `read-write`.
    pub scope: String,
    /// `None` names the policy after its conditions.
    pub name: Option<String>,
}

/// The string form a condition is matched against: strings as they are,
/// numbers and booleans as JSON writes them; anything else has none.
pub(crate) fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// `pattern` against `text`: `*` matches any run of characters (`/` and `:`
/// too), `?` exactly one, everything else itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and how much of the text it has taken: on a
    // mismatch it takes one more character (linear backtracking, no
    // exponential blow-up on `*a*a*a*`).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The issuer as stored and compared: one trailing `/` dropped.
pub(crate) fn normalize_issuer(issuer: &str) -> &str {
    issuer.strip_suffix('/').unwrap_or(issuer)
}

/// Why an issuer URL cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerProblem {
    /// Not a URL with a host, or with parts an issuer never has.
    Invalid(String),
    /// Plain http where it is not allowed.
    NotHttps,
}

/// Checks the scheme rule: `https://`, or `http://` to a loopback host
/// (127.0.0.1, [::1], localhost) when the platform itself listens on
/// loopback — so its keys cannot be swapped on the way by anyone off the
/// machine.
pub(crate) fn check_issuer(issuer: &str, platform_on_loopback: bool) -> Result<(), IssuerProblem> {
    let invalid = |why: &str| Err(IssuerProblem::Invalid(format!("issuer `{issuer}` {why}")));
    let (https, rest) = if let Some(rest) = issuer.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        (false, rest)
    } else {
        return invalid("must start with https://");
    };
    let authority = rest.split('/').next().unwrap_or("");
    if rest.contains(['?', '#', ' ']) || authority.contains('@') {
        return invalid("must be a plain URL (no query, fragment, spaces or user)");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => authority.split(':').next().map(str::to_owned),
    };
    let Some(host) = host.filter(|h| !h.is_empty() && h != "[]") else {
        return invalid("has no host");
    };
    let loopback = matches!(
        host.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "[::1]" | "localhost"
    );
    if https || (loopback && platform_on_loopback) {
        Ok(())
    } else {
        Err(IssuerProblem::NotHttps)
    }
}

/// Checks `new`: the policy to store for `project_id`, or why it cannot be.
pub(crate) fn prepare(
    project_id: &str,
    new: NewTrustPolicy,
    platform_on_loopback: bool,
) -> Result<TrustPolicy, String> {
    let issuer = normalize_issuer(new.issuer.trim()).to_owned();
    match check_issuer(&issuer, platform_on_loopback) {
        Ok(()) => {}
        Err(IssuerProblem::Invalid(why)) => return Err(why),
        Err(IssuerProblem::NotHttps) => {
            return Err(format!(
                "issuer `{issuer}` must use https; plain http is allowed only for 127.0.0.1, [::1] or localhost"
            ))
        }
    }
    let audience = new.audience.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    bounded("audience", &audience, MAX_NAME)?;
    check_conditions(&new.conditions)?;
    if !matches!(new.scope.as_str(), "read" | "write" | "read-write") {
        return Err(format!(
            "scope must be read, write or read-write, not `{}`",
            new.scope
        ));
    }
    let policy = TrustPolicy {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: new.name.unwrap_or_else(|| default_name(&new.conditions)),
        issuer,
        audience,
        conditions: new.conditions,
        scope: new.scope,
        created_ms: now_ms(),
        last_used_ms: None,
        use_count: 0,
    };
    bounded("name", &policy.name, MAX_NAME)?;
    Ok(policy)
}

/// Stores a policy made by [`prepare`].
pub(crate) fn insert(conn: &Connection, policy: &TrustPolicy) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO trust_policies (id, project_id, name, issuer, audience, conditions, scope, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            policy.id,
            policy.project_id,
            policy.name,
            policy.issuer,
            policy.audience,
            json!(policy.conditions).to_string(),
            policy.scope,
            policy.created_ms
        ],
    )?;
    Ok(())
}

fn bounded(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(format!("{what} must be 1 to {max} characters"));
    }
    Ok(())
}

/// Conditions must be few, well-formed, and pin an identity.
fn check_conditions(conditions: &BTreeMap<String, String>) -> Result<(), String> {
    if conditions.len() > MAX_CONDITIONS {
        return Err(format!("at most {MAX_CONDITIONS} conditions"));
    }
    for (claim, pattern) in conditions {
        bounded("a claim name", claim, MAX_NAME)?;
        bounded(&format!("the pattern of `{claim}`"), pattern, MAX_PATTERN)?;
    }
    let pinned = conditions
        .iter()
        .any(|(claim, pattern)| IDENTITY_CLAIMS.contains(&claim.as_str()) && pins(claim, pattern));
    if pinned {
        Ok(())
    } else {
        Err(format!(
            "a trust policy must pin one of {} with a pattern that starts with a name, not a wildcard (`*`, `*/app`, `repo:*`): otherwise it would trust every repository on that issuer",
            IDENTITY_CLAIMS.join(", ")
        ))
    }
}

/// The fixed start of every `sub` of a CI provider (GitHub, GitLab,
/// Kubernetes, Buildkite, CircleCI): `repo:*` pins no more than `*`.
const SUB_PREFIXES: &[&str] = &[
    "repo:",
    "project_path:",
    "system:serviceaccount:",
    "organization:",
    "org/",
];

/// Whether `pattern` narrows `claim` to one owner: the text before its first
/// wildcard must hold a letter or digit, past a provider's fixed `sub`
/// prefix. `*/app`, `?rg/*` or `repo:*:ref:refs/heads/main` would match
/// the repositories of anyone who picks a matching name.
fn pins(claim: &str, pattern: &str) -> bool {
    let literal = pattern.split(['*', '?']).next().unwrap_or("");
    let owned = if claim == "sub" {
        SUB_PREFIXES
            .iter()
            .find_map(|p| literal.strip_prefix(p))
            .unwrap_or(literal)
    } else {
        literal
    };
    owned.chars().any(char::is_alphanumeric)
}

fn default_name(conditions: &BTreeMap<String, String>) -> String {
    let text = conditions
        .iter()
        .map(|(claim, pattern)| format!("{claim}={pattern}"))
        .collect::<Vec<_>>()
        .join(", ");
    text.chars().take(MAX_NAME).collect()
}

/// Columns read by [`from_row`], in order.
const COLUMNS: &str =
    "id, project_id, name, issuer, audience, conditions, scope, created_ms, last_used_ms, use_count";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrustPolicy> {
    let conditions: String = r.get(5)?;
    Ok(TrustPolicy {
        id: r.get(0)?,
        project_id: r.get(1)?,
        name: r.get(2)?,
        issuer: r.get(3)?,
        audience: r.get(4)?,
        // Only maps of strings are ever written; an edited row reads as
        // matching nothing rather than everything.
        conditions: serde_json::from_str(&conditions)
            .unwrap_or_else(|_| BTreeMap::from([(String::new(), String::new())])),
        scope: r.get(6)?,
        created_ms: r.get(7)?,
        last_used_ms: r.get(8)?,
        use_count: r.get(9)?,
    })
}

/// Live policies of `project_id` (every project when `None`), oldest first.
pub(crate) fn list(
    conn: &Connection,
    project_id: Option<&str>,
) -> rusqlite::Result<Vec<TrustPolicy>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM trust_policies
         WHERE removed_ms IS NULL AND (?1 IS NULL OR project_id = ?1)
         ORDER BY created_ms, rowid"
    ))?;
    let rows = stmt.query_map([project_id], from_row)?;
    rows.collect()
}

/// Live policies trusting `issuer` (normalised), of `project_id` when given,
/// in creation order.
pub(crate) fn for_issuer(
    conn: &Connection,
    issuer: &str,
    project_id: Option<&str>,
) -> rusqlite::Result<Vec<TrustPolicy>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM trust_policies
         WHERE removed_ms IS NULL AND issuer = ?1 AND (?2 IS NULL OR project_id = ?2)
         ORDER BY created_ms, rowid"
    ))?;
    let rows = stmt.query_map(params![issuer, project_id], from_row)?;
    rows.collect()
}

/// The live policy `id`.
pub(crate) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<TrustPolicy>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM trust_policies WHERE id = ?1 AND removed_ms IS NULL"),
        [id],
        from_row,
    )
    .optional()
}

/// Removes a policy: it matches no token from now on and the tokens it
/// issued stop working. The row stays, so its exchanges keep their history.
pub(crate) fn remove(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE trust_policies SET removed_ms = ?1 WHERE id = ?2 AND removed_ms IS NULL",
        params![now_ms(), id],
    )?;
    Ok(changed == 1)
}

/// Counts one use: an exchange or a request made with one of its tokens.
pub(crate) fn count_use(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE trust_policies SET use_count = use_count + 1, last_used_ms = ?1 WHERE id = ?2",
    )?
    .execute(params![now, id])?;
    Ok(())
}

/// The scope a policy grants, for the tokens it issues.
pub(crate) fn scope_of(policy: &TrustPolicy) -> Scope {
    // Only these three are ever written; read-only is the safe reading of a
    // row edited by hand.
    Scope::parse(&policy.scope)
        .filter(|s| *s != Scope::Admin)
        .unwrap_or(Scope::Read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(glob(
            "repo:org/app:ref:refs/heads/main",
            "repo:org/app:ref:refs/heads/main"
        ));
        assert!(glob("repo:org/*", "repo:org/app:ref:refs/heads/main"));
        assert!(glob("repo:org/app:*", "repo:org/app:environment:prod"));
        assert!(glob("v?", "v1"));
        assert!(!glob("v?", "v10"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(!glob("repo:org/app", "repo:org/app2"));
        assert!(!glob("repo:org/*", "repo:evil/org/x"));
        assert!(glob("*a*a*a*a*b", &format!("{}b", "a".repeat(200))));
        assert!(!glob("*a*a*a*a*b", &"a".repeat(200)));
    }

    #[test]
    fn claims_match_by_string_form_and_missing_matches_nothing() {
        let policy = TrustPolicy {
            id: "p".into(),
            project_id: "x".into(),
            name: "n".into(),
            issuer: "https://i".into(),
            audience: "fluxloop".into(),
            conditions: BTreeMap::from([
                ("repository".into(), "org/*".into()),
                ("run_attempt".into(), "1".into()),
            ]),
            scope: "read".into(),
            created_ms: 0,
            last_used_ms: None,
            use_count: 0,
        };
        let claims = |v: Value| v.as_object().cloned().expect("object");
        assert!(policy.matches(&claims(json!({"repository": "org/a", "run_attempt": 1}))));
        assert!(policy.matches(&claims(json!({"repository": "org/a", "run_attempt": "1"}))));
        assert!(!policy.matches(&claims(json!({"repository": "org/a"}))));
        assert!(!policy.matches(&claims(json!({"repository": ["org/a"], "run_attempt": 1}))));
        assert!(!policy.matches(&claims(json!({"repository": "other/a", "run_attempt": 1}))));
    }

    #[test]
    fn http_issuers_only_on_loopback_of_a_loopback_platform() {
        assert_eq!(
            check_issuer("https://token.actions.githubusercontent.com", false),
            Ok(())
        );
        assert_eq!(check_issuer("http://127.0.0.1:8080", true), Ok(()));
        assert_eq!(check_issuer("http://[::1]:8080/x", true), Ok(()));
        assert_eq!(check_issuer("http://localhost", true), Ok(()));
        assert_eq!(
            check_issuer("http://127.0.0.1:8080", false),
            Err(IssuerProblem::NotHttps)
        );
        assert_eq!(
            check_issuer("http://gitlab.example", true),
            Err(IssuerProblem::NotHttps)
        );
        assert_eq!(
            check_issuer("http://127.0.0.1.evil.example", true),
            Err(IssuerProblem::NotHttps)
        );
        assert!(matches!(
            check_issuer("ftp://x", true),
            Err(IssuerProblem::Invalid(_))
        ));
        assert!(matches!(
            check_issuer("https://", true),
            Err(IssuerProblem::Invalid(_))
        ));
        assert!(matches!(
            check_issuer("http://127.0.0.1@evil.example", true),
            Err(IssuerProblem::Invalid(_))
        ));
        assert_eq!(
            normalize_issuer("https://gitlab.com/"),
            "https://gitlab.com"
        );
    }

    #[test]
    fn a_policy_must_pin_an_identity() {
        let conds = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(check_conditions(&conds(&[("sub", "repo:org/app:*")])).is_ok());
        assert!(check_conditions(&conds(&[("sub", "project_path:group/*")])).is_ok());
        assert!(check_conditions(&conds(&[("repository_id", "123456")])).is_ok());
        assert!(
            check_conditions(&conds(&[("job_workflow_ref", "org/ci/*@refs/heads/main")])).is_ok()
        );
        assert!(check_conditions(&conds(&[
            ("ref", "refs/heads/main"),
            ("repository", "org/app")
        ]))
        .is_ok());
        let refused = [
            conds(&[]),
            conds(&[("sub", "*")]),
            conds(&[("repository", "**")]),
            conds(&[("ref", "refs/heads/main"), ("environment", "prod")]),
            // Wildcards with punctuation, or a leading wildcard: any owner.
            conds(&[("repository", "*/*")]),
            conds(&[("repository", "*/app")]),
            conds(&[("repository_owner", "?rg")]),
            // A provider's fixed prefix of every subject pins nothing.
            conds(&[("sub", "repo:*")]),
            conds(&[("sub", "repo:*:ref:refs/heads/main")]),
            conds(&[("sub", "project_path:*")]),
            conds(&[("sub", "system:serviceaccount:*")]),
        ];
        for c in refused {
            let e = check_conditions(&c).expect_err("refused");
            assert!(e.contains("would trust every repository"), "{e}");
        }
    }
}
