//! The configuration file as written: serde structs with every default, unknown fields
//! rejected. `config.rs` validates these into [`super::Config`].

use serde::Deserialize;

/// The file as written. Every field has a default so an empty file is valid.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) admin: RawAdmin,
    pub(super) database: RawDatabase,
    pub(super) auth: RawAuth,
    pub(super) log: RawLog,
    pub(super) pricing: RawPricing,
    pub(super) metering: RawMetering,
    pub(super) ledger: RawLedger,
    pub(super) budgets: RawBudgets,
    pub(super) alerts: RawAlerts,
    pub(super) providers: Vec<RawProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBudgets {
    pub(super) admission: String,
    pub(super) default_max_output_tokens: u64,
    pub(super) lease_ttl_ms: u64,
    pub(super) lease_idle_ms: u64,
    pub(super) lease_max_requests: u32,
}

impl Default for RawBudgets {
    fn default() -> Self {
        RawBudgets {
            admission: "reserve".into(),
            default_max_output_tokens: 4096,
            lease_ttl_ms: 10_000,
            lease_idle_ms: 2_000,
            lease_max_requests: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAlerts {
    pub(super) retry_base_ms: u64,
    pub(super) max_attempts: u32,
    pub(super) webhook_timeout_ms: u64,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts { retry_base_ms: 1000, max_attempts: 6, webhook_timeout_ms: 10_000 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPricing {
    pub(super) file: Option<String>,
    pub(super) unknown_model: String,
    pub(super) models: Vec<crate::pricing::RawModelPrice>,
}

impl Default for RawPricing {
    fn default() -> Self {
        RawPricing { file: None, unknown_model: "allow".into(), models: Vec::new() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetering {
    pub(super) enabled: bool,
    pub(super) inject_stream_usage: bool,
    pub(super) max_json_bytes: usize,
    pub(super) max_event_bytes: usize,
    /// Read and ignored: the in-memory record queue it sized gave way to the journal
    /// (`[ledger]`). Kept so configs that set it still load; a warning says so.
    pub(super) record_queue: Option<usize>,
}

impl Default for RawMetering {
    fn default() -> Self {
        RawMetering {
            enabled: true,
            inject_stream_usage: true,
            max_json_bytes: 8 * 1024 * 1024,
            max_event_bytes: 1024 * 1024,
            record_queue: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLedger {
    pub(super) journal_dir: Option<String>,
    pub(super) journal_max_bytes: u64,
    pub(super) fsync_ms: u64,
}

impl Default for RawLedger {
    fn default() -> Self {
        RawLedger { journal_dir: None, journal_max_bytes: 1 << 30, fsync_ms: 5 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) default_provider: String,
    pub(super) max_request_bytes: u64,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) unmetered: String,
    pub(super) connect_timeout_ms: u64,
    pub(super) first_byte_timeout_ms: u64,
    pub(super) idle_timeout_ms: u64,
    pub(super) shutdown_grace_ms: u64,
    pub(super) upstream_ca_file: Option<String>,
    pub(super) head_timeout_ms: u64,
    pub(super) body_timeout_ms: u64,
    pub(super) send_timeout_ms: u64,
    pub(super) keepalive_timeout_ms: u64,
    pub(super) max_connections: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            default_provider: "openai".into(),
            max_request_bytes: 32 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            unmetered: "forward".into(),
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 600_000,
            idle_timeout_ms: 300_000,
            shutdown_grace_ms: 30_000,
            upstream_ca_file: None,
            head_timeout_ms: 30_000,
            body_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            keepalive_timeout_ms: 75_000,
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    pub(super) listen: String,
    pub(super) token: Option<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin { listen: "127.0.0.1:8081".into(), token: Some("${TOLLGATE_ADMIN_TOKEN:-}".into()) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) url: String,
    pub(super) max_connections: u32,
    pub(super) acquire_timeout_ms: u64,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase { url: "sqlite://tollgate.db".into(), max_connections: 8, acquire_timeout_ms: 5000 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
    pub(super) mode: String,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth { mode: "keys".into() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) format: String,
    pub(super) filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { format: "human".into(), filter: "info".into() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) base_url: String,
    #[serde(default)]
    pub(super) api_key: Option<String>,
    #[serde(default)]
    pub(super) auth_header: Option<String>,
    #[serde(default)]
    pub(super) default_model: Option<String>,
}
