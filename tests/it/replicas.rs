//! tollgate as real processes (the built binary): several replicas, each with its own
//! pool, on one fresh PostgreSQL database, in front of one in-process mock upstream; and
//! a process killed with SIGKILL.

mod alerts;
mod crash;
mod invalidation;
mod leases;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{admin_at, Got, ADMIN_TOKEN};

/// One running replica.
pub struct Replica {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// Its replica id (lease rows), from its start-up log line.
    pub replica_id: String,
    /// Everything it logged after starting.
    pub log: Arc<Mutex<String>>,
    child: tokio::process::Child,
    _dir: Option<tempfile::TempDir>,
}

impl Replica {
    /// Starts `tollgate serve` on `database_url` with the openai provider at `mock_url`;
    /// `budgets` holds extra `[budgets]` lines (lease timing).
    pub async fn start(database_url: &str, mock_url: &str, budgets: &str) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let mut replica = Replica::start_in(dir.path(), database_url, mock_url, budgets).await;
        replica._dir = Some(dir);
        replica
    }

    /// Like [`Replica::start`], with its config and journal in `dir` (kept by the caller,
    /// so a restart finds the journal a killed process left).
    pub async fn start_in(
        dir: &std::path::Path,
        database_url: &str,
        mock_url: &str,
        budgets: &str,
    ) -> Replica {
        let config = dir.join("tollgate.toml");
        let journal = dir.join("journal").display().to_string();
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\
                 [database]\nurl = \"{database_url}\"\nmax_connections = 4\n\
                 [ledger]\njournal_dir = \"{journal}\"\n\
                 [log]\nformat = \"json\"\nfilter = \"tollgate=info,warn\"\n\
                 [budgets]\n{budgets}\n\
                 [[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"{mock_url}\"\napi_key = \"sk-up\"\n"
            ),
        )
        .unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started: Value = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let line = lines.next_line().await.unwrap().expect("replica exited before starting");
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["fields"]["message"] == "tollgate started" {
                    return v;
                }
            }
        })
        .await
        .expect("replica start-up");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = |field: &str| started["fields"][field].as_str().unwrap().parse().unwrap();
        Replica {
            proxy: addr("proxy_addr"),
            admin: addr("admin_addr"),
            replica_id: started["fields"]["replica_id"].as_str().unwrap_or_default().to_owned(),
            log,
            child,
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Got {
        admin_at(self.admin, method, path, body).await
    }

    /// Kills the process with SIGKILL: no shutdown, no lease returned, no flush.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Asks the process to stop (SIGTERM) and waits for it to exit cleanly.
    pub async fn stop(&mut self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "exit status {status:?}");
    }
}

/// Creates a hard budget through `replica`'s admin API; returns its id.
pub async fn hard_budget(replica: &Replica, scope: &str, scope_id: &str, limit: &str) -> String {
    let got = replica
        .admin(
            "POST",
            "/v1/budgets",
            Some(json!({"scope": scope, "scope_id": scope_id, "limit_usd": limit, "period": "monthly", "hard": true})),
        )
        .await;
    assert_eq!(got.status, 201, "{:?}", got.body);
    got.json()["id"].as_str().unwrap().to_owned()
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
