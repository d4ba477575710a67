//! The pull stage: find the scenario's bundle on the platform, download it
//! (conditionally, when the last pull of the scenario is intact), settle
//! local edits, and write `pulled/` (CLI.md §4; PLATFORM-API §4).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::api::projects;
use crate::api::pull::{sync_pull, sync_pull_url, PullBody};
use crate::api::types::Scenario;
use crate::api::Client;
use crate::error::{Error, Result};
use crate::job::display_rel;
use crate::pulled;

/// What a pull needs, resolved by its command.
pub(crate) struct PullInput<'a> {
    /// The workspace root.
    pub(crate) root: &'a Path,
    /// The scenario setting (`--scenario`, else `scenario:` in `fluxloop.yaml`).
    pub(crate) scenario: Option<String>,
    /// The project named by flag, `fluxloop.yaml` or `.fluxloop/project.json`.
    pub(crate) project_id: Option<String>,
    /// `--bundle-version-id`: that bundle, whatever the scenario's newest is.
    pub(crate) bundle_version_id: Option<String>,
    /// What to do with locally edited pulled files.
    pub(crate) edits: Edits<'a>,
}

/// Asks the person a yes/no question.
pub(crate) type Confirm<'a> = &'a dyn Fn(&str) -> Result<bool>;

/// How local edits of the pulled files are settled: kept (`--keep-local`),
/// replaced (`--yes`, or "y" at the prompt), else a conflict (exit 12).
pub(crate) struct Edits<'a> {
    /// `--keep-local`.
    pub(crate) keep_local: bool,
    /// `--yes`.
    pub(crate) overwrite: bool,
    /// Asks the person; `None` when nobody can be asked.
    pub(crate) confirm: Option<Confirm<'a>>,
}

/// Why a pull goes on without the scenario listing the platform refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListingNote {
    /// The previous pull's bundle of `scenario` is pulled again; `bundle` is
    /// `bundle vN`, or its id when it has no version.
    PreviousBundle { scenario: String, bundle: String },
    /// `scenario` was never pulled here: the platform picks the bundle.
    NeverPulled { scenario: String },
}

/// What a pull asks the platform for, and how it was decided.
struct PullPlan {
    body: PullBody,
    project_id: Option<String>,
    scenario_id: Option<String>,
    /// Said before the download when a lookup was refused.
    note: Option<ListingNote>,
}

/// What `sync pull` did.
#[derive(Debug, Serialize)]
pub(crate) struct PullReport {
    pub(crate) scenario: String,
    pub(crate) scenario_id: Option<String>,
    pub(crate) project_id: Option<String>,
    pub(crate) bundle_version_id: Option<String>,
    pub(crate) bundle_version: Option<String>,
    pub(crate) inputs: usize,
    pub(crate) personas: usize,
    pub(crate) criteria: usize,
    /// The `pulled/` directory.
    pub(crate) dir: PathBuf,
    /// Locally edited files kept (`--keep-local`).
    pub(crate) kept_local: Vec<String>,
    /// Locally edited files replaced (`--yes`).
    pub(crate) overwritten: Vec<String>,
    /// The platform said the pulled files are current (304); nothing changed.
    pub(crate) up_to_date: bool,
}

/// A listing the platform refused to this credential (401/403/404): the
/// hosted platform may keep listings to logins. Lookups are an
/// optimisation, so the pull goes on with what is known.
fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound { .. }
            | Error::PermissionDenied { .. }
            | Error::InvalidCredential { .. }
            | Error::Api {
                status: 401 | 403 | 404,
                ..
            }
    )
}

