//! The pulled scenario on disk (CLI.md §4, §8): the layout FluxLoop CLI 0.4
//! shares, the whole `pulled/` set replaced at once (see `pull_spool`), and
//! local-edit detection through hashes recorded in `sync_meta.json` under a
//! key of our own.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::api::pull::PullDocument;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::pull_spool::{self, Spooled, Staging, STREAMED};

pub(crate) const INPUTS: &str = "inputs.json";
pub(crate) const PERSONAS: &str = "personas.json";
pub(crate) const CRITERIA: &str = "criteria.json";
pub(crate) const SYNC_META: &str = "sync_meta.json";
/// Our key in `sync_meta.json` (FluxLoop CLI 0.4 ignores unknown keys).
const OWN_KEY: &str = "fluxloop_rs";

/// `<root>/.fluxloop/scenarios/<scenario>`.
pub(crate) fn scenario_dir(root: &Path, scenario: &str) -> PathBuf {
    root.join(".fluxloop")
        .join("scenarios")
        .join(dir_name(scenario))
}

/// `<root>/.fluxloop/scenarios/<scenario>/pulled`.
pub(crate) fn pulled_dir(root: &Path, scenario: &str) -> PathBuf {
    scenario_dir(root, scenario).join("pulled")
}

/// `<root>/.fluxloop/results`.
pub(crate) fn results_root(root: &Path) -> PathBuf {
    root.join(".fluxloop").join("results")
}

/// A scenario name made safe as one path component: no separators, no `..`.
pub(crate) fn dir_name(scenario: &str) -> String {
    let s: String = scenario
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('.').to_string();
    if s.is_empty() {
        "scenario".into()
    } else {
        s
    }
}

/// Hex SHA-256 of bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex, as the hashes in sync_meta.json are written.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file, read in pieces.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex(&h.finalize()))
}

/// Writes `bytes` to `path` atomically (readers see the old file or the new
/// one, never half), creating its directory as any other directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    crate::atomic_file::write_atomic(path, 0o644, |f| f.write_all(bytes))
        .map_err(|e| Error::io("write", path, e))
}

/// What a pull wrote.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) inputs: usize,
    pub(crate) personas: usize,
    pub(crate) criteria: usize,
    /// Locally edited files left as they were (`--keep-local`).
    pub(crate) kept: Vec<String>,
}

/// The hashes recorded by the last pull, by file name.
fn recorded_hashes(meta: &Value) -> BTreeMap<String, String> {
    PullDocument::of(meta).pulled.hashes
}

