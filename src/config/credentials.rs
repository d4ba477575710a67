//! The credentials file, `$FLUXLOOP_HOME/credentials` (CLI.md §3).
//!
//! Both layouts of the user's document are read: the flat one (a single login,
//! read as profile `default`) and the profiles one, which is what we write.
//! Writes go through a temp file, fsync and rename, so a crash leaves either
//! the old file or the new one. Fields we do not know are kept.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};

/// Larger than any real credentials file; a bigger one is not ours.
const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// One stored login.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct StoredProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) api_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    /// Fields written by other tools or later versions, kept on rewrite.
    #[serde(flatten)]
    pub(crate) extra: Map<String, serde_json::Value>,
}

impl StoredProfile {
    /// True when the profile holds a login (rather than only an endpoint).
    pub(crate) fn has_token(&self) -> bool {
        self.access_token.as_deref().is_some_and(|t| !t.is_empty())
    }

    /// Drops the login, keeping the endpoint and unknown fields.
    pub(crate) fn clear_tokens(&mut self) {
        self.access_token = None;
        self.refresh_token = None;
        self.expires_at = None;
        self.user_email = None;
        self.user_id = None;
    }
}

/// The profiles layout, as written.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct CredentialsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_profile: Option<String>,
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, StoredProfile>,
    #[serde(flatten)]
    pub(crate) extra: Map<String, serde_json::Value>,
}

/// Which layout a file was read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// No file yet.
    Missing,
    /// `{"access_token", ...}`: read as profile `default`.
    Flat,
    /// `{"default_profile", "profiles": {...}}`.
    Profiles,
    /// FluxLoop CLI 0.3/0.4's `auth.json`, read as profile `default`, never written.
    LegacyAuthJson,
}

/// The credentials file as loaded.
#[derive(Clone, Debug)]
pub(crate) struct CredentialsFile {
    pub(crate) path: PathBuf,
    pub(crate) layout: Layout,
    pub(crate) doc: CredentialsDoc,
    /// Problems worth a warning (permissions), found while loading.
    pub(crate) warnings: Vec<String>,
}

impl CredentialsFile {
    /// Loads `home/credentials`, falling back to `home/auth.json`; a missing
    /// file is an empty document, a corrupt one an error naming file and line.
    pub(crate) fn load(home: &Path) -> Result<CredentialsFile> {
        let mut file = Self::load_file(home)?;
        file.warnings.extend(home_permission_warning(home));
        Ok(file)
    }

    fn load_file(home: &Path) -> Result<CredentialsFile> {
        let path = home.join("credentials");
        match read_limited(&path)? {
            Some(text) => {
                let doc = parse(&path, &text)?;
                let layout = if looks_flat(&text) {
                    Layout::Flat
                } else {
                    Layout::Profiles
                };
                let warnings = permission_warning(&path).into_iter().collect();
                Ok(CredentialsFile {
                    path,
                    layout,
                    doc,
                    warnings,
                })
            }
            None => {
                let legacy = home.join("auth.json");
                if let Some(text) = read_limited(&legacy)? {
                    let profile: StoredProfile = parse_json(&legacy, &text)?;
                    let mut doc = CredentialsDoc::default();
                    doc.profiles.insert("default".into(), profile);
                    return Ok(CredentialsFile {
                        // Writes go to the new file; auth.json is never written.
                        path,
                        layout: Layout::LegacyAuthJson,
                        doc,
                        warnings: permission_warning(&legacy).into_iter().collect(),
                    });
                }
                Ok(CredentialsFile {
                    path,
                    layout: Layout::Missing,
                    doc: CredentialsDoc::default(),
                    warnings: vec![],
                })
            }
        }
    }

    pub(crate) fn profile(&self, name: &str) -> Option<&StoredProfile> {
        self.doc.profiles.get(name)
    }

