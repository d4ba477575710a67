//! Keyless CI (issue 19): OIDC ID tokens from a local issuer
//! (fluxloop-testkit) exchanged for access tokens under trust policies, and
//! every way a token is refused, each with its reason, the presented claims
//! and never the token itself.

use std::time::{Duration, Instant};

use fluxloop_platform::{Config, Demo};
use fluxloop_testkit::oidc::{github_claims, tamper, Issuer, Key, KeyKind};
use serde_json::{json, Value};

use crate::{Env, Reply};

/// A platform with the demo project, a local issuer, and a login token to
/// manage policies with.
pub(crate) struct Keyless {
    pub(crate) env: Env,
    pub(crate) issuer: Issuer,
    pub(crate) demo: Demo,
    pub(crate) admin: String,
}

impl Keyless {
    pub(crate) fn new() -> Keyless {
        Keyless::with(Config {
            jwks_min_refresh: Duration::ZERO,
            ..Config::default()
        })
    }

    pub(crate) fn with(config: Config) -> Keyless {
        let env = Env::with(config);
        let demo = env.demo();
        let admin = env.login()["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        Keyless {
            env,
            issuer: Issuer::start(),
            demo,
            admin,
        }
    }

    /// Adds a policy for the demo project through the API; returns it.
    pub(crate) fn trust(&self, body: Value) -> Value {
        self.trust_in(&self.demo.project_id, body)
    }

    pub(crate) fn trust_in(&self, project_id: &str, body: Value) -> Value {
        self.env
            .post(&format!("/api/projects/{project_id}/trust-policies"))
            .auth(&self.admin)
            .json(&body)
            .send()
            .expect(201)
            .json()
    }

    /// The usual policy: this issuer, `sub` pinned to the main branch of
    /// org/app, scope read-write.
    pub(crate) fn trust_main(&self) -> Value {
        self.trust(json!({
            "issuer": self.issuer.url(),
            "conditions": {"sub": "repo:org/app:ref:refs/heads/*"},
            "scope": "read-write",
        }))
    }

    pub(crate) fn exchange(&self, token: &str) -> Reply {
        self.env
            .post("/api/auth/oidc/exchange")
            .json(&json!({ "token": token }))
            .send()
    }

    /// A token of the main branch of org/app for audience fluxloop.
    pub(crate) fn main_token(&self) -> String {
        self.issuer.mint(main_claims())
    }
}

pub(crate) fn main_claims() -> Value {
    json!({"sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"})
}

/// Checks a refusal whole: 401 `oidc_rejected`, the reason, exactly these
/// claims, a one-line message, and nothing of the token in the body.
#[track_caller]
pub(crate) fn refused(reply: Reply, reason: &str, claims: Value, token: &str) -> String {
    let body = reply.expect_error(401, "oidc_rejected").json();
    let error = &body["error"];
    assert_eq!(error["reason"], json!(reason), "{body}");
    assert_eq!(error["claims"], claims, "{body}");
    let keys: Vec<&String> = error.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["claims", "code", "message", "reason"], "{body}");
    let message = error["message"].as_str().expect("message").to_owned();
    assert!(!message.contains('\n'), "{message}");
    let text = body.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!text.contains(part), "the answer echoes the token: {text}");
    }
    message
}

#[test]
fn rs256_and_es256_tokens_are_exchanged_for_project_tokens() {
    let k = Keyless::new();
    let policy = k.trust_main();
    for key in [Key::Rsa, Key::Ec] {
        let token = k.issuer.mint_with(key, main_claims());
        let body = k.exchange(&token).expect(200).json();
        let access = body["access_token"].as_str().expect("access_token");
        assert!(
            access.starts_with("flx_oidc_") && access.len() == 49,
            "{access}"
        );
        assert_eq!(
            body,
            json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_at": body["expires_at"],
                "expires_in": 3600,
                "scope": "read-write",
                "project_id": k.demo.project_id,
                "policy_id": policy["id"],
                "matched": {"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop"},
            })
        );
        let expires = body["expires_at"].as_str().expect("expires_at");
        assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    }
}

/// GET the stand-in's URL as the CLI does: `&audience=` appended, the
/// request token as bearer.
fn github_id_token(url: &str, request_token: &str) -> String {
    let reply = crate::agent()
        .get(format!("{url}&audience=fluxloop"))
        .header("Authorization", format!("Bearer {request_token}"))
        .call()
        .expect("token endpoint")
        .into_body()
        .read_to_string()
        .expect("body");
    let value: Value = serde_json::from_str(&reply).expect("JSON");
    value["value"].as_str().expect("value").to_owned()
}

