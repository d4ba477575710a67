//! Listings, pull and upload: shapes, scopes, idempotency, chunking and
//! project isolation.

use serde_json::{json, Value};

use crate::Env;

#[test]
fn listings_need_a_valid_credential_and_read_scope() {
    let e = Env::new();
    let demo = e.demo();
    let write_only = e.key(&demo, "write");
    for path in [
        "/api/projects".to_owned(),
        format!("/api/scenarios?project_id={}", demo.project_id),
        format!("/api/scenarios/{}", demo.scenario_id),
        format!(
            "/api/bundles?project_id={}&scenario_id={}&limit=1",
            demo.project_id, demo.scenario_id
        ),
        format!("/api/projects/{}", demo.project_id),
    ] {
        e.get(&path).send().expect_error(401, "unauthenticated");
        e.get(&path)
            .auth("flx_sa_notarealkeynotarealkeynotareal")
            .send()
            .expect_error(401, "unauthenticated");
        e.get(&path)
            .auth("garbage-token")
            .send()
            .expect_error(401, "unauthenticated");
        let r = e
            .get(&path)
            .auth(&write_only)
            .send()
            .expect_error(403, "forbidden");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("write"));
        e.get(&path).auth(&demo.key).send().expect(200);
    }
    let projects = e.get("/api/projects").auth(&demo.key).send().json();
    assert_eq!(
        projects,
        json!([{"id": demo.project_id, "name": demo.project_name,
        "workspace_id": projects[0]["workspace_id"], "created_at": projects[0]["created_at"]}])
    );
    let scenarios = e
        .get(&format!("/api/scenarios?project_id={}", demo.project_id))
        .auth(&demo.key)
        .send()
        .json();
    assert_eq!(scenarios[0]["name"], "support-bot");
    assert_eq!(scenarios[0]["id"], demo.scenario_id.as_str());
    let bundles = e
        .get(&format!(
            "/api/bundles?project_id={}&scenario_id={}&limit=1",
            demo.project_id, demo.scenario_id
        ))
        .auth(&demo.key)
        .send()
        .json();
    assert_eq!(bundles[0]["id"], demo.bundle_version_id.as_str());
    assert_eq!(bundles[0]["status"], "published");
    assert_eq!(bundles[0]["version"], demo.bundle_version);
    // Another project's key sees neither the project nor its scenarios.
    let other = e.p.store().seed_demo(1).expect("same project reused");
    assert_eq!(other.project_id, demo.project_id);
    e.get("/api/scenarios?project_id=00000000-0000-0000-0000-000000000000")
        .auth(&demo.key)
        .send()
        .expect_error(404, "not_found");
    e.get("/api/scenarios/nope")
        .auth(&demo.key)
        .send()
        .expect_error(404, "not_found");
    e.get("/api/bundles?limit=zero")
        .auth(&demo.key)
        .send()
        .expect_error(400, "invalid_request");
}

