//! Configuration: the TOML file as written (serde, unknown fields rejected), `${ENV}`
//! expansion, built-in defaults, and the validated [`Config`] the rest of the code uses.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;

use crate::provider::ProviderKind;

mod raw;
use raw::{RawConfig, RawLedger, RawProvider};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "TOLLGATE_CONFIG";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: environment variable {var} is not set")]
    MissingEnv { path: String, var: String },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
}

fn invalid(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_owned(), message: message.into() }
}

/// One upstream provider, validated.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Path prefix and label: `/{name}/...`.
    pub name: String,
    pub kind: ProviderKind,
    /// Scheme and authority of the upstream, e.g. `https://api.openai.com`.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Path prefix of the base URL without a trailing slash (Azure deployments), maybe empty.
    pub base_path: String,
    /// Query of the base URL (Azure `api-version=...`), appended to every request.
    pub base_query: Option<String>,
    /// The real provider key; `None` means the client's own key passes through (headers mode).
    pub api_key: Option<String>,
    /// Lowercase header name the key is sent upstream in; `authorization` means `Bearer`.
    pub auth_header: http::HeaderName,
    /// Model assumed for pricing when a request names none (Azure deployments).
    pub default_model: Option<String>,
}

/// How the proxy identifies who is spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Keys,
    Headers,
}

/// What happens to paths that cannot be metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmetered {
    Forward,
    Deny,
}

/// What happens to a request for a model with no price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownModel {
    /// Forward; record usage with cost 0 and `priced = false`.
    Allow,
    /// Refuse with 400 `unknown_model`.
    Reject,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub default_provider: String,
    pub max_request_bytes: u64,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub unmetered: Unmetered,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub upstream_ca_file: Option<PathBuf>,
    /// Client connections: time to send a request's head, and how many may be open.
    pub client_limits: crate::server::ClientLimits,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<String>,
    pub database_url: String,
    /// Pool size and connection wait of the database.
    pub database_pool: crate::store::PoolSettings,
    pub auth_mode: AuthMode,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub providers: Vec<Provider>,
    /// The price list: shipped (or `pricing.file`) plus `[[pricing.models]]` overrides.
    pub prices: std::sync::Arc<crate::pricing::PriceList>,
    pub unknown_model: UnknownModel,
    /// Meter and record metered endpoints; off makes tollgate a plain authenticating proxy
    /// (for benchmarks and emergencies).
    pub metering_enabled: bool,
    /// Add `stream_options.include_usage` to OpenAI chat streams that lack it.
    pub inject_stream_usage: bool,
    /// Largest non-streaming JSON body kept for metering (past it: usage unknown).
    pub max_json_bytes: usize,
    /// Largest single server-sent event buffered for metering.
    pub max_event_bytes: usize,
    /// The cost journal: directory, size limit, fsync interval.
    pub journal: crate::journal::JournalSettings,
    /// Fields that were read but no longer do anything (logged at start).
    pub ignored: Vec<&'static str>,
    /// How hard budgets admit requests.
    pub admission: crate::budget::AdmissionMode,
    /// Output cap assumed for the estimate when a request names none.
    pub default_max_output_tokens: u64,
    /// Budget leases of replicas sharing a PostgreSQL database.
    pub leases: crate::budget::LeaseSettings,
    /// Alert webhook delivery.
    pub alert_delivery: crate::alerts::DeliverySettings,
}

impl Config {
    /// Loads from `path`, or from `$TOLLGATE_CONFIG`, or built-in defaults when neither is set.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
        match path.map(Path::to_path_buf).or(from_env) {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|source| ConfigError::Read { path: p.clone(), source })?;
                Config::from_toml(&text)
            }
            None => Config::from_toml(""),
        }
    }

    /// Parses and validates config text; environment variables are read from the process.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates config text with an explicit environment lookup.
    pub fn from_toml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Parse { path, message: e.into_inner().message().trim().to_owned() }
        })?;
        validate(raw, env)
    }

    /// Looks a provider up by its name.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in a string; a missing variable without default is an error.
pub fn expand_env(
    value: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(invalid(path, "unterminated ${ in value"));
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(ConfigError::MissingEnv { path: path.to_owned(), var: name.to_owned() })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_addr(value: &str, path: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| invalid(path, format!("'{value}' is not a socket address like 127.0.0.1:8080")))
}

fn default_providers() -> Vec<RawProvider> {
    ProviderKind::ALL
        .into_iter()
        .map(|kind| {
            let d = kind.defaults();
            RawProvider {
                name: d.name.into(),
                kind: d.name.into(),
                base_url: d.base_url.into(),
                api_key: Some(format!("${{{}:-}}", d.key_var)),
                auth_header: None,
                default_model: None,
            }
        })
        .collect()
}

