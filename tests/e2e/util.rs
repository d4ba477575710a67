//! The test harness: the real `fluxloop` binary, a clean environment, a temp
//! home, and a real `fluxloop-platform` on 127.0.0.1.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fluxloop_platform::{Config, Platform};

/// A sandbox: temp HOME (with `FLUXLOOP_HOME` inside) and a work directory.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        Sandbox { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `$FLUXLOOP_HOME`.
    pub fn fluxloop_home(&self) -> PathBuf {
        self.home().join(".fluxloop")
    }

    pub fn credentials_path(&self) -> PathBuf {
        self.fluxloop_home().join("credentials")
    }

    /// The working directory commands run in.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.work().join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A `fluxloop` invocation with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), self.home().into_os_string());
        env.insert(
            "FLUXLOOP_HOME".into(),
            self.fluxloop_home().into_os_string(),
        );
        if let Some(path) = std::env::var_os("PATH") {
            env.insert("PATH".into(), path);
        }
        Cmd {
            args: args.iter().map(OsString::from).collect(),
            env,
            cwd: self.work(),
            stdin: None,
        }
    }
}

/// A platform on 127.0.0.1 with fast polling, for one test, recording its
/// `/api` requests: when the test ends, every one must match `openapi.yaml`
/// (see [`crate::schema_check`]).
pub fn platform() -> CheckedPlatform {
    platform_keeping(None)
}

/// [`platform`] with its database in the file `data` (kept when it stops),
/// so a test can stop the platform mid-job and start it again.
pub fn platform_keeping(data: Option<&Path>) -> CheckedPlatform {
    checked_platform(Config {
        poll_interval_secs: 1,
        data: data.map(Path::to_path_buf),
        ..Config::default()
    })
}

/// A platform started with `config`, its requests recorded for the check.
pub fn checked_platform(config: Config) -> CheckedPlatform {
    let record = tempfile::NamedTempFile::new()
        .expect("request recording")
        .into_temp_path();
    let platform = Platform::start(Config {
        record_requests: Some(record.to_path_buf()),
        ..config
    })
    .expect("start platform");
    CheckedPlatform {
        platform: Some(platform),
        record,
    }
}

/// A [`Platform`] that, when dropped, checks every request it received
/// against `openapi.yaml` and fails the test on any mismatch. Use it as the
/// platform it derefs to.
pub struct CheckedPlatform {
    /// `None` only while being dropped.
    platform: Option<Platform>,
    /// The recording, removed with this.
    record: tempfile::TempPath,
}

impl std::ops::Deref for CheckedPlatform {
    type Target = Platform;

    fn deref(&self) -> &Platform {
        self.platform.as_ref().expect("platform is running")
    }
}

impl Drop for CheckedPlatform {
    fn drop(&mut self) {
        // Stopped first, so a request still being answered is recorded too.
        drop(self.platform.take());
        // A test already failing has its own message; a second panic would abort.
        if std::thread::panicking() {
            return;
        }
        let found = crate::schema_check::findings(&self.record);
        assert!(
            found.is_empty(),
            "requests that do not match platform/openapi.yaml:\n{}",
            found.join("\n")
        );
    }
}

#[must_use]
pub struct Cmd {
    args: Vec<OsString>,
    env: BTreeMap<String, OsString>,
    cwd: PathBuf,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Self {
        self.env.insert(k.to_string(), v.into());
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.remove(k);
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = dir.as_ref().to_path_buf();
        self
    }

    pub fn stdin(mut self, data: &str) -> Self {
        self.stdin = Some(data.as_bytes().to_vec());
        self
    }

    /// The configured `std::process::Command`, for tests that need to manage the child.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fluxloop"));
        c.args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd);
        c
    }

    #[track_caller]
    pub fn run(self) -> Run {
        let mut c = self.command();
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn fluxloop");
        if let Some(mut stdin) = child.stdin.take() {
            if let Some(data) = &self.stdin {
                let _ = stdin.write_all(data);
            }
        }
        let out = child.wait_with_output().expect("wait fluxloop");
        Run {
            args: self
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A finished invocation; a test that ignores one checks nothing.
#[derive(Debug)]
#[must_use]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(want),
            "fluxloop {:?}: exit {:?}, want {want}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// A substring check, the exception to comparing the whole stream: each
    /// caller says why on a `// substring: <reason>` line just above the call
    /// (a chain of checks shares one), which `substring_reasons` enforces.
    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Like [`Run::stdout_has`], for stderr; the caller says why the same way.
    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Secrets must never appear whole in any output.
    #[track_caller]
    pub fn no_secret(&self, secret: &str) -> &Self {
        assert!(!secret.is_empty());
        assert!(
            !self.stdout.contains(secret),
            "secret on stdout:\n{}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(secret),
            "secret on stderr:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A running `fluxloop auth login --no-browser`, read up to the URL and code
/// it prints; the test then decides the login (platform, browser) and
/// [`PendingLogin::finish`]es it.
pub struct PendingLogin {
    child: std::process::Child,
    reader: std::io::BufReader<std::process::ChildStderr>,
    args: Vec<String>,
    /// stderr so far.
    pub seen: String,
    /// The verification URL printed.
    pub url: String,
    /// The user code printed.
    pub code: String,
}

impl PendingLogin {
    // The child moves into the PendingLogin, and finish() waits for it.
    #[allow(clippy::zombie_processes)]
    #[track_caller]
    pub fn start(cmd: Cmd) -> PendingLogin {
        use std::io::BufRead;
        let args = cmd
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut child = cmd
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn login");
        let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
        let (mut seen, mut url) = (String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no login code printed:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains("/device?user_code=") {
                url = line.trim().to_string();
            }
            if let Some(i) = line.find("shows the code ") {
                let code = line[i + "shows the code ".len()..].trim().to_string();
                return PendingLogin {
                    child,
                    reader,
                    args,
                    seen,
                    url,
                    code,
                };
            }
        }
    }

    /// Waits (at most a minute) for the login to end.
    #[track_caller]
    pub fn finish(mut self) -> Run {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("login did not finish:\n{}", self.seen);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut rest = String::new();
        self.reader.read_to_string(&mut rest).unwrap();
        let out = self.child.wait_with_output().unwrap();
        Run {
            args: self.args,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.seen + &rest,
        }
    }
}
