//! Admin API: auth, strict validation naming the field, CRUD round trips, pagination,
//! cross-organization keys refused, history-preserving deletes.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn admin_api_requires_the_token_but_health_does_not() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    for auth in [None, Some("Bearer wrong")] {
        let mut req = Request::get(format!("http://{}/v1/organizations", app.admin));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let got = send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(got.status, 401);
    }
    for path in ["/healthz", "/readyz"] {
        let req = Request::get(format!("http://{}{path}", app.admin)).body(Full::new(Bytes::new())).unwrap();
        assert_eq!(send(&client(), req).await.status, 200);
    }
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field_and_writes_nothing() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let cases = [
        ("/v1/organizations", json!({"name": ""}), "name"),
        ("/v1/organizations", json!({"name": 5}), "name"),
        ("/v1/organizations", json!({"nmae": "x"}), "nmae"),
        ("/v1/projects", json!({"organization_id": "not-a-uuid", "name": "p"}), "organization_id"),
        ("/v1/users", json!({"organization_id": uuid::Uuid::new_v4(), "external_id": true}), "external_id"),
        ("/v1/keys", json!({"user_id": uuid::Uuid::new_v4()}), "project_id"),
    ];
    for (path, body, field) in cases {
        let got = app.admin("POST", path, Some(body.clone())).await;
        assert_eq!(got.status, 400, "{path} {body}");
        let j = got.json();
        let text = j.to_string();
        assert!(text.contains(field), "{path} {body}: {text}");
    }
    let got = app.admin("POST", "/v1/organizations", None).await;
    assert_eq!(got.status, 400);
    let req = Request::post(format!("http://{}/v1/organizations", app.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from_static(b"{\"name\": \"unterminated")))
        .unwrap();
    assert_eq!(send(&client(), req).await.status, 400);
    let list = app.admin("GET", "/v1/organizations", None).await;
    assert_eq!(list.json()["data"], json!([]), "a rejected request wrote something");
    assert_eq!(app.admin("GET", "/v1/nothing", None).await.status, 404);
    assert_eq!(app.admin("GET", "/v1/organizations/xyz", None).await.status, 400);
    assert_eq!(
        app.admin("GET", &format!("/v1/organizations/{}", uuid::Uuid::new_v4()), None).await.status,
        404
    );
    assert_eq!(app.admin("PUT", "/v1/organizations", None).await.status, 405);
    assert_eq!(app.admin("GET", "/v1/organizations?limit=0", None).await.status, 400);
}

#[tokio::test]
async fn a_key_cannot_bind_a_user_to_another_organizations_project() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let a = app.seed().await;
    let b = app.seed().await;
    let got =
        app.admin("POST", "/v1/keys", Some(json!({"user_id": a.user_id, "project_id": b.project_id}))).await;
    assert_eq!(got.status, 422);
    assert!(got.json()["error"]["message"].as_str().unwrap().contains("different organizations"));
    let keys = app.admin("GET", &format!("/v1/keys?user_id={}", a.user_id), None).await;
    assert_eq!(keys.json()["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn crud_round_trip_with_pagination_and_no_plaintext_after_creation() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let got = app.admin("POST", "/v1/organizations", Some(json!({"name": format!("org{i}")}))).await;
        assert_eq!(got.status, 201);
        let j = got.json();
        assert!(j["created_at"].is_string());
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    let dup = app.admin("POST", "/v1/organizations", Some(json!({"name": "org0"}))).await;
    assert_eq!(dup.status, 409);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/organizations?limit=2&cursor={c}"),
            None => "/v1/organizations?limit=2".to_owned(),
        };
        let page = app.admin("GET", &path, None).await.json();
        for o in page["data"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let renamed =
        app.admin("PATCH", &format!("/v1/organizations/{}", ids[0]), Some(json!({"name": "renamed"}))).await;
    assert_eq!(renamed.json()["name"], "renamed");

    let s = app.seed().await;
    let key = app.admin("GET", &format!("/v1/keys/{}", s.key_id), None).await.json();
    assert!(key.get("key").is_none(), "plaintext key shown after creation");
    assert!(s.key.starts_with(key["prefix"].as_str().unwrap()));
    let user = app
        .admin("PATCH", &format!("/v1/users/{}", s.user_id), Some(json!({"email": "a@example.com"})))
        .await;
    assert_eq!(user.json()["email"], "a@example.com");
    // Deleting an organization cascades its configuration children.
    let deleted = app.admin("DELETE", &format!("/v1/organizations/{}", s.org_id), None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(app.admin("GET", &format!("/v1/keys/{}", s.key_id), None).await.status, 404);
    assert_eq!(app.admin("GET", &format!("/v1/users/{}", s.user_id), None).await.status, 404);
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), &s.key, "{}")).await;
    assert_eq!(got.status, 401);
}

#[tokio::test]
async fn refused_admin_requests_do_not_empty_the_caches() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 200);
    // Revoked behind tollgate's back (no admin write, no change counter): only a cache
    // reload would notice, so the key's next answer says whether the cache was emptied.
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    sqlx::query("UPDATE api_keys SET revoked_at = '2026-01-01T00:00:00.000000Z'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    for _ in 0..20 {
        let unauthenticated = Request::post(format!("http://{}/v1/organizations", app.admin))
            .body(Full::new(Bytes::from_static(b"{\"name\":\"x\"}")))
            .unwrap();
        assert_eq!(send(&client(), unauthenticated).await.status, 401);
        assert_eq!(app.admin("POST", "/x", Some(json!({}))).await.status, 404);
        assert_eq!(app.admin("POST", "/v1/budgets", Some(json!({"scope": "team"}))).await.status, 400);
        // Writes to the service routes are no writes at all.
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert_eq!(app.admin("POST", path, Some(json!({}))).await.status, 405, "{path}");
        }
    }
    assert_eq!(
        send(&client(), openai_post(&url, &s.key, "{}")).await.status,
        200,
        "a refused request emptied the caches"
    );
    // A real write does.
    assert_eq!(app.admin("POST", "/v1/organizations", Some(json!({"name": "real"}))).await.status, 201);
    assert_eq!(send(&client(), openai_post(&url, &s.key, "{}")).await.status, 403);
}

