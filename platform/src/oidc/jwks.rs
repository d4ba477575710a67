//! Issuers' signing keys: discovery (`<iss>/.well-known/openid-configuration`
//! → `jwks_uri`), the JWKS fetch, and a cache per issuer.
//!
//! A key set is kept 10 minutes. A token naming a kid the cached set lacks
//! (the issuer rotated) refetches at once, but at most once per
//! `min_refresh`, so a stream of made-up kids cannot turn the platform into
//! a fetch amplifier. Every fetch is bounded (5 s, 256 KiB, no redirects): a
//! slow, huge or broken issuer fails one exchange, never the server.
//!
//! `jwks_uri` may name another host than the issuer (Google's keys live on
//! www.googleapis.com, not accounts.google.com): the discovery document is
//! the issuer's own word, fetched over https from the issuer, so it decides
//! where its keys are. It is held to the issuer's scheme rule (https, or
//! loopback http for a platform on loopback). Nothing is fetched for an
//! issuer no policy trusts, and only a project admin adds one, so the
//! exchange cannot be used to make the platform fetch an arbitrary URL; a
//! failed fetch reports the status or the client's error, never the body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::policy::{check_issuer, IssuerProblem};

/// How long a fetched key set is used without asking again.
const CACHE_TTL: Duration = Duration::from_secs(600);
/// Time for one whole fetch, connect to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
const MAX_BYTES: u64 = 256 * 1024;

/// One key of a set, as published (unusable fields left out).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub(crate) struct Jwk {
    pub(crate) kid: Option<String>,
    pub(crate) kty: String,
    #[serde(rename = "use")]
    pub(crate) key_use: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) crv: Option<String>,
    pub(crate) n: Option<String>,
    pub(crate) e: Option<String>,
    pub(crate) x: Option<String>,
    pub(crate) y: Option<String>,
}

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// Discovery or the JWKS could not be read; the reason in words.
    Discovery(String),
    /// The set (fresh as allowed) has no key for the token.
    UnknownKid,
}

/// A fetched key set.
struct Entry {
    keys: Arc<Vec<Jwk>>,
    fetched: Instant,
}

/// The key sets of every issuer seen, and the client that fetches them.
pub(crate) struct Jwks {
    agent: ureq::Agent,
    cache: Mutex<HashMap<String, Entry>>,
    min_refresh: Duration,
    platform_on_loopback: bool,
}

impl Jwks {
    pub(crate) fn new(min_refresh: Duration, platform_on_loopback: bool) -> Jwks {
        Jwks {
            agent: agent(),
            cache: Mutex::new(HashMap::new()),
            min_refresh,
            platform_on_loopback,
        }
    }

    /// The key `kid` of `issuer`; without a kid, the issuer's one key of
    /// type `kty`.
    pub(crate) fn key(&self, issuer: &str, kid: Option<&str>, kty: &str) -> Result<Jwk, KeyError> {
        let cached = self.cached(issuer);
        if let Some((keys, fetched)) = &cached {
            if fetched.elapsed() < CACHE_TTL {
                if let Some(key) = pick(keys, kid, kty) {
                    return Ok(key);
                }
                if fetched.elapsed() < self.min_refresh {
                    return Err(KeyError::UnknownKid);
                }
            }
        }
        let keys = self.fetch(issuer).map_err(KeyError::Discovery)?;
        let found = pick(&keys, kid, kty);
        self.store(issuer, keys);
        found.ok_or(KeyError::UnknownKid)
    }

    fn cached(&self, issuer: &str) -> Option<(Arc<Vec<Jwk>>, Instant)> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(issuer).map(|e| (Arc::clone(&e.keys), e.fetched))
    }

    fn store(&self, issuer: &str, keys: Arc<Vec<Jwk>>) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = Entry {
            keys,
            fetched: Instant::now(),
        };
        cache.insert(issuer.to_owned(), entry);
    }

    /// Discovery, then the key set it names.
    fn fetch(&self, issuer: &str) -> Result<Arc<Vec<Jwk>>, String> {
        let discovery = get_json(
            &self.agent,
            &format!("{issuer}/.well-known/openid-configuration"),
        )?;
        let announced = discovery["issuer"].as_str().unwrap_or("");
        if super::policy::normalize_issuer(announced) != issuer {
            return Err(format!(
                "its discovery document names the issuer `{announced}`, not `{issuer}`"
            ));
        }
        let Some(uri) = discovery["jwks_uri"].as_str() else {
            return Err("its discovery document has no jwks_uri".to_owned());
        };
        match check_issuer(uri, self.platform_on_loopback) {
            Ok(()) => {}
            Err(IssuerProblem::Invalid(_)) => return Err(format!("jwks_uri `{uri}` is not a URL")),
            Err(IssuerProblem::NotHttps) => return Err(format!("jwks_uri `{uri}` is not https")),
        }
        let set = get_json(&self.agent, uri)?;
        let Some(keys) = set["keys"].as_array() else {
            return Err(format!("{uri} is not a JWKS (no `keys` array)"));
        };
        // A key this platform cannot read (another type, a malformed entry)
        // is skipped, as a verifier must: the set may hold keys for others.
        let keys = keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        Ok(Arc::new(keys))
    }
}

/// The signing key for a token: by kid, or the only one of its type.
fn pick(keys: &[Jwk], kid: Option<&str>, kty: &str) -> Option<Jwk> {
    let signing = |k: &&Jwk| k.key_use.as_deref().is_none_or(|u| u == "sig");
    match kid {
        Some(kid) => keys
            .iter()
            .filter(signing)
            .find(|k| k.kid.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut of_type = keys.iter().filter(signing).filter(|k| k.kty == kty);
            match (of_type.next(), of_type.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

fn agent() -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()))
        .collect();
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A redirect could lead from https to plain http; issuers do not
        // redirect their discovery or keys.
        .max_redirects(0)
        // The issuer is asked directly: a proxy picked up from the
        // environment would sit between the platform and the keys it trusts.
        .proxy(None)
        .timeout_global(Some(FETCH_TIMEOUT))
        .user_agent(format!("fluxloop-platform/{}", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .into()
}

/// GET `url` as JSON, bounded in time and size.
fn get_json(agent: &ureq::Agent, url: &str) -> Result<Value, String> {
    let mut response = agent
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("GET {url} answered HTTP {status}"));
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_string()
        .map_err(|e| format!("GET {url} failed: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("GET {url} is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(kid: Option<&str>, kty: &str, key_use: Option<&str>) -> Jwk {
        Jwk {
            kid: kid.map(str::to_owned),
            kty: kty.to_owned(),
            key_use: key_use.map(str::to_owned),
            ..Jwk::default()
        }
    }

    #[test]
    fn picks_by_kid_or_the_only_key_of_the_type() {
        let keys = [
            jwk(Some("a"), "RSA", Some("sig")),
            jwk(Some("b"), "EC", None),
            jwk(Some("c"), "RSA", Some("enc")),
        ];
        assert_eq!(pick(&keys, Some("b"), "EC"), Some(keys[1].clone()));
        assert_eq!(
            pick(&keys, Some("c"), "RSA"),
            None,
            "encryption keys never verify"
        );
        assert_eq!(pick(&keys, Some("z"), "RSA"), None);
        assert_eq!(pick(&keys, None, "EC"), Some(keys[1].clone()));
        let two = [jwk(Some("a"), "RSA", None), jwk(Some("b"), "RSA", None)];
        assert_eq!(pick(&two, None, "RSA"), None, "ambiguous without a kid");
    }
}
