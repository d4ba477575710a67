//! Bad input: each gets a clear error naming the culprit, the right exit
//! code, no panic and no hang. Plus the "don't commit credentials" warning.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::{fast, setup, ECHO_OK};
use crate::util::{Run, Sandbox};

#[track_caller]
fn quick(r: Run, started: Instant) -> Run {
    assert!(started.elapsed() < Duration::from_secs(15), "slow: {r:?}");
    // substring: an absence; a panic message could be anywhere in stderr
    assert!(!r.stderr.contains("panicked"), "panic: {r:?}");
    r
}

#[test]
fn corrupt_credentials_files_are_parse_errors_naming_the_file() {
    let deep = "[".repeat(100_000);
    let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"{\"profiles\": {".to_vec()),
        ("truncated", b"{\"default_profile\": \"default\", \"profiles\": {\"default\": {\"access_token\": \"flx_at_abc".to_vec()),
        ("binary", vec![0xff, 0xfe, 0x00, 0x01, 0x80, 0x81]),
        ("empty", vec![]),
        ("wrong types", b"{\"profiles\": {\"default\": {\"access_token\": 42}}}".to_vec()),
        ("profiles not an object", b"{\"profiles\": []}".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("deep nesting", deep.into_bytes()),
        ("huge", huge.into_bytes()),
    ];
    for (what, bytes) in cases {
        let sb = Sandbox::new();
        std::fs::create_dir_all(sb.fluxloop_home()).unwrap();
        std::fs::write(sb.credentials_path(), &bytes).unwrap();
        let t = Instant::now();
        let r = quick(sb.cmd(&["auth", "status"]).run(), t);
        r.code(2)
            // substring: each corrupt file gets its own parse error, and the hint names the sandbox path
            .stderr_has("corrupt credentials file")
            .stderr_has("credentials");
        assert!(
            r.stderr.lines().filter(|l| l.starts_with("error:")).count() == 1,
            "{what}: {r:?}"
        );
        // `--json` errors are JSON too.
        let t = Instant::now();
        let j = quick(sb.cmd(&["auth", "status", "--json"]).run(), t);
        j.code(2);
        let doc: serde_json::Value = serde_json::from_str(j.stdout.trim())
            .or_else(|_| serde_json::from_str(j.stderr.trim()))
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {j:?}"));
        assert!(
            // substring: each corrupt file gets its own detail around this phrase
            doc.to_string().contains("corrupt credentials file"),
            "{what}: {doc}"
        );
    }
}

#[test]
fn hostile_fluxloop_yaml_fails_fast_and_clearly() {
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n\
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\nscenario: *i\n";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("alias bomb", bomb.as_bytes().to_vec()),
        (
            "deep nesting",
            format!("scenario: {}", "[".repeat(50_000)).into_bytes(),
        ),
        (
            "deep maps",
            (0..5000)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "wrong types",
            b"scenario: [1, 2]\ntest:\n  iterations: many\n".to_vec(),
        ),
        ("binary", vec![0xff, 0xfe, 0x00, 0x9f, 0x92, 0x96]),
        (
            "huge",
            format!("scenario: x\n# {}\n", "a".repeat(40 * 1024 * 1024)).into_bytes(),
        ),
        ("unknown key", b"scenaro: x\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let sb = Sandbox::new();
        std::fs::write(sb.work().join("fluxloop.yaml"), &bytes).unwrap();
        let t = Instant::now();
        let r = quick(sb.cmd(&["config", "list"]).run(), t);
        assert_eq!(r.code, Some(2), "{what}: {r:?}");
        // substring: one check over many malformed files, each with its own message; naming the file is what they share
        assert!(r.stderr.contains("fluxloop.yaml"), "{what}: {}", r.stderr);
        assert!(
            r.stderr.len() < 4000,
            "{what}: the error echoes the input ({} bytes)",
            r.stderr.len()
        );
    }
}

