//! `fluxloop-platform trust add|list|remove`: the trust policies that let CI
//! jobs exchange their OIDC ID tokens for access tokens (issue 19), managed
//! on the database file like the other admin subcommands.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use fluxloop_platform::{NewTrustPolicy, TrustPolicy};

/// A parsed `trust` subcommand.
pub(crate) enum Trust {
    Add {
        data: PathBuf,
        project: String,
        policy: NewTrustPolicy,
    },
    List {
        data: PathBuf,
        project: Option<String>,
        json: bool,
    },
    Remove {
        data: PathBuf,
        id: String,
    },
}

/// What every `trust` action's flags may set.
#[derive(Default)]
struct TrustFlags {
    data: Option<PathBuf>,
    project: Option<String>,
    issuer: Option<String>,
    claims: BTreeMap<String, String>,
    audience: Option<String>,
    scope: Option<String>,
    name: Option<String>,
    json: bool,
    id: Option<String>,
}

/// Parses what follows `trust`: the action, then its flags; `None` when
/// help was asked for.
pub(crate) fn parse(
    parser: &mut lexopt::Parser,
    default_data: PathBuf,
) -> Result<Option<Trust>, lexopt::Error> {
    use lexopt::prelude::*;
    let action = match parser.next()? {
        Some(Short('h') | Long("help")) => return Ok(None),
        Some(Value(v)) => v.string()?,
        Some(arg) => return Err(arg.unexpected()),
        None => return Err("missing action: trust add, trust list or trust remove".into()),
    };
    if !matches!(action.as_str(), "add" | "list" | "remove") {
        return Err(format!("unknown action `trust {action}`; use add, list or remove").into());
    }
    let mut f = TrustFlags::default();
    while let Some(arg) = parser.next()? {
        let add = action == "add";
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("data") => f.data = Some(parser.value()?.into()),
            Long("project") if action != "remove" => f.project = Some(parser.value()?.string()?),
            Long("issuer") if add => f.issuer = Some(parser.value()?.string()?),
            Long("claim") if add => {
                let (name, pattern) = claim(&parser.value()?.string()?)?;
                if f.claims.insert(name.clone(), pattern).is_some() {
                    return Err(format!("--claim {name} is given twice").into());
                }
            }
            Long("audience") if add => f.audience = Some(parser.value()?.string()?),
            Long("scope") if add => f.scope = Some(parser.value()?.string()?),
            Long("name") if add => f.name = Some(parser.value()?.string()?),
            Long("json") if action == "list" => f.json = true,
            Value(v) if action == "remove" && f.id.is_none() => f.id = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let data = f.data.unwrap_or(default_data);
    Ok(Some(match action.as_str() {
        "add" => Trust::Add {
            data,
            project: f.project.ok_or("missing --project ID for `trust add`")?,
            policy: NewTrustPolicy {
                issuer: f.issuer.ok_or("missing --issuer URL for `trust add`")?,
                audience: f.audience,
                conditions: f.claims,
                scope: f.scope.unwrap_or_else(|| "read-write".to_owned()),
                name: f.name,
            },
        },
        "list" => Trust::List {
            data,
            project: f.project,
            json: f.json,
        },
        _ => Trust::Remove {
            data,
            id: f.id.ok_or("missing argument ID for `trust remove`")?,
        },
    }))
}

/// `NAME=PATTERN`, split at the first `=`.
fn claim(text: &str) -> Result<(String, String), lexopt::Error> {
    match text.split_once('=') {
        Some((name, pattern)) if !name.trim().is_empty() && !pattern.is_empty() => {
            Ok((name.trim().to_owned(), pattern.to_owned()))
        }
        _ => Err(
            format!("--claim needs NAME=PATTERN (e.g. repository=org/app), not `{text}`").into(),
        ),
    }
}

/// Runs the action: results on `out`, notes on stderr.
pub(crate) fn run(
    trust: Trust,
    out: &mut impl Write,
    open: impl Fn(PathBuf) -> Result<fluxloop_platform::Store, fluxloop_platform::PlatformError>,
) -> Result<(), Box<dyn std::error::Error>> {
    match trust {
        Trust::Add {
            data,
            project,
            policy,
        } => {
            let store = open(data)?;
            let project_id = store.find_project(Some(&project))?;
            let p = store.add_trust_policy(&project_id, policy)?;
            writeln!(out, "{}", p.id)?;
            eprintln!(
                "project {} now trusts {} (audience {}) where {}, with scope {}",
                p.project_id,
                p.issuer,
                p.audience,
                p.conditions_text(),
                p.scope
            );
        }
        Trust::List {
            data,
            project,
            json,
        } => {
            let store = open(data)?;
            let project_id = project.map(|p| store.find_project(Some(&p))).transpose()?;
            let policies = store.trust_policies(project_id.as_deref())?;
            if json {
                let all: Vec<_> = policies.iter().map(TrustPolicy::to_json).collect();
                writeln!(out, "{}", serde_json::json!({ "trust_policies": all }))?;
            } else if policies.is_empty() {
                eprintln!("no trust policies; add one with `fluxloop-platform trust add`");
            } else {
                write_table(out, &policies)?;
            }
        }
        Trust::Remove { data, id } => {
            open(data)?.remove_trust_policy(&id)?;
            eprintln!("removed trust policy {id}; the tokens it issued stop working");
        }
    }
    Ok(())
}

/// One line per policy, columns aligned.
fn write_table(out: &mut impl Write, policies: &[TrustPolicy]) -> std::io::Result<()> {
    let header = [
        "ID",
        "PROJECT",
        "NAME",
        "ISSUER",
        "AUDIENCE",
        "CONDITIONS",
        "SCOPE",
        "LAST USED",
        "USES",
    ];
    let rows: Vec<[String; 9]> = policies
        .iter()
        .map(|p| {
            [
                p.id.clone(),
                p.project_id.clone(),
                p.name.clone(),
                p.issuer.clone(),
                p.audience.clone(),
                p.conditions_text(),
                p.scope.clone(),
                p.last_used_at().unwrap_or_else(|| "never".to_owned()),
                p.use_count.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
