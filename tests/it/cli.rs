//! The command line for scripts: `--json` prints what the admin API returns (created
//! objects, lists in its envelope, spend reports), and a failed command exits with the
//! code `tollgate --help` documents, on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::db::{Backend, TestDb};
use crate::metering::record_for;
use crate::support::*;

/// What one run of the binary did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `tollgate --config CONFIG ARGS...` (async, so an in-process server keeps running).
async fn tollgate(config: &Path, args: &[&str]) -> Ran {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .await
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed and print JSON; returns what it printed.
async fn json_of(config: &Path, args: &[&str]) -> Value {
    let ran = tollgate(config, args).await;
    assert_eq!(ran.code, 0, "tollgate {args:?} failed: {}", ran.stderr);
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("tollgate {args:?}: not JSON ({e}): {}", ran.stdout))
}

/// Asserts the exit code of a failing command; returns its stderr.
async fn fails_with(config: &Path, args: &[&str], code: i32) -> String {
    let ran = tollgate(config, args).await;
    assert_eq!(ran.code, code, "tollgate {args:?}: stdout {} stderr {}", ran.stdout, ran.stderr);
    assert!(ran.stdout.is_empty(), "tollgate {args:?} printed {}", ran.stdout);
    ran.stderr
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
}

/// Upstream answering every chat completion with 1,000 input and 100 output tokens.
fn usage_reply(seen: &Seen) -> Reply {
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [],
               "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}})
        .to_string(),
    )
}