#[test]
fn a_github_actions_token_matches_a_repository_and_ref_policy() {
    let k = Keyless::new();
    let policy = k.trust(json!({
        "issuer": format!("{}/", k.issuer.url()),
        "conditions": {"repository": "acme/app", "ref": "refs/heads/main", "event_name": "push"},
        "scope": "read",
        "name": "acme main",
    }));
    assert_eq!(
        policy["issuer"],
        json!(k.issuer.url()),
        "trailing slash dropped"
    );
    let endpoint = k
        .issuer
        .github_token_endpoint(github_claims("acme/app", "refs/heads/main"));
    let token = github_id_token(&endpoint.url, &endpoint.request_token);
    let body = k.exchange(&token).expect(200).json();
    assert_eq!(body["scope"], json!("read"));
    assert_eq!(
        body["matched"],
        json!({"iss": k.issuer.url(), "sub": "repo:acme/app:ref:refs/heads/main", "aud": "fluxloop",
               "repository": "acme/app", "ref": "refs/heads/main", "event_name": "push"})
    );
    // Another branch of the same repository is not the main branch.
    let other = k
        .issuer
        .github_token_endpoint(github_claims("acme/app", "refs/heads/evil"));
    let token = github_id_token(&other.url, &other.request_token);
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:acme/app:ref:refs/heads/evil", "aud": "fluxloop",
                       "repository": "acme/app", "ref": "refs/heads/evil", "ref_type": "branch",
                       "event_name": "push", "job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/evil"});
    refused(k.exchange(&token), "no_matching_policy", shown, &token);
}

#[test]
fn tokens_outside_their_time_audience_or_subject_are_refused() {
    let k = Keyless::new();
    k.trust_main();
    let now = unix_now();
    let url = k.issuer.url().to_owned();
    let cases = [
        (
            "expired",
            json!({"exp": now - 61, "iat": now - 400, "nbf": now - 400}),
        ),
        ("not_yet_valid", json!({"nbf": now + 120})),
        ("issued_in_future", json!({"iat": now + 120})),
        ("audience_mismatch", json!({"aud": "someone-else"})),
        (
            "no_matching_policy",
            json!({"sub": "repo:evil/app:ref:refs/heads/main"}),
        ),
        ("malformed", json!({"exp": null})),
    ];
    for (reason, changes) in cases {
        let mut claims = main_claims();
        for (name, value) in changes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        let token = k.issuer.mint(claims.clone());
        let shown = json!({"iss": url, "sub": claims["sub"], "aud": claims["aud"], "ref": "refs/heads/main"});
        refused(k.exchange(&token), reason, shown, &token);
    }
    // Within the minute of skew, a just-expired token still passes.
    let token = k.issuer.mint(json!({"sub": "repo:org/app:ref:refs/heads/main", "aud": ["x", "fluxloop"], "exp": now - 30}));
    k.exchange(&token).expect(200);
}

