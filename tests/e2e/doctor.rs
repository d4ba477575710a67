//! Issue 18, `fluxloop doctor`: against the local platform (a read-write
//! and a read-only key), a server whose clock is two hours ahead (a faked
//! `Date` header), and a TLS server whose CA the CLI does not trust until
//! `--ca-cert` names it. Output compared whole, ports and temp paths
//! normalised.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::fixtures::{fast, setup};
use crate::trap::{Reply, Trap};
use crate::util::{Run, Sandbox};

/// A project with an executable `./agent.sh`.
fn project(sb: &Sandbox, extra: &str) {
    sb.write(
        "fluxloop.yaml",
        &format!("scenario: support-bot\nrunner:\n  command: [\"./agent.sh\"]\n{extra}"),
    );
    let agent = sb.write(
        "agent.sh",
        "#!/bin/sh\necho '{\"success\":true,\"output\":\"ok\"}'\n",
    );
    std::fs::set_permissions(agent, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// stdout with the sandbox path, the port and the key's last 4 replaced.
fn normalise(sb: &Sandbox, r: &Run, port: u16, key: &str) -> String {
    let root = std::fs::canonicalize(sb.dir.path()).unwrap();
    r.stdout
        .replace(&root.display().to_string(), "[TMP]")
        .replace(&sb.dir.path().display().to_string(), "[TMP]")
        .replace(&format!(":{port}"), ":[PORT]")
        .replace(&format!("****{}", &key[key.len() - 4..]), "****[LAST4]")
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn doctor_all_good_then_a_read_only_key() {
    let fx = setup(0);
    project(&fx.sb, "");
    let r = fx.cmd(&["doctor"]).run();
    r.ok();
    assert_eq!(r.stderr, "");
    let port = port_of(&fx.p.url());
    assert_eq!(
        normalise(&fx.sb, &r, port, &fx.demo.key),
        "✓ config      parsed [TMP]/work/fluxloop.yaml\n\
         ✓ credential  API key flx_sa_****[LAST4] from environment variable FLUXLOOP_API_KEY\n\
         ✓ endpoint    http://127.0.0.1:[PORT] from environment variable FLUXLOOP_API_ENDPOINT\n\
         ✓ dns         127.0.0.1 is 127.0.0.1\n\
         ✓ tcp         connected to 127.0.0.1:[PORT]\n\
         ✓ tls         plain http to this machine (no TLS); HTTP 200\n\
         ✓ clock       within 60 s of the platform's\n\
         ✓ scope       scope read-write: pull (read) yes, upload (write) yes\n\
         ✓ agent       ./agent.sh is [TMP]/work/agent.sh\n\
         ✓ git-ignore  no key file in use\n\
         ✓ ci          not in CI (no CI variables set)\n"
    );

    let read =
        fx.p.create_key(&fx.demo.project_id, "ro", "service-account", "read")
            .unwrap();
    let r = fx
        .cmd(&["doctor", "--json"])
        .env("FLUXLOOP_API_KEY", &read.key)
        .env("GITHUB_ACTIONS", "true")
        .run();
    r.code(3);
    let v = r.json();
    assert_eq!(v["exit_code"], 3);
    let scope = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "scope")
        .unwrap();
    assert_eq!(
        scope,
        &serde_json::json!({
            "name": "scope",
            "status": "fail",
            "detail": "scope read: pull (read) yes, upload (write) no",
            "fix": "create a key that can do both: fluxloop apikeys create --scope read-write"
        })
    );
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["scope"]);
    let ci = v["checks"].as_array().unwrap().last().unwrap();
    assert_eq!(
        ci,
        &serde_json::json!({"name": "ci", "status": "ok", "detail": "GitHub Actions (GITHUB_ACTIONS=true) detected"})
    );
    // substring: an absence, which must hold anywhere in the text
    assert!(!r.stdout.contains(&read.key), "the key is masked");
    assert_eq!(
        r.stderr, "",
        "a key from the environment is masked by the runner already"
    );
}

#[test]
fn doctor_names_a_key_file_git_would_commit() {
    let fx = setup(0);
    let sb = &fx.sb;
    project(sb, "api:\n  key_file: api_key.txt\n");
    sb.write("api_key.txt", &format!("{}\n", fx.demo.key));
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(sb.work())
        .status()
        .unwrap();
    assert!(git.success());
    let r = fast(sb.cmd(&["doctor"]))
        .env("FLUXLOOP_API_ENDPOINT", fx.p.url())
        .run();
    r.code(2);
    let port = port_of(&fx.p.url());
    let out = normalise(sb, &r, port, &fx.demo.key);
    let warning = "[TMP]/work/api_key.txt is inside the git work tree [TMP]/work and not ignored; add this line to [TMP]/work/.gitignore: /api_key.txt";
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "✓ credential  API key flx_sa_****[LAST4] from key file [TMP]/work/api_key.txt"
    );
    assert_eq!(
        out.lines().skip(9).collect::<Vec<_>>().join("\n"),
        format!(
            "✗ git-ignore  {warning}\n    fix: add the line to .gitignore; never commit a key\n✓ ci          not in CI (no CI variables set)"
        )
    );
    let root = std::fs::canonicalize(sb.dir.path()).unwrap();
    assert_eq!(
        r.stderr.replace(&root.display().to_string(), "[TMP]"),
        format!("warning: {warning}\n")
    );
}