#[tokio::test]
async fn json_output_is_what_the_admin_api_returns() {
    let app = spawn_app(usage_reply).await;
    let cfg = write_config(app._dir.path(), "cli.toml", &format!("[database]\nurl = \"{}\"\n", app.db_url()));
    let cfg = cfg.as_path();

    let name = unique("acme");
    let org = json_of(cfg, &["organization", "create", &name, "--json"]).await;
    assert_eq!(org["name"], name.as_str());
    let project = json_of(cfg, &["project", "create", "--org", id(&org), "web", "--json"]).await;
    assert_eq!(project["organization_id"], org["id"]);
    let user = json_of(
        cfg,
        &["user", "create", "--org", id(&org), "alice", "--email", "alice@example.com", "--json"],
    )
    .await;
    assert_eq!((&user["external_id"], &user["email"]), (&json!("alice"), &json!("alice@example.com")));
    let key = json_of(
        cfg,
        &["key", "create", "--user", id(&user), "--project", id(&project), "--name", "laptop", "--json"],
    )
    .await;
    let plaintext = key["key"].as_str().unwrap();
    assert!(plaintext.starts_with("tg_") && plaintext.starts_with(key["prefix"].as_str().unwrap()), "{key}");
    assert_eq!(
        (&key["user_id"], &key["project_id"], &key["name"]),
        (&user["id"], &project["id"], &json!("laptop"))
    );
    let budget = json_of(
        cfg,
        &[
            "budget",
            "create",
            "--scope",
            "project",
            "--scope-id",
            id(&project),
            "--limit",
            "10",
            "--period",
            "monthly",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        (&budget["limit_usd"], &budget["spent_usd"], &budget["hard"], &budget["period"]),
        (&json!("10"), &json!("0"), &json!(true), &json!("monthly"))
    );
    let alert =
        json_of(cfg, &["alert-config", "create", "--budget", id(&budget), "--threshold", "80", "--json"])
            .await;
    assert_eq!((&alert["budget_id"], &alert["threshold_percent"]), (&budget["id"], &json!(80)));

    // The key the CLI printed works, and its request is recorded and priced.
    let body = json!({"model": "gpt-4o", "messages": []}).to_string();
    let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), plaintext, &body)).await;
    assert_eq!(got.status, 200);
    record_for(&app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;

    let project_id = id(&project);
    for (args, path) in [
        (vec!["organization", "list"], "/v1/organizations".to_owned()),
        (vec!["project", "list"], "/v1/projects".to_owned()),
        (vec!["user", "list", "--org", id(&org)], format!("/v1/users?organization_id={}", id(&org))),
        (vec!["key", "list"], "/v1/keys".to_owned()),
        (vec!["budget", "list"], "/v1/budgets".to_owned()),
        (vec!["alert-config", "list"], "/v1/alert-configs".to_owned()),
        (vec!["spend"], "/v1/spend?group_by=model".to_owned()),
        (
            vec!["spend", "--group-by", "key", "--project", project_id],
            format!("/v1/spend?group_by=key&project_id={project_id}"),
        ),
        (
            vec!["spend", "--group-by", "day", "--from", "2020-01-01"],
            "/v1/spend?group_by=day&from=2020-01-01".to_owned(),
        ),
    ] {
        let mut with_json = args.clone();
        with_json.push("--json");
        let cli = json_of(cfg, &with_json).await;
        let api = app.admin("GET", &path, None).await;
        assert_eq!(api.status, 200, "{path}");
        assert_eq!(cli, api.json(), "tollgate {args:?} vs GET {path}");
    }
    // What the create commands printed is what the lists hold; never a key's plaintext.
    let keys = json_of(cfg, &["key", "--json", "list"]).await;
    assert_eq!(keys["next_cursor"], Value::Null);
    let mut listed = keys["data"][0].clone();
    assert!(listed.get("key").is_none(), "{listed}");
    listed["key"] = key["key"].clone();
    assert_eq!(listed, key);
    assert_eq!(json_of(cfg, &["org", "--json", "list"]).await["data"], json!([org]));
    let spend = json_of(cfg, &["spend", "--json"]).await;
    // gpt-4o: (1000 * 2.5 + 100 * 10) / 1e6
    assert_eq!(
        spend["data"],
        json!([{"group": "gpt-4o", "requests": 1, "input_tokens": 1000, "output_tokens": 100, "cost_usd": "0.0035"}])
    );
    assert_eq!(spend["budgets"][0]["spent_usd"], "0.0035");

    // Writes print the object the admin API answers with.
    let changed = json_of(cfg, &["budget", "set-limit", id(&budget), "12.50", "--json"]).await;
    assert_eq!((&changed["limit_usd"], &changed["remaining_usd"]), (&json!("12.5"), &json!("12.4965")));
    let archived = json_of(cfg, &["user", "archive", id(&user), "--json"]).await;
    assert!(archived["archived_at"].is_string(), "{archived}");
    assert_eq!(archived, app.admin("GET", &format!("/v1/users/{}", id(&user)), None).await.json());
    let revoked = json_of(cfg, &["key", "revoke", id(&key), "--json"]).await;
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let gone = json_of(cfg, &["alert-config", "delete", id(&alert), "--json"]).await;
    assert_eq!(gone, json!({"id": alert["id"], "deleted": true}));
    let gone = json_of(cfg, &["budget", "delete", id(&budget), "--json"]).await;
    assert_eq!(gone, json!({"id": budget["id"], "deleted": true}));

    let price = json_of(cfg, &["pricing", "gpt-5.4-2026-03-05", "--json"]).await;
    assert_eq!(
        (&price["model"], &price["name"], &price["matched_by"], &price["input"], &price["cached_input"]),
        (&json!("gpt-5.4-2026-03-05"), &json!("gpt-5.4"), &json!("snapshot"), &json!("2.5"), &json!("0.25"))
    );
    assert_eq!(
        (&price["service_tiers"]["flex"]["input"], &price["cache_write"]),
        (&json!("1.25"), &Value::Null)
    );
    assert_eq!(price["service_tier_aliases"]["fast"], "priority");
    assert_eq!(price["web_search_per_1k"], "10");
}

