//! Issue 14: every request the CLI sends in this suite is checked against
//! `platform/openapi.yaml`. Each test's platform records its `/api` requests
//! (`Config::record_requests`); when the test ends, [`findings`] checks each
//! one: its route must be an operation the document describes, its query
//! parameters must be ones the operation declares, and its JSON body must
//! match the operation's `requestBody` schema (`$ref`s resolved within the
//! document). A field the CLI misspells or the document forgets fails here,
//! in the test that sent it, instead of being dropped by a lenient server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::{json, Map, Value};

/// The document the platform serves by.
const OPENAPI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/platform/openapi.yaml");

/// What one operation accepts.
struct Operation {
    /// The `application/json` request body's schema; `None`: no body.
    body: Option<Validator>,
    /// Whether the operation's `requestBody` is `required`.
    body_required: bool,
    /// The declared query parameters as one object schema.
    query: Validator,
    /// Declared query parameter name → its `type`, to read the text values.
    query_types: HashMap<String, String>,
}

/// Every operation of the document, by `METHOD /template`.
fn operations() -> &'static HashMap<String, Operation> {
    static OPS: OnceLock<HashMap<String, Operation>> = OnceLock::new();
    OPS.get_or_init(|| {
        let text = std::fs::read_to_string(OPENAPI).expect("read openapi.yaml");
        let mut doc: Value = serde_saphyr::from_str(&text).expect("openapi.yaml is YAML");
        nullable_to_type(&mut doc);
        let paths = doc["paths"].as_object().expect("openapi.yaml has paths");
        let mut ops = HashMap::new();
        for (path, methods) in paths {
            for (method, op) in methods.as_object().expect("a path item") {
                let name = format!("{} {path}", method.to_uppercase());
                ops.insert(name, operation(&doc, path, method, op));
            }
        }
        ops
    })
}

/// Compiles one operation's checks.
fn operation(doc: &Value, path: &str, method: &str, op: &Value) -> Operation {
    let body = op["requestBody"]["content"]
        .get("application/json")
        .map(|_| {
            // A JSON pointer in a URI fragment: `{` and `}` of a path
            // template are not allowed there unescaped.
            let pointer = format!(
                "#/paths/{}/{method}/requestBody/content/application~1json/schema",
                path.replace('~', "~0")
                    .replace('/', "~1")
                    .replace('{', "%7B")
                    .replace('}', "%7D")
            );
            compile(doc, json!({"$ref": pointer}))
        });
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut query_types = HashMap::new();
    let params = op["parameters"].as_array().map(Vec::as_slice);
    for p in params.unwrap_or_default() {
        if p["in"] != "query" {
            continue;
        }
        let name = p["name"].as_str().expect("a parameter name").to_owned();
        let kind = p["schema"]["type"].as_str().unwrap_or("string");
        query_types.insert(name.clone(), kind.to_owned());
        if p["required"] == true {
            required.push(Value::String(name.clone()));
        }
        properties.insert(name, p["schema"].clone());
    }
    let query = json!({"type": "object", "properties": properties, "required": required,
                       "additionalProperties": false});
    Operation {
        body,
        body_required: op["requestBody"]["required"] == true,
        query: compile(doc, query),
        query_types,
    }
}

/// A validator for `schema`, with the document's `components` beside it so
/// that `#/components/...` references resolve, and `#/paths/...` too.
fn compile(doc: &Value, schema: Value) -> Validator {
    let mut root = schema;
    for key in ["components", "paths"] {
        root[key] = doc[key].clone();
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("openapi.yaml: a schema does not compile: {e}"))
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: null joins the `type` (and
/// the `enum`, when there is one).
fn nullable_to_type(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(t) = m.get("type").cloned() {
                    m.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(e)) = m.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            m.values_mut().for_each(nullable_to_type);
        }
        Value::Array(a) => a.iter_mut().for_each(nullable_to_type),
        _ => {}
    }
}