/// A listing, or `None` when the platform refused it (see [`refused`]).
fn lookup<T>(listing: Result<T>) -> Result<Option<T>> {
    match listing {
        Ok(v) => Ok(Some(v)),
        Err(e) if refused(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The only project the credential sees, when the platform lists them.
fn only_project(client: &Client) -> Result<Option<String>> {
    let Some(projects) = lookup(projects::list_projects(client))? else {
        return Ok(None);
    };
    match projects.as_slice() {
        [] => Err(Error::NotFound {
            what: "project (this credential sees no project)".into(),
            hint: Some("pass --project-id P, or check the key's project on the platform".into()),
        }),
        [one] => Ok(Some(one.id.clone())),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|p| match &p.name {
                    Some(n) => format!("{n} ({})", p.id),
                    None => p.id.clone(),
                })
                .collect();
            Err(Error::config(
                format!(
                    "several projects are visible to this credential: {}",
                    list.join(", ")
                ),
                Some("choose one with --project-id P, or set project_id in fluxloop.yaml".into()),
            ))
        }
    }
}

/// Finds a scenario by id or name in `project`; `None` when the platform
/// does not list scenarios to this credential.
fn find_scenario(client: &Client, project: &str, wanted: &str) -> Result<Option<Scenario>> {
    let Some(scenarios) = lookup(projects::list_scenarios(client, project))? else {
        return Ok(None);
    };
    let by_id = scenarios.iter().find(|s| s.id == wanted);
    let by_name = || scenarios.iter().find(|s| s.name.as_deref() == Some(wanted));
    let by_name_ci = || {
        scenarios.iter().find(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
    };
    if let Some(s) = by_id.or_else(by_name).or_else(by_name_ci) {
        return Ok(Some(s.clone()));
    }
    let names: Vec<&str> = scenarios.iter().filter_map(|s| s.name.as_deref()).collect();
    Err(Error::NotFound {
        what: format!("scenario '{wanted}' in project {project}"),
        hint: Some(if names.is_empty() {
            "the project has no scenarios yet; create one on the platform".into()
        } else {
            format!("scenarios in this project: {}", names.join(", "))
        }),
    })
}

/// The pull's body: the bundle asked for, else the scenario found by the
/// listings, else (when the platform lists nothing to this credential)
/// the previous pull's bundle of the scenario, else whatever the platform
/// picks for the key's project.
fn plan(client: &Client, input: &PullInput<'_>) -> Result<PullPlan> {
    let mut plan = PullPlan {
        body: PullBody::default(),
        project_id: None,
        scenario_id: None,
        note: None,
    };
    let project = match input.project_id.clone() {
        Some(p) => Some(p),
        None if input.bundle_version_id.is_some() => None,
        None => only_project(client)?,
    };
    if let Some(p) = &project {
        plan.body.project_id = Some(p.clone());
    }
    plan.project_id = project.clone();
    if let Some(bundle) = input
        .bundle_version_id
        .as_deref()
        .filter(|b| !b.trim().is_empty())
    {
        plan.body.bundle_version_id = Some(bundle.trim().to_string());
        return Ok(plan);
    }
    let wanted = input.scenario.as_deref();
    let found = match (&project, wanted) {
        (Some(p), Some(w)) => find_scenario(client, p, w)?,
        _ => None,
    };
    if let Some(s) = found {
        plan.body.scenario_id = Some(s.id.clone());
        plan.scenario_id = Some(s.id);
        return Ok(plan);
    }
    if let Some(w) = wanted {
        previous_bundle(&mut plan, input.root, w);
    }
    Ok(plan)
}

/// Without a listing, the bundle of the previous pull of `wanted`, if any.
fn previous_bundle(plan: &mut PullPlan, root: &Path, wanted: &str) {
    let previous = pulled::read_meta(&pulled::pulled_dir(root, wanted))
        .ok()
        .flatten();
    let same = previous
        .as_ref()
        .filter(|m| pulled::scenario_name(m).as_deref() == Some(wanted));
    let scenario = wanted.to_string();
    match same.and_then(|m| pulled::bundle_version_id(m).map(|id| (id, pulled::bundle_version(m))))
    {
        Some((id, version)) => {
            plan.note = Some(ListingNote::PreviousBundle {
                scenario,
                bundle: version
                    .map(|v| format!("bundle v{v}"))
                    .unwrap_or_else(|| id.clone()),
            });
            plan.body.bundle_version_id = Some(id);
        }
        None => plan.note = Some(ListingNote::NeverPulled { scenario }),
    }
}

/// Pulls the scenario: decides what to ask for, downloads it and writes it,
/// or keeps the pulled files when the platform says they are current.
/// `notes` hears, before the download, why a refused listing was done without.
pub(crate) fn pull(
    client: &Client,
    input: &PullInput<'_>,
    notes: &dyn Fn(&ListingNote),
) -> Result<PullReport> {
    let plan = &plan(client, input)?;
    if let Some(note) = &plan.note {
        notes(note);
    }
    let wanted = input.scenario.clone();
    // A copy the user has not edited can be kept when the platform's is the same.
    let current = wanted.as_deref().map(|w| pulled::pulled_dir(input.root, w));
    let etag = match &current {
        Some(dir) if pulled::local_edits(dir)?.is_empty() => pulled::read_meta(dir)?
            .filter(|m| pulled::scenario_name(m) == wanted)
            .and_then(|m| pulled::recorded_etag(&m)),
        _ => None,
    };
    match download(client, input.root, plan, etag.as_deref())? {
        None => up_to_date(
            plan,
            current.unwrap_or_default(),
            wanted.unwrap_or_default(),
        ),
        Some((resp, etag)) => write_pulled(input, plan, resp, etag.as_deref()),
    }
}

/// The pull response, or `None` for a 304. It is spooled to a file and
/// parsed item by item, so a pull of any size costs about the same memory.
fn download(
    client: &Client,
    root: &Path,
    plan: &PullPlan,
    etag: Option<&str>,
) -> Result<Option<(pulled::PullResponse, Option<String>)>> {
    let fluxloop_dir = root.join(".fluxloop");
    std::fs::create_dir_all(&fluxloop_dir)
        .map_err(|e| Error::io("create directory", &fluxloop_dir, e))?;
    // Named with our pid: a pull killed while downloading leaves it, and
    // the next pull removes it.
    let spool_path = fluxloop_dir.join(crate::pull_spool::temp_name("body"));
    let spool = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool_path)
        .map_err(|e| Error::io("create", &spool_path, e))?;
    let spooled = (|| {
        let got = sync_pull(client, &plan.body, &spool, etag)?;
        if got.not_modified {
            return Ok(None);
        }
        std::io::Seek::rewind(&mut &spool).map_err(|e| Error::io("read", &spool_path, e))?;
        let resp = pulled::parse_pull(&spool, &fluxloop_dir).map_err(|why| Error::Network {
            url: sync_pull_url(client),
            detail: format!(
                "POST answered HTTP 200 with a body that is not the expected JSON pull response ({why}); is the endpoint a FluxLoop platform?"
            ),
        })?;
        Ok(Some((resp, got.etag)))
    })();
    drop(spool);
    let _ = std::fs::remove_file(&spool_path);
    spooled
}

/// A 304: the pulled files stay as they are.
fn up_to_date(plan: &PullPlan, dir: PathBuf, scenario: String) -> Result<PullReport> {
    let meta = pulled::read_meta(&dir)?.unwrap_or_default();
    let count = |name: &str| -> usize {
        std::fs::read(dir.join(name))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
            .map_or(0, |v| v.len())
    };
    Ok(PullReport {
        scenario,
        scenario_id: plan.scenario_id.clone(),
        project_id: plan.project_id.clone(),
        bundle_version_id: pulled::bundle_version_id(&meta),
        bundle_version: pulled::bundle_version(&meta),
        inputs: count("inputs.json"),
        personas: count("personas.json"),
        criteria: count("criteria.json"),
        dir,
        kept_local: vec![],
        overwritten: vec![],
        up_to_date: true,
    })
}

/// Checks local edits against a new response and writes it.
fn write_pulled(
    input: &PullInput<'_>,
    plan: &PullPlan,
    resp: pulled::PullResponse,
    etag: Option<&str>,
) -> Result<PullReport> {
    let root = input.root;
    let doc_id = |pointer: &str| {
        resp.doc
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(String::from)
    };
    let doc_scenario_id = doc_id("/bundle_version/scenario_id");
    let doc_project_id = doc_id("/bundle_version/project_id");
    let scenario = pulled::scenario_name(&resp.doc)
        .or_else(|| input.scenario.clone())
        .or_else(|| doc_scenario_id.clone())
        .unwrap_or_else(|| "default".into());
    let dir = pulled::pulled_dir(root, &scenario);
    let (keep, overwritten) = settle_edits(&input.edits, root, &dir)?;
    let bundle_version_id = pulled::bundle_version_id(&resp.doc);
    let bundle_version = pulled::bundle_version(&resp.doc);
    let written = pulled::write_pull(&dir, resp, &keep, etag)?;
    Ok(PullReport {
        scenario,
        scenario_id: plan.scenario_id.clone().or(doc_scenario_id),
        project_id: plan.project_id.clone().or(doc_project_id),
        bundle_version_id,
        bundle_version,
        inputs: written.inputs,
        personas: written.personas,
        criteria: written.criteria,
        kept_local: written
            .kept
            .iter()
            .map(|f| display_rel(root, &dir.join(f)))
            .collect(),
        overwritten,
        dir,
        up_to_date: false,
    })
}

/// The edited files to keep, and those (as shown) to replace.
fn settle_edits(edits: &Edits<'_>, root: &Path, dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let edited = pulled::local_edits(dir)?;
    if edited.is_empty() {
        return Ok((vec![], vec![]));
    }
    let shown: Vec<String> = edited
        .iter()
        .map(|f| display_rel(root, &dir.join(f)))
        .collect();
    if edits.keep_local {
        return Ok((edited, vec![]));
    }
    if edits.overwrite {
        return Ok((vec![], shown));
    }
    let Some(confirm) = edits.confirm else {
        return Err(Error::SyncConflict { files: shown });
    };
    if confirm(&format!(
        "{} edited locally; overwrite with the platform's version?",
        shown.join(", ")
    ))? {
        Ok((vec![], shown))
    } else {
        // "No" keeps the edits, as --keep-local does; the report says so.
        Ok((edited, vec![]))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::{settle_edits, Confirm, Edits};
    use crate::error::{Error, Result};

    /// A pulled directory whose inputs.json no longer has the recorded hash.
    fn edited_workspace() -> (tempfile::TempDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = crate::pulled::pulled_dir(root.path(), "bot");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inputs.json"), "[\"edited\"]").unwrap();
        std::fs::write(
            dir.join(crate::pulled::SYNC_META),
            r#"{"fluxloop_rs": {"hashes": {"inputs.json": "00"}}}"#,
        )
        .unwrap();
        (root, dir)
    }

    fn settle(
        keep_local: bool,
        overwrite: bool,
        confirm: Option<Confirm<'_>>,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (root, dir) = edited_workspace();
        let edits = Edits {
            keep_local,
            overwrite,
            confirm,
        };
        settle_edits(&edits, root.path(), &dir)
    }

    #[test]
    fn local_edits_are_kept_replaced_asked_about_or_a_conflict() {
        let shown = ".fluxloop/scenarios/bot/pulled/inputs.json".to_string();
        let kept = (vec!["inputs.json".to_string()], vec![]);
        assert_eq!(settle(true, true, None).unwrap(), kept);
        assert_eq!(
            settle(false, true, None).unwrap(),
            (vec![], vec![shown.clone()])
        );
        match settle(false, false, None) {
            Err(Error::SyncConflict { files }) => assert_eq!(files, vec![shown.clone()]),
            other => panic!("want a conflict, got {other:?}"),
        }
        let asked = RefCell::new(Vec::new());
        let no = |q: &str| {
            asked.borrow_mut().push(q.to_string());
            Ok(false)
        };
        assert_eq!(settle(false, false, Some(&no)).unwrap(), kept);
        assert_eq!(
            asked.borrow().as_slice(),
            [format!(
                "{shown} edited locally; overwrite with the platform's version?"
            )]
        );
        let yes = |_: &str| Ok(true);
        assert_eq!(
            settle(false, false, Some(&yes)).unwrap(),
            (vec![], vec![shown])
        );
    }

    #[test]
    fn nothing_edited_needs_no_answer() {
        let root = tempfile::tempdir().unwrap();
        let dir = crate::pulled::pulled_dir(root.path(), "bot");
        let edits = Edits {
            keep_local: false,
            overwrite: false,
            confirm: None,
        };
        assert_eq!(
            settle_edits(&edits, root.path(), &dir).unwrap(),
            (vec![], vec![])
        );
    }
}