#[tokio::test]
async fn exit_codes_name_what_went_wrong_on_both_databases() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_config(dir.path(), "cli.toml", &format!("[database]\nurl = \"{}\"\n", db.url));
        let cfg = cfg.as_path();
        let nobody = uuid::Uuid::new_v4().to_string();
        let nobody = nobody.as_str();

        for args in [
            vec!["organization", "archive", nobody],
            vec!["key", "revoke", nobody],
            vec!["project", "create", "--org", nobody, "web"],
            vec!["budget", "delete", nobody, "--json"],
        ] {
            let err = fails_with(cfg, &args, 4).await;
            assert!(err.contains("not found"), "{backend:?} {args:?}: {err}");
        }

        let org = json_of(cfg, &["organization", "create", "acme", "--json"]).await;
        let err = fails_with(cfg, &["organization", "create", "acme"], 5).await;
        assert!(err.contains("already exists"), "{backend:?}: {err}");
        json_of(cfg, &["user", "create", "--org", id(&org), "alice", "--json"]).await;
        fails_with(cfg, &["user", "create", "--org", id(&org), "alice"], 5).await;

        // Usage: clap's own checks, and values that do not fit together.
        let other = json_of(cfg, &["organization", "create", "other", "--json"]).await;
        let project = json_of(cfg, &["project", "create", "--org", id(&other), "web", "--json"]).await;
        let user = json_of(cfg, &["user", "create", "--org", id(&org), "bob", "--json"]).await;
        let err =
            fails_with(cfg, &["key", "create", "--user", id(&user), "--project", id(&project)], 2).await;
        assert!(err.contains("different organizations"), "{backend:?}: {err}");
        let scope_id = id(&project);
        for args in [
            vec![
                "budget",
                "create",
                "--scope",
                "planet",
                "--scope-id",
                scope_id,
                "--limit",
                "1",
                "--period",
                "daily",
            ],
            vec![
                "budget",
                "create",
                "--scope",
                "project",
                "--scope-id",
                scope_id,
                "--limit",
                "0",
                "--period",
                "daily",
            ],
            vec![
                "budget",
                "create",
                "--scope",
                "project",
                "--scope-id",
                scope_id,
                "--limit",
                "1",
                "--period",
                "hourly",
            ],
            vec!["alert-config", "create", "--budget", nobody, "--threshold", "0"],
            vec!["alert-config", "create", "--budget", nobody, "--threshold", "80", "--webhook", "ftp://x"],
            vec!["spend", "--group-by", "color"],
            vec!["spend", "--from", "yesterday"],
            vec!["organization", "archive", "not-a-uuid"],
            vec!["organization", "list", "--jsno"],
            vec!["serve", "--json"],
        ] {
            fails_with(cfg, &args, 2).await;
        }
        assert_eq!(
            json_of(cfg, &["budget", "list", "--json"]).await,
            json!({"data": [], "next_cursor": null})
        );
    }
}

#[tokio::test]
async fn exit_codes_for_configuration_and_an_unreachable_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    fails_with(&missing, &["organization", "list"], 3).await;
    let typo = write_config(dir.path(), "typo.toml", "[database]\nurll = \"sqlite://x.db\"\n");
    let err = fails_with(&typo, &["check-config"], 3).await;
    assert!(err.contains("database"), "{err}");
    let mysql = write_config(dir.path(), "mysql.toml", "[database]\nurl = \"mysql://localhost/x\"\n");
    fails_with(&mysql, &["organization", "list"], 3).await;

    // Nothing listens on port 1; a SQLite file cannot be created in a missing directory.
    let down = "[database]\nurl = \"postgres://postgres@127.0.0.1:1/test\"\nacquire_timeout_ms = 300\n";
    let down = write_config(dir.path(), "down.toml", down);
    let err = fails_with(&down, &["organization", "list", "--json"], 6).await;
    assert!(err.contains("opening database"), "{err}");
    let nowhere = format!("[database]\nurl = \"sqlite://{}/no/such/dir/t.db\"\n", dir.path().display());
    let nowhere = write_config(dir.path(), "nowhere.toml", &nowhere);
    fails_with(&nowhere, &["migrate"], 6).await;

    let ok = write_config(dir.path(), "ok.toml", "");
    fails_with(&ok, &["pricing", "no-such-model"], 4).await;
    // A reader that stops early (`| head -1`, `grep -q`) is no failure: tollgate must not
    // panic on the closed pipe (println! would), or `set -o pipefail` scripts break.
    for args in [&["pricing", "gpt-5.4"][..], &["pricing", "--json", "gpt-5.4"]] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(&ok)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let help = tollgate(&ok, &["--help"]).await;
    assert_eq!(help.code, 0);
    for line in ["Exit codes:", "4  not found", "5  conflict", "6  database unavailable"] {
        assert!(help.stdout.contains(line), "{line:?} not in:\n{}", help.stdout);
    }
}
