//! The command line: `serve`, `migrate`, `check-config`, and admin subcommands that work
//! on the database directly (a running server picks their writes up within a second).
//! Every admin and report command takes `--json` and then prints what the admin API
//! returns; failures end with the exit codes of [`exit`].

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::app;
use crate::config::Config;
use crate::store::{self, Store};
use crate::window::Period;

/// `println!` for command output that a script may stop reading early: see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod entities;
mod exit;
mod report;
pub use exit::{exit_code, UsageError, EXIT_CODES};

/// tollgate: a spend gate for AI provider APIs.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file (default: $TOLLGATE_CONFIG, else built-in defaults).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin API.
    Serve,
    /// Create or upgrade the database schema.
    Migrate,
    /// Validate the configuration and print a summary.
    CheckConfig,
    /// Organizations.
    #[command(alias = "org")]
    Organization(Group<OrgCommand>),
    /// Projects.
    Project(Group<ProjectCommand>),
    /// Users.
    User(Group<UserCommand>),
    /// Tollgate keys.
    Key(Group<KeyCommand>),
    /// Budgets.
    Budget(Group<BudgetCommand>),
    /// Alert thresholds on budgets.
    #[command(name = "alert-config")]
    AlertConfig(Group<AlertConfigCommand>),
    /// Spend report from the cost records, as a table.
    Spend(SpendArgs),
    /// Show the prices a model name resolves to.
    Pricing {
        /// Model name as the provider reports it, e.g. gpt-4o-2024-08-06.
        model: String,
        /// Configured provider name (provider-restricted entries apply only to it).
        #[arg(long, default_value = "openai")]
        provider: String,
        #[command(flatten)]
        output: Output,
    },
}

/// A group of admin subcommands (`tollgate user ...`) and how they print.
#[derive(Debug, clap::Args)]
pub struct Group<C: Subcommand> {
    #[command(flatten)]
    pub output: Output,
    #[command(subcommand)]
    pub command: C,
}

