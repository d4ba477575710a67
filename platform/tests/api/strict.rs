//! Issue 14: every request body is read strictly. A field the server does not
//! know (a client's typo, or one it added) is refused with 400
//! `invalid_request` naming the field, instead of being dropped unseen.
//! Each case first shows the same body without the stray field is accepted,
//! so the refusal is the stray field's doing.

use serde_json::{json, Value};

use crate::Env;

/// serde's message for `field`, unknown where `expected` are the fields.
fn unknown(field: &str, expected: &[&str]) -> String {
    let list: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
    let expected = match list.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", list.join(", ")),
    };
    format!("invalid request body: unknown field `{field}`, expected {expected}")
}

/// Sends `body` and checks the answer is the unknown-field refusal.
#[track_caller]
fn refused(e: &Env, path: &str, token: Option<&str>, body: &Value, want: &str) {
    let mut call = e.post(path).json(body);
    if let Some(t) = token {
        call = call.auth(t);
    }
    let r = call.send().expect_error(400, "invalid_request");
    assert_eq!(r.json()["error"]["message"], want, "body: {body}");
}

/// `value` with `key` added at the JSON pointer `at` ("" for the top).
fn with_field(mut value: Value, at: &str, key: &str) -> Value {
    value
        .pointer_mut(at)
        .and_then(Value::as_object_mut)
        .expect("an object at the pointer")
        .insert(key.to_owned(), json!("x"));
    value
}

const PULL_FIELDS: &[&str] = &[
    "project_id",
    "bundle_version_id",
    "scenario_id",
    "include_inputs",
    "include_personas",
    "include_criteria",
    "client_meta",
];

#[test]
fn issue14_a_misspelled_pull_field_is_refused() {
    let e = Env::new();
    let demo = e.demo();
    let body = json!({"project_id": demo.project_id, "include_inputs": true,
                      "client_meta": {"cli_version": "0.4.0"}});
    e.post("/api/sync/pull")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200);
    // Dropped silently, `include_input` would pull the inputs anyway.
    let typo = with_field(body, "", "include_input");
    let want = unknown("include_input", PULL_FIELDS);
    refused(&e, "/api/sync/pull", Some(&demo.key), &typo, &want);
}

#[test]
fn issue14_an_unknown_field_anywhere_in_an_upload_is_refused() {
    let e = Env::new();
    let demo = e.demo();
    let mut body = e.upload_body(&demo, &demo.key, 2);
    body["turns"] = json!([{"run_id": "run-1", "turn_id": "t1", "sequence": 1, "role": "user",
                            "content": "hi", "timestamp": "2025-01-01T10:00:00Z", "duration_ms": 3}]);
    body["run_batch"]["key"] = json!("build-7");
    body["shard"] = json!({"index": 1, "total": 1, "last": true});
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200);
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "",
            "run_batch_id",
            &[
                "bundle_version_id",
                "run_batch",
                "runs",
                "turns",
                "run_results",
                "upload_meta",
                "shard",
            ],
        ),
        (
            "/run_batch",
            "batch_key",
            &[
                "id",
                "key",
                "execution_target",
                "status",
                "started_at",
                "completed_at",
            ],
        ),
        (
            "/runs/1",
            "persona",
            &[
                "id",
                "input_item_id",
                "persona_id",
                "status",
                "input_snapshot",
            ],
        ),
        (
            "/turns/0",
            "text",
            &[
                "run_id",
                "turn_id",
                "sequence",
                "role",
                "content",
                "timestamp",
                "duration_ms",
            ],
        ),
        (
            "/run_results/0",
            "output",
            &["run_id", "status", "transcript", "metrics"],
        ),
        ("/shard", "count", &["index", "total", "last"]),
    ];
    for (at, field, expected) in cases {
        let typo = with_field(body.clone(), at, field);
        let want = unknown(field, expected);
        refused(&e, "/api/sync/upload", Some(&demo.key), &typo, &want);
    }
    // Free-form maps stay open: metadata and metrics are the client's own.
    let mut open = body.clone();
    open["upload_meta"]["anything"] = json!(1);
    open["runs"][0]["input_snapshot"]["extra"] = json!(true);
    open["run_results"][0]["metrics"]["tokens"] = json!(7);
    open["run_results"][0]["transcript"][0]["name"] = json!("tool");
    open["run_batch"]["key"] = json!("build-8");
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&open)
        .send()
        .expect(200);
}

#[test]
fn issue14_an_unknown_api_key_field_is_refused() {
    let e = Env::new();
    let demo = e.demo();
    let admin = e.key(&demo, "admin");
    let create = json!({"project_id": demo.project_id, "name": "ci", "type": "service-account",
                        "scope": "read", "expires_in_days": 30});
    let made = e
        .post("/api/api-keys")
        .auth(&admin)
        .json(&create)
        .send()
        .expect(201)
        .json();
    let typo = with_field(create, "", "scopes");
    let want = unknown(
        "scopes",
        &["project_id", "name", "type", "scope", "expires_in_days"],
    );
    refused(&e, "/api/api-keys", Some(&admin), &typo, &want);

    let revoke = json!({"id": made["id"]});
    let typo = with_field(revoke.clone(), "", "key_id");
    refused(
        &e,
        "/api/api-keys/revoke",
        Some(&admin),
        &typo,
        &unknown("key_id", &["id", "key"]),
    );
    e.post("/api/api-keys/revoke")
        .auth(&admin)
        .json(&revoke)
        .send()
        .expect(200);
}

#[test]
fn issue14_an_unknown_device_login_field_is_refused() {
    let e = Env::new();
    let start = json!({"device_name": "laptop"});
    let started = e
        .post("/api/cli-connect/start")
        .json(&start)
        .send()
        .expect(200)
        .json();
    let path = "/api/cli-connect/start";
    let typo = with_field(start, "", "device");
    refused(&e, path, None, &typo, &unknown("device", &["device_name"]));

    let complete = json!({"device_code": started["device_code"]});
    e.post("/api/cli-connect/complete")
        .json(&complete)
        .send()
        .expect(200);
    let typo = with_field(complete, "", "user_code");
    let want = unknown("user_code", &["device_code"]);
    refused(&e, "/api/cli-connect/complete", None, &typo, &want);

    let credential = e.login();
    let refresh = json!({"refresh_token": credential["refresh_token"]});
    let want = &unknown("token", &["refresh_token"]);
    let typo = with_field(refresh.clone(), "", "token");
    refused(&e, "/api/cli-connect/refresh", None, &typo, want);
    let access = credential["access_token"].as_str().expect("access token");
    refused(&e, "/api/cli-connect/logout", Some(access), &typo, want);
    e.post("/api/cli-connect/logout")
        .auth(access)
        .json(&refresh)
        .send()
        .expect(200);
}