#[test]
fn doctor_sees_a_clock_two_hours_off() {
    let trap = Trap::start(|_| {
        let ahead = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Date".into(), ahead.format(format).unwrap()),
            ],
            body: r#"{"id":"k1","name":"ci","type":"service-account","scope":"read-write"}"#.into(),
        }
    });
    let sb = Sandbox::new();
    project(&sb, "");
    let key = "flx_sa_0123456789abcdefghijKLMN";
    let r = fast(sb.cmd(&["doctor"]))
        .env("FLUXLOOP_API_KEY", key)
        .env("FLUXLOOP_API_ENDPOINT", trap.url())
        .run();
    r.code(1);
    let port = port_of(&trap.url());
    let out = normalise(&sb, &r, port, key);
    let clock = out.lines().nth(6).unwrap();
    // The Date header has whole seconds, so the skew is 7199 or 7200 s; the
    // date itself changes with every run: both are cut out.
    let (head, date) = clock.split_once(" (").unwrap();
    assert_eq!(
        head.replace("7199 s", "7200 s"),
        "✗ clock       this machine's clock is 7200 s behind the platform's"
    );
    assert!(date.ends_with(" GMT)"), "{date}");
    assert_eq!(
        out.lines().nth(7).unwrap(),
        "    fix: synchronise the clock (e.g. `timedatectl set-ntp true`); token expiry is judged by it"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with('✗')).count(),
        1,
        "{out}"
    );
    assert_eq!(r.stderr, "");
    assert_eq!(trap.seen().len(), 1, "one request, never retried");
}

/// A private CA and a certificate it signed for 127.0.0.1: (CA PEM, cert, key).
fn pki() -> (String, rustls::pki_types::CertificateDer<'static>, Vec<u8>) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "doctor test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.der().clone(), key.serialize_der())
}

/// An https server on 127.0.0.1 answering every request with a key record
/// and the current Date; stops when the flag drops.
struct TlsServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn tls_server(cert: rustls::pki_types::CertificateDer<'static>, key: Vec<u8>) -> TlsServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let Ok((tcp, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut line = String::new();
                // Headers up to the blank line; a client that rejects the
                // certificate (or the TCP check) ends here.
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let format = time::macros::format_description!(
                    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
                );
                let date = time::OffsetDateTime::now_utc().format(format).unwrap();
                let body = r#"{"id":"k1","type":"service-account","scope":"read-write"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    TlsServer { port, stop }
}

