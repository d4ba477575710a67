//! The release build (`scripts/release-build`): one static, stripped musl
//! binary plus SHA256SUMS; and that binary alone in an empty root directory
//! (no libc, no /etc/ssl, no /etc/passwd: what the scratch image holds) doing
//! a verified TLS request with a private CA given by `--ca-cert`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::util;

const SELF_BODY: &str =
    r#"{"id":"k","name":"n","type":"service-account","scope":"read-write","project_id":"p"}"#;
const KEY: &str = "flx_sa_abcdefghijklmnopqrstuvwx";

#[test]
#[ignore = "needs file"]
fn release_build_is_static_stripped_checksummed_and_names_its_target() {
    let dist = util::release_dist();
    let bin = dist.join(util::ASSET);

    // The ELF has no program interpreter: nothing to load from the system.
    let elf = std::fs::read(&bin).expect("read binary");
    assert!(
        !has_interp(&elf),
        "{} asks for a dynamic loader",
        bin.display()
    );
    assert!(
        !has_section(&elf, ".symtab"),
        "{} is not stripped",
        bin.display()
    );

    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run --version");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("fluxloop {} (x86_64-unknown-linux-musl)", util::VERSION)
    );

    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("SHA256SUMS");
    assert_eq!(sums.lines().count(), 1, "{sums}");
    assert!(sums.ends_with(&format!("  {}\n", util::ASSET)), "{sums}");
    let mut check = Command::new("sha256sum");
    check.args(["-c", "SHA256SUMS"]).current_dir(dist);
    let ran = util::run_bounded(check, Duration::from_secs(60));
    assert!(ran.ok(), "{}", ran.all());

    // What users will run to check: `file` and `ldd`.
    {
        let file = util::require("file", "apt-get install -y file");
        let out = Command::new(file)
            .arg("-b")
            .arg(&bin)
            .output()
            .expect("file");
        let desc = String::from_utf8_lossy(&out.stdout);
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie linked"),
            "{desc}"
        );
        assert!(desc.contains(", stripped"), "{desc}");
    }
    {
        let ldd = util::require("ldd", "apt-get install -y libc-bin");
        let out = Command::new(ldd).arg(&bin).output().expect("ldd");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("statically linked") || text.contains("not a dynamic executable"),
            "ldd: {text}"
        );
    }
}

#[test]
#[ignore = "needs root (chroot)"]
fn musl_binary_alone_in_an_empty_root_verifies_tls_with_a_private_ca() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "chroot needs root (.ci/run and ci.yml run the tests as root)"
    );
    let chroot_bin = util::which("chroot").expect("chroot (coreutils) on PATH");
    let dist = util::release_dist();
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dist.join(util::ASSET), root.path().join("fluxloop")).expect("copy binary");
    let pki = pki();
    std::fs::write(root.path().join("ca.pem"), &pki.ca_pem).expect("write ca");
    let entries: Vec<_> = std::fs::read_dir(root.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries.len(),
        2,
        "the root holds the binary and the CA only: {entries:?}"
    );

    let (port, served) = tls_server(&pki, 4);
    let endpoint = format!("https://127.0.0.1:{port}");
    let chroot = |user: Option<&str>, args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(&chroot_bin);
        if let Some(u) = user {
            c.arg(format!("--userspec={u}"));
        }
        c.arg(root.path())
            .arg("/fluxloop")
            .args(args)
            .env_clear()
            .env("HOME", "/");
        for (k, v) in env {
            c.env(k, v);
        }
        util::run_bounded(c, Duration::from_secs(60))
    };

    // With the CA from --ca-cert: verified, and the key is valid.
    let ok = chroot(
        None,
        &[
            "auth",
            "status",
            "--endpoint",
            &endpoint,
            "--api-key",
            KEY,
            "--ca-cert",
            "/ca.pem",
        ],
        &[],
    );
    assert!(ok.ok(), "{}", ok.all());
    assert!(ok.stdout.contains("valid"), "{}", ok.all());
    assert!(
        !ok.stdout.contains(KEY) && !ok.stderr.contains(KEY),
        "{}",
        ok.all()
    );

    // As the image's numeric non-root user, with SSL_CERT_FILE instead.
    let ok = chroot(
        Some("65532:65532"),
        &["auth", "status", "--endpoint", &endpoint],
        &[("FLUXLOOP_API_KEY", KEY), ("SSL_CERT_FILE", "/ca.pem")],
    );
    assert!(ok.ok(), "{}", ok.all());

    // Without it the bundled roots do not trust the private CA: exit 4, with
    // the hint to pass one.
    let bad = chroot(
        None,
        &["auth", "status", "--endpoint", &endpoint, "--api-key", KEY],
        &[],
    );
    assert_eq!(bad.code, Some(4), "{}", bad.all());
    assert!(bad.all().contains("--ca-cert"), "{}", bad.all());

    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "two verified requests reached the server"
    );
}

/// A private CA (PEM) and a server certificate it signed for 127.0.0.1.
struct Pki {
    ca_pem: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.distinguished_name
        .push(DnType::CommonName, "fluxloop channels test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("self-sign");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "fluxloop test platform");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// Serves up to `conns` TLS connections on 127.0.0.1, answering
/// `GET /api/api-keys/self` with a read-write service-account key; counts the
/// requests answered. The thread ends after `conns` connections or when the
/// listener has been idle for 60 s.
fn tls_server(pki: &Pki, conns: usize) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        let mut idle = std::time::Instant::now();
        let mut left = conns;
        while left > 0 && idle.elapsed() < Duration::from_secs(60) {
            let tcp = match listener.accept() {
                Ok((tcp, _)) => tcp,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            idle = std::time::Instant::now();
            left -= 1;
            let _ = tcp.set_nonblocking(false);
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut reader = BufReader::new(&mut tls);
            let mut line = String::new();
            // A client that rejects the certificate ends the handshake here.
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let mut content_length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; content_length];
            let _ = reader.read_exact(&mut body);
            let (status, body) = if line.starts_with("GET /api/api-keys/self ") {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ("200 OK", SELF_BODY)
            } else {
                ("404 Not Found", r#"{"detail":"not found"}"#)
            };
            let _ = write!(
                tls,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, served)
}

/// True when the 64-bit little-endian ELF has a PT_INTERP program header.
fn has_interp(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes")) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p = phoff + i * phentsize;
        u32::from_le_bytes(elf[p..p + 4].try_into().expect("4 bytes")) == 3
    })
}

/// True when the ELF has a section named `name` (e.g. `.symtab`, which
/// stripping removes).
fn has_section(elf: &[u8], name: &str) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().expect("4 bytes")) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes")) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    if shoff == 0 || shstrndx >= shnum {
        return false;
    }
    let strtab = u64_at(shoff + shstrndx * shentsize + 0x18);
    (0..shnum).any(|i| {
        let off = strtab + u32_at(shoff + i * shentsize);
        let end = elf[off..]
            .iter()
            .position(|&b| b == 0)
            .map_or(elf.len(), |n| off + n);
        &elf[off..end] == name.as_bytes()
    })
}