    pub(crate) fn profile_mut(&mut self, name: &str) -> &mut StoredProfile {
        self.doc.profiles.entry(name.to_string()).or_default()
    }

    /// Writes the profiles layout atomically with mode 0600 in a 0700 directory.
    pub(crate) fn save(&self) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&self.doc)
            .map_err(|e| Error::io("serialize", &self.path, io::Error::other(e)))?;
        bytes.push(b'\n');
        write_atomic(&self.path, 0o600, |f| f.write_all(&bytes))
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// A read-modify-write of `home/credentials` under its lock: `change` sees
/// the file as it is now (never a stale copy) and returns its result and
/// whether it changed the file, which is then saved (with a note when an
/// older layout was converted).
pub(crate) fn update<T>(
    home: &Path,
    out: &crate::output::Output,
    change: impl FnOnce(&mut CredentialsFile) -> Result<(T, bool)>,
) -> Result<T> {
    let _lock = CredentialsLock::acquire(home)?;
    let mut file = CredentialsFile::load(home)?;
    let (value, changed) = change(&mut file)?;
    if changed {
        file.save()?;
        match file.layout {
            Layout::Flat => out.info(&format!(
                "note: rewrote {} in the profiles layout; its login is now profile default",
                file.path.display()
            )),
            Layout::LegacyAuthJson => out.info(&format!(
                "note: the login read from auth.json is now stored in {}",
                file.path.display()
            )),
            Layout::Missing | Layout::Profiles => {}
        }
    }
    Ok(value)
}

/// An exclusive lock on `credentials.lock` beside the credentials file, held
/// for a whole read-modify-write so that parallel `config set`, `auth
/// refresh` and `auth login` runs never lose each other's updates. Released
/// when dropped (and by the kernel if the process dies).
pub(crate) struct CredentialsLock {
    _file: File,
}

impl CredentialsLock {
    /// Waits for the lock, creating `home` (0700) and the lock file as needed.
    pub(crate) fn acquire(home: &Path) -> Result<CredentialsLock> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if !home.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(home)
                .map_err(|e| Error::io("create", home, e))?;
        }
        let path = home.join("credentials.lock");
        ensure_regular(&path)?;
        // The lock is taken to write the credentials file; a home where the
        // lock cannot be created is one where that file cannot be written.
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("write", home.join("credentials"), e))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(CredentialsLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("lock", &path, e));
            }
        }
    }
}

/// Fails unless a new file can be created beside `path`: a refresh checks
/// this before the platform rotates the tokens, so a read-only home never
/// costs the login.
pub(crate) fn check_writable(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let probe = dir.join(format!(
        ".credentials.probe.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::io("write", path, e)),
    }
}

/// A FIFO, socket or device where a file belongs would block or mislead a
/// read: refuse it by name instead.
fn ensure_regular(path: &Path) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(Error::config(
            format!("{} is not a regular file", path.display()),
            Some(format!(
                "remove it (rm {}) or point FLUXLOOP_HOME at another directory",
                path.display()
            )),
        )),
        _ => Ok(()),
    }
}

/// A warning when group or others may write the directory holding logins:
/// they could replace the credentials file.
fn home_permission_warning(home: &Path) -> Option<String> {
    let mode = fs::metadata(home).ok()?.mode() & 0o777;
    (mode & 0o022 != 0).then(|| {
        format!(
            "{} is writable by other users (mode {mode:04o}); fix with: chmod 700 {}",
            home.display(),
            home.display()
        )
    })
}

/// Reads a file of at most [`MAX_FILE_SIZE`] bytes; `None` when it does not exist.
fn read_limited(path: &Path) -> Result<Option<String>> {
    ensure_regular(path)?;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(corrupt(
            path,
            None,
            format!(
                "the file is larger than {} KiB; this is not a credentials file",
                MAX_FILE_SIZE / 1024
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            Err(corrupt(
                path,
                Some((line as u64, None)),
                "the file is not valid UTF-8 text (binary data?)".into(),
            ))
        }
    }
}

fn looks_flat(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.as_object().map(|o| !o.contains_key("profiles")))
        .unwrap_or(false)
}

