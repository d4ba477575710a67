//! The pulled scenario on disk (CLI.md §4, §8): the layout FluxLoop CLI 0.4
//! shares, atomic file replacement, and local-edit detection through hashes
//! recorded in `sync_meta.json` under a key of our own.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

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
fn hex(digest: &[u8]) -> String {
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
    meta.pointer(&format!("/{OWN_KEY}/hashes"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
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

fn array_len(v: Option<&Value>) -> usize {
    v.and_then(Value::as_array).map_or(0, Vec::len)
}

/// A `POST /api/sync/pull` response read by [`parse_pull`]: `input_items`
/// already written (pretty, hashed) to a temp file item by item, the rest as
/// JSON. A pull of 100,000 inputs never holds them all in memory.
pub(crate) struct PullResponse {
    /// The response object without `input_items`.
    pub(crate) doc: Value,
    inputs: SpooledInputs,
}

/// `inputs.json` as it will be written, in a temp file removed on drop
/// unless it was moved into place.
struct SpooledInputs {
    path: PathBuf,
    sha256: String,
    count: usize,
}

impl Drop for SpooledInputs {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes the items of an array exactly as `serde_json::to_vec_pretty` of the
/// whole array (then a newline) would, hashing as it goes.
struct ItemsWriter {
    out: BufWriter<std::fs::File>,
    hash: Sha256,
    count: usize,
    scratch: Vec<u8>,
    indented: Vec<u8>,
}

impl ItemsWriter {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn push(&mut self, item: &Value) -> std::io::Result<()> {
        self.scratch.clear();
        serde_json::to_writer_pretty(&mut self.scratch, item)?;
        // One level deeper: JSON strings hold no raw newline, so every
        // newline in the output is a line break of the layout.
        self.indented.clear();
        self.indented
            .extend_from_slice(if self.count == 0 { b"[\n  " } else { b",\n  " });
        for &b in &self.scratch {
            self.indented.push(b);
            if b == b'\n' {
                self.indented.extend_from_slice(b"  ");
            }
        }
        let chunk = std::mem::take(&mut self.indented);
        let r = self.put(&chunk);
        self.indented = chunk;
        self.count += 1;
        r
    }

    fn finish(mut self) -> std::io::Result<(String, usize)> {
        let end: &[u8] = if self.count == 0 { b"[]\n" } else { b"\n]\n" };
        self.put(end)?;
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        let sha = hex(&self.hash.finalize());
        Ok((sha, self.count))
    }
}

struct TopLevel<'a>(&'a mut ItemsWriter);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a pull response object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut doc = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "input_items" {
                map.next_value_seed(Items(&mut *self.0))?;
            } else {
                let v: Value = map.next_value()?;
                doc.insert(key, v);
            }
        }
        Ok(doc)
    }
}

struct Items<'a>(&'a mut ItemsWriter);

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of input items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            self.0.push(&item).map_err(A::Error::custom)?;
        }
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

/// Reads a pull response from `reader` (the spooled body), writing its
/// `input_items` to a temp file in `tmp_dir` (same file system as the
/// workspace, so it can be renamed into place). Errors are the reason the
/// body is not a pull response.
pub(crate) fn parse_pull(
    reader: impl Read,
    tmp_dir: &Path,
) -> std::result::Result<PullResponse, String> {
    let path = tmp_dir.join(format!(
        ".inputs.json.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut spooled = SpooledInputs {
        path,
        sha256: String::new(),
        count: 0,
    };
    let mut items = ItemsWriter {
        out: BufWriter::with_capacity(64 * 1024, file),
        hash: Sha256::new(),
        count: 0,
        scratch: Vec::new(),
        indented: Vec::new(),
    };
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader));
    let doc = serde::Deserializer::deserialize_map(&mut de, TopLevel(&mut items))
        .and_then(|doc| de.end().map(|_| doc))
        .map_err(|e| e.to_string())?;
    let (sha, count) = items
        .finish()
        .map_err(|e| format!("cannot write {}: {e}", spooled.path.display()))?;
    spooled.sha256 = sha;
    spooled.count = count;
    Ok(PullResponse {
        doc: Value::Object(doc),
        inputs: spooled,
    })
}