fn validate(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let s = raw.server;
    let listen = parse_addr(&expand_env(&s.listen, "server.listen", env)?, "server.listen")?;
    let admin_listen = parse_addr(&expand_env(&raw.admin.listen, "admin.listen", env)?, "admin.listen")?;
    let admin_token = match raw.admin.token {
        Some(t) => Some(expand_env(&t, "admin.token", env)?).filter(|t| !t.is_empty()),
        None => None,
    };
    if admin_token.is_none() && !admin_listen.ip().is_loopback() {
        return Err(invalid(
            "admin.token",
            format!("the admin API on non-loopback address {admin_listen} needs a token"),
        ));
    }
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(c), Some(k)) => Some((
            PathBuf::from(expand_env(&c, "server.tls_cert", env)?),
            PathBuf::from(expand_env(&k, "server.tls_key", env)?),
        )),
        (None, None) => None,
        _ => return Err(invalid("server.tls_cert", "tls_cert and tls_key must be set together")),
    };
    if s.max_request_bytes == 0 {
        return Err(invalid("server.max_request_bytes", "must be greater than 0"));
    }
    let unmetered = match s.unmetered.as_str() {
        "forward" => Unmetered::Forward,
        "deny" => Unmetered::Deny,
        other => return Err(invalid("server.unmetered", format!("'{other}' is not forward or deny"))),
    };
    let auth_mode = match raw.auth.mode.as_str() {
        "keys" => AuthMode::Keys,
        "headers" => AuthMode::Headers,
        other => return Err(invalid("auth.mode", format!("'{other}' is not keys or headers"))),
    };
    let log_format = match raw.log.format.as_str() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => return Err(invalid("log.format", format!("'{other}' is not human or json"))),
    };
    let providers = validate_providers(raw.providers, env)?;
    let unknown_model = match raw.pricing.unknown_model.as_str() {
        "allow" => UnknownModel::Allow,
        "reject" => UnknownModel::Reject,
        other => return Err(invalid("pricing.unknown_model", format!("'{other}' is not allow or reject"))),
    };
    let prices = load_prices(raw.pricing.file, raw.pricing.models, env)?;
    let admission = match raw.budgets.admission.as_str() {
        "reserve" => crate::budget::AdmissionMode::Reserve,
        "spent" => crate::budget::AdmissionMode::Spent,
        other => return Err(invalid("budgets.admission", format!("'{other}' is not reserve or spent"))),
    };
    let b = &raw.budgets;
    if b.lease_ttl_ms < 300 || b.lease_idle_ms == 0 || b.lease_max_requests == 0 {
        return Err(invalid(
            "budgets",
            "lease_ttl_ms must be >= 300, lease_idle_ms and lease_max_requests > 0",
        ));
    }
    let leases = crate::budget::LeaseSettings {
        ttl: Duration::from_millis(b.lease_ttl_ms),
        idle: Duration::from_millis(b.lease_idle_ms),
        max_requests: b.lease_max_requests,
    };
    if raw.alerts.max_attempts == 0 {
        return Err(invalid("alerts.max_attempts", "must be at least 1"));
    }
    let m = raw.metering;
    if m.max_json_bytes == 0 || m.max_event_bytes == 0 {
        return Err(invalid("metering", "max_json_bytes and max_event_bytes must be > 0"));
    }
    let ignored = if m.record_queue.is_some() { vec!["metering.record_queue"] } else { Vec::new() };
    let database_url = expand_env(&raw.database.url, "database.url", env)?;
    let journal = journal_settings(raw.ledger, &database_url, env)?;
    let default_provider = s.default_provider;
    if !providers.iter().any(|p| p.name == default_provider) {
        return Err(invalid(
            "server.default_provider",
            format!("'{default_provider}' is not a configured provider"),
        ));
    }
    let ms = Duration::from_millis;
    Ok(Config {
        listen,
        default_provider,
        max_request_bytes: s.max_request_bytes,
        tls,
        unmetered,
        connect_timeout: ms(s.connect_timeout_ms),
        first_byte_timeout: ms(s.first_byte_timeout_ms),
        idle_timeout: ms(s.idle_timeout_ms),
        shutdown_grace: ms(s.shutdown_grace_ms),
        client_limits: crate::server::ClientLimits {
            head_timeout: ms(s.head_timeout_ms.max(1)),
            max_connections: s.max_connections.max(1),
            body_timeout: ms(s.body_timeout_ms.max(1)),
            send_timeout: ms(s.send_timeout_ms.max(1)),
            keepalive_timeout: ms(s.keepalive_timeout_ms.max(1)),
        },
        upstream_ca_file: s
            .upstream_ca_file
            .map(|f| expand_env(&f, "server.upstream_ca_file", env).map(PathBuf::from))
            .transpose()?,
        admin_listen,
        admin_token,
        database_url,
        database_pool: crate::store::PoolSettings {
            max_connections: raw.database.max_connections.max(1),
            acquire_timeout: Duration::from_millis(raw.database.acquire_timeout_ms.max(1)),
        },
        auth_mode,
        log_format,
        log_filter: raw.log.filter,
        providers,
        prices: std::sync::Arc::new(prices),
        unknown_model,
        metering_enabled: m.enabled,
        inject_stream_usage: m.inject_stream_usage,
        max_json_bytes: m.max_json_bytes,
        max_event_bytes: m.max_event_bytes,
        journal,
        ignored,
        admission,
        leases,
        default_max_output_tokens: raw.budgets.default_max_output_tokens,
        alert_delivery: crate::alerts::DeliverySettings {
            retry_base: ms(raw.alerts.retry_base_ms),
            max_attempts: raw.alerts.max_attempts,
            timeout: ms(raw.alerts.webhook_timeout_ms),
        },
    })
}