#[test]
fn doctor_with_a_ca_it_does_not_trust_then_with_the_right_one() {
    let (ca_pem, cert, key) = pki();
    let (other_ca, _, _) = pki();
    let server = tls_server(cert, key);
    let sb = Sandbox::new();
    project(&sb, "");
    sb.write("corp-ca.pem", &ca_pem);
    sb.write("wrong-ca.pem", &other_ca);
    let api_key = "flx_sa_0123456789abcdefghijKLMN";
    let endpoint = format!("https://127.0.0.1:{}", server.port);
    let run = |extra: &[&str]| {
        let mut args = vec!["doctor"];
        args.extend(extra);
        fast(sb.cmd(&args))
            .env("FLUXLOOP_API_KEY", api_key)
            .env("FLUXLOOP_API_ENDPOINT", &endpoint)
            // fast() sets the connect and the whole-request timeout both to
            // 2 s; over https that makes every request time out ("global")
            // although this server answers at once (`auth status` too, so it
            // is in the shared client, not doctor). From 3 s on the answer
            // arrives in milliseconds. Reported, not fixed here.
            .env("FLUXLOOP_HTTP_TIMEOUT", "20")
            .run()
    };
    let head = "✓ config      parsed [TMP]/work/fluxloop.yaml\n\
                ✓ credential  API key flx_sa_****[LAST4] from environment variable FLUXLOOP_API_KEY\n\
                ✓ endpoint    https://127.0.0.1:[PORT] from environment variable FLUXLOOP_API_ENDPOINT\n\
                ✓ dns         127.0.0.1 is 127.0.0.1\n\
                ✓ tcp         connected to 127.0.0.1:[PORT]\n";
    let tail = "- clock       not checked: no answer from the platform\n\
                - scope       not checked: no answer from the platform\n\
                ✓ agent       ./agent.sh is [TMP]/work/agent.sh\n\
                ✓ git-ignore  no key file in use\n\
                ✓ ci          not in CI (no CI variables set)\n";
    let untrusted = |why: &str| {
        format!(
            "✗ tls         TLS error: invalid peer certificate: {why} (a corporate proxy or private CA? pass it with --ca-cert or SSL_CERT_FILE)\n    \
             fix: pass the CA that signs the platform's certificate with --ca-cert PATH or SSL_CERT_FILE\n"
        )
    };
    // No CA: nobody known signed it. A CA of the same name that did not
    // sign it (a stale or wrong corporate CA file): the signature is bad.
    for (extra, why) in [
        (&[][..], "UnknownIssuer"),
        (&["--ca-cert", "wrong-ca.pem"], "BadSignature"),
    ] {
        let r = run(extra);
        r.code(4);
        assert_eq!(
            normalise(&sb, &r, server.port, api_key),
            format!("{head}{}{tail}", untrusted(why)),
            "{extra:?}"
        );
        assert_eq!(r.stderr, "");
    }
    let r = run(&["--ca-cert", "corp-ca.pem"]);
    r.ok();
    assert_eq!(
        normalise(&sb, &r, server.port, api_key),
        format!(
            "{head}✓ tls         certificate trusted by the bundled roots and [TMP]/work/corp-ca.pem; HTTP 200\n\
             ✓ clock       within 60 s of the platform's\n\
             ✓ scope       scope read-write: pull (read) yes, upload (write) yes\n\
             ✓ agent       ./agent.sh is [TMP]/work/agent.sh\n\
             ✓ git-ignore  no key file in use\n\
             ✓ ci          not in CI (no CI variables set)\n"
        )
    );
}

#[test]
fn doctor_checks_the_proxy_it_would_use() {
    // A proxy that records what it is sent and connects nowhere: the
    // platform's host is never resolved or contacted from here.
    let proxy = Trap::proxy();
    let sb = Sandbox::new();
    project(&sb, "");
    let key = "flx_sa_0123456789abcdefghijKLMN";
    let r = fast(sb.cmd(&["doctor"]))
        .env("FLUXLOOP_API_KEY", key)
        .env("FLUXLOOP_API_ENDPOINT", "https://platform.example")
        .env("HTTPS_PROXY", proxy.url())
        .run();
    r.code(4);
    let port = port_of(&proxy.url());
    let out = normalise(&sb, &r, port, key);
    let lines: Vec<&str> = out.lines().skip(2).take(5).collect();
    assert_eq!(
        lines,
        [
            "✓ endpoint    https://platform.example from environment variable FLUXLOOP_API_ENDPOINT",
            "✓ dns         127.0.0.1 is 127.0.0.1 (proxy from HTTPS_PROXY)",
            "✓ tcp         connected to 127.0.0.1:[PORT] (proxy from HTTPS_PROXY)",
            "✗ tls         the proxy refused the connection: proxy server responded 403/403",
            "    fix: check HTTPS_PROXY, or add the platform's host to NO_PROXY to connect directly",
        ]
    );
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].line(), "CONNECT platform.example:443 HTTP/1.1");
    assert!(
        !proxy.all().contains(key),
        "the key never reaches the proxy"
    );
}

#[test]
fn doctor_stops_at_a_config_file_that_does_not_parse() {
    let sb = Sandbox::new();
    sb.write("fluxloop.yaml", "scenario: [unclosed\n");
    let r = fast(sb.cmd(&["doctor"]))
        .env("FLUXLOOP_API_KEY", "flx_sa_0123456789abcdefghijKLMN")
        .env("FLUXLOOP_API_ENDPOINT", "http://127.0.0.1:9")
        .run();
    r.code(2);
    let out = normalise(&sb, &r, 9, "KLMN");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "✗ config      [TMP]/work/fluxloop.yaml:1:11: scenario: expected string scalar",
            "    fix: see the fluxloop.yaml reference in README.md",
            "- credential  not checked: fix the config first",
            "- network     not checked: fix the config first",
            "- clock       not checked: no answer from the platform",
            "- scope       not checked: no answer from the platform",
            "- agent       not checked: no fluxloop.yaml",
            "- git-ignore  not checked: no credential",
            "✓ ci          not in CI (no CI variables set)",
        ]
    );
}
