//! The project's files: `fluxloop.yaml` (CLI.md §5), the workspace root and
//! `.fluxloop/project.json` (shared with FluxLoop CLI 0.4, CLI.md §8).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The name searched for upward from the working directory.
pub(crate) const CONFIG_FILE: &str = "fluxloop.yaml";

/// Larger than any hand-written config; a bigger file is a mistake or an attack.
const MAX_CONFIG_SIZE: usize = 1024 * 1024;

/// `fluxloop.yaml`. Unknown keys are errors: a typo must not be silently ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// `scenario`, `project_id` and `api` are read by key through the settings
// registry (config/registry.rs); typed here so that a bad value fails when
// the file is loaded, with its line.
#[expect(dead_code, reason = "read by key through config/registry.rs")]
pub(crate) struct ProjectConfig {
    /// The default `--scenario`.
    pub(crate) scenario: Option<String>,
    /// The default `--project-id`.
    pub(crate) project_id: Option<String>,
    #[serde(default)]
    pub(crate) api: ApiConfig,
    #[serde(default)]
    pub(crate) runner: RunnerConfig,
    #[serde(default)]
    pub(crate) test: TestConfig,
    /// Keyless CI: `oidc: true|false` or `oidc: {enabled, audience}`.
    pub(crate) oidc: Option<OidcConfig>,
}

/// `oidc:`, either form.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
#[expect(dead_code, reason = "read by key through config/registry.rs")]
pub(crate) enum OidcConfig {
    Enabled(bool),
    Table(OidcTable),
}

/// `oidc: {enabled: bool, audience: str}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "read by key through config/registry.rs")]
pub(crate) struct OidcTable {
    pub(crate) enabled: Option<bool>,
    pub(crate) audience: Option<String>,
}

/// `api:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// Read through the settings registry by key (`api.timeout`); typed here so
// that a bad value fails when the file is loaded, with its line.
#[expect(dead_code, reason = "read by key through config/registry.rs")]
pub(crate) struct ApiConfig {
    pub(crate) endpoint: Option<String>,
    /// Where people see results, when it is not derived from `endpoint`.
    pub(crate) web_url: Option<String>,
    pub(crate) key_file: Option<String>,
    /// Extra CA certificate (PEM), added to the bundled roots.
    pub(crate) ca_cert: Option<String>,
    /// Seconds for a whole request.
    #[serde(default, deserialize_with = "yaml_request_seconds")]
    pub(crate) timeout: Option<f64>,
    /// Seconds to establish a connection.
    #[serde(default, deserialize_with = "yaml_request_seconds")]
    pub(crate) connect_timeout: Option<f64>,
    /// Retries after the first attempt.
    #[serde(default, deserialize_with = "yaml_retries")]
    pub(crate) retries: Option<u32>,
}

/// The one check of each numeric network setting, shared by
/// `fluxloop.yaml` (below) and the environment (`api::net`): a value from
/// outside must never reach `Duration` arithmetic unchecked (1e300 seconds
/// panics in `Duration::from_secs_f64`; 4294967295 retries overflows the
/// attempt count). Each returns the reason a value is refused.
pub(crate) mod limits {
    /// Longest request or connect timeout: a day.
    pub(crate) const MAX_REQUEST_SECONDS: f64 = 86_400.0;
    /// Most retries after the first attempt.
    pub(crate) const MAX_RETRIES: u64 = 100;

    /// `api.timeout`, `api.connect_timeout`, `FLUXLOOP_HTTP_TIMEOUT`,
    /// `FLUXLOOP_CONNECT_TIMEOUT`: seconds above 0, at most a day.
    pub(crate) fn request_seconds(v: f64) -> Result<f64, String> {
        if v > 0.0 && v <= MAX_REQUEST_SECONDS {
            Ok(v)
        } else {
            Err(format!(
                "must be a number of seconds above 0 and at most {MAX_REQUEST_SECONDS}, not {v:?}"
            ))
        }
    }

    /// Most attempts after the first failed run of one input (`--retries`).
    pub(crate) const MAX_RUN_RETRIES: u64 = 10;
    /// Most run starts per second (`--rate`).
    pub(crate) const MAX_RATE_PER_SECOND: f64 = 1000.0;

