//! Sharded jobs (issue 17): the shards of one CI build share a batch by
//! `run_batch.key`; the batch completes when every shard reported; a
//! rerun shard replaces its runs; a shard of another bundle gets 409.

use serde_json::{json, Value};

use crate::Env;

const KEY: &str = "gitlab:77:support-bot";

/// Shard `index` of 3 with the runs `ids` (from the demo's inputs).
fn shard_body(
    e: &Env,
    demo: &fluxloop_platform::Demo,
    index: u32,
    ids: &[&str],
    last: bool,
) -> Value {
    let mut body = e.upload_body(demo, &demo.key, ids.len());
    for (i, id) in ids.iter().enumerate() {
        body["runs"][i]["id"] = json!(id);
        body["run_results"][i]["run_id"] = json!(id);
    }
    body["run_batch"]["key"] = json!(KEY);
    body["shard"] = json!({"index": index, "total": 3, "last": last});
    body
}

fn upload(e: &Env, key: &str, body: &Value) -> Value {
    e.post("/api/sync/upload")
        .auth(key)
        .json(body)
        .send()
        .expect(200)
        .json()
}

fn by_key(e: &Env, key: &str) -> Value {
    e.get(&format!("/api/run-batches?key={}", KEY.replace(':', "%3A")))
        .auth(key)
        .send()
        .expect(200)
        .json()
}

fn run_ids(batch: &Value) -> Vec<String> {
    let mut ids: Vec<String> = batch["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn shards_append_to_one_batch_that_completes_with_the_last_shard() {
    let e = Env::new();
    let demo = e.demo();
    let k = &demo.key;
    let first = upload(&e, k, &shard_body(&e, &demo, 1, &["a0", "a1"], true));
    let batch_id = first["run_batch_id"].clone();
    let b = by_key(&e, k);
    assert_eq!(b["id"], batch_id);
    assert_eq!(b["status"], "running");
    assert_eq!(b["batch_key"], KEY);
    assert_eq!(
        b["shards"],
        json!({"total": 3, "reported": [{"index": 1, "runs": 2}]})
    );

    // Shard 2 in two chunks: the first without the id appends by key.
    let second = upload(&e, k, &shard_body(&e, &demo, 2, &["b0"], false));
    assert_eq!(second["run_batch_id"], batch_id);
    let mut more = shard_body(&e, &demo, 2, &["b1"], true);
    more["run_batch"]["id"] = batch_id.clone();
    upload(&e, k, &more);
    // Killed and rerun from the start, with new run ids: its runs replace
    // the first attempt's instead of adding to them.
    upload(&e, k, &shard_body(&e, &demo, 2, &["c0", "c1"], true));
    let b = by_key(&e, k);
    assert_eq!(run_ids(&b), ["a0", "a1", "c0", "c1"]);
    assert_eq!(b["status"], "running", "shard 3 has not reported");

    // A shard that pulled another bundle version is refused, and stores nothing.
    let newer =
        e.p.store()
            .seed_scenario(&demo.project_id, "support-bot", 3)
            .expect("newer bundle");
    let mut stray = shard_body(&e, &demo, 3, &["d0"], true);
    stray["bundle_version_id"] = json!(newer.bundle_version_id);
    let r = e
        .post("/api/sync/upload")
        .auth(k)
        .json(&stray)
        .send()
        .expect_error(409, "bundle_mismatch");
    assert!(
        r.text.contains(&format!(
            "holds results of bundle version {}",
            demo.bundle_version_id
        )),
        "the message names both bundles: {}",
        r.text
    );
    // So is one that counts another number of shards.
    let mut four = shard_body(&e, &demo, 3, &["d0"], true);
    four["shard"]["total"] = json!(4);
    e.post("/api/sync/upload")
        .auth(k)
        .json(&four)
        .send()
        .expect_error(409, "shard_mismatch");

    let third = shard_body(&e, &demo, 3, &["d0"], true);
    upload(&e, k, &third);
    // A retry of the same request stores nothing more.
    upload(&e, k, &third);
    let b = by_key(&e, k);
    assert_eq!(b["status"], "completed");
    assert_eq!(run_ids(&b), ["a0", "a1", "c0", "c1", "d0"]);
    assert_eq!(b["run_count"], 5);
    assert_eq!(e.p.batch_ids().expect("ids").len(), 1);
}

#[test]
fn bad_shards_and_unknown_keys_are_refused() {
    let e = Env::new();
    let demo = e.demo();
    let k = &demo.key;
    let mut no_key = shard_body(&e, &demo, 1, &["a0"], true);
    no_key["run_batch"]
        .as_object_mut()
        .expect("batch")
        .remove("key");
    e.post("/api/sync/upload")
        .auth(k)
        .json(&no_key)
        .send()
        .expect_error(400, "invalid_request");
    let mut past = shard_body(&e, &demo, 1, &["a0"], true);
    past["shard"]["index"] = json!(4);
    e.post("/api/sync/upload")
        .auth(k)
        .json(&past)
        .send()
        .expect_error(422, "invalid_request");
    e.get("/api/run-batches?key=nope")
        .auth(k)
        .send()
        .expect_error(404, "not_found");
    e.get("/api/run-batches")
        .auth(k)
        .send()
        .expect_error(400, "invalid_request");
    assert!(e.p.batch_ids().expect("ids").is_empty());
}