/// The journal's settings; its directory defaults to the SQLite file's name with
/// `.journal` (`tollgate.journal` beside `tollgate.db`), or `tollgate.journal` in the
/// working directory for PostgreSQL.
fn journal_settings(
    raw: RawLedger,
    database_url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::journal::JournalSettings, ConfigError> {
    let dir = match raw.journal_dir {
        Some(d) => PathBuf::from(expand_env(&d, "ledger.journal_dir", env)?),
        // Named after the database file (`tollgate.db` -> `tollgate.journal`), so two
        // databases in one directory do not share (and lock each other out of) one.
        None => crate::store::sqlite_path(database_url)
            .map(|db| db.with_extension("journal"))
            .unwrap_or_else(|| PathBuf::from("tollgate.journal")),
    };
    if raw.journal_max_bytes < 1 << 20 {
        return Err(invalid("ledger.journal_max_bytes", "must be at least 1048576 (1 MiB)"));
    }
    Ok(crate::journal::JournalSettings {
        dir,
        max_bytes: raw.journal_max_bytes,
        fsync: Duration::from_millis(raw.fsync_ms),
    })
}

/// The shipped list (or `pricing.file`), then the config's own entries on top.
fn load_prices(
    file: Option<String>,
    models: Vec<crate::pricing::RawModelPrice>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::pricing::PriceList, ConfigError> {
    let base = match file {
        Some(f) => {
            let path = expand_env(&f, "pricing.file", env)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid("pricing.file", format!("cannot read {path}: {e}")))?;
            crate::pricing::PriceList::from_toml(&text)
                .map_err(|e| invalid("pricing.file", format!("{path}: {e}")))?
        }
        None => crate::pricing::PriceList::shipped()
            .map_err(|e| invalid("pricing", format!("shipped price list: {e}")))?,
    };
    let mut overrides = Vec::with_capacity(models.len());
    for (i, m) in models.into_iter().enumerate() {
        let path = format!("pricing.models[{i}]");
        overrides.push(m.validate(&path).map_err(|e| invalid(&path, e.to_string()))?);
    }
    Ok(base.with_overrides(overrides))
}

/// Configured providers override the built-in ones of the same name; the others stay.
fn validate_providers(
    configured: Vec<RawProvider>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Provider>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in configured.into_iter().enumerate() {
        let path = format!("providers[{i}]");
        if !names.insert(p.name.clone()) {
            return Err(invalid(&format!("{path}.name"), format!("duplicate provider '{}'", p.name)));
        }
        out.push(validate_provider(p, &path, env)?);
    }
    for p in default_providers() {
        if !names.contains(&p.name) {
            let path = format!("providers.{}(built-in)", p.name);
            out.push(validate_provider(p, &path, env)?);
        }
    }
    Ok(out)
}

fn validate_provider(
    p: RawProvider,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    let name_ok =
        !p.name.is_empty() && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok || p.name == "v1" || p.name == "v1beta" {
        return Err(invalid(
            &format!("{path}.name"),
            format!("'{}' must be [A-Za-z0-9_-]+ and not an API version segment", p.name),
        ));
    }
    let kind = ProviderKind::parse(&p.kind).ok_or_else(|| {
        invalid(&format!("{path}.kind"), format!("'{}' is not openai, anthropic or gemini", p.kind))
    })?;
    let url_path = format!("{path}.base_url");
    let base_url = expand_env(&p.base_url, &url_path, env)?;
    let uri: Uri = base_url.parse().map_err(|_| invalid(&url_path, format!("'{base_url}' is not a URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
        return Err(invalid(&url_path, format!("'{base_url}' needs a scheme and a host")));
    };
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(invalid(&url_path, "scheme must be http or https"));
    }
    let api_key = match p.api_key {
        Some(k) => Some(expand_env(&k, &format!("{path}.api_key"), env)?).filter(|k| !k.is_empty()),
        None => None,
    };
    let header_path = format!("{path}.auth_header");
    let auth_header = p.auth_header.unwrap_or_else(|| kind.default_auth_header().to_owned());
    let auth_header = http::HeaderName::from_bytes(auth_header.to_ascii_lowercase().as_bytes())
        .map_err(|_| invalid(&header_path, format!("'{auth_header}' is not a header name")))?;
    Ok(Provider {
        name: p.name,
        kind,
        scheme,
        authority,
        base_path: uri.path().trim_end_matches('/').to_owned(),
        base_query: uri.query().filter(|q| !q.is_empty()).map(str::to_owned),
        api_key,
        auth_header,
        default_model: p.default_model.filter(|m| !m.is_empty()),
    })
}

#[cfg(test)]
mod tests;