    /// `--retries`, `test.retries`: how often a failed run is tried again.
    pub(crate) fn run_retries(v: u64) -> Result<u32, String> {
        match u32::try_from(v) {
            Ok(n) if v <= MAX_RUN_RETRIES => Ok(n),
            _ => Err(format!(
                "must be a whole number of retries from 0 to {MAX_RUN_RETRIES}, not {v}"
            )),
        }
    }

    /// `--fail-under`, `test.pass_rate`: a success rate from 0 to 1.
    pub(crate) fn pass_rate(v: f64) -> Result<f64, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "must be a success rate from 0 to 1 (e.g. 0.95), not {v:?}"
            ))
        }
    }

    /// `--max-failures`, `test.max_failures`: at least one failure.
    pub(crate) fn max_failures(v: u64) -> Result<usize, String> {
        match usize::try_from(v) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "must be a whole number of failures of at least 1, not {v}"
            )),
        }
    }

    /// `--rate`, `test.rate`: `N/s` or `N/m`, the most run starts in that time.
    pub(crate) fn rate(v: &str) -> Result<Rate, String> {
        let refuse = || {
            format!(
                "must be a number of run starts per second or minute, like 5/s or 30/m, not {v:?}"
            )
        };
        let (n, unit) = v.trim().split_once('/').ok_or_else(refuse)?;
        let n: f64 = n.trim().parse().map_err(|_| refuse())?;
        let unit_secs = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            _ => return Err(refuse()),
        };
        let per_second = n / unit_secs;
        // The interval must stay a finite Duration: at least one start a day.
        if !(1.0 / 86_400.0..=MAX_RATE_PER_SECOND).contains(&per_second) {
            return Err(format!(
                "{} (from one a day to {MAX_RATE_PER_SECOND}/s)",
                refuse()
            ));
        }
        Ok(Rate {
            text: v.trim().to_string(),
            interval: std::time::Duration::from_secs_f64(1.0 / per_second),
        })
    }

    /// A limit on run starts: one every `interval`.
    #[derive(Clone, Debug, PartialEq)]
    pub(crate) struct Rate {
        /// As written, for messages.
        pub(crate) text: String,
        pub(crate) interval: std::time::Duration,
    }

    /// Most shards of one job: far more CI workers than any system offers.
    pub(crate) const MAX_SHARDS: u64 = 10_000;

    /// One part of a sharded job: shard `index` (1-based) of `total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
    pub(crate) struct Shard {
        pub(crate) index: u32,
        pub(crate) total: u32,
    }

    impl std::fmt::Display for Shard {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}/{}", self.index, self.total)
        }
    }

    /// `--shard`, `test.shard`: a fixed shard, or `auto` (from the CI's variables).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum ShardSpec {
        Fixed(Shard),
        Auto,
    }

    /// `--shard`, `test.shard`: `I/N` with 1 <= I <= N, or `auto`.
    pub(crate) fn shard(v: &str) -> Result<ShardSpec, String> {
        if v.trim() == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let refuse = || format!("must be I/N (shard I of N, from 1), or auto, not {v:?}");
        let (i, n) = v.trim().split_once('/').ok_or_else(refuse)?;
        let i: u64 = i.trim().parse().map_err(|_| refuse())?;
        let n: u64 = n.trim().parse().map_err(|_| refuse())?;
        shard_of(i, n).map(ShardSpec::Fixed)
    }

    /// Shard `index` (1-based) of `total`, as `--shard` and the CI variables give it.
    pub(crate) fn shard_of(index: u64, total: u64) -> Result<Shard, String> {
        if total == 0 || total > MAX_SHARDS {
            return Err(format!(
                "the number of shards must be from 1 to {MAX_SHARDS}, not {total}"
            ));
        }
        if index == 0 || index > total {
            return Err(format!(
                "the shard must be from 1 to {total} (1-based), not {index}"
            ));
        }
        // Both fit: total <= MAX_SHARDS.
        Ok(Shard {
            index: index as u32,
            total: total as u32,
        })
    }

    /// `api.retries`, `FLUXLOOP_HTTP_RETRIES`: a whole number up to 100.
    pub(crate) fn retries(v: u64) -> Result<u32, String> {
        match u32::try_from(v) {
            Ok(n) if v <= MAX_RETRIES => Ok(n),
            _ => Err(format!(
                "must be a whole number of retries from 0 to {MAX_RETRIES}, not {v}"
            )),
        }
    }
}