/// Writes a pull response into `dir` (CLI.md §8 layout).
/// Files in `keep` are left untouched; others are replaced atomically, and
/// `sync_meta.json` is written last with the new hashes.
pub(crate) fn write_pull(dir: &Path, resp: &PullResponse, keep: &[String]) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let doc = &resp.doc;
    let mut hashes = BTreeMap::new();
    let mut written = Written {
        inputs: resp.inputs.count,
        ..Written::default()
    };
    // inputs.json: always written, already on disk beside the workspace.
    hashes.insert(INPUTS.to_string(), resp.inputs.sha256.clone());
    if keep.iter().any(|k| k == INPUTS) {
        written.kept.push(INPUTS.to_string());
    } else {
        let path = dir.join(INPUTS);
        std::fs::rename(&resp.inputs.path, &path).map_err(|e| Error::io("write", &path, e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let empty = Value::Array(vec![]);
    let files: [(&str, &Value); 2] = [
        (PERSONAS, doc.get("personas").unwrap_or(&empty)),
        (CRITERIA, doc.get("criteria_pack").unwrap_or(&empty)),
    ];
    written.personas = array_len(doc.get("personas"));
    written.criteria = array_len(doc.get("criteria_pack"));
    for (name, value) in files {
        let path = dir.join(name);
        let non_empty = value.as_array().is_some_and(|a| !a.is_empty());
        let bytes = pretty(value);
        // The platform's version is recorded even for a kept file, so the
        // edit is still seen as one on the next pull.
        if non_empty {
            hashes.insert(name.to_string(), sha256_hex(&bytes));
        }
        if keep.iter().any(|k| k == name) {
            written.kept.push(name.to_string());
            continue;
        }
        if non_empty {
            write_atomic(&path, &bytes)?;
        } else if path.exists() {
            // The bundle no longer has any: a stale file would mislead.
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
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
        },
    });
    write_atomic(&dir.join(SYNC_META), &pretty(&meta))?;
    Ok(written)
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The bundle version id recorded by the last pull.
pub(crate) fn bundle_version_id(meta: &Value) -> Option<String> {
    meta.pointer("/bundle_version/id")
        .and_then(Value::as_str)
        .map(String::from)
}

/// The bundle version number recorded by the last pull.
pub(crate) fn bundle_version(meta: &Value) -> Option<String> {
    meta.pointer("/bundle_version/version")
        .and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
}

/// The scenario name from a pull response or `sync_meta.json`.
pub(crate) fn scenario_name(v: &Value) -> Option<String> {
    v.pointer("/scenario_context/scenario/name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(String::from)
}

/// One pulled input, as the runner needs it.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    /// The text sent to the agent (`input_text`).
    pub(crate) text: String,
    pub(crate) id: Option<String>,
    pub(crate) persona: Option<String>,
    /// The whole pulled item (`input_metadata` in `trace_summary.jsonl`).
    pub(crate) item: Value,
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
            let body = json!({"bundle_version": {"id": "b"}, "input_items": items, "personas": []});
            let r = parse_pull(body.to_string().as_bytes(), tmp.path()).unwrap();
            assert_eq!(std::fs::read(&r.inputs.path).unwrap(), pretty(&items));
            assert_eq!(r.inputs.sha256, sha256_hex(&pretty(&items)));
            assert_eq!(r.inputs.count, items.as_array().unwrap().len());
            assert!(r.doc.get("input_items").is_none());
            assert_eq!(r.doc["bundle_version"]["id"], "b");
        }
        for bad in [
            "<html>oops",
            "[1]",
            "{\"input_items\": 3}",
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
        let w = write_pull(&dir, &parse(&resp), &[]).unwrap();
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
        let w = write_pull(&dir, &parse(&resp), &[INPUTS.to_string()]).unwrap();
        assert_eq!(w.kept, vec![INPUTS.to_string()]);
        assert_eq!(std::fs::read_to_string(dir.join(INPUTS)).unwrap(), "[]");
        assert_eq!(local_edits(&dir).unwrap(), vec![INPUTS.to_string()]);
        write_pull(&dir, &parse(&resp), &[]).unwrap();
        assert!(local_edits(&dir).unwrap().is_empty());
        // No temp file is left behind, kept or not.
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let inputs = load_inputs(&dir).unwrap();
        assert_eq!(inputs.len(), 1);
        assert_eq!(inputs[0].text, "hi");
        assert_eq!(inputs[0].persona.as_deref(), Some("p1"));
    }
}