/// Reads `sync_meta.json` if present.
pub(crate) fn read_meta(dir: &Path) -> Result<Option<Value>> {
    let path = dir.join(SYNC_META);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Parse {
                path,
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                message: e.to_string(),
                hint: Some("run `fluxloop sync pull --yes` to pull the scenario again".into()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Pulled files whose content differs from what the last pull wrote. Files
/// pulled by a CLI that records no hashes, and deleted files, are not edits.
pub(crate) fn local_edits(dir: &Path) -> Result<Vec<String>> {
    let Some(meta) = read_meta(dir).ok().flatten() else {
        return Ok(vec![]);
    };
    let mut edited = Vec::new();
    for (name, want) in recorded_hashes(&meta) {
        if name.contains('/') || name.contains("..") {
            continue;
        }
        let path = dir.join(&name);
        match sha256_file(&path) {
            Ok(have) if have != want => edited.push(name),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(edited)
}

/// A `POST /api/sync/pull` response read by [`parse_pull`]: its arrays
/// already written (pretty, hashed) item by item into a staging directory,
/// the rest as JSON. A pull of any size costs about the same memory.
pub(crate) struct PullResponse {
    /// The response object without the streamed arrays.
    pub(crate) doc: Value,
    staging: Staging,
    spooled: [Option<Spooled>; 3],
}

/// Reads a pull response from `reader` (the spooled body), writing its
/// arrays into a new staging directory in `fluxloop_dir` (the file system
/// of `pulled/`, so it can be renamed into place). Errors are the reason
/// the body is not a pull response.
pub(crate) fn parse_pull(
    reader: impl Read,
    fluxloop_dir: &Path,
) -> std::result::Result<PullResponse, String> {
    let staging = Staging::create(fluxloop_dir).map_err(|e| {
        format!(
            "cannot create a directory in {}: {e}",
            fluxloop_dir.display()
        )
    })?;
    let (doc, spooled) = pull_spool::parse(reader, &staging.path)?;
    Ok(PullResponse {
        doc,
        staging,
        spooled,
    })
}

/// Makes `dir` the pulled set of a response (CLI.md §8 layout), as a whole:
/// files in `keep` come along from the current `dir` untouched, and the
/// hashes of the platform's versions go into `sync_meta.json`; then the set
/// replaces `dir` in one rename.
pub(crate) fn write_pull(
    dir: &Path,
    resp: PullResponse,
    keep: &[String],
    etag: Option<&str>,
) -> Result<Written> {
    let PullResponse {
        doc,
        staging,
        spooled,
    } = resp;
    let mut hashes = BTreeMap::new();
    let mut written = Written::default();
    for (i, (_, name)) in STREAMED.iter().enumerate() {
        let staged = staging.path.join(name);
        let s = match &spooled[i] {
            Some(s) => s.clone(),
            // inputs.json is always there; the others only when non-empty.
            None if i == 0 => {
                write_atomic(&staged, b"[]\n")?;
                Spooled {
                    sha256: sha256_hex(b"[]\n"),
                    count: 0,
                }
            }
            None => Spooled::default(),
        };
        match i {
            0 => written.inputs = s.count,
            1 => written.personas = s.count,
            _ => written.criteria = s.count,
        }
        let present = i == 0 || s.count > 0;
        // The platform's version is recorded even for a kept file, so the
        // edit is still seen as one on the next pull.
        if present {
            hashes.insert(name.to_string(), s.sha256.clone());
        }
        let remove_staged = || match std::fs::remove_file(&staged) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &staged, e))
            }
            _ => Ok(()),
        };
        if keep.iter().any(|k| k == name) {
            written.kept.push(name.to_string());
            let local = dir.join(name);
            if local.exists() {
                std::fs::copy(&local, &staged).map_err(|e| Error::io("copy", &local, e))?;
            } else {
                remove_staged()?;
            }
        } else if !present {
            // The bundle has none: a stale or empty file would mislead.
            remove_staged()?;
        }
    }
    let meta = json!({
        "bundle_version": doc.get("bundle_version").cloned().unwrap_or_else(|| json!({})),
        "run_spec_snapshot": doc.get("run_spec_snapshot").cloned().unwrap_or_else(|| json!({})),
        "scenario_context": doc.get("scenario_context").cloned().unwrap_or(Value::Null),
        "input_set": doc.get("input_set").cloned().unwrap_or(Value::Null),
        "sync_meta": doc.get("sync_meta").cloned().unwrap_or_else(|| json!({})),
        OWN_KEY: {
            "cli_version": env!("CARGO_PKG_VERSION"),
            "hashes": hashes,
            "etag": etag,
        },
    });
    let meta_path = staging.path.join(SYNC_META);
    std::fs::write(&meta_path, pretty(&meta)).map_err(|e| Error::io("write", &meta_path, e))?;
    staging
        .swap_into(dir)
        .map_err(|e| Error::io("replace", dir, e))?;
    Ok(written)
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The platform's `ETag` for the last pull, to ask for it conditionally.
pub(crate) fn recorded_etag(meta: &Value) -> Option<String> {
    PullDocument::of(meta).pulled.etag.filter(|e| !e.is_empty())
}

/// The bundle version id recorded by the last pull.
pub(crate) fn bundle_version_id(meta: &Value) -> Option<String> {
    PullDocument::of(meta).bundle_version.id
}

/// The bundle version number recorded by the last pull.
pub(crate) fn bundle_version(meta: &Value) -> Option<String> {
    PullDocument::of(meta)
        .bundle_version
        .version
        .map(|v| v.to_string())
}

/// The scenario name from a pull response or `sync_meta.json`.
pub(crate) fn scenario_name(v: &Value) -> Option<String> {
    PullDocument::of(v)
        .scenario_context
        .scenario
        .name
        .filter(|s| !s.trim().is_empty())
}

/// One pulled input, as the runner needs it.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// The text sent to the agent (`input_text`).
    pub(crate) text: String,
    pub(crate) id: Option<String>,
    pub(crate) persona: Option<String>,
    /// The persona's name and description from `personas.json`.
    pub(crate) persona_detail: Option<(String, String)>,
    /// The whole pulled item (`input_metadata` in `trace_summary.jsonl`).
    pub(crate) item: Value,
}

/// A pulled persona.
pub(crate) struct Persona {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
}

/// Reads `personas.json` (absent: none).
pub(crate) fn load_personas(dir: &Path) -> Result<Vec<Persona>> {
    let path = dir.join(PERSONAS);
    let personas: Vec<Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::config(format!("{}: not a JSON array: {e}", path.display()), None)
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let text = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(personas
        .iter()
        .map(|p| Persona {
            id: text(p, "id"),
            name: text(p, "name"),
            description: text(p, "description"),
        })
        .collect())
}

/// Fills in each input's persona name and description from `personas.json`
/// (absent or unreadable: the inputs keep only the persona id).
pub(crate) fn attach_personas(dir: &Path, inputs: &mut [Input]) {
    let Ok(personas) = load_personas(dir) else {
        return;
    };
    let by_id: BTreeMap<&str, &Persona> = personas.iter().map(|p| (p.id.as_str(), p)).collect();
    for input in inputs {
        input.persona_detail = input
            .persona
            .as_deref()
            .and_then(|id| by_id.get(id))
            .map(|p| (p.name.clone(), p.description.clone()));
    }
}

/// Reads `inputs.json`. Items without any text are skipped, as FluxLoop CLI 0.4 does.
pub(crate) fn load_inputs(dir: &Path) -> Result<Vec<Input>> {
    let path = dir.join(INPUTS);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path,
                what: "pulled inputs (run `fluxloop sync pull` first)",
            })
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let items: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
        path: path.clone(),
        line: Some(e.line() as u64),
        column: Some(e.column() as u64),
        message: format!("expected a JSON array of input items: {e}"),
        hint: Some("run `fluxloop sync pull --yes` to restore the platform's version".into()),
    })?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let text = input_text(&item)?;
            let str_of = |k: &str| item.get(k).and_then(Value::as_str).map(String::from);
            Some(Input {
                text,
                id: str_of("input_item_id").or_else(|| str_of("id")),
                persona: str_of("persona").or_else(|| str_of("persona_id")),
                persona_detail: None,
                item,
            })
        })
        .collect())
}