fn yaml_shard<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<limits::ShardSpec>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|v| limits::shard(&v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_request_seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|v| limits::request_seconds(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_retries<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| limits::retries(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_run_retries<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| limits::run_retries(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_pass_rate<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|v| limits::pass_rate(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_max_failures<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<usize>, D::Error> {
    Option::<u64>::deserialize(d)?
        .map(|v| limits::max_failures(v).map_err(serde::de::Error::custom))
        .transpose()
}

fn yaml_rate<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<limits::Rate>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|v| limits::rate(&v).map_err(serde::de::Error::custom))
        .transpose()
}

/// `runner.type`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunnerType {
    #[default]
    Process,
    Function,
}

/// `runner.command`: a list of arguments, or one string run by `sh -c`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub(crate) enum CommandSpec {
    Argv(Vec<String>),
    Shell(String),
}

/// `runner:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunnerConfig {
    #[serde(rename = "type")]
    pub(crate) kind: Option<RunnerType>,
    pub(crate) command: Option<CommandSpec>,
    pub(crate) target: Option<String>,
    pub(crate) working_directory: Option<String>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// The interpreter for `type: function` (default `python3`).
    pub(crate) python: Option<String>,
}

/// `test:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// Read by key through the settings registry (config/registry.rs); typed
// here so that a bad value fails when the file is loaded, with its line.
#[expect(dead_code, reason = "read by key through config/registry.rs")]
pub(crate) struct TestConfig {
    pub(crate) iterations: Option<u32>,
    pub(crate) parallel: Option<u32>,
    pub(crate) timeout: Option<f64>,
    pub(crate) auto_upload: Option<bool>,
    /// `--retries`.
    #[serde(default, deserialize_with = "yaml_run_retries")]
    pub(crate) retries: Option<u32>,
    /// `--fail-under`.
    #[serde(default, deserialize_with = "yaml_pass_rate")]
    pub(crate) pass_rate: Option<f64>,
    /// `--max-failures`.
    #[serde(default, deserialize_with = "yaml_max_failures")]
    pub(crate) max_failures: Option<usize>,
    /// `--rate`.
    #[serde(default, deserialize_with = "yaml_rate")]
    pub(crate) rate: Option<limits::Rate>,
    /// `--shard`.
    #[serde(default, deserialize_with = "yaml_shard")]
    pub(crate) shard: Option<limits::ShardSpec>,
}

/// A parsed `fluxloop.yaml` and where it was.
#[derive(Clone, Debug)]
pub(crate) struct LoadedConfig {
    pub(crate) path: PathBuf,
    pub(crate) config: ProjectConfig,
    /// The same document untyped, so that settings find any key by its
    /// dotted name (registry.rs) without a list of keys here.
    raw: serde_json::Value,
}

impl LoadedConfig {
    /// The value at a dotted key (`api.endpoint`) as text: a number or a
    /// boolean as written, a list or map as JSON. Blank counts as unset.
    pub(crate) fn scalar(&self, key: &str) -> Option<String> {
        let mut v = &self.raw;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) if s.trim().is_empty() => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Finds `fluxloop.yaml`: the `--config` path (which must exist), else the
/// nearest one from `cwd` upward.
pub(crate) fn find_config(explicit: Option<&Path>, cwd: &Path) -> Result<Option<LoadedConfig>> {
    if let Some(path) = explicit {
        let path = cwd.join(path);
        if !path.is_file() {
            return Err(Error::MissingFile {
                path,
                what: "config file (--config)",
            });
        }
        return load_config(&path).map(Some);
    }
    for dir in cwd.ancestors() {
        let path = dir.join(CONFIG_FILE);
        if path.is_file() {
            return load_config(&path).map(Some);
        }
    }
    Ok(None)
}

pub(crate) fn load_config(path: &Path) -> Result<LoadedConfig> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if bytes.len() > MAX_CONFIG_SIZE {
        return Err(parse_error(
            path,
            None,
            format!("the file is larger than {} KiB", MAX_CONFIG_SIZE / 1024),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| parse_error(path, None, "the file is not valid UTF-8".into()))?;
    let config = parse_config(&text).map_err(|(pos, msg)| parse_error(path, pos, msg))?;
    // The typed parse above has checked every key and value.
    let raw = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_saphyr::from_str(&text).map_err(|e| parse_error(path, None, e.to_string()))?
    };
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        config,
        raw,
    })
}

