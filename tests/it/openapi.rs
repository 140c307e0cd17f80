//! The OpenAPI description: served without a token, OpenAPI 3.1, holding every route of
//! SPEC §8; and the router serving exactly what it describes, no more, no less.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::support::*;

/// SPEC §8's routes: the contract. Each must be in the served description.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/organizations"),
    ("GET", "/v1/organizations"),
    ("GET", "/v1/organizations/{id}"),
    ("PATCH", "/v1/organizations/{id}"),
    ("DELETE", "/v1/organizations/{id}"),
    ("POST", "/v1/projects"),
    ("GET", "/v1/projects"),
    ("GET", "/v1/projects/{id}"),
    ("PATCH", "/v1/projects/{id}"),
    ("DELETE", "/v1/projects/{id}"),
    ("POST", "/v1/users"),
    ("GET", "/v1/users"),
    ("GET", "/v1/users/{id}"),
    ("PATCH", "/v1/users/{id}"),
    ("DELETE", "/v1/users/{id}"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys"),
    ("DELETE", "/v1/keys/{id}"),
    ("POST", "/v1/budgets"),
    ("GET", "/v1/budgets"),
    ("GET", "/v1/budgets/{id}"),
    ("PATCH", "/v1/budgets/{id}"),
    ("DELETE", "/v1/budgets/{id}"),
    ("POST", "/v1/alert-configs"),
    ("GET", "/v1/alert-configs"),
    ("DELETE", "/v1/alert-configs/{id}"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/spend"),
    ("GET", "/v1/cost-records"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/dashboard"),
];

/// SPEC §8 routes tollgate does not serve yet. They must not be described either: whoever
/// adds one takes it off this list, and the test then checks it is described.
const NOT_YET: &[(&str, &str)] = &[];

/// Routes that need no token (SPEC §8: metrics on loopback; README: the description).
const PUBLIC: &[&str] =
    &["/healthz", "/readyz", "/openapi.json", "/metrics", "/dashboard/login", "/dashboard/logout"];

/// Whether an operation can be called without the token (an empty security requirement
/// among its own), as the router reads it.
fn public(op: &Value) -> bool {
    op.get("security")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|r| r == &serde_json::json!({})))
}

async fn description(app: &TestApp) -> Value {
    let req =
        Request::get(format!("http://{}/openapi.json", app.admin)).body(Full::new(Bytes::new())).unwrap();
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200, "the description needs no token");
    assert_eq!(got.headers["content-type"], "application/json");
    got.json()
}

/// Every (method, path template) the description documents.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

#[tokio::test]
async fn the_description_is_openapi_3_1_and_holds_every_spec_route() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let doc = description(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: Vec<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    for (method, path) in SPEC_ROUTES {
        let here = documented.contains(&(method.to_string(), path.to_string()));
        if NOT_YET.contains(&(method, path)) {
            assert!(!here, "{method} {path} is described: take it off NOT_YET");
        } else {
            assert!(here, "{method} {path} of SPEC §8 is not in /openapi.json");
        }
    }
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
}

#[tokio::test]
async fn every_reference_in_the_description_resolves() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let doc = description(&app).await;
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external reference {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_handler_serves_a_described_operation_and_back() {
    let router = tollgate::admin::router();
    assert_eq!(router.problems, Vec::<String>::new());
    assert_eq!(router.routes().count(), tollgate::admin::HANDLERS.len());
}

#[tokio::test]
async fn the_router_answers_every_described_operation_and_nothing_else() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let doc = description(&app).await;
    for (method, path, op) in operations(&doc) {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let got = app.admin(&method, &concrete, None).await;
        assert_ne!(got.status, 405, "{method} {path}");
        let body: Value = serde_json::from_slice(&got.body).unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_ne!(message, "no such route", "{method} {path} is described but not routed");
        // The documented answers include the one given.
        let status = got.status.as_u16().to_string();
        assert!(op["responses"].get(&status).is_some(), "{method} {path} answered {status}, not documented");
        // Without a token: only what documents no security requirement.
        let req = Request::builder()
            .method(method.as_str())
            .uri(format!("http://{}{concrete}", app.admin))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let anonymous = send(&client(), req).await.status;
        let public = public(&op);
        assert_eq!(public, PUBLIC.contains(&path.as_str()), "{method} {path}");
        assert_eq!(anonymous == 401, !public, "{method} {path} without a token: {anonymous}");
    }
    // Not described, not served: an unknown path is 404, an unknown method 405 naming
    // the methods that would do.
    assert_eq!(app.admin("GET", "/v1/nothing", None).await.status, 404);
    assert_eq!(app.admin("GET", &format!("/v1/alerts/{}", uuid::Uuid::new_v4()), None).await.status, 404);
    let put = app.admin("PUT", "/v1/organizations", None).await;
    assert_eq!(put.status, 405);
    assert_eq!(put.headers["allow"], "GET, POST");
    let get = app.admin("GET", &format!("/v1/alert-configs/{}", uuid::Uuid::new_v4()), None).await;
    assert_eq!((get.status.as_u16(), get.headers["allow"].to_str().unwrap()), (405, "DELETE"));
}

/// docs/ADMIN_API.md's route table is the description's, row for row; on a mismatch the
/// message holds the table to paste.
#[tokio::test]
async fn the_route_table_in_the_docs_is_the_descriptions() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let doc = description(&app).await;
    let mut table =
        String::from("| method | path | operation | token | what it does |\n|---|---|---|---|---|\n");
    for (method, path, op) in operations(&doc) {
        let token = match op.get("security") {
            Some(s) if s == &serde_json::json!([{}]) => "no",
            _ if public(&op) => "optional",
            _ => "yes",
        };
        let id = op["operationId"].as_str().unwrap();
        let summary = op["summary"].as_str().unwrap_or_default().replace('\n', " ");
        table.push_str(&format!("| {method} | `{path}` | `{id}` | {token} | {summary} |\n"));
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ADMIN_API.md")).unwrap();
    let (_, rest) =
        text.split_once("<!-- routes:begin -->\n").expect("docs/ADMIN_API.md has no routes:begin");
    let (written, _) = rest.split_once("<!-- routes:end -->").expect("docs/ADMIN_API.md has no routes:end");
    assert!(written == table, "docs/ADMIN_API.md's route table is stale; it should read:\n{table}");
}