#[test]
fn pull_returns_the_bundle_in_the_documented_shape() {
    let e = Env::new();
    let demo = e.demo();
    let body = json!({"include_inputs": true, "include_personas": true, "include_criteria": true,
                      "client_meta": {"cli_version": "0.4.0"}});
    let r = e
        .post("/api/sync/pull")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200)
        .json();
    assert_eq!(
        r["bundle_version"],
        json!({"id": demo.bundle_version_id, "project_id": demo.project_id, "scenario_id": demo.scenario_id, "version": 1})
    );
    let items = r["input_items"].as_array().expect("items");
    assert_eq!(items.len(), 10);
    let personas = r["personas"].as_array().expect("personas");
    assert_eq!(personas.len(), 3);
    assert_eq!(r["criteria_pack"].as_array().map(Vec::len), Some(4));
    let persona_ids: Vec<&Value> = personas.iter().map(|p| &p["id"]).collect();
    for it in items {
        assert!(persona_ids.contains(&&it["persona_id"]));
        assert_eq!(it["messages"][0]["role"], "user");
        assert!(it["metadata"]["category"].is_string());
    }
    assert_eq!(r["scenario_context"]["scenario"]["name"], "support-bot");
    assert!(r["input_set"]["id"].is_string());
    assert_eq!(r["run_spec_snapshot"], json!({}));
    assert!(r["sync_meta"]["pulled_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // By scenario and by bundle version; and the same from a login token.
    for b in [
        json!({"scenario_id": demo.scenario_id}),
        json!({"bundle_version_id": demo.bundle_version_id}),
        json!({"project_id": demo.project_id}),
    ] {
        let r = e
            .post("/api/sync/pull")
            .auth(&demo.key)
            .json(&b)
            .send()
            .expect(200)
            .json();
        assert_eq!(r["bundle_version"]["id"], demo.bundle_version_id.as_str());
    }
    let token = e.login()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    e.post("/api/sync/pull")
        .auth(&token)
        .json(&json!({"project_id": demo.project_id}))
        .send()
        .expect(200);
    let none =
        json!({"include_inputs": false, "include_personas": false, "include_criteria": false});
    let r = e
        .post("/api/sync/pull")
        .auth(&demo.key)
        .json(&none)
        .send()
        .expect(200)
        .json();
    assert_eq!(r["input_items"], json!([]));
    e.post("/api/sync/pull")
        .auth(&demo.key)
        .json(&json!({"bundle_version_id": "nope"}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/sync/pull")
        .auth(&demo.key)
        .json(&json!({"project_id": "nope"}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/sync/pull")
        .json(&json!({}))
        .send()
        .expect_error(401, "unauthenticated");
    let write_only = e.key(&demo, "write");
    e.post("/api/sync/pull")
        .auth(&write_only)
        .json(&json!({}))
        .send()
        .expect_error(403, "forbidden");
}

#[test]
fn upload_stores_a_batch_that_reads_back() {
    let e = Env::new();
    let demo = e.demo();
    let body = e.upload_body(&demo, &demo.key, 3);
    let r = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200)
        .json();
    let batch_id = r["run_batch_id"].as_str().expect("batch id").to_owned();
    assert_eq!(r["run_ids"], json!(["run-0", "run-1", "run-2"]));
    assert_eq!(e.p.run_count(&batch_id).expect("count"), 3);
    let b = e
        .get(&format!("/api/run-batches/{batch_id}"))
        .auth(&demo.key)
        .send()
        .expect(200)
        .json();
    assert_eq!(b["id"], batch_id.as_str());
    assert_eq!(b["run_count"], 3);
    assert_eq!(b["project_id"], demo.project_id.as_str());
    assert_eq!(b["bundle_version_id"], demo.bundle_version_id.as_str());
    assert_eq!(b["execution_target"], "local");
    assert_eq!(b["upload_meta"]["ci"]["commit"], "abc");
    assert_eq!(b["runs"][0]["status"], "failed");
    assert_eq!(
        b["runs"][1]["result"]["transcript"][1]["content"],
        "hello <b>"
    );
    assert_eq!(b["runs"][1]["result"]["metrics"]["turn_count"], 1);
    assert!(b["runs"][2]["input_snapshot"]["messages"].is_array());
    e.get("/api/run-batches/nope")
        .auth(&demo.key)
        .send()
        .expect_error(404, "not_found");
    let write_only = e.key(&demo, "write");
    e.get(&format!("/api/run-batches/{batch_id}"))
        .auth(&write_only)
        .send()
        .expect_error(403, "forbidden");
    // The page the CLI links to, with values escaped.
    let session = e.sign_in();
    let page = e
        .get(&format!("/run-batches/{batch_id}"))
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    assert!(
        page.contains("hello &lt;b&gt;") && !page.contains("hello <b>"),
        "{page}"
    );
    // Write scope suffices; read does not.
    let read_only = e.key(&demo, "read");
    e.post("/api/sync/upload")
        .auth(&read_only)
        .json(&body)
        .send()
        .expect_error(403, "forbidden");
    e.post("/api/sync/upload")
        .auth(&write_only)
        .json(&body)
        .send()
        .expect(200);
    e.post("/api/sync/upload")
        .json(&body)
        .send()
        .expect_error(401, "unauthenticated");
}

#[test]
fn upload_accepts_the_python_cli_payload() {
    let e = Env::new();
    let demo = e.demo();
    let item = &e
        .post("/api/sync/pull")
        .auth(&demo.key)
        .json(&json!({}))
        .send()
        .json()["input_items"][0];
    let body = json!({
        "bundle_version_id": demo.bundle_version_id,
        "run_batch": {"execution_target": "local", "status": "completed",
                      "started_at": "2025-01-01T10:00:00.123456+00:00", "completed_at": "2025-01-01T10:00:01.5+00:00"},
        "runs": [{"id": "r1", "input_item_id": item["id"], "persona_id": null, "status": "completed",
                  "input_snapshot": {"messages": item["messages"], "metadata": {}, "id": item["id"]}}],
        "turns": [{"run_id": "r1", "turn_id": "r1-t0", "sequence": 0, "role": "user", "content": "hi",
                   "timestamp": "2025-01-01T10:00:00+00:00", "duration_ms": null},
                  {"run_id": "r1", "turn_id": "r1-t1", "sequence": 1, "role": "assistant", "content": "yo",
                   "timestamp": "2025-01-01T10:00:00+00:00", "duration_ms": 1234}],
        "run_results": [{"run_id": "r1", "status": "completed", "transcript": [{"role": "user", "content": "hi"}]}],
        "upload_meta": {"cli_version": "0.4.0"}
    });
    let r = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200)
        .json();
    assert_eq!(r["run_ids"], json!(["r1"]));
    let requests = e.p.requests();
    let last = requests.last().expect("recorded");
    assert_eq!(
        (last.path.as_str(), last.idempotency_key.as_deref()),
        ("/api/sync/upload", None)
    );
    // Wrong types on known fields are refused.
    for bad in [
        json!({"bundle_version_id": 1, "runs": []}),
        json!({"bundle_version_id": demo.bundle_version_id, "runs": {"a": 1}}),
        json!({"bundle_version_id": demo.bundle_version_id, "runs": [], "turns": [{"sequence": "x"}]}),
    ] {
        e.post("/api/sync/upload")
            .auth(&demo.key)
            .json(&bad)
            .send()
            .expect_error(400, "invalid_request");
    }
    let bad_status = json!({"bundle_version_id": demo.bundle_version_id, "runs": [{"id": "x", "status": "great"}]});
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&bad_status)
        .send()
        .expect_error(422, "invalid_request");
    let orphan = json!({"bundle_version_id": demo.bundle_version_id, "runs": [], "run_results": [{"run_id": "ghost", "status": "completed"}]});
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&orphan)
        .send()
        .expect_error(422, "invalid_request");
    let unknown = json!({"bundle_version_id": "nope", "runs": []});
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&unknown)
        .send()
        .expect_error(404, "not_found");
}