/// Parses the text of a `fluxloop.yaml`; errors carry the position and a
/// one-line message with the key path.
pub(crate) fn parse_config(
    text: &str,
) -> std::result::Result<ProjectConfig, (Option<(u64, u64)>, String)> {
    if text.trim().is_empty() {
        return Ok(ProjectConfig::default());
    }
    // serde-saphyr's default budget bounds alias expansion, nesting depth and
    // document size, so a YAML bomb fails fast instead of eating memory.
    let mut track = serde_path_to_error::Track::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        let de = serde_path_to_error::Deserializer::new(de, &mut track);
        ProjectConfig::deserialize(de)
    });
    match result {
        Ok(config) => Ok(config),
        Err(err) => {
            let path = track.path().to_string();
            let pos = err.location().map(|l| (l.line(), l.column()));
            Err((pos, describe_yaml_error(&path, &err)))
        }
    }
}

/// Turns a serde-saphyr error into `path: message`, with a suggestion for unknown keys.
fn describe_yaml_error(path: &str, err: &serde_saphyr::Error) -> String {
    let raw = err.without_snippet().to_string();
    // The first line holds the message; the rest is a rendered snippet.
    let first = raw.lines().next().unwrap_or("").trim();
    let message = strip_location(first);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest
            .split("expected one of ")
            .nth(1)
            .or_else(|| rest.split("expected ").nth(1))
            .map(|list| list.split(", ").map(|s| s.trim_matches('`')).collect())
            .unwrap_or_default();
        let full = if path.is_empty() || path == "." {
            field.to_string()
        } else if path.ends_with(field) {
            path.to_string()
        } else {
            format!("{path}.{field}")
        };
        let best = expected
            .iter()
            .map(|c| (strsim::damerau_levenshtein(field, c), *c))
            .filter(|(d, c)| *d <= 2.max(c.len() / 3))
            .min();
        return match best {
            Some((_, c)) => format!("{full}: unknown field, did you mean {c}?"),
            None => format!(
                "{full}: unknown field (expected one of: {})",
                expected.join(", ")
            ),
        };
    }
    if path.is_empty() || path == "." {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

/// Drops a trailing " at line L column C" that we report separately.
fn strip_location(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

fn parse_error(path: &Path, pos: Option<(u64, u64)>, message: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        message,
        hint: Some("see the fluxloop.yaml reference in README.md".into()),
    }
}

/// The workspace root: the nearest ancestor of `cwd` holding `.fluxloop/` or
/// `fluxloop.yaml`, else `cwd`. The fluxloop home (`~/.fluxloop`, which holds
/// credentials, not a workspace) does not count.
pub(crate) fn workspace_root(cwd: &Path, fluxloop_home: &Path) -> PathBuf {
    for dir in cwd.ancestors() {
        if dir.join(CONFIG_FILE).is_file() {
            return dir.to_path_buf();
        }
        let marker = dir.join(".fluxloop");
        if marker.is_dir() && !same_dir(&marker, fluxloop_home) {
            return dir.to_path_buf();
        }
    }
    cwd.to_path_buf()
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `.fluxloop/project.json` as FluxLoop CLI 0.4 writes it.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ProjectJson {
    pub(crate) project_id: Option<String>,
    pub(crate) api_url: Option<String>,
}

/// Reads `<root>/.fluxloop/project.json` if there is one.
pub(crate) fn load_project_json(root: &Path) -> Result<Option<(PathBuf, ProjectJson)>> {
    let path = root.join(".fluxloop").join("project.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let json = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.clone(),
        line: Some(e.line() as u64),
        column: Some(e.column() as u64),
        message: e.to_string(),
        hint: Some("fix or delete the file; it records the default project".into()),
    })?;
    Ok(Some((path, json)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (Option<(u64, u64)>, String) {
        parse_config(text).unwrap_err()
    }

    #[test]
    fn parses_the_documented_schema() {
        let text = r#"
scenario: support-bot          # default --scenario
api:
  endpoint: https://api.fluxloop.ai
  key_file: ~/.fluxloop/api_key.txt
runner:
  type: process                # process | function
  command: ["python3", "agent.py"]
  target: "src.agent:run"      # for type: function (runs python3)
  working_directory: .
  env: {LOG_LEVEL: info}
test:
  iterations: 1
  parallel: 4
  timeout: 30                  # seconds per run
  auto_upload: true
"#;
        let c = parse_config(text).unwrap();
        assert_eq!(c.scenario.as_deref(), Some("support-bot"));
        assert_eq!(c.api.key_file.as_deref(), Some("~/.fluxloop/api_key.txt"));
        assert_eq!(c.runner.kind, Some(RunnerType::Process));
        assert_eq!(
            c.runner.command,
            Some(CommandSpec::Argv(vec!["python3".into(), "agent.py".into()]))
        );
        assert_eq!(c.runner.env["LOG_LEVEL"], "info");
        assert_eq!(c.test.parallel, Some(4));
        assert_eq!(c.test.timeout, Some(30.0));
        assert_eq!(c.test.auto_upload, Some(true));
    }

    #[test]
    fn command_may_be_a_string() {
        let c = parse_config("runner:\n  command: python3 agent.py --fast\n").unwrap();
        assert_eq!(
            c.runner.command,
            Some(CommandSpec::Shell("python3 agent.py --fast".into()))
        );
    }

    #[test]
    fn unknown_keys_name_their_path_and_suggest() {
        let (pos, msg) = err("runner:\n  comand: [a]\n");
        assert_eq!(msg, "runner.comand: unknown field, did you mean command?");
        assert_eq!(pos.map(|p| p.0), Some(2));
        let (_, msg) = err("scenaro: x\n");
        assert_eq!(msg, "scenaro: unknown field, did you mean scenario?");
        let (_, msg) = err("test:\n  paralel: 2\n");
        assert_eq!(msg, "test.paralel: unknown field, did you mean parallel?");
        let (_, msg) = err("zzz: 1\n");
        assert!(
            msg.starts_with("zzz: unknown field (expected one of: "),
            "{msg}"
        );
    }

    #[test]
    fn wrong_types_and_syntax_errors_have_positions() {
        let (pos, msg) = err("test:\n  parallel: many\n");
        assert!(msg.starts_with("test.parallel: "), "{msg}");
        assert_eq!(pos.map(|p| p.0), Some(2));
        let (pos, msg) = err("api:\n  endpoint: [unclosed\n");
        assert!(pos.is_some(), "{msg}");
        let (_, msg) = err("runner:\n  type: docker\n");
        assert!(msg.starts_with("runner.type: "), "{msg}");
    }

    #[test]
    fn alias_bombs_fail_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let start = std::time::Instant::now();
        assert!(parse_config(&text).is_err());
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn deep_nesting_fails_cleanly() {
        let text = format!("scenario: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_config(&text).is_err());
    }

    #[test]
    fn workspace_root_skips_the_fluxloop_home() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join(".fluxloop");
        std::fs::create_dir_all(&home).unwrap();
        let project = tmp.path().join("src").join("proj");
        std::fs::create_dir_all(&project).unwrap();
        assert_eq!(workspace_root(&project, &home), project);
        std::fs::create_dir_all(tmp.path().join("src").join(".fluxloop")).unwrap();
        assert_eq!(workspace_root(&project, &home), tmp.path().join("src"));
    }
}