#[tokio::test]
async fn an_unknown_key_costs_one_lookup_until_the_next_admin_write() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let s = app.seed().await;
    let url = app.url("/v1/chat/completions");
    let made_up = tollgate::identity::generate_key();
    assert_eq!(send(&client(), openai_post(&url, &made_up.plaintext, "{}")).await.status, 401);
    // The key appears in the database behind tollgate's back: the remembered miss still
    // answers (no query per attempt), until an admin write empties the caches.
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, organization_id, project_id, user_id, name, key_hash, prefix, created_at)
         VALUES (?, ?, ?, ?, NULL, ?, ?, '2026-01-01T00:00:00.000000Z')",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&s.org_id)
    .bind(&s.project_id)
    .bind(&s.user_id)
    .bind(hex::encode(made_up.hash))
    .bind(&made_up.prefix)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    for _ in 0..5 {
        assert_eq!(send(&client(), openai_post(&url, &made_up.plaintext, "{}")).await.status, 401);
    }
    assert_eq!(app.admin("POST", "/v1/organizations", Some(json!({"name": "any write"}))).await.status, 201);
    assert_eq!(send(&client(), openai_post(&url, &made_up.plaintext, "{}")).await.status, 200);
}

/// Found by schemathesis: serde reads a struct from a JSON array too, so `["x", true]`
/// renamed and archived an organization; and text after the object was ignored.
#[tokio::test]
async fn a_body_must_be_one_json_object() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    let org = app.admin("POST", "/v1/organizations", Some(json!({"name": "kept"}))).await.json();
    let patch = format!("/v1/organizations/{}", org["id"].as_str().unwrap());
    let cases: [(&str, &str, &[u8]); 7] = [
        ("PATCH", &patch, b"[\"renamed\", true]"),
        ("PATCH", &patch, b"[null, null]"),
        ("POST", "/v1/organizations", b"[\"positional\"]"),
        ("POST", "/v1/organizations", b"\"a string\""),
        ("POST", "/v1/organizations", b"null"),
        ("POST", "/v1/organizations", b"{\"name\": \"trailing\"} {\"name\": \"more\"}"),
        ("PATCH", &patch, b"{\"name\": \"trailing\"}x"),
    ];
    for (method, path, body) in cases {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", app.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let got = send(&client(), req).await;
        assert_eq!(got.status, 400, "{method} {}", String::from_utf8_lossy(body));
    }
    let list = app.admin("GET", "/v1/organizations", None).await.json();
    assert_eq!(list["data"], json!([org]), "a refused body changed something");
}

/// Found by schemathesis: `?organization_id=` (a client's variable that came out empty)
/// was read as "no filter" and listed every organization's projects.
#[tokio::test]
async fn an_empty_query_parameter_is_an_error_not_no_filter() {
    let app = spawn_app(|_| Reply::json(200, "{}")).await;
    app.seed().await;
    let cases = [
        ("/v1/projects?organization_id=", "organization_id"),
        ("/v1/users?organization_id=", "organization_id"),
        ("/v1/keys?user_id=", "user_id"),
        ("/v1/budgets?scope_id=", "scope_id"),
        ("/v1/alert-configs?budget_id=", "budget_id"),
        ("/v1/alerts?budget_id=", "budget_id"),
        ("/v1/organizations?cursor=", "cursor"),
        ("/v1/cost-records?project_id=", "project_id"),
        ("/v1/spend?from=", "from"),
        ("/v1/spend?group_by=", "group_by"),
    ];
    for (path, field) in cases {
        let got = app.admin("GET", path, None).await;
        assert_eq!(got.status, 400, "{path}");
        assert_eq!(got.json()["error"]["field"], field, "{path}");
    }
    // An empty text filter is still no filter.
    assert_eq!(app.admin("GET", "/v1/cost-records?model=", None).await.status, 200);
}

/// Found by schemathesis on PostgreSQL: a NUL byte in a text filter (`?model=%00`) reached
/// the database, which refuses it in a text parameter: a 500. Now a 400 on both backends.
#[tokio::test]
async fn a_control_character_in_a_text_filter_is_a_400_on_both_backends() {
    let mock = Mock::start(|_| Reply::json(200, "{}")).await;
    let db = crate::db::TestDb::new(crate::db::Backend::Postgres).await;
    let pg = crate::replicas::Replica::start(&db.url, &mock.url(), "").await;
    let lite = spawn_app(|_| Reply::json(200, "{}")).await;
    for path in ["/v1/cost-records?model=%00", "/v1/spend?provider=a%00b", "/v1/spend?model=x%0Ay"] {
        for got in [pg.admin("GET", path, None).await, lite.admin("GET", path, None).await] {
            assert_eq!(got.status, 400, "{path}");
            assert!(
                ["model", "provider"].contains(&got.json()["error"]["field"].as_str().unwrap()),
                "{path}"
            );
        }
    }
}