/// Parses either layout into the profiles layout.
fn parse(path: &Path, text: &str) -> Result<CredentialsDoc> {
    if text.trim().is_empty() {
        return Err(corrupt(path, None, "the file is empty".into()));
    }
    let value: serde_json::Value = parse_json(path, text)?;
    let Some(object) = value.as_object() else {
        return Err(corrupt(
            path,
            Some((1, None)),
            "expected a JSON object".into(),
        ));
    };
    if object.contains_key("profiles") {
        return parse_json(path, text);
    }
    // The flat layout is one login; read it as profile `default`.
    let profile: StoredProfile = parse_json(path, text)?;
    let mut doc = CredentialsDoc::default();
    doc.profiles.insert("default".into(), profile);
    Ok(doc)
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        let message = strip_position(&e.to_string());
        corrupt(
            path,
            Some((e.line() as u64, Some(e.column() as u64))),
            message,
        )
    })
}

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn corrupt(path: &Path, pos: Option<(u64, Option<u64>)>, message: String) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: pos.map(|p| p.0),
        column: pos.and_then(|p| p.1),
        message: format!("corrupt credentials file: {message}"),
        hint: Some(format!(
            "fix the file by hand, or move it away (mv {0} {0}.bak) and run `fluxloop auth login`",
            path.display()
        )),
    }
}