/// A query value as the type its parameter declares, so `limit=5` checks
/// as the integer 5 and `limit=zero` fails as the string it is.
fn query_value(kind: Option<&String>, text: &str) -> Value {
    let parsed = match kind.map(String::as_str) {
        Some("integer") => text.parse::<i64>().ok().map(Value::from),
        Some("number") => text.parse::<f64>().ok().map(Value::from),
        Some("boolean") => text.parse::<bool>().ok().map(Value::from),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

/// What is wrong with one recorded request, empty when nothing is.
fn check_request(req: &Value) -> Vec<String> {
    let method = req["method"].as_str().unwrap_or("?");
    let path = req["path"].as_str().unwrap_or("?");
    let at = format!("{method} {path}");
    let Some(route) = req["route"].as_str() else {
        return vec![format!("{at}: the platform serves no such route")];
    };
    let Some(op) = operations().get(&format!("{method} {route}")) else {
        return vec![format!(
            "{at}: openapi.yaml does not describe {method} {route}"
        )];
    };
    let mut found = Vec::new();
    let mut query = Map::new();
    for pair in req["query"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (name, text) = (
            pair[0].as_str().unwrap_or_default(),
            pair[1].as_str().unwrap_or_default(),
        );
        let value = query_value(op.query_types.get(name), text);
        if query.insert(name.to_owned(), value).is_some() {
            found.push(format!("{at}: query parameter {name} sent twice"));
        }
    }
    for e in op.query.iter_errors(&Value::Object(query)) {
        found.push(format!("{at}: query{}: {e}", e.instance_path()));
    }
    match (&op.body, &req["body"]) {
        (None, Value::Null) => {}
        (Some(_), Value::Null) if !op.body_required => {}
        (Some(_), Value::Null) => found.push(format!("{at}: the required body is missing")),
        (None, _) => found.push(format!(
            "{at}: sends a JSON body, but openapi.yaml declares none"
        )),
        (Some(schema), body) => {
            for e in schema.iter_errors(body) {
                found.push(format!("{at}: body{}: {e}", e.instance_path()));
            }
        }
    }
    found
}

/// Every finding for the requests recorded in `file`, one JSON line each.
pub fn findings(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read the request recording");
    text.lines()
        .flat_map(|line| match serde_json::from_str::<Value>(line) {
            Ok(req) => check_request(&req),
            // The recorder splices the body in as sent: only a body that is
            // not JSON makes its line unreadable.
            Err(e) => vec![format!(
                "a request whose body is not JSON ({e}): {:.300}",
                line
            )],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{check_request, findings};
    use serde_json::{json, Value};

    fn pull(body: Value) -> Value {
        json!({"method": "POST", "route": "/api/sync/pull", "path": "/api/sync/pull",
               "query": [], "body": body})
    }

    #[test]
    fn issue14_the_schema_check_refuses_a_misspelled_field() {
        assert_eq!(
            check_request(&pull(json!({"project_id": "p", "include_inputs": true}))),
            Vec::<String>::new()
        );
        assert_eq!(
            check_request(&pull(json!({"project_id": "p", "include_input": true}))),
            [
                "POST /api/sync/pull: body: Additional properties are not allowed \
              ('include_input' was unexpected)"
            ]
        );
        assert_eq!(
            check_request(&pull(json!({"project_id": 7}))),
            ["POST /api/sync/pull: body/project_id: 7 is not of types \"null\", \"string\""]
        );
        // Inside a `$ref`erenced component too.
        let upload = json!({"method": "POST", "route": "/api/sync/upload", "path": "/api/sync/upload",
            "query": [], "body": {"bundle_version_id": "b", "runs": [
                {"id": "r1", "status": "completed", "input_item_id": null},
                {"id": "r2", "status": "completed", "persona": "p"}]}});
        assert_eq!(
            check_request(&upload),
            [
                "POST /api/sync/upload: body/runs/1: Additional properties are not allowed \
              ('persona' was unexpected)"
            ]
        );
    }

    #[test]
    fn issue19_bodies_of_templated_paths_are_checked_too() {
        let trust = |body: Value| {
            check_request(
                &json!({"method": "POST", "route": "/api/projects/{project_id}/trust-policies",
                "path": "/api/projects/p/trust-policies", "query": [], "body": body}),
            )
        };
        let good = json!({"issuer": "https://i", "conditions": {"sub": "x"}, "scope": "read"});
        assert_eq!(trust(good), Vec::<String>::new());
        assert_eq!(
            trust(json!({"issuer": "https://i", "conditions": {"sub": "x"}, "scope": "admin"})),
            ["POST /api/projects/p/trust-policies: body/scope: \"admin\" is not one of \"read\", \"write\" or \"read-write\""]
        );
    }

    #[test]
    fn issue14_the_schema_check_refuses_undescribed_routes_and_queries() {
        let get = |route: Value, path: &str, query: Value| {
            check_request(&json!({"method": "GET", "route": route, "path": path,
                                  "query": query, "body": null}))
        };
        assert_eq!(
            get(json!(null), "/api/nope", json!([])),
            ["GET /api/nope: the platform serves no such route"]
        );
        assert_eq!(
            get(
                json!("/api/bundles"),
                "/api/bundles",
                json!([["limit", "5"]])
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            get(
                json!("/api/bundles"),
                "/api/bundles",
                json!([["limit", "zero"], ["page", "2"]])
            ),
            [
                "GET /api/bundles: query/limit: \"zero\" is not of type \"integer\"",
                "GET /api/bundles: query: Additional properties are not allowed ('page' was unexpected)",
            ]
        );
    }

    /// The whole path: a platform recording real requests, then the check.
    #[test]
    fn issue14_the_schema_check_reads_a_platform_recording() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("requests.jsonl");
        let p = fluxloop_platform::Platform::start(fluxloop_platform::Config {
            record_requests: Some(file.clone()),
            ..fluxloop_platform::Config::default()
        })
        .expect("start platform");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        for body in [json!({"device_name": "x"}), json!({"device": "x"})] {
            let url = format!("{}/api/cli-connect/start", p.url());
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .expect("start");
        }
        drop(p);
        assert_eq!(
            findings(&file),
            [
                "POST /api/cli-connect/start: body: Additional properties are not allowed \
              ('device' was unexpected)"
            ]
        );
    }
}