#[test]
fn forged_and_foreign_tokens_are_refused() {
    let k = Keyless::new();
    k.trust_main();
    let url = k.issuer.url().to_owned();
    let shown = json!({"iss": url, "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    let fetches = k.issuer.jwks_fetches();
    let none = k.issuer.forge_alg_none(main_claims());
    let message = refused(k.exchange(&none), "unsupported_alg", shown.clone(), &none);
    assert_eq!(
        message,
        "the token is signed with `none`; only RS256 and ES256 are accepted"
    );
    let hs = k.issuer.forge_hs256_with_public_key(main_claims());
    refused(k.exchange(&hs), "unsupported_alg", shown.clone(), &hs);
    assert_eq!(
        k.issuer.jwks_fetches(),
        fetches,
        "refused before any key is fetched"
    );

    let tampered = tamper(&k.main_token());
    refused(
        k.exchange(&tampered),
        "bad_signature",
        shown.clone(),
        &tampered,
    );

    // Another issuer's token claiming to be from the trusted one: its rsa-1
    // is not the trusted issuer's rsa-1.
    let impostor = Issuer::start();
    let mut claims = main_claims();
    claims["iss"] = json!(url);
    let forged = impostor.mint(claims);
    refused(k.exchange(&forged), "bad_signature", shown.clone(), &forged);
    // ...and in its own name it is not trusted at all.
    let own = impostor.mint(main_claims());
    let mut shown_own = shown.clone();
    shown_own["iss"] = json!(impostor.url());
    let message = refused(k.exchange(&own), "issuer_not_trusted", shown_own, &own);
    assert_eq!(
        message,
        format!("no trust policy trusts the issuer {}", impostor.url())
    );

    let mut claims = main_claims();
    claims["iss"] = json!("http://ci.example");
    let plain = k.issuer.mint(claims);
    let mut shown_plain = shown.clone();
    shown_plain["iss"] = json!("http://ci.example");
    refused(k.exchange(&plain), "issuer_not_https", shown_plain, &plain);

    for garbage in ["", "not-a-jwt", "a.b.c", "e30.e30"] {
        refused(k.exchange(garbage), "malformed", json!({}), garbage);
    }
}

/// `jwt` with its header replaced by `header`, payload and signature kept.
fn with_header(jwt: &str, header: Value) -> String {
    use base64::Engine as _;
    let (_, rest) = jwt.split_once('.').expect("a JWT");
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    format!("{encoded}.{rest}")
}

#[test]
fn an_alg_that_does_not_fit_the_key_is_refused() {
    let k = Keyless::new();
    k.trust_main();
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    let rsa = with_header(&k.main_token(), json!({"alg": "ES256", "kid": "rsa-1"}));
    let message = refused(k.exchange(&rsa), "bad_signature", shown.clone(), &rsa);
    assert_eq!(
        message,
        "the token says ES256 but the issuer's key rsa-1 is RSA"
    );
    let ec = k.issuer.mint_with(Key::Ec, main_claims());
    let ec = with_header(&ec, json!({"alg": "RS256", "kid": "ec-1"}));
    let message = refused(k.exchange(&ec), "bad_signature", shown, &ec);
    assert_eq!(
        message,
        "the token says RS256 but the issuer's key ec-1 is EC P-256"
    );
}

#[test]
fn an_unknown_kid_is_refused_until_the_issuer_publishes_it() {
    let k = Keyless::new();
    k.trust_main();
    k.exchange(&k.main_token()).expect(200);
    let before = k.issuer.jwks_fetches();
    let key = k.issuer.new_key("rsa-2", KeyKind::Rsa);
    let token = k.issuer.mint_with(key, main_claims());
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    let message = refused(k.exchange(&token), "unknown_kid", shown, &token);
    assert_eq!(
        message,
        format!(
            "the issuer {} publishes no key with kid rsa-2",
            k.issuer.url()
        )
    );
    assert_eq!(
        k.issuer.jwks_fetches(),
        before + 1,
        "one refetch for the unknown kid"
    );
    k.issuer.publish("rsa-2");
    // The refused token was not used up: it passes once the key is out.
    k.exchange(&token).expect(200);
    // A cached key needs no fetch.
    let fetches = k.issuer.jwks_fetches();
    k.exchange(&k.main_token()).expect(200);
    assert_eq!(k.issuer.jwks_fetches(), fetches);
}

#[test]
fn unknown_kids_refetch_at_most_once_per_min_refresh() {
    let k = Keyless::with(Config::default());
    k.trust_main();
    k.exchange(&k.main_token()).expect(200);
    let fetches = k.issuer.jwks_fetches();
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let key = k.issuer.new_key(kid, KeyKind::Ec);
        let token = k.issuer.mint_with(key, main_claims());
        k.exchange(&token).expect_error(401, "oidc_rejected");
    }
    assert_eq!(
        k.issuer.jwks_fetches(),
        fetches,
        "within 30 s of the last fetch"
    );
}

#[test]
fn a_token_is_exchanged_once() {
    let k = Keyless::new();
    k.trust_main();
    let token = k.main_token();
    k.exchange(&token).expect(200);
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    let message = refused(k.exchange(&token), "replayed", shown.clone(), &token);
    assert!(
        message.starts_with("this token was already exchanged (jti "),
        "{message}"
    );
    // Without a jti the token itself is the key.
    let mut claims = main_claims();
    claims["jti"] = Value::Null;
    let bare = k.issuer.mint(claims);
    k.exchange(&bare).expect(200);
    refused(k.exchange(&bare), "replayed", shown, &bare);
}

#[test]
fn a_token_exchanged_at_once_on_many_connections_wins_once() {
    let k = Keyless::new();
    k.trust_main();
    let token = k.main_token();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8)
            .map(|_| s.spawn(|| k.exchange(&token).status))
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect()
    });
    let won = statuses.iter().filter(|s| **s == 200).count();
    let replayed = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!((won, replayed), (1, 7), "{statuses:?}");
}

