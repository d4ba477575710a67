//! Issue 15, items 4–6: the seed's web steps over HTTP: sign in (and a wrong
//! password), sessions, create a key in the page and use it, watch its usage
//! count, revoke it behind a confirmation, and the run batch pages.

use serde_json::json;

use crate::{hidden, Env, DEMO_PASSWORD};

/// A form post from the platform's own page, with the cookies of `jar`.
fn post_form(e: &Env, path: &str, jar: &str, body: &str) -> crate::Reply {
    e.post(path)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", &e.p.url())
        .header("Cookie", jar)
        .raw(body)
        .send()
}

/// The page at `path` for `session`, and the cookie jar and CSRF token its
/// forms need.
fn page_with_form(e: &Env, path: &str, session: &str) -> (crate::Reply, String, String) {
    let r = e.get(path).header("Cookie", session).send().expect(200);
    let csrf = r
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let token = hidden(&r.text, "csrf");
    (r, format!("{csrf}; {session}"), token)
}

#[test]
fn issue15_sign_in_with_a_password_and_out_again() {
    let e = Env::new();
    let form = e
        .get("/login?next=%2Fsettings%2Fapi-keys")
        .send()
        .expect(200);
    let csrf = form
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let token = hidden(&form.text, "csrf");
    assert_eq!(hidden(&form.text, "next"), "/settings/api-keys");
    // A wrong password, an unknown user: the same answer, and no session.
    for (email, password) in [
        ("demo%40fluxloop.local", "wrong-password"),
        ("nobody%40fluxloop.local", DEMO_PASSWORD),
    ] {
        let r = post_form(
            &e,
            "/login",
            &csrf,
            &format!("email={email}&password={password}&next=%2F&csrf={token}"),
        )
        .expect(401);
        assert!(r.text.contains("Wrong email or password."), "{}", r.text);
        assert!(r
            .header_all("set-cookie")
            .iter()
            .all(|c| !c.starts_with("flx_session")));
    }
    // Without the CSRF token, even the right password is refused.
    post_form(
        &e,
        "/login",
        &csrf,
        &format!("email=demo%40fluxloop.local&password={DEMO_PASSWORD}&next=%2F"),
    )
    .expect(403);
    let ok = post_form(
        &e,
        "/login",
        &csrf,
        &format!(
            "email=Demo%40FluxLoop.local&password={DEMO_PASSWORD}&next=%2F%2Fevil.example&csrf={token}"
        ),
    )
    .expect(303);
    // `next` that leaves the site is replaced by the index.
    assert_eq!(ok.header("location"), Some("/"));
    let set = ok
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("flx_session="))
        .expect("session cookie")
        .to_owned();
    assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{set}");
    let session = set.split(';').next().expect("pair").to_owned();
    let keys = e
        .get("/settings/api-keys")
        .header("Cookie", &session)
        .send()
        .expect(200);
    assert!(keys.text.contains("signed in as demo@fluxloop.local"));
    // Sign out: the session stops working at once.
    let (_, jar, token) = page_with_form(&e, "/logout", &session);
    post_form(&e, "/logout", &jar, &format!("csrf={token}")).expect(303);
    let r = e
        .get("/settings/api-keys")
        .header("Cookie", &session)
        .send()
        .expect(303);
    assert_eq!(
        r.header("location"),
        Some("/login?next=%2Fsettings%2Fapi-keys")
    );
}