#[test]
fn upload_with_a_seen_idempotency_key_replays_and_stores_nothing() {
    let e = Env::new();
    let demo = e.demo();
    let body = e.upload_body(&demo, &demo.key, 2);
    let first = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .expect(200);
    let again = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-1")
        .json(&body)
        .send()
        .expect(200);
    assert_eq!(first.text, again.text);
    assert_eq!(e.p.batch_ids().expect("ids").len(), 1);
    // A refused request is not remembered: the same key may then succeed.
    let bad = json!({"bundle_version_id": "nope", "runs": []});
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-2")
        .json(&bad)
        .send()
        .expect(404);
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-2")
        .json(&body)
        .send()
        .expect(200);
    assert_eq!(e.p.batch_ids().expect("ids").len(), 2);
    let seen: Vec<Option<String>> =
        e.p.requests()
            .iter()
            .filter(|r| r.path == "/api/sync/upload")
            .map(|r| r.idempotency_key.clone())
            .collect();
    assert_eq!(
        seen,
        vec![
            Some("k-1".into()),
            Some("k-1".into()),
            Some("k-2".into()),
            Some("k-2".into())
        ]
    );
}

/// Issue 13: a key replayed with other content must not get the first
/// answer (which would report runs as stored that never were).
#[test]
fn regression_13_a_key_replayed_with_another_body_is_refused() {
    let e = Env::new();
    let demo = e.demo();
    let four = e.upload_body(&demo, &demo.key, 4);
    let ten = e.upload_body(&demo, &demo.key, 10);
    let first = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-1")
        .json(&four)
        .send()
        .expect(200);
    let batch = first.json()["run_batch_id"].as_str().unwrap().to_owned();
    let refused = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-1")
        .json(&ten)
        .send()
        .expect_error(422, "idempotency_mismatch");
    assert_eq!(
        refused.json()["error"]["message"],
        "Idempotency-Key k-1 was already used with a different request body; send new content with a new key"
    );
    assert_eq!(e.p.batch_ids().expect("ids"), vec![batch.clone()]);
    assert_eq!(e.p.run_count(&batch).expect("count"), 4);
    // The same body still replays.
    let again = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .header("Idempotency-Key", "k-1")
        .json(&four)
        .send()
        .expect(200);
    assert_eq!(first.text, again.text);
}