/// The text of an input item: `text`/`content`, else the user messages
/// joined by newlines, else the other messages.
pub(crate) fn input_text(item: &Value) -> Option<String> {
    for key in ["text", "content"] {
        if let Some(s) = item
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
        {
            return Some(s.to_string());
        }
    }
    let messages = item.get("messages")?.as_array()?;
    let (mut user, mut other) = (Vec::new(), Vec::new());
    for m in messages {
        let Some(text) = m.get("content").and_then(content_text) else {
            continue;
        };
        if m.get("role").and_then(Value::as_str) == Some("user") {
            user.push(text);
        } else {
            other.push(text);
        }
    }
    let parts = if user.is_empty() { other } else { user };
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Array(parts) => {
            let texts: Vec<String> = parts
                .iter()
                .filter_map(|p| match p {
                    Value::String(s) => Some(s.trim().to_string()),
                    Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("text") => o
                        .get("text")
                        .and_then(Value::as_str)
                        .map(|s| s.trim().to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_one_safe_component() {
        assert_eq!(dir_name("support-bot"), "support-bot");
        assert_eq!(dir_name("../etc"), "-etc");
        assert_eq!(dir_name("a/b c"), "a-b-c");
        assert_eq!(dir_name(".."), "scenario");
    }

    #[test]
    fn input_text_forms() {
        assert_eq!(input_text(&json!({"text": "hi"})).as_deref(), Some("hi"));
        let item = json!({"messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "image"}]},
        ]});
        assert_eq!(input_text(&item).as_deref(), Some("a\nb"));
        assert_eq!(
            input_text(&json!({"messages": [{"role": "system", "content": "s"}]})).as_deref(),
            Some("s")
        );
        assert_eq!(input_text(&json!({"messages": []})), None);
    }

    #[test]
    fn streamed_items_match_pretty_printing() {
        let tmp = tempfile::tempdir().unwrap();
        for items in [
            json!([]),
            json!([{"a": 1}]),
            json!([{"id": "x", "messages": [{"role": "user", "content": "line\nbreak \"q\""}], "metadata": {}}, [1, [2, {}]], "s", null]),
        ] {
            let body = json!({"bundle_version": {"id": "b"}, "input_items": items, "personas": [], "criteria_pack": items});
            let (doc, spooled) =
                pull_spool::parse(body.to_string().as_bytes(), tmp.path()).unwrap();
            for (i, want) in [(0, &items), (1, &json!([])), (2, &items)] {
                let s = spooled[i].as_ref().unwrap();
                let file = tmp.path().join(STREAMED[i].1);
                assert_eq!(std::fs::read(&file).unwrap(), pretty(want));
                assert_eq!(s.sha256, sha256_hex(&pretty(want)));
                assert_eq!(s.count, want.as_array().unwrap().len());
            }
            assert!(doc.get("input_items").is_none() && doc.get("personas").is_none());
            assert_eq!(doc["bundle_version"]["id"], "b");
        }
        for bad in [
            "<html>oops",
            "[1]",
            "{\"input_items\": 3}",
            "{\"personas\": {}}",
            "{\"input_items\": [1,",
        ] {
            assert!(parse_pull(bad.as_bytes(), tmp.path()).is_err(), "{bad}");
        }
    }

    #[test]
    fn pull_write_and_edit_detection() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pulled");
        let resp = json!({
            "bundle_version": {"id": "b1", "version": 3},
            "input_items": [{"id": "i1", "persona_id": "p1", "messages": [{"role": "user", "content": "hi"}], "metadata": {}}],
            "personas": [],
            "criteria_pack": [{"id": "c1"}],
            "scenario_context": {"scenario": {"name": "support-bot"}},
        });
        let parse = |v: &Value| parse_pull(v.to_string().as_bytes(), tmp.path()).unwrap();
        let w = write_pull(&dir, parse(&resp), &[], None).unwrap();
        assert_eq!((w.inputs, w.personas, w.criteria), (1, 0, 1));
        // Streamed, the file is byte for byte what pretty-printing the whole array gives.
        assert_eq!(
            std::fs::read(dir.join(INPUTS)).unwrap(),
            pretty(&resp["input_items"])
        );
        assert!(dir.join(INPUTS).is_file());
        assert!(!dir.join(PERSONAS).exists());
        assert!(local_edits(&dir).unwrap().is_empty());
        let meta = read_meta(&dir).unwrap().unwrap();
        assert_eq!(bundle_version_id(&meta).as_deref(), Some("b1"));
        assert_eq!(bundle_version(&meta).as_deref(), Some("3"));
        assert_eq!(scenario_name(&meta).as_deref(), Some("support-bot"));
        for key in [
            "bundle_version",
            "run_spec_snapshot",
            "scenario_context",
            "input_set",
            "sync_meta",
        ] {
            assert!(meta.get(key).is_some(), "{key}");
        }
        std::fs::write(dir.join(INPUTS), "[]").unwrap();
        assert_eq!(local_edits(&dir).unwrap(), vec![INPUTS.to_string()]);
        // Kept: the edit survives and is still an edit next time.
        let w = write_pull(&dir, parse(&resp), &[INPUTS.to_string()], None).unwrap();
        assert_eq!(w.kept, vec![INPUTS.to_string()]);
        assert_eq!(std::fs::read_to_string(dir.join(INPUTS)).unwrap(), "[]");
        assert_eq!(local_edits(&dir).unwrap(), vec![INPUTS.to_string()]);
        write_pull(&dir, parse(&resp), &[], None).unwrap();
        assert!(local_edits(&dir).unwrap().is_empty());
        // No staging directory or temp file is left behind, kept or not.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let inputs = load_inputs(&dir).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].text, "hi");
        assert_eq!(inputs[0].persona.as_deref(), Some("p1"));
    }
}
