//! Reading and checking one JWT: its parts, the algorithm (RS256 or ES256
//! only, decided before any key is looked at), the signature against the
//! issuer's JWK (with jsonwebtoken on ring), and the time claims.
//!
//! The header and claims are decoded here rather than by jsonwebtoken, so an
//! `alg: none` token is refused as `unsupported_alg` (jsonwebtoken's header
//! type cannot even hold it) and a refusal can show what the token claimed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::jwks::Jwk;
use super::{Reason, Rejection};
use crate::util::rfc3339;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub(crate) const LEEWAY_SECS: i64 = 60;

/// A token split and decoded, not yet trusted.
#[derive(Debug)]
pub(crate) struct Token<'a> {
    /// `header.payload`, the signed bytes.
    message: &'a str,
    signature: &'a str,
    /// The header's `alg`, as written.
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
}

/// Splits and decodes `jwt`. Any failure is `malformed`, with no claims.
pub(crate) fn parse(jwt: &str) -> Result<Token<'_>, Rejection> {
    let malformed =
        |why: &str| Rejection::new(Reason::Malformed, format!("the token is not a JWT: {why}"));
    let mut parts = jwt.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("it must have three dot-separated parts"));
    };
    let message = &jwt[..header.len() + 1 + payload.len()];
    let header =
        decode_object(header).ok_or_else(|| malformed("its header is not base64url JSON"))?;
    let claims =
        decode_object(payload).ok_or_else(|| malformed("its claims are not base64url JSON"))?;
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(malformed("its header has no alg"));
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed("its kid is not a string")),
    };
    Ok(Token {
        message,
        signature,
        alg: alg.to_owned(),
        kid,
        claims,
    })
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

