//! Network plumbing under the client: the ureq agent (timeouts, user agent,
//! proxy, trust roots), and plain-language descriptions of transport errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

use super::{Endpoint, Event, Observer, Scheme};
use crate::error::{Error, Result};

/// Timeouts, retries, trust and proxy: everything that shapes a connection.
#[derive(Clone, Debug)]
pub(crate) struct NetOptions {
    pub(crate) connect_timeout: Duration,
    /// The whole request: connect, send, and read the response.
    pub(crate) timeout: Duration,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// The first backoff; doubles per attempt.
    pub(crate) backoff_base: Duration,
    /// No new attempt starts after this much time.
    pub(crate) retry_budget: Duration,
    /// Extra CA certificates (PEM files), added to the bundled roots.
    pub(crate) ca_files: Vec<PathBuf>,
    /// A directory of extra CA certificates (`SSL_CERT_DIR`).
    pub(crate) ca_dir: Option<PathBuf>,
    /// The proxy URL and the variable it came from.
    pub(crate) proxy: Option<(String, &'static str)>,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            retries: 4,
            backoff_base: Duration::from_millis(500),
            retry_budget: Duration::from_secs(180),
            ca_files: vec![],
            ca_dir: None,
            proxy: None,
        }
    }
}

/// The proxy settings as resolved (config/registry.rs): the variable that
/// won for each scheme, and `NO_PROXY`.
pub(crate) struct Proxies {
    pub(crate) https: Option<(String, &'static str)>,
    pub(crate) http: Option<(String, &'static str)>,
    pub(crate) no_proxy: Option<String>,
}

/// Picks the proxy for `endpoint` the way curl does: `NO_PROXY` first, then
/// `HTTPS_PROXY` for https or `HTTP_PROXY` for http, then `ALL_PROXY`.
/// Loopback endpoints never go through a proxy, whatever `NO_PROXY` says: a
/// proxy would see the credential of a request meant for this machine.
pub(crate) fn proxy_for(
    proxies: &Proxies,
    endpoint: &Endpoint,
) -> Result<Option<(String, &'static str)>> {
    if endpoint.is_loopback() {
        return Ok(None);
    }
    if no_proxy_matches(proxies.no_proxy.as_deref().unwrap_or(""), endpoint.host()) {
        return Ok(None);
    }
    let chosen = if endpoint.scheme() == Scheme::Https {
        &proxies.https
    } else {
        &proxies.http
    };
    let Some((url, name)) = chosen else {
        return Ok(None);
    };
    if url.to_ascii_lowercase().starts_with("socks") {
        return Err(Error::config(
            format!("{name} names a SOCKS proxy ({}), which fluxloop does not support", mask_userinfo(url)),
            Some("use an HTTP CONNECT proxy (http://host:port), or add the platform host to NO_PROXY".into()),
        ));
    }
    Ok(Some((url.clone(), name)))
}

/// `NO_PROXY`: comma-separated hosts, domain suffixes (`.corp` or `corp`),
/// IP addresses, or `*`.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let entry = if entry.starts_with('[') {
                entry
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or(entry)
            } else if entry.matches(':').count() == 1 {
                entry.split(':').next().unwrap_or(entry)
            } else {
                entry
            };
            let entry = entry.to_ascii_lowercase();
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

/// `http://user:pass@host` → `http://****@host`, for messages.
pub(crate) fn mask_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}****{}", &url[..s + 3], &url[at..]),
        (None, Some(at)) => format!("****{}", &url[at..]),
        _ => url.to_string(),
    }
}

/// Builds the agent: timeouts, user agent, statuses as values, proxy, roots.
pub(super) fn build_agent(
    base: &Endpoint,
    opts: &NetOptions,
    observer: &Observer,
) -> Result<ureq::Agent> {
    let roots = root_certs(opts)?;
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(roots)
        .build();
    let proxy = match &opts.proxy {
        None => None,
        Some((url, name)) => {
            observer(Event::Trace(format!(
                "* proxy {} (from {name}) for {base}",
                mask_userinfo(url)
            )));
            Some(ureq::Proxy::new(url).map_err(|e| {
                Error::config(
                    format!(
                        "{name} is not a valid proxy URL ({}): {e}",
                        mask_userinfo(url)
                    ),
                    Some("a proxy URL looks like http://proxy.example:3128".into()),
                )
            })?)
        }
    };
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirect is an error the caller reports: followed, a POST would
        // turn into a GET elsewhere whose 200 looks like success.
        .max_redirects(0)
        .user_agent(format!("fluxloop/{}", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_global(Some(opts.timeout))
        .proxy(proxy)
        .tls_config(tls)
        .build();
    Ok(config.into())
}

/// The bundled Mozilla roots, plus any extra CA files: added, never replacing.
pub(super) fn root_certs(opts: &NetOptions) -> Result<RootCerts> {
    let mut extra: Vec<Certificate<'static>> = Vec::new();
    for path in &opts.ca_files {
        let found = read_pem_certs(path, &mut extra)?;
        if found == 0 {
            return Err(Error::config(
                format!("no PEM certificate found in {}", path.display()),
                Some("--ca-cert / SSL_CERT_FILE must name a PEM file with -----BEGIN CERTIFICATE----- blocks".into()),
            ));
        }
    }
    if let Some(dir) = &opts.ca_dir {
        // OpenSSL's hashed directories hold one PEM file per certificate;
        // anything unreadable there is skipped, as OpenSSL does.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let _ = read_pem_certs(&entry.path(), &mut extra);
            }
        }
    }
    let mut all: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()))
        .collect();
    all.extend(extra);
    Ok(RootCerts::Specific(Arc::new(all)))
}

