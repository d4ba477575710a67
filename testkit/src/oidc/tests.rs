use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{json, Value};

use super::{github_claims, tamper, Issuer, Key, KeyKind};

/// GET `url` with an optional bearer: status and body.
fn get(url: &str, bearer: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(token) = bearer {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().expect("the issuer answers");
    let body = response.body_mut().read_to_string().expect("a text body");
    (response.status().as_u16(), body)
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url, None);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn jwks(issuer: &Issuer) -> JwkSet {
    let discovery = get_json(&format!(
        "{}/.well-known/openid-configuration",
        issuer.url()
    ));
    let uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    serde_json::from_value(get_json(uri)).expect("a JWKS")
}

fn kids(set: &JwkSet) -> Vec<&str> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.as_deref().expect("kid"))
        .collect()
}

/// Verifies `token` with the published key `kid`, as a relying party would.
fn verify(issuer: &Issuer, token: &str, kid: &str) -> jsonwebtoken::errors::Result<Value> {
    let set = jwks(issuer);
    let jwk = set.find(kid).expect("kid published");
    let header = jsonwebtoken::decode_header(token)?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&["fluxloop"]);
    validation.set_issuer(&[issuer.url()]);
    let key = DecodingKey::from_jwk(jwk)?;
    jsonwebtoken::decode::<Value>(token, &key, &validation).map(|data| data.claims)
}

/// The middle part of a JWT, decoded without any check.
fn payload(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("payload part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[test]
fn discovery_names_the_issuer_and_its_jwks() {
    let issuer = Issuer::start();
    assert!(issuer.url().starts_with("http://127.0.0.1:"));
    assert!(!issuer.url().ends_with('/'));
    let discovery = get_json(&format!(
        "{}/.well-known/openid-configuration",
        issuer.url()
    ));
    assert_eq!(discovery["issuer"], json!(issuer.url()));
    assert_eq!(issuer.jwks_fetches(), 0);
    let set = jwks(&issuer);
    assert_eq!(kids(&set), ["rsa-1", "ec-1"]);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[test]
fn minted_tokens_verify_with_rsa_and_ec_and_carry_the_defaults() {
    let issuer = Issuer::start();
    for (key, alg) in [(Key::Rsa, "RS256"), (Key::Ec, "ES256")] {
        let token = issuer.mint_with(key.clone(), json!({"aud": "fluxloop", "sub": "me"}));
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        let claims = verify(&issuer, &token, key.kid()).expect("verifies");
        assert_eq!(claims["iss"], json!(issuer.url()));
        assert_eq!(claims["sub"], json!("me"));
        let iat = claims["iat"].as_u64().expect("iat");
        assert_eq!(claims["nbf"].as_u64(), Some(iat));
        assert_eq!(claims["exp"].as_u64(), Some(iat + 300));
        let jti = claims["jti"].as_str().expect("jti");
        uuid::Uuid::parse_str(jti).expect("jti is a uuid");
    }
    let a = payload(&issuer.mint(json!({})));
    let b = payload(&issuer.mint(json!({})));
    assert_ne!(a["jti"], b["jti"], "each token gets a fresh jti");
}

#[test]
fn claims_override_the_defaults_and_null_removes_them() {
    let issuer = Issuer::start();
    let token = issuer.mint(json!({"iss": "https://elsewhere", "jti": null, "exp": 5, "x": [1]}));
    let claims = payload(&token);
    assert_eq!(claims["iss"], json!("https://elsewhere"));
    assert_eq!(claims["exp"], json!(5));
    assert_eq!(claims["x"], json!([1]));
    assert!(claims.get("jti").is_none(), "{claims}");
}

#[test]
fn a_new_key_signs_at_once_and_verifies_only_once_published() {
    let issuer = Issuer::start();
    let key = issuer.new_key("ec-2", KeyKind::Ec);
    assert_eq!(key, Key::Generated("ec-2".into()));
    let token = issuer.mint_with(key, json!({"aud": "fluxloop"}));
    assert_eq!(kids(&jwks(&issuer)), ["rsa-1", "ec-1"]);
    issuer.publish("ec-2");
    assert_eq!(kids(&jwks(&issuer)), ["rsa-1", "ec-1", "ec-2"]);
    verify(&issuer, &token, "ec-2").expect("verifies after rotation");
    // Another key's signature does not verify under this kid.
    let other = issuer.mint_with(Key::Ec, json!({"aud": "fluxloop"}));
    assert!(verify(&issuer, &other, "ec-2").is_err());
}

#[test]
fn forgeries_are_what_they_claim_to_be() {
    let issuer = Issuer::start();
    let none = issuer.forge_alg_none(json!({"aud": "fluxloop"}));
    assert!(none.ends_with('.'), "empty signature: {none}");
    let header = payload(&format!("x.{}", none.split('.').next().expect("header")));
    assert_eq!(header["alg"], json!("none"));
    assert_eq!(payload(&none)["iss"], json!(issuer.url()));

    // The HS256 forgery verifies with the public key's PEM as HMAC secret...
    let hs = issuer.forge_hs256_with_public_key(json!({"aud": "fluxloop"}));
    let pem = issuer.shared.keys.lock().expect("keys")["rsa-1"]
        .public_pem
        .clone()
        .expect("pem");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["fluxloop"]);
    let secret = DecodingKey::from_secret(pem.as_bytes());
    jsonwebtoken::decode::<Value>(&hs, &secret, &validation).expect("HMAC with the PEM");
    // ...and not as RS256 with the real key.
    assert!(verify(&issuer, &hs, "rsa-1").is_err());

    let good = issuer.mint(json!({"aud": "fluxloop"}));
    let bad = tamper(&good);
    assert_ne!(good, bad);
    assert_eq!(
        good.rsplit_once('.').map(|p| p.0),
        bad.rsplit_once('.').map(|p| p.0)
    );
    let error = verify(&issuer, &bad, "rsa-1").expect_err("tampered");
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[test]
fn the_github_endpoint_demands_its_bearer_and_mints_fresh_tokens() {
    let issuer = Issuer::start();
    let endpoint = issuer.github_token_endpoint(github_claims("org/repo", "refs/heads/main"));
    assert!(endpoint
        .url
        .starts_with(&format!("{}/_apis/token?api-version=2.0", issuer.url())));
    let url = format!("{}&audience=fluxloop", endpoint.url);
    assert_eq!(get(&url, None).0, 401);
    assert_eq!(get(&url, Some("wrong")).0, 401);

    let mint = || {
        let (status, body) = get(&url, Some(&endpoint.request_token));
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("JSON");
        body["value"].as_str().expect("value").to_owned()
    };
    let (first, second) = (mint(), mint());
    let claims = verify(&issuer, &first, "rsa-1").expect("verifies");
    assert_eq!(claims["aud"], json!("fluxloop"));
    assert_eq!(claims["sub"], json!("repo:org/repo:ref:refs/heads/main"));
    assert_eq!(claims["repository"], json!("org/repo"));
    assert_ne!(payload(&first)["jti"], payload(&second)["jti"]);
}

#[test]
fn github_claims_have_githubs_shape() {
    assert_eq!(
        github_claims("acme/app", "refs/tags/v1"),
        json!({
            "sub": "repo:acme/app:ref:refs/tags/v1",
            "repository": "acme/app",
            "repository_owner": "acme",
            "ref": "refs/tags/v1",
            "ref_type": "tag",
            "event_name": "push",
            "workflow": "CI",
            "job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/tags/v1",
            "run_id": "4242",
        })
    );
}
