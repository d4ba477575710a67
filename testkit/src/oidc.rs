//! A local OIDC issuer for tests: an HTTP server on 127.0.0.1 (its own thread)
//! serving discovery and a JWKS for keys generated at start, minting tokens
//! signed with them, forging the classic bad tokens (`alg: none`, HS256 keyed
//! with the public key, a flipped signature byte), and standing in for GitHub
//! Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`.
//!
//! Everything panics on failure: a test kit that cannot bind a loopback port
//! or generate a key has nothing useful to return to the test.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

/// How long a minted token is valid unless the claims set `exp`.
const TOKEN_LIFETIME_SECS: u64 = 300;

/// Path of the JWKS, announced as `jwks_uri` by discovery.
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The algorithm family of a key made by [`Issuer::new_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA-2048, signing RS256.
    Rsa,
    /// EC P-256, signing ES256.
    Ec,
}

/// Which of the issuer's keys signs a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// The RSA key generated at start, kid `rsa-1`, published.
    Rsa,
    /// The EC key generated at start, kid `ec-1`, published.
    Ec,
    /// A key made by [`Issuer::new_key`]; in the JWKS only after
    /// [`Issuer::publish`].
    Generated(String),
}

impl Key {
    /// The `kid` the key is known by, in token headers and in the JWKS.
    pub fn kid(&self) -> &str {
        match self {
            Key::Rsa => "rsa-1",
            Key::Ec => "ec-1",
            Key::Generated(kid) => kid,
        }
    }
}

/// The stand-in for GitHub Actions' token endpoint, as the runner exposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubEndpoint {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`: already has a query string, so a
    /// client appends `&audience=X`.
    pub url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer the endpoint demands.
    pub request_token: String,
}

/// One signing key with its public half as a JWK.
struct SigningKey {
    kind: KeyKind,
    encoding: EncodingKey,
    jwk: Value,
    /// SPKI PEM of an RSA key: what a confused verifier would take as an
    /// HMAC secret.
    public_pem: Option<String>,
}

/// What the server thread and the test share.
struct Shared {
    url: String,
    /// Every key by kid, published or not.
    keys: Mutex<HashMap<String, SigningKey>>,
    /// Kids in the JWKS, in publication order.
    published: Mutex<Vec<String>>,
    /// GitHub stand-in: request token → the claims its tokens carry.
    github: Mutex<HashMap<String, Value>>,
    jwks_fetches: AtomicUsize,
}

/// A running local issuer. Dropping it stops the server.
pub struct Issuer {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Issuer {
    /// Binds 127.0.0.1 on a free port, generates the RSA (`rsa-1`) and EC
    /// (`ec-1`) keys, publishes both and serves on a thread of its own.
    pub fn start() -> Issuer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            keys: Mutex::new(HashMap::new()),
            published: Mutex::new(Vec::new()),
            github: Mutex::new(HashMap::new()),
            jwks_fetches: AtomicUsize::new(0),
        });
        let (shutdown, stop) = oneshot::channel();
        let issuer = Issuer {
            shared: Arc::clone(&shared),
            shutdown: Some(shutdown),
        };
        for (key, kind) in [(Key::Rsa, KeyKind::Rsa), (Key::Ec, KeyKind::Ec)] {
            issuer.new_key(key.kid(), kind);
            issuer.publish(key.kid());
        }
        std::thread::Builder::new()
            .name("oidc-issuer".into())
            .spawn(move || serve(listener, shared, stop))
            .expect("spawn the issuer thread");
        issuer
    }

    /// The issuer URL (`iss`), `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// A token signed RS256 with `rsa-1`; see [`Issuer::mint_with`].
    pub fn mint(&self, claims: Value) -> String {
        self.mint_with(Key::Rsa, claims)
    }

    /// A token signed with `key`. `iss`, `iat`, `nbf`, `exp` (+300 s) and
    /// `jti` (a fresh uuid) are filled unless `claims` sets them; a claim set
    /// to `null` is left out.
    pub fn mint_with(&self, key: Key, claims: Value) -> String {
        self.shared.mint(&key, claims)
    }

    /// Generates a key under `kid`, usable with [`Issuer::mint_with`] at once
    /// and absent from the JWKS until [`Issuer::publish`] (rotation).
    pub fn new_key(&self, kid: &str, kind: KeyKind) -> Key {
        let key = match kind {
            KeyKind::Rsa => rsa_key(kid),
            KeyKind::Ec => ec_key(kid),
        };
        let previous = lock(&self.shared.keys).insert(kid.to_owned(), key);
        assert!(previous.is_none(), "kid {kid:?} is taken");
        match kid {
            "rsa-1" if kind == KeyKind::Rsa => Key::Rsa,
            "ec-1" if kind == KeyKind::Ec => Key::Ec,
            _ => Key::Generated(kid.to_owned()),
        }
    }

    /// Adds the key `kid` to the JWKS, as an issuer does when it rotates.
    pub fn publish(&self, kid: &str) {
        assert!(
            lock(&self.shared.keys).contains_key(kid),
            "no key with kid {kid:?}"
        );
        let mut published = lock(&self.shared.published);
        if !published.iter().any(|k| k == kid) {
            published.push(kid.to_owned());
        }
    }

    /// An unsigned token (`alg: none`, empty signature) with the header naming
    /// `rsa-1`, as an attacker would send it.
    pub fn forge_alg_none(&self, claims: Value) -> String {
        let header = json!({"alg": "none", "typ": "JWT", "kid": Key::Rsa.kid()});
        let payload = Value::Object(self.shared.fill(claims));
        format!("{}.{}.", b64_json(&header), b64_json(&payload))
    }

    /// An HS256 token whose HMAC secret is `rsa-1`'s public key (SPKI PEM):
    /// accepted by a verifier that takes the header's alg and feeds it the
    /// key material it has for the kid.
    pub fn forge_hs256_with_public_key(&self, claims: Value) -> String {
        let payload = self.shared.fill(claims);
        let keys = lock(&self.shared.keys);
        let pem = keys[Key::Rsa.kid()]
            .public_pem
            .as_deref()
            .expect("rsa-1 has a PEM");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(Key::Rsa.kid().to_owned());
        let secret = EncodingKey::from_secret(pem.as_bytes());
        jsonwebtoken::encode(&header, &payload, &secret).expect("sign a token")
    }

    /// How often the JWKS has been served.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Registers a GitHub Actions token endpoint whose tokens carry `claims`
    /// plus `aud` from the request's `audience`. Each request mints a fresh
    /// token (new `jti`); a missing or wrong bearer gets 401.
    pub fn github_token_endpoint(&self, claims: Value) -> GithubEndpoint {
        let request_token = uuid::Uuid::new_v4().simple().to_string();
        lock(&self.shared.github).insert(request_token.clone(), claims);
        GithubEndpoint {
            url: format!("{}/_apis/token?api-version=2.0", self.shared.url),
            request_token,
        }
    }
}