/// How a command prints what it read or wrote.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Output {
    /// Print JSON: the objects the admin API returns (lists as {"data": [...],
    /// "next_cursor": null}, every page included).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Create a budget on an organization, project or user.
    Create {
        /// organization | project | user
        #[arg(long, value_parser = parse_scope)]
        scope: store::Scope,
        #[arg(long)]
        scope_id: Uuid,
        /// USD, e.g. 10 or 12.50
        #[arg(long, value_parser = parse_limit)]
        limit: Decimal,
        /// daily | weekly | monthly | total
        #[arg(long, value_parser = parse_period)]
        period: Period,
        /// Only alert, never refuse.
        #[arg(long)]
        soft: bool,
    },
    /// List budgets, with their current window's spend.
    List,
    /// Change a budget's limit.
    SetLimit {
        id: Uuid,
        #[arg(value_parser = parse_limit)]
        limit: Decimal,
    },
    /// Delete a budget (and its alert configs).
    Delete { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum AlertConfigCommand {
    /// Alert when a budget's window spend crosses a percentage of its limit.
    Create {
        #[arg(long = "budget")]
        budget_id: Uuid,
        /// 1..=1000
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        threshold: u32,
        /// http(s) URL that gets a JSON POST when the alert fires.
        #[arg(long, value_parser = parse_webhook)]
        webhook: Option<String>,
    },
    /// List alert configs.
    List {
        #[arg(long = "budget")]
        budget_id: Option<Uuid>,
    },
    /// Delete an alert config.
    Delete { id: Uuid },
}

/// Filters and grouping of `tollgate spend`.
#[derive(Debug, clap::Args)]
pub struct SpendArgs {
    /// organization | project | user | key | model | provider | day
    #[arg(long, default_value = "model", value_parser = parse_group_by)]
    pub group_by: store::GroupBy,
    /// Inclusive start: RFC 3339 time or YYYY-MM-DD.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end: RFC 3339 time or YYYY-MM-DD.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    #[arg(long = "org")]
    pub organization_id: Option<Uuid>,
    #[arg(long = "project")]
    pub project_id: Option<Uuid>,
    #[arg(long = "user")]
    pub user_id: Option<Uuid>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create { name: String },
    /// List organizations.
    List,
    /// Archive an organization: its keys stop working, its history stays.
    Archive { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project in an organization.
    Create {
        #[arg(long = "org")]
        organization_id: Uuid,
        name: String,
    },
    /// List projects.
    List {
        #[arg(long = "org")]
        organization_id: Option<Uuid>,
    },
    /// Archive a project.
    Archive { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in an organization.
    Create {
        #[arg(long = "org")]
        organization_id: Uuid,
        /// Your own identifier for the user (unique within the organization).
        external_id: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List {
        #[arg(long = "org")]
        organization_id: Option<Uuid>,
    },
    /// Archive a user.
    Archive { id: Uuid },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key binding a user to a project; the key is printed once.
    Create {
        #[arg(long = "user")]
        user_id: Uuid,
        #[arg(long = "project")]
        project_id: Uuid,
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339 expiry, e.g. 2027-01-01T00:00:00Z.
        #[arg(long)]
        expires_at: Option<DateTime<Utc>>,
    },
    /// List keys (never their plaintext).
    List {
        #[arg(long = "user")]
        user_id: Option<Uuid>,
    },
    /// Revoke a key.
    Revoke { id: Uuid },
}

fn parse_scope(s: &str) -> Result<store::Scope, String> {
    store::Scope::parse(s).ok_or_else(|| "expected organization, project or user".into())
}

fn parse_period(s: &str) -> Result<Period, String> {
    Period::parse(s).ok_or_else(|| "expected daily, weekly, monthly or total".into())
}

fn parse_group_by(s: &str) -> Result<store::GroupBy, String> {
    store::GroupBy::parse(s)
        .ok_or_else(|| "expected organization, project, user, key, model, provider or day".into())
}

/// A webhook URL, held to what the admin API accepts: http or https with a host.
fn parse_webhook(s: &str) -> Result<String, String> {
    let ok = s
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some());
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected an http or https URL".into())
    }
}

/// A budget limit: an exact USD amount greater than 0.
fn parse_limit(text: &str) -> Result<Decimal, String> {
    let d = Decimal::from_str_exact(text.trim()).map_err(|_| format!("'{text}' is not a USD amount"))?;
    if d <= Decimal::ZERO {
        return Err("the limit must be greater than 0".into());
    }
    Ok(d.normalize())
}

/// An RFC 3339 time, or a date (its midnight UTC).
fn parse_time(v: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| "expected an RFC 3339 time or YYYY-MM-DD".to_owned())?;
    Ok(d.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Serve => {
            app::init_logging(&config);
            app::run(config).await
        }
        Command::CheckConfig => check_config(&config),
        Command::Pricing { model, provider, output } => report::pricing(&config, &provider, &model, output),
        Command::Migrate => {
            open(&config).await?;
            out!("database schema is up to date")?;
            Ok(())
        }
        Command::Organization(g) => entities::organization(&open(&config).await?, g.command, g.output).await,
        Command::Project(g) => entities::project(&open(&config).await?, g.command, g.output).await,
        Command::User(g) => entities::user(&open(&config).await?, g.command, g.output).await,
        Command::Key(g) => entities::key(&open(&config).await?, g.command, g.output).await,
        Command::Budget(g) => entities::budget(&open(&config).await?, g.command, g.output).await,
        Command::AlertConfig(g) => entities::alert_config(&open(&config).await?, g.command, g.output).await,
        Command::Spend(args) => report::spend(&open(&config).await?, args).await,
    }
}

fn check_config(config: &Config) -> anyhow::Result<()> {
    out!("config ok")?;
    out!("proxy listen     {}", config.listen)?;
    out!(
        "admin listen     {} (token {})",
        config.admin_listen,
        if config.admin_token.is_some() { "set" } else { "not set" }
    )?;
    out!("database         {}", store::redact_url(&config.database_url))?;
    let auth = match config.auth_mode {
        crate::config::AuthMode::Keys => "keys",
        crate::config::AuthMode::Headers => "headers",
    };
    out!("auth mode        {auth}")?;
    out!("default provider {}", config.default_provider)?;
    for p in &config.providers {
        let key = if p.api_key.is_some() { "key set" } else { "no key" };
        out!(
            "provider         {} {:?} {}://{}{} ({key})",
            p.name,
            p.kind,
            p.scheme,
            p.authority,
            p.base_path
        )?;
    }
    Ok(())
}

/// Writes one line of command output. A reader that went away (`| head`, `grep -q`) is
/// not an error: the rest of the output is dropped and the command still succeeds
/// (`println!` would panic).
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{args}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

async fn open(config: &Config) -> anyhow::Result<Store> {
    store::open(&config.database_url, store::PoolSettings { max_connections: 2, ..config.database_pool })
        .await
        .with_context(|| format!("opening database {}", store::redact_url(&config.database_url)))
}