/// A warning when group or others may read the file.
fn permission_warning(path: &Path) -> Option<String> {
    let mode = fs::metadata(path).ok()?.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is readable by other users (mode {mode:04o}); fix with: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed() {
        let home = home();
        let dead = home.path().join(".credentials.tmp.999999999.abc");
        let live = home
            .path()
            .join(format!(".credentials.tmp.{}.def", std::process::id()));
        let other = home.path().join(".other.tmp.999999999.abc");
        for p in [&dead, &live, &other] {
            fs::write(p, "{}").unwrap();
        }
        write_atomic(&home.path().join("credentials"), 0o600, |f| {
            f.write_all(b"{}\n")
        })
        .unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }

    fn home() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn reads_the_flat_layout_as_default() {
        let home = home();
        fs::write(
            home.path().join("credentials"),
            r#"{"access_token": "flx_at_1", "refresh_token": "flx_refresh_1",
               "expires_at": "2024-11-02T10:00:00Z", "user_email": "user@example.com"}"#,
        )
        .unwrap();
        let file = CredentialsFile::load(home.path()).unwrap();
        assert_eq!(file.layout, Layout::Flat);
        let p = file.profile("default").unwrap();
        assert_eq!(p.access_token.as_deref(), Some("flx_at_1"));
        assert_eq!(p.user_email.as_deref(), Some("user@example.com"));
    }

    #[test]
    fn reads_the_profiles_layout_and_keeps_unknown_fields() {
        let home = home();
        let text = r#"{"default_profile": "production", "future": {"x": 1},
          "profiles": {
            "production": {"access_token": "flx_at_p", "api_endpoint": "https://api.fluxloop.ai", "team": "qa"},
            "staging": {"access_token": "flx_at_s", "api_endpoint": "https://api-staging.fluxloop.ai"}}}"#;
        fs::write(home.path().join("credentials"), text).unwrap();
        let mut file = CredentialsFile::load(home.path()).unwrap();
        assert_eq!(file.layout, Layout::Profiles);
        assert_eq!(file.doc.default_profile.as_deref(), Some("production"));
        assert_eq!(
            file.profile("staging").unwrap().access_token.as_deref(),
            Some("flx_at_s")
        );
        file.doc.default_profile = Some("staging".into());
        file.save().unwrap();
        let again = CredentialsFile::load(home.path()).unwrap();
        assert_eq!(again.doc.default_profile.as_deref(), Some("staging"));
        assert_eq!(again.doc.extra["future"]["x"], 1);
        assert_eq!(again.profile("production").unwrap().extra["team"], "qa");
    }

    #[test]
    fn flat_layout_is_rewritten_as_profiles() {
        let home = home();
        fs::write(
            home.path().join("credentials"),
            r#"{"access_token": "flx_at_1", "custom": true}"#,
        )
        .unwrap();
        let file = CredentialsFile::load(home.path()).unwrap();
        file.save().unwrap();
        let text = fs::read_to_string(home.path().join("credentials")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["profiles"]["default"]["access_token"], "flx_at_1");
        assert_eq!(v["profiles"]["default"]["custom"], true);
    }

    #[test]
    fn writes_0600_in_a_0700_directory() {
        let home = home();
        let dir = home.path().join("nested");
        let mut file = CredentialsFile::load(&dir).unwrap();
        file.profile_mut("default").access_token = Some("flx_at_x".into());
        file.save().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("credentials")), 0o600);
    }

    #[test]
    fn corrupt_files_name_file_and_line() {
        let home = home();
        let path = home.path().join("credentials");
        fs::write(
            &path,
            "{\n  \"profiles\": {\n    \"a\": {\"access_token\": 5}\n  }\n}",
        )
        .unwrap();
        let err = CredentialsFile::load(home.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}:3:", path.display())), "{msg}");
        assert!(
            msg.contains("invalid type: integer `5`, expected a string"),
            "{msg}"
        );

        fs::write(&path, "{\"profiles\": {").unwrap();
        let msg = CredentialsFile::load(home.path()).unwrap_err().to_string();
        assert!(
            msg.contains(":1:14: corrupt credentials file: EOF while parsing"),
            "{msg}"
        );

        fs::write(&path, b"\x00\xff\xfe").unwrap();
        let msg = CredentialsFile::load(home.path()).unwrap_err().to_string();
        assert!(msg.contains("not valid UTF-8"), "{msg}");

        fs::write(&path, "").unwrap();
        let msg = CredentialsFile::load(home.path()).unwrap_err().to_string();
        assert!(msg.contains("the file is empty"), "{msg}");

        fs::write(&path, "[1,2]").unwrap();
        let msg = CredentialsFile::load(home.path()).unwrap_err().to_string();
        assert!(msg.contains("expected a JSON object"), "{msg}");
    }

    #[test]
    fn warns_about_readable_files() {
        let home = home();
        let path = home.path().join("credentials");
        fs::write(&path, r#"{"profiles": {}}"#).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let file = CredentialsFile::load(home.path()).unwrap();
        assert_eq!(file.warnings.len(), 1);
        assert!(file.warnings[0].contains("mode 0644"));
        assert!(file.warnings[0].contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CredentialsFile::load(home.path())
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn interrupted_write_leaves_the_old_file() {
        let home = home();
        let path = home.path().join("credentials");
        fs::write(&path, "old contents").unwrap();
        let err = write_atomic(&path, 0o600, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::other("killed"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "killed");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old contents");
        let leftovers: Vec<_> = fs::read_dir(home.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file left behind");
    }

    #[test]
    fn legacy_auth_json_is_read_when_no_credentials_file() {
        let home = home();
        fs::write(
            home.path().join("auth.json"),
            r#"{"access_token":"flx_at_legacy","refresh_token":"flx_refresh_l","expires_at":"2030-01-01T00:00:00Z","user_id":"u1","user_email":"a@b.c"}"#,
        )
        .unwrap();
        let file = CredentialsFile::load(home.path()).unwrap();
        assert_eq!(file.layout, Layout::LegacyAuthJson);
        assert_eq!(
            file.profile("default").unwrap().user_id.as_deref(),
            Some("u1")
        );
        assert_eq!(file.path, home.path().join("credentials"));
    }
}