impl Shared {
    fn mint(&self, key: &Key, claims: Value) -> String {
        let payload = self.fill(claims);
        let keys = lock(&self.keys);
        let signing = keys
            .get(key.kid())
            .unwrap_or_else(|| panic!("no key with kid {:?}", key.kid()));
        let mut header = Header::new(match signing.kind {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::Ec => Algorithm::ES256,
        });
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, &payload, &signing.encoding).expect("sign a token")
    }

    /// `claims` as an object with the defaults filled and nulls dropped.
    fn fill(&self, claims: Value) -> Map<String, Value> {
        let mut map = match claims {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => panic!("claims must be a JSON object, not {other}"),
        };
        let now = unix_now();
        let defaults = [
            ("iss", json!(self.url)),
            ("iat", json!(now)),
            ("nbf", json!(now)),
            ("exp", json!(now + TOKEN_LIFETIME_SECS)),
            ("jti", json!(uuid::Uuid::new_v4().to_string())),
        ];
        for (name, value) in defaults {
            map.entry(name).or_insert(value);
        }
        map.retain(|_, value| !value.is_null());
        map
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys stay out: a test's failure output is no place for them.
        f.debug_struct("Issuer")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The server may be gone already; nothing to stop then.
            let _ = shutdown.send(());
        }
    }
}

/// GitHub-shaped claims for a push to `git_ref` (`refs/heads/main`) of
/// `repo` (`org/name`): what `github_token_endpoint` should carry.
pub fn github_claims(repo: &str, git_ref: &str) -> Value {
    let owner = repo.split('/').next().unwrap_or(repo);
    let ref_type = if git_ref.starts_with("refs/tags/") {
        "tag"
    } else {
        "branch"
    };
    json!({
        "sub": format!("repo:{repo}:ref:{git_ref}"),
        "repository": repo,
        "repository_owner": owner,
        "ref": git_ref,
        "ref_type": ref_type,
        "event_name": "push",
        "workflow": "CI",
        "job_workflow_ref": format!("{repo}/.github/workflows/ci.yml@{git_ref}"),
        "run_id": "4242",
    })
}

/// `jwt` with one bit of its signature flipped: same header and claims, a
/// signature that no longer verifies.
pub fn tamper(jwt: &str) -> String {
    let (signed, signature) = jwt.rsplit_once('.').expect("a JWT has three parts");
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("the signature is base64url");
    let first = bytes.first_mut().expect("a signature to tamper with");
    *first ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn rsa_key(kid: &str) -> SigningKey {
    let private =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate RSA-2048");
    let der = private.to_pkcs1_der().expect("PKCS#1 DER");
    let public = private.to_public_key();
    let public_pem = public.to_public_key_pem(LineEnding::LF).expect("SPKI PEM");
    let jwk = json!({
        "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    });
    SigningKey {
        kind: KeyKind::Rsa,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk,
        public_pem: Some(public_pem),
    }
}

fn ec_key(kid: &str) -> SigningKey {
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("generate P-256");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("load P-256");
    // An uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    SigningKey {
        kind: KeyKind::Ec,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        public_pem: None,
    }
}

/// Runs the server until `stop` fires or the `Issuer` is dropped.
fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, stop: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a tokio runtime for the issuer");
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(JWKS_PATH, get(jwks))
        .route("/_apis/token", get(github_token))
        .with_state(shared);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await
            .expect("serve the issuer");
    });
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": shared.url,
            "jwks_uri": format!("{}{JWKS_PATH}", shared.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }),
    )
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = lock(&shared.keys);
    let published: Vec<&Value> = lock(&shared.published)
        .iter()
        .map(|kid| &keys[kid].jwk)
        .collect();
    json_response(StatusCode::OK, &json!({ "keys": published }))
}

async fn github_token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let claims = bearer.and_then(|token| lock(&shared.github).get(token).cloned());
    let Some(mut claims) = claims else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Bad credentials: a valid ACTIONS_ID_TOKEN_REQUEST_TOKEN is required"}),
        );
    };
    if let (Some(audience), Value::Object(map)) = (query.get("audience"), &mut claims) {
        map.insert("aud".into(), json!(audience));
    }
    let token = shared.mint(&Key::Rsa, claims);
    json_response(StatusCode::OK, &json!({ "value": token }))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A panic elsewhere in a test must not turn every later call into a
/// poisoned-lock panic that hides the first one.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