/// The order n of P-256, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The same ES256 token with its signature (r, s) turned into (r, n - s):
/// a second signature, just as valid, that anyone can make from the first.
fn malleate_es256(jwt: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let (signed, signature) = jwt.rsplit_once('.').expect("three parts");
    let mut sig = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    assert_eq!(sig.len(), 64, "ES256 signatures are r || s");
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_ORDER[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = (d + 256 * borrow) as u8;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn a_token_without_jti_is_not_exchanged_again_under_another_signature() {
    let k = Keyless::new();
    k.trust_main();
    let mut claims = main_claims();
    claims["jti"] = Value::Null;
    let token = k.issuer.mint_with(Key::Ec, claims);
    let twin = malleate_es256(&token);
    assert_ne!(twin, token);
    k.exchange(&token).expect(200);
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    refused(k.exchange(&twin), "replayed", shown, &twin);
}

#[test]
fn policies_of_several_projects_need_a_project_id() {
    let k = Keyless::new();
    let first = k.trust_main();
    let other = k.env.p.store().create_project("Other").expect("project");
    let second = k.trust_in(
        &other,
        json!({"issuer": k.issuer.url(), "conditions": {"sub": "repo:org/*"}, "scope": "read"}),
    );
    let token = k.main_token();
    let shown = json!({"iss": k.issuer.url(), "sub": "repo:org/app:ref:refs/heads/main", "aud": "fluxloop", "ref": "refs/heads/main"});
    refused(
        k.exchange(&token),
        "ambiguous_policy",
        shown.clone(),
        &token,
    );
    let pick = |project: &str| {
        k.env
            .post("/api/auth/oidc/exchange")
            .json(&json!({"token": k.main_token(), "project_id": project}))
            .send()
    };
    assert_eq!(pick(&other).expect(200).json()["policy_id"], second["id"]);
    assert_eq!(
        pick(&k.demo.project_id).expect(200).json()["policy_id"],
        first["id"]
    );
    let nowhere = k.main_token();
    let r = k
        .env
        .post("/api/auth/oidc/exchange")
        .json(&json!({"token": nowhere, "project_id": "no-such-project"}))
        .send();
    refused(r, "issuer_not_trusted", shown, &nowhere);
}

#[test]
fn the_issued_token_pulls_uploads_and_expires() {
    let k = Keyless::with(Config {
        jwks_min_refresh: Duration::ZERO,
        oidc_token_ttl: Duration::from_secs(2),
        ..Config::default()
    });
    let policy = k.trust_main();
    let grant = k.exchange(&k.main_token()).expect(200).json();
    assert_eq!(grant["expires_in"], json!(2));
    let token = grant["access_token"].as_str().expect("token");
    let me = k
        .env
        .get("/api/api-keys/self")
        .auth(token)
        .send()
        .expect(200)
        .json();
    let expected = json!({
        "id": me["id"], "name": policy["name"], "type": "oidc", "key_type": "oidc",
        "scope": "read-write", "project_id": k.demo.project_id, "created_at": me["created_at"],
        "expires_at": grant["expires_at"], "last_used_at": me["last_used_at"], "usage_count": 1,
        "revoked_at": null, "subject": "repo:org/app:ref:refs/heads/main", "policy_id": policy["id"],
    });
    assert_eq!(me, expected);
    let body = k.env.upload_body(&k.demo, token, 2);
    k.env
        .post("/api/sync/upload")
        .auth(token)
        .header("Idempotency-Key", "keyless-1")
        .json(&body)
        .send()
        .expect(200);
    // Policy management stays with admins.
    k.env
        .get(&format!(
            "/api/projects/{}/trust-policies",
            k.demo.project_id
        ))
        .auth(token)
        .send()
        .expect_error(403, "forbidden");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = k.env.get("/api/api-keys/self").auth(token).send();
        if r.status == 401 {
            r.expect_error(401, "token_expired");
            break;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_read_policy_grants_no_upload() {
    let k = Keyless::new();
    k.trust(
        json!({"issuer": k.issuer.url(), "conditions": {"sub": "repo:org/app:*"}, "scope": "read"}),
    );
    let grant = k.exchange(&k.main_token()).expect(200).json();
    let token = grant["access_token"].as_str().expect("token");
    let body = k.env.upload_body(&k.demo, token, 1);
    k.env
        .post("/api/sync/upload")
        .auth(token)
        .header("Idempotency-Key", "keyless-2")
        .json(&body)
        .send()
        .expect_error(403, "forbidden");
}

#[test]
fn the_exchange_body_must_have_the_contract_shape() {
    let k = Keyless::new();
    for body in [
        json!({}),
        json!({"token": 5}),
        json!({"token": "x", "extra": 1}),
        json!({"jwt": "x"}),
        json!(["x"]),
    ] {
        k.env
            .post("/api/auth/oidc/exchange")
            .json(&body)
            .send()
            .expect_error(400, "invalid_request");
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}