#[test]
fn issue15_create_a_key_in_the_page_use_it_and_revoke_it() {
    let e = Env::new();
    let demo = e.demo();
    let session = e.sign_in();
    let (_, jar, token) = page_with_form(&e, "/settings/api-keys", &session);
    let body = format!(
        "csrf={token}&name=ci+%3Cbot%3E&project_id={}&type=service-account&scope=read&expires_in_days=30",
        demo.project_id
    );
    let created = post_form(&e, "/settings/api-keys", &jar, &body).expect(201);
    assert!(created.text.contains("you won't see it again"));
    assert!(created.text.contains("ci &lt;bot&gt;"));
    let key = created
        .text
        .split("id=\"new-key\" class=\"key\" readonly value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("the new key, once")
        .to_owned();
    assert!(key.starts_with("flx_sa_"), "{key}");
    // The key works, with the scope chosen in the form.
    let me = e
        .get("/api/api-keys/self")
        .auth(&key)
        .send()
        .expect(200)
        .json();
    assert_eq!(
        (
            me["scope"].as_str(),
            me["type"].as_str(),
            me["usage_count"].as_i64()
        ),
        (Some("read"), Some("service-account"), Some(1))
    );
    assert!(me["expires_at"].is_string());
    e.post("/api/sync/pull")
        .auth(&key)
        .json(&json!({}))
        .send()
        .expect(200);
    // The table shows it masked, never whole, with its usage count.
    let table = e
        .get("/settings/api-keys")
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    assert!(!table.contains(&key), "a key must never be shown again");
    let suffix = &key[key.len() - 4..];
    let row = table
        .split("<tr>")
        .find(|r| r.contains("ci &lt;bot&gt;"))
        .expect("row of the new key");
    assert!(row.contains(&format!("…{suffix}")), "{row}");
    assert!(
        row.contains("<td>2</td>") && row.contains("active"),
        "{row}"
    );
    // Bad input is refused with the reason, and makes no key.
    let bad = post_form(
        &e,
        "/settings/api-keys",
        &jar,
        &format!(
            "csrf={token}&name=x&project_id={}&type=user&scope=root",
            demo.project_id
        ),
    )
    .expect(422);
    assert!(bad.text.contains("The scope must be"), "{}", bad.text);
    // Revoke asks first; confirmed, the key is dead.
    let id = me["id"].as_str().expect("id");
    let ask = post_form(
        &e,
        "/settings/api-keys/revoke",
        &jar,
        &format!("csrf={token}&id={id}"),
    )
    .expect(200);
    assert!(ask.text.contains("Revoke the key <b>ci &lt;bot&gt;</b>?"));
    e.post("/api/sync/pull")
        .auth(&key)
        .json(&json!({}))
        .send()
        .expect(200);
    let done = post_form(
        &e,
        "/settings/api-keys/revoke",
        &jar,
        &format!("csrf={token}&id={id}&confirm=yes"),
    )
    .expect(200);
    assert!(done.text.contains("Revoked <b>ci &lt;bot&gt;</b>."));
    e.post("/api/sync/pull")
        .auth(&key)
        .json(&json!({}))
        .send()
        .expect_error(401, "key_revoked");
    // Without the CSRF token nothing is created or revoked.
    let demo_key_id = e.get("/api/api-keys/self").auth(&demo.key).send().json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    post_form(
        &e,
        "/settings/api-keys/revoke",
        &jar,
        &format!("id={demo_key_id}&confirm=yes"),
    )
    .expect(403);
    e.get("/api/projects").auth(&demo.key).send().expect(200);
}

#[test]
fn issue15_run_batch_pages_list_newest_first_with_failures_first() {
    let e = Env::new();
    let demo = e.demo();
    let mut ids = Vec::new();
    for n in [2, 3] {
        let mut body = e.upload_body(&demo, &demo.key, n);
        body["upload_meta"]["ci"] = json!({"provider": "github", "commit": format!("c0mm1t{n}"),
            "branch": "main", "build_url": "https://ci.example/build/7", "pull_request": "javascript:alert(1)"});
        let r = e
            .post("/api/sync/upload")
            .auth(&demo.key)
            .json(&body)
            .send()
            .expect(200)
            .json();
        ids.push(r["run_batch_id"].as_str().expect("id").to_owned());
    }
    e.get("/run-batches").send().expect(303);
    let session = e.sign_in();
    let list = e
        .get("/run-batches")
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    let (newer, older) = (
        list.find(&ids[1]).expect("newer batch"),
        list.find(&ids[0]).expect("older batch"),
    );
    assert!(newer < older, "newest first");
    assert!(
        list.contains("66% (2/3)") && list.contains("50% (1/2)"),
        "{list}"
    );
    assert!(
        list.contains("c0mm1t3")
            && list.contains("<a href=\"https://ci.example/build/7\">build</a>")
    );
    assert!(!list.contains("href=\"javascript:"), "only http(s) links");
    let page = e
        .get(&format!("/run-batches/{}", ids[1]))
        .header("Cookie", &session)
        .send()
        .expect(200)
        .text;
    let failed = page.find("class=\"failed\"").expect("a failed run");
    let passed = page.find("class=\"passed\"").expect("a passed run");
    assert!(failed < passed, "failures first");
    assert!(page.contains("<details open><summary>transcript</summary>"));
    e.get("/run-batches/nope")
        .header("Cookie", &session)
        .send()
        .expect(404);
}