#[test]
fn malformed_keys_are_refused_before_any_request_without_echoing() {
    let fx = setup(0);
    let good = fx.demo.key.clone();
    let bad = [
        format!(" {good}"),
        format!("{good}\n"),
        format!("{}\n{}", &good[..20], &good[20..]),
        format!("'{good}'"),
        format!("\"{good}\""),
        format!("{good}\u{200b}"),
        format!("{good}ü"),
        "flx_api_short".to_string(),
        String::new(),
    ];
    for k in &bad {
        let r = fx.cmd(&["sync", "pull"]).env("FLUXLOOP_API_KEY", k).run();
        if k.is_empty() {
            // An empty variable counts as unset.
            assert_eq!(
                r.code(3).stderr,
                concat!(
                    "warning: FLUXLOOP_API_KEY is set but empty, so it is ignored (is the CI secret missing or not passed to this job?)\n",
                    "error: no credential found\n  hint: pass --api-key KEY, or set FLUXLOOP_API_KEY (CI), or FLUXLOOP_TOKEN\n  hint: or set api.key_file in fluxloop.yaml\n  hint: or run `fluxloop auth login` to store a login in the credentials file\n"
                )
            );
        } else {
            r.code(3)
                // substring: each bad key gets its own reason; this checks the origin is named
                .stderr_has("Invalid API key (from environment variable FLUXLOOP_API_KEY)");
        }
        if k.trim().len() > 12 {
            r.no_secret(k.trim());
        }
        // Through api.key_file: the trailing newline is fine, the rest is not.
        let kf = fx.sb.work().join("key.txt");
        std::fs::write(&kf, k).unwrap();
        std::fs::write(
            fx.sb.work().join("fluxloop.yaml"),
            "api:\n  key_file: key.txt\n",
        )
        .unwrap();
        let r = fast(fx.sb.cmd(&["sync", "pull", "--yes"]))
            .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
            .run();
        if k.trim() == good {
            r.ok();
        } else {
            // substring: each bad key gets its own reason, and the path is the sandbox's; this checks the key file is named
            r.code(3).stderr_has("key.txt");
        }
        std::fs::remove_file(fx.sb.work().join("fluxloop.yaml")).unwrap();
    }
    assert!(!fx
        .p
        .requests()
        .iter()
        .any(|q| q.path == "/api/sync/pull" && q.status != 200));
    // A login token with a line break is refused clearly, not sent.
    let r = fx
        .cmd(&["sync", "pull"])
        .env_remove("FLUXLOOP_API_KEY")
        .env("FLUXLOOP_TOKEN", "flx_at_abc\ndef")
        .run();
    assert!(matches!(r.code, Some(2) | Some(3)), "{r:?}");
    r.no_secret("flx_at_abc");
}

#[test]
fn invalid_utf8_in_environment_and_paths() {
    let fx = setup(0);
    let raw = |bytes: &[u8]| OsString::from_vec(bytes.to_vec());
    // Key: an auth error naming the variable.
    let r = fx
        .cmd(&["sync", "pull"])
        .env(
            "FLUXLOOP_API_KEY",
            raw(b"flx_api_\xff\xfeabcdefghijklmnopqrstu"),
        )
        .run();
    assert_eq!(
        r.code(3).stderr,
        "error: Invalid API key (from environment variable FLUXLOOP_API_KEY): the value is not valid UTF-8\n  hint: an API key is plain ASCII: flx_api_… or flx_sa_…\n"
    );
    // Endpoint: a usage error naming the variable.
    let r = fx
        .cmd(&["sync", "pull"])
        .env("FLUXLOOP_API_ENDPOINT", raw(b"http://127.0.0.1:\xff"))
        .run();
    assert_eq!(r.code, Some(2), "{r:?}");
    assert_eq!(
        r.stderr,
        "error: environment variable FLUXLOOP_API_ENDPOINT is not valid UTF-8\n  hint: unset FLUXLOOP_API_ENDPOINT or set it to a UTF-8 value\n"
    );
    // Paths that are not UTF-8 work (or fail as missing files), never panic.
    let r = fx
        .cmd(&["config", "list"])
        .arg("--config")
        .arg(raw(b"/nonexistent/\xff.yaml"))
        .run();
    assert_eq!(r.code, Some(2), "{r:?}");
    let home = fx
        .sb
        .dir
        .path()
        .join(OsString::from_vec(b"h\xffome".to_vec()));
    let r = fx
        .cmd(&["config", "list"])
        .env("FLUXLOOP_HOME", &home)
        .run();
    // substring: an absence; a panic message could be anywhere in stderr
    assert!(!r.stderr.contains("panicked") && r.code.is_some(), "{r:?}");
    let r = fx
        .cmd(&["sync", "upload", "--result-dir"])
        .arg(raw(b"/nonexistent/\xffdir"))
        .run();
    assert!(matches!(r.code, Some(1) | Some(2)), "{r:?}");
}