fn read_pem_certs(path: &Path, out: &mut Vec<Certificate<'static>>) -> Result<usize> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read CA certificate", path, e))?;
    let mut n = 0;
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(c)) => {
                out.push(c.to_owned());
                n += 1;
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::config(
                    format!("cannot parse CA certificate {}: {e}", path.display()),
                    None,
                ))
            }
        }
    }
    Ok(n)
}

/// A transport error in words a CI log reader can act on.
pub(super) fn describe_error(e: &ureq::Error) -> String {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => format!("timed out ({t})"),
        E::HostNotFound => "host not found (DNS)".into(),
        E::ConnectionFailed => "connection failed".into(),
        E::Io(io) if is_tls_io(io) => format!(
            "TLS error: {io} (a corporate proxy or private CA? pass it with --ca-cert or SSL_CERT_FILE)"
        ),
        E::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
            std::io::ErrorKind::UnexpectedEof => "the server closed the connection before answering".into(),
            std::io::ErrorKind::TimedOut => "timed out".into(),
            _ => format!("I/O error: {io}"),
        },
        E::Rustls(tls) => format!("TLS error: {tls} (a corporate proxy or private CA? pass it with --ca-cert or SSL_CERT_FILE)"),
        E::Tls(msg) => format!("TLS error: {msg}"),
        E::BodyExceedsLimit(n) => format!("the response is larger than {n} bytes"),
        E::ConnectProxyFailed(msg) => format!("the proxy refused the connection: {msg}"),
        E::Protocol(p) => format!("the server broke the HTTP protocol: {p}"),
        other => other.to_string(),
    }
}

/// rustls reports a failed handshake (an untrusted or mismatched
/// certificate) through the stream as an `InvalidData` I/O error.
fn is_tls_io(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::InvalidData
        && io
            .get_ref()
            .is_some_and(|inner| inner.to_string().contains("certificate"))
}

/// A TLS failure: the handshake did not complete, nothing was sent, and
/// retrying cannot help.
pub(super) fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) => true,
        ureq::Error::Io(io) => is_tls_io(io),
        _ => false,
    }
}

/// Whether the server may have seen the request, so a retry could repeat it.
pub(super) fn was_sent(e: &ureq::Error) -> bool {
    use ureq::Error as E;
    use ureq::Timeout as T;
    !matches!(
        e,
        E::HostNotFound
            | E::ConnectionFailed
            | E::Timeout(T::Resolve | T::Connect)
            | E::Tls(_)
            | E::Rustls(_)
            | E::ConnectProxyFailed(_)
    ) && !matches!(e, E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused || is_tls_io(io))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn proxy_selection_follows_scheme_and_no_proxy() {
        let env = Env::from_pairs(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("http_proxy", "http://plain:2"),
            ("NO_PROXY", "internal.corp, .skip.example,10.1.2.3"),
        ]);
        assert_eq!(
            proxy_for(&proxies(&env), &ep("https://api.fluxloop.ai")).unwrap(),
            Some(("http://secure:1".into(), "HTTPS_PROXY"))
        );
        assert_eq!(
            proxy_for(&proxies(&env), &ep("http://plain-target.example:9")).unwrap(),
            Some(("http://plain:2".into(), "http_proxy"))
        );
        assert_eq!(
            proxy_for(&proxies(&env), &ep("https://internal.corp")).unwrap(),
            None
        );
        assert_eq!(
            proxy_for(&proxies(&env), &ep("https://a.internal.corp:443")).unwrap(),
            None
        );
        assert_eq!(
            proxy_for(&proxies(&env), &ep("https://x.skip.example")).unwrap(),
            None
        );
        assert_eq!(
            proxy_for(&proxies(&env), &ep("http://10.1.2.3:80")).unwrap(),
            None
        );
        let all = Env::from_pairs(&[("ALL_PROXY", "http://all:3")]);
        assert_eq!(
            proxy_for(&proxies(&all), &ep("https://x")).unwrap(),
            Some(("http://all:3".into(), "ALL_PROXY"))
        );
        let star = Env::from_pairs(&[("ALL_PROXY", "http://all:3"), ("no_proxy", "*")]);
        assert_eq!(proxy_for(&proxies(&star), &ep("https://x")).unwrap(), None);
    }

    fn proxies(env: &Env) -> Proxies {
        crate::config::settings::Settings::of_env(env)
            .proxies()
            .unwrap()
    }

    #[test]
    fn loopback_never_goes_through_a_proxy() {
        let env = Env::from_pairs(&[
            ("http_proxy", "http://plain:2"),
            ("HTTPS_PROXY", "http://secure:1"),
            ("ALL_PROXY", "http://all:3"),
            ("NO_PROXY", "example.com"),
        ]);
        for url in [
            "http://127.0.0.1:9",
            "http://localhost:9",
            "https://127.0.0.1:9",
            "http://[::1]:9",
        ] {
            assert_eq!(proxy_for(&proxies(&env), &ep(url)).unwrap(), None, "{url}");
        }
    }

    #[test]
    fn socks_proxies_are_refused_clearly() {
        let env = Env::from_pairs(&[("ALL_PROXY", "socks5://user:secret@p:1080")]);
        let e = proxy_for(&proxies(&env), &ep("https://x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SOCKS proxy"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn masks_proxy_credentials() {
        assert_eq!(mask_userinfo("http://u:p@h:1"), "http://****@h:1");
        assert_eq!(mask_userinfo("http://h:1"), "http://h:1");
    }
}