impl Token<'_> {
    /// `header.payload`: what the issuer signed. The signature is not part
    /// of a token's identity: an ECDSA signature (r, s) has a twin (r, n - s)
    /// that verifies just as well and that anyone can compute.
    pub(crate) fn signed_part(&self) -> &str {
        self.message
    }

    /// RS256 or ES256; anything else (`none`, HS*, PS*, EdDSA...) is refused
    /// here, before a key is fetched, so no public key ever meets an HMAC.
    pub(crate) fn algorithm(&self) -> Result<Algorithm, Rejection> {
        match self.alg.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(Rejection::new(
                Reason::UnsupportedAlg,
                format!("the token is signed with `{other}`; only RS256 and ES256 are accepted"),
            )),
        }
    }

    /// Checks the signature with `jwk`, which must be a key for `alg`.
    pub(crate) fn check_signature(&self, alg: Algorithm, jwk: &Jwk) -> Result<(), Rejection> {
        let kid = jwk.kid.as_deref().unwrap_or("(no kid)");
        let bad = |why: String| Rejection::new(Reason::BadSignature, why);
        let key = match (alg, jwk.kty.as_str()) {
            (Algorithm::RS256, "RSA") => match (&jwk.n, &jwk.e) {
                (Some(n), Some(e)) => DecodingKey::from_rsa_components(n, e).ok(),
                _ => None,
            },
            (Algorithm::ES256, "EC") if jwk.crv.as_deref() == Some("P-256") => {
                match (&jwk.x, &jwk.y) {
                    (Some(x), Some(y)) => DecodingKey::from_ec_components(x, y).ok(),
                    _ => None,
                }
            }
            _ => {
                return Err(bad(format!(
                    "the token says {} but the issuer's key {kid} is {} {}",
                    self.alg,
                    jwk.kty,
                    jwk.crv.as_deref().unwrap_or("")
                )
                .trim_end()
                .to_owned()))
            }
        };
        if jwk.alg.as_deref().is_some_and(|a| a != self.alg) {
            return Err(bad(format!(
                "the issuer's key {kid} is for {}, not {}",
                jwk.alg.as_deref().unwrap_or(""),
                self.alg
            )));
        }
        let Some(key) = key else {
            return Err(bad(format!("the issuer's key {kid} cannot be read")));
        };
        match jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), &key, alg) {
            Ok(true) => Ok(()),
            _ => Err(bad(format!(
                "the token's signature does not verify with the issuer's key {kid}"
            ))),
        }
    }

    /// The time claim `name` in whole Unix seconds (RFC 7519 allows
    /// fractions); `None` when absent or not a number.
    pub(crate) fn seconds(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    /// `exp` (required), `nbf` and `iat` against `now` (Unix seconds), each
    /// with [`LEEWAY_SECS`] of skew.
    pub(crate) fn check_times(&self, now: i64) -> Result<(), Rejection> {
        let time = |name: &str| -> Result<Option<i64>, Rejection> {
            match self.claims.get(name) {
                None => Ok(None),
                Some(_) => self.seconds(name).map(Some).ok_or_else(|| {
                    Rejection::new(
                        Reason::Malformed,
                        format!("the token's `{name}` is not a number"),
                    )
                }),
            }
        };
        let shown = |secs: i64| rfc3339(secs.saturating_mul(1000));
        let Some(exp) = time("exp")? else {
            return Err(Rejection::new(
                Reason::Malformed,
                "the token has no `exp`".to_owned(),
            ));
        };
        if now > exp.saturating_add(LEEWAY_SECS) {
            return Err(Rejection::new(
                Reason::Expired,
                format!("the token expired at {}", shown(exp)),
            ));
        }
        if let Some(nbf) = time("nbf")?.filter(|nbf| now.saturating_add(LEEWAY_SECS) < *nbf) {
            return Err(Rejection::new(
                Reason::NotYetValid,
                format!("the token is not valid before {}", shown(nbf)),
            ));
        }
        if let Some(iat) = time("iat")?.filter(|iat| *iat > now.saturating_add(LEEWAY_SECS)) {
            return Err(Rejection::new(
                Reason::IssuedInFuture,
                format!(
                    "the token says it was issued at {}, in the future",
                    shown(iat)
                ),
            ));
        }
        Ok(())
    }

    /// Whether `aud` (a string or an array of strings) contains `audience`.
    pub(crate) fn has_audience(&self, audience: &str) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(header: &Value, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2ln", enc(header), enc(claims))
    }

    #[test]
    fn malformed_tokens_are_named_so() {
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.x",
            "e30.!!.x",
            "W10.e30.x",
            "e30.e30.x",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.reason, Reason::Malformed, "{bad}");
        }
    }

    #[test]
    fn only_rs256_and_es256_pass() {
        for (alg, ok) in [
            ("RS256", true),
            ("ES256", true),
            ("none", false),
            ("HS256", false),
            ("PS256", false),
        ] {
            let token = jwt(&json!({"alg": alg}), &json!({"sub": "x"}));
            let parsed = parse(&token).expect("parses");
            assert_eq!(parsed.algorithm().is_ok(), ok, "{alg}");
            assert_eq!(parsed.claims["sub"], json!("x"));
        }
    }

    #[test]
    fn times_allow_a_minute_of_skew() {
        let now = 1_000_000;
        let check = |claims: Value| {
            let token = jwt(&json!({"alg": "RS256"}), &claims);
            parse(&token)
                .expect("parses")
                .check_times(now)
                .map_err(|e| e.reason)
        };
        assert_eq!(check(json!({"exp": now - 60})), Ok(()));
        assert_eq!(check(json!({"exp": now - 61})), Err(Reason::Expired));
        assert_eq!(check(json!({"exp": now + 9, "nbf": now + 60})), Ok(()));
        assert_eq!(
            check(json!({"exp": now + 99, "nbf": now + 61})),
            Err(Reason::NotYetValid)
        );
        assert_eq!(
            check(json!({"exp": now + 99, "iat": now + 61})),
            Err(Reason::IssuedInFuture)
        );
        assert_eq!(check(json!({"iat": now})), Err(Reason::Malformed));
        assert_eq!(check(json!({"exp": "soon"})), Err(Reason::Malformed));
        let fractional = jwt(&json!({"alg": "RS256"}), &json!({"exp": 12.7}));
        assert_eq!(parse(&fractional).expect("parses").seconds("exp"), Some(12));
    }

    #[test]
    fn audience_is_a_string_or_one_of_an_array() {
        let token = |aud: Value| jwt(&json!({"alg": "RS256"}), &json!({ "aud": aud }));
        let one = token(json!("fluxloop"));
        assert!(parse(&one).expect("parses").has_audience("fluxloop"));
        let many = token(json!(["a", "fluxloop"]));
        assert!(parse(&many).expect("parses").has_audience("fluxloop"));
        let other = token(json!("fluxloop-staging"));
        assert!(!parse(&other).expect("parses").has_audience("fluxloop"));
    }
}
