//! Device login, access-token expiry, refresh rotation and API keys.

use std::time::Duration;

use fluxloop_platform::Config;
use serde_json::json;

use crate::Env;

#[test]
fn device_flow_pending_approved_redeemed_once() {
    let e = Env::new();
    e.demo();
    let start = e
        .post("/api/cli-connect/start")
        .json(&json!({"device_name": "ci <laptop>"}))
        .send()
        .expect(200)
        .json();
    let code = start["user_code"].as_str().expect("code").to_owned();
    assert_eq!(code.len(), 9);
    assert_eq!(start["interval"], 1);
    assert_eq!(start["interval_sec"], 1);
    assert_eq!(start["expires_in"], 600);
    assert_eq!(
        start["verification_url"],
        format!("{}/device?user_code={code}", e.p.url()).as_str()
    );
    let poll = || {
        e.post("/api/cli-connect/complete")
            .json(&json!({"device_code": start["device_code"]}))
            .send()
            .expect(200)
            .json()
    };
    assert_eq!(poll(), json!({"status": "pending"}));
    // The page shows the code and the escaped device name, with both buttons.
    // Signed out, the page sends the browser to sign in and back.
    let to_login = e
        .get(&format!("/device?user_code={}", code.to_lowercase()))
        .send()
        .expect(303);
    assert_eq!(
        to_login.header("location"),
        Some(
            format!(
                "/login?next=%2Fdevice%3Fuser_code%3D{}",
                code.to_lowercase()
            )
            .as_str()
        )
    );
    let session = e.sign_in();
    let page = e
        .get(&format!("/device?user_code={}", code.to_lowercase()))
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    assert!(
        page.contains(&code)
            && page.contains("ci &lt;laptop&gt;")
            && page.contains("Authorize")
            && page.contains("Deny")
    );
    let (_, cookie, csrf) = crate::hardening::device_page(&e, &session, &code, None);
    let form = format!("user_code={code}&action=approve&csrf={csrf}");
    e.post("/device")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &e.p.url())
        .header("Cookie", &format!("{cookie}; {session}"))
        .raw(&form)
        .send()
        .expect(200);
    let approved = poll();
    assert_eq!(approved["status"], "approved");
    let cred = &approved["credential"];
    for f in [
        "access_token",
        "refresh_token",
        "expires_at",
        "user_id",
        "user_email",
    ] {
        assert!(cred[f].is_string(), "{f} missing: {cred}");
    }
    assert_eq!(cred["user_email"], "demo@fluxloop.local");
    assert_eq!(poll(), json!({"status": "expired"}));
    let token = cred["access_token"].as_str().expect("t");
    assert!(token.starts_with("flx_at_"));
    let me = e
        .get("/api/api-keys/self")
        .auth(token)
        .send()
        .expect(200)
        .json();
    assert_eq!(me["type"], "access_token");
    assert_eq!(me["scope"], "admin");
    assert_eq!(me["user_email"], "demo@fluxloop.local");
    e.get("/api/projects").auth(token).send().expect(200);
    e.post("/api/cli-connect/complete")
        .json(&json!({"device_code": "unknown"}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/cli-connect/complete")
        .json(&json!({}))
        .send()
        .expect_error(400, "invalid_request");
}

#[test]
fn device_flow_denied_and_expired() {
    let e = Env::with(Config {
        device_code_ttl: Duration::from_secs(1),
        ..Config::default()
    });
    let s1 = e.post("/api/cli-connect/start").send().expect(200).json();
    e.p.deny_device(s1["user_code"].as_str().expect("c"))
        .expect("deny");
    let r = e
        .post("/api/cli-connect/complete")
        .json(&json!({"device_code": s1["device_code"]}))
        .send()
        .expect(200)
        .json();
    assert_eq!(r, json!({"status": "denied"}));
    let s2 = e
        .post("/api/cli-connect/start")
        .json(&json!({}))
        .send()
        .expect(200)
        .json();
    std::thread::sleep(Duration::from_millis(1100));
    let r = e
        .post("/api/cli-connect/complete")
        .json(&json!({"device_code": s2["device_code"]}))
        .send()
        .expect(200)
        .json();
    assert_eq!(r, json!({"status": "expired"}));
    assert!(e
        .p
        .approve_device(s2["user_code"].as_str().expect("c"))
        .is_err());
    assert!(e.p.approve_device("ZZZZ-ZZZZ").is_err());
}

#[test]
fn access_tokens_expire_and_refresh_tokens_rotate() {
    let e = Env::with(Config {
        access_token_ttl: Duration::from_secs(1),
        ..Config::default()
    });
    e.demo();
    let cred = e.login();
    let token = cred["access_token"].as_str().expect("t");
    e.get("/api/projects").auth(token).send().expect(200);
    std::thread::sleep(Duration::from_millis(1100));
    e.get("/api/projects")
        .auth(token)
        .send()
        .expect_error(401, "token_expired");
    let old = cred["refresh_token"].as_str().expect("r");
    assert!(old.starts_with("flx_refresh_"));
    let fresh = e
        .post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": old}))
        .send()
        .expect(200)
        .json();
    let new_token = fresh["credential"]["access_token"].as_str().expect("t");
    assert_ne!(new_token, token);
    assert_eq!(fresh["credential"]["user_email"], "demo@fluxloop.local");
    e.get("/api/projects").auth(new_token).send().expect(200);
    let newer = fresh["credential"]["refresh_token"].as_str().expect("r");
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": newer}))
        .send()
        .expect(200);
    // Presenting a rotated-away token again ends the login (the attack in
    // full: tests/api/hardening.rs).
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": old}))
        .send()
        .expect_error(401, "unauthenticated");
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": "flx_refresh_nope"}))
        .send()
        .expect_error(401, "unauthenticated");
    e.post("/api/cli-connect/refresh")
        .json(&json!({"refresh_token": 7}))
        .send()
        .expect_error(400, "invalid_request");
}

#[test]
fn api_keys_create_list_self_revoke() {
    let e = Env::new();
    let demo = e.demo();
    let token = e.login()["access_token"].as_str().expect("t").to_owned();
    // Defaults: user type, read-write scope; the only project is picked.
    let k = e
        .post("/api/api-keys")
        .auth(&token)
        .json(&json!({"name": "laptop"}))
        .send()
        .expect(201)
        .json();
    assert!(k["key"]
        .as_str()
        .is_some_and(|s| s.starts_with("flx_api_") && s.len() == 40));
    assert_eq!(
        (k["type"].as_str(), k["scope"].as_str()),
        (Some("user"), Some("read-write"))
    );
    assert_eq!(k["project_id"], demo.project_id.as_str());
    for f in ["id", "name", "created_at"] {
        assert!(k[f].is_string());
    }
    let admin = e
        .post("/api/api-keys")
        .auth(&token)
        .json(&json!({"project_id": demo.project_id, "name": "ops", "type": "service-account", "scope": "admin", "expires_in_days": 30}))
        .send()
        .expect(201)
        .json();
    let admin_key = admin["key"].as_str().expect("k").to_owned();
    assert!(admin_key.starts_with("flx_sa_"));
    // An admin key manages keys of its project; a read-write key may not.
    e.post("/api/api-keys")
        .auth(&admin_key)
        .json(&json!({"name": "ci", "scope": "read"}))
        .send()
        .expect(201);
    e.post("/api/api-keys")
        .auth(&demo.key)
        .json(&json!({"name": "x"}))
        .send()
        .expect_error(403, "forbidden");
    e.get("/api/api-keys")
        .auth(&demo.key)
        .send()
        .expect_error(403, "forbidden");
    e.post("/api/api-keys")
        .auth(&token)
        .json(&json!({"scope": "root"}))
        .send()
        .expect_error(422, "invalid_request");
    e.post("/api/api-keys")
        .auth(&token)
        .json(&json!({"type": "robot"}))
        .send()
        .expect_error(422, "invalid_request");
    e.post("/api/api-keys")
        .auth(&token)
        .json(&json!({"expires_in_days": "soon"}))
        .send()
        .expect_error(400, "invalid_request");
    e.post("/api/api-keys")
        .auth(&token)
        .json(&json!({"project_id": "nope"}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/api-keys")
        .json(&json!({}))
        .send()
        .expect_error(401, "unauthenticated");
    let list = e
        .get(&format!("/api/api-keys?project_id={}", demo.project_id))
        .auth(&token)
        .send()
        .expect(200)
        .json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 4);
    assert!(list
        .iter()
        .all(|k| k.get("key").is_none() && k["usage_count"].is_i64()));
    assert_eq!(
        e.get("/api/api-keys")
            .auth(&admin_key)
            .send()
            .expect(200)
            .json()
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // Usage counting: /self counts itself.
    let me = e
        .get("/api/api-keys/self")
        .auth(&demo.key)
        .send()
        .expect(200)
        .json();
    let before = me["usage_count"].as_i64().expect("count");
    assert!(me["last_used_at"].is_string());
    e.get("/api/projects").auth(&demo.key).send().expect(200);
    let me = e
        .get("/api/api-keys/self")
        .auth(&demo.key)
        .send()
        .expect(200)
        .json();
    assert_eq!(me["usage_count"].as_i64(), Some(before + 2));
    assert_eq!(me["scope"], "read-write");
    assert_eq!(me["type"], "service-account");
    assert!(me["revoked_at"].is_null());
    // Revoke by key, then by id (idempotent); the key stops working at once.
    let r = e
        .post("/api/api-keys/revoke")
        .auth(&admin_key)
        .json(&json!({"key": demo.key}))
        .send()
        .expect(200)
        .json();
    let revoked_at = r["revoked_at"].clone();
    assert!(revoked_at.is_string());
    e.get("/api/projects")
        .auth(&demo.key)
        .send()
        .expect_error(401, "key_revoked");
    e.get("/api/api-keys/self")
        .auth(&demo.key)
        .send()
        .expect_error(401, "key_revoked");
    let again = e
        .post("/api/api-keys/revoke")
        .auth(&token)
        .json(&json!({"id": r["id"]}))
        .send()
        .expect(200)
        .json();
    assert_eq!(again["revoked_at"], revoked_at);
    e.post("/api/api-keys/revoke")
        .auth(&token)
        .json(&json!({"id": "nope"}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/api-keys/revoke")
        .auth(&token)
        .json(&json!({}))
        .send()
        .expect_error(400, "invalid_request");
    let rw = e.key(&demo, "read-write");
    e.post("/api/api-keys/revoke")
        .auth(&rw)
        .json(&json!({"id": admin["id"]}))
        .send()
        .expect_error(403, "forbidden");
}