/// Runs `fluxloop test` with `agent` and returns (run, peak RSS of fluxloop in KiB).
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_agent(fx: &crate::fixtures::Fx, script: &str, timeout: &str) -> (Run, i64) {
    let mut c: Command = fx
        .cmd(&[
            "test",
            "--skip-pull",
            "--skip-upload",
            "--parallel",
            "2",
            "--timeout",
            timeout,
            "--",
            "sh",
            "-c",
            script,
        ])
        .command();
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    // wait4 on this child alone: its peak RSS and that of the agents it
    // reaped, not that of other tests running beside this one.
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(waited, pid, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let out_bytes = stdout.join().unwrap();
    let err_bytes = stderr.join().unwrap();
    (
        Run {
            args: vec!["test".into()],
            code,
            stdout: String::from_utf8_lossy(&out_bytes).into_owned(),
            stderr: String::from_utf8_lossy(&err_bytes).into_owned(),
        },
        ru.ru_maxrss,
    )
}

#[test]
fn hostile_agent_output_is_bounded() {
    let fx = setup(0);
    fx.cmd(&["sync", "pull", "--yes"]).run().ok();
    // 200 MB on stdout, then the result line: found, memory flat.
    let t = Instant::now();
    let (r, rss) = run_agent(
        &fx,
        &format!("head -c 200000000 /dev/zero | tr '\\0' x; echo; echo '{ECHO_OK}'"),
        "60",
    );
    r.ok();
    assert!(rss < 150 * 1024, "peak RSS {rss} KiB");
    assert!(t.elapsed() < Duration::from_secs(60));
    // Binary garbage and no result line: each run fails with a reason.
    let (r, _) = run_agent(&fx, "head -c 100000 /dev/urandom", "10");
    // substring: the run table around it holds wall times and random input ids
    r.code(10).stdout_has("no JSON result line");
    // Output that never ends: the timeout stops it.
    let t = Instant::now();
    let (r, rss) = run_agent(&fx, "yes", "1");
    // substring: the run table around it holds wall times and random input ids
    r.code(10).stdout_has("timed out");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(rss < 150 * 1024, "peak RSS {rss} KiB");
    // Absurd numbers in the result line do not overflow the totals.
    let (r, _) = run_agent(
        &fx,
        r#"echo '{"success":true,"output":"x","duration_ms":1e300,"token_usage":{"input_tokens":18446744073709551615,"output_tokens":18446744073709551615}}'"#,
        "10",
    );
    r.ok();
}

// Ignored by a plain `cargo test`; .ci/run passes --include-ignored, and then
// a missing git fails the test.
#[test]
#[ignore = "needs git"]
fn key_file_or_credentials_in_a_git_work_tree_get_a_gitignore_warning() {
    assert!(
        Command::new("git").arg("--version").output().is_ok(),
        "git not installed (apt-get install git)"
    );
    let fx = setup(0);
    let work = fx.sb.work();
    let git = |args: &[&str]| {
        assert!(Command::new("git")
            .arg("-C")
            .arg(&work)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success());
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(work.join("secrets")).unwrap();
    std::fs::write(
        work.join("secrets/api_key.txt"),
        format!("{}\n", fx.demo.key),
    )
    .unwrap();
    std::fs::write(
        work.join("fluxloop.yaml"),
        "api:\n  key_file: secrets/api_key.txt\n",
    )
    .unwrap();
    let run = || {
        fast(fx.sb.cmd(&["apikeys", "info"]))
            .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
            .run()
    };
    let r = run();
    r.ok()
        // substring: the warning names the sandbox path, and the status the command prints is not what this test is about
        .stderr_has("warning:")
        .stderr_has("not ignored")
        .stderr_has("/secrets/api_key.txt")
        .stderr_has(".gitignore");
    assert_eq!(r.stderr.matches("not ignored").count(), 1, "{r:?}");
    r.no_secret(&fx.demo.key);
    // With the suggested line in .gitignore the warning goes away.
    std::fs::write(work.join(".gitignore"), "/secrets/api_key.txt\n").unwrap();
    let r = run();
    r.ok();
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stderr.contains("not ignored"), "{r:?}");
    // FLUXLOOP_HOME inside the repository: the credentials file is flagged.
    let sb = Sandbox::new();
    let repo = sb.work();
    assert!(Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["init", "-q"])
        .status()
        .unwrap()
        .success());
    let home = repo.join(".fluxloop-home");
    crate::fixtures::login(&sb, &fx.p, &[("FLUXLOOP_HOME", home.to_str().unwrap())]).ok();
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_HOME", &home)
        .run();
    r.ok()
        // substring: the warning names the sandbox path, and the status around it holds an expiry time
        .stderr_has("/.fluxloop-home/credentials")
        .stderr_has("not ignored");
    // Outside any work tree, or without git on PATH: silence, no failure.
    let r = sb
        .cmd(&["auth", "status"])
        .env("FLUXLOOP_HOME", &home)
        .env("PATH", "/nonexistent")
        .run();
    r.ok();
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stderr.contains("not ignored"), "{r:?}");
}