#[test]
fn chunks_append_to_one_batch_and_resent_runs_are_stored_once() {
    let e = Env::new();
    let demo = e.demo();
    let body = e.upload_body(&demo, &demo.key, 4);
    let runs = body["runs"].as_array().expect("runs").clone();
    let results = body["run_results"].as_array().expect("results").clone();
    let mut first = body.clone();
    first["runs"] = json!(runs[..2]);
    first["run_results"] = json!(results[..2]);
    let batch = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&first)
        .send()
        .expect(200)
        .json()["run_batch_id"]
        .clone();
    let mut second = body.clone();
    second["run_batch"]["id"] = batch.clone();
    // Overlaps the first chunk by one run, as a client retrying without the header would.
    second["runs"] = json!(runs[1..]);
    second["run_results"] = json!(results[1..]);
    let r = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&second)
        .send()
        .expect(200)
        .json();
    assert_eq!(r["run_batch_id"], batch);
    let batch = batch.as_str().expect("id");
    assert_eq!(e.p.run_count(batch).expect("count"), 4);
    assert_eq!(e.p.batch_ids().expect("ids"), vec![batch.to_owned()]);
    // An unknown batch, or one of another project, is 404.
    let mut stray = second.clone();
    stray["run_batch"]["id"] = json!("00000000-0000-4000-8000-000000000000");
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&stray)
        .send()
        .expect_error(404, "not_found");
    // More than 1000 runs in one request is refused.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"id": format!("m{i}"), "status": "completed"}))
        .collect();
    let big = json!({"bundle_version_id": demo.bundle_version_id, "runs": many});
    let r = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&big)
        .send()
        .expect_error(422, "invalid_request");
    assert!(r.text.contains("1000"));
}

#[test]
fn another_projects_data_is_not_found() {
    let e = Env::new();
    let demo = e.demo();
    let body = e.upload_body(&demo, &demo.key, 1);
    let batch = e
        .post("/api/sync/upload")
        .auth(&demo.key)
        .json(&body)
        .send()
        .expect(200)
        .json()["run_batch_id"]
        .clone();
    let other = e.p.store().create_project("Other").expect("project");
    let seeded = e.p.seed_scenario(&other, "bench", 1200).expect("seed");
    let other_key =
        e.p.create_key(&other, "other", "service-account", "admin")
            .expect("key")
            .key;
    let pulled = e
        .post("/api/sync/pull")
        .auth(&other_key)
        .json(&json!({}))
        .send()
        .expect(200)
        .json();
    assert_eq!(
        pulled["bundle_version"]["id"],
        seeded.bundle_version_id.as_str()
    );
    assert_eq!(pulled["input_items"].as_array().map(Vec::len), Some(1200));
    let batch_path = format!("/api/run-batches/{}", batch.as_str().expect("id"));
    e.get(&batch_path)
        .auth(&other_key)
        .send()
        .expect_error(404, "not_found");
    e.post("/api/sync/pull")
        .auth(&other_key)
        .json(&json!({"bundle_version_id": demo.bundle_version_id}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/sync/pull")
        .auth(&other_key)
        .json(&json!({"scenario_id": demo.scenario_id}))
        .send()
        .expect_error(404, "not_found");
    e.post("/api/sync/upload")
        .auth(&other_key)
        .json(&body)
        .send()
        .expect_error(404, "not_found");
    let mut append = body.clone();
    append["bundle_version_id"] = json!(seeded.bundle_version_id);
    append["run_batch"]["id"] = batch.clone();
    e.post("/api/sync/upload")
        .auth(&other_key)
        .json(&append)
        .send()
        .expect_error(404, "not_found");
    e.post("/api/api-keys/revoke")
        .auth(&other_key)
        .json(&json!({"key": demo.key}))
        .send()
        .expect_error(404, "not_found");
    e.get(&format!("/api/api-keys?project_id={}", demo.project_id))
        .auth(&other_key)
        .send()
        .expect_error(404, "not_found");
    // Same project, different bundle: refused as unprocessable.
    let mut wrong = body.clone();
    wrong["bundle_version_id"] = json!(seeded.bundle_version_id);
    wrong["run_batch"]["id"] = batch;
    let seeded_here =
        e.p.seed_scenario(&demo.project_id, "second", 2)
            .expect("seed");
    wrong["bundle_version_id"] = json!(seeded_here.bundle_version_id);
    e.post("/api/sync/upload")
        .auth(&demo.key)
        .json(&wrong)
        .send()
        .expect_error(422, "invalid_request");
    // A login token owning two projects must name one when creating a key.
    let token = e.login()["access_token"].as_str().expect("t").to_owned();
    e.post("/api/api-keys")
        .auth(&token)
        .json(&json!({"name": "x"}))
        .send()
        .expect_error(400, "invalid_request");
    assert_eq!(
        e.get("/api/projects")
            .auth(&token)
            .send()
            .expect(200)
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
