//! The command line: `serve`, `migrate`, `check-config`, and admin subcommands that work
//! on the database directly (a running server picks their writes up within a second).

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::admin::{create_key, AdminError};
use crate::app;
use crate::config::Config;
use crate::store::{self, NewUser, PageRequest, Patch, Store};

mod report;
use report::{print_budget_use, print_pricing, print_spend};

/// tollgate: a spend gate for AI provider APIs.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about)]
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
    #[command(subcommand, alias = "org")]
    Organization(OrgCommand),
    /// Projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Tollgate keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Budgets.
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// Alert thresholds on budgets.
    #[command(subcommand, name = "alert-config")]
    AlertConfig(AlertConfigCommand),
    /// Spend report from the cost records, as a table.
    Spend(SpendArgs),
    /// Show the prices a model name resolves to.
    Pricing {
        /// Model name as the provider reports it, e.g. gpt-4o-2024-08-06.
        model: String,
        /// Configured provider name (provider-restricted entries apply only to it).
        #[arg(long, default_value = "openai")]
        provider: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Create a budget on an organization, project or user.
    Create {
        /// organization | project | user
        #[arg(long)]
        scope: String,
        #[arg(long)]
        scope_id: Uuid,
        /// USD, e.g. 10 or 12.50
        #[arg(long)]
        limit: String,
        /// daily | weekly | monthly | total
        #[arg(long)]
        period: String,
        /// Only alert, never refuse.
        #[arg(long)]
        soft: bool,
    },
    /// List budgets.
    List,
    /// Change a budget's limit.
    SetLimit { id: Uuid, limit: String },
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
        #[arg(long)]
        threshold: u32,
        #[arg(long)]
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
    #[arg(long, default_value = "model")]
    pub group_by: String,
    /// Inclusive start: RFC 3339 time or YYYY-MM-DD.
    #[arg(long)]
    pub from: Option<String>,
    /// Exclusive end: RFC 3339 time or YYYY-MM-DD.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long = "org")]
    pub organization_id: Option<Uuid>,
    #[arg(long = "project")]
    pub project_id: Option<Uuid>,
    #[arg(long = "user")]
    pub user_id: Option<Uuid>,
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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command {
        Command::Serve => {
            app::init_logging(&config);
            app::run(config).await
        }
        Command::CheckConfig => {
            println!("config ok");
            println!("proxy listen     {}", config.listen);
            println!(
                "admin listen     {} (token {})",
                config.admin_listen,
                if config.admin_token.is_some() { "set" } else { "not set" }
            );
            println!("database         {}", store::redact_url(&config.database_url));
            println!("default provider {}", config.default_provider);
            for p in &config.providers {
                let key = if p.api_key.is_some() { "key set" } else { "no key" };
                println!(
                    "provider         {} {:?} {}://{}{} ({key})",
                    p.name, p.kind, p.scheme, p.authority, p.base_path
                );
            }
            Ok(())
        }
        Command::Pricing { model, provider } => {
            print_pricing(&config, &provider, &model);
            Ok(())
        }
        command => {
            let store = open(&config).await?;
            admin_command(&store, command).await
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Store> {
    store::open(&config.database_url, store::PoolSettings { max_connections: 2, ..config.database_pool })
        .await
        .with_context(|| format!("opening database {}", store::redact_url(&config.database_url)))
}

fn all() -> PageRequest {
    PageRequest { cursor: None, limit: 1000 }
}

fn archive() -> Patch {
    Patch { archived: Some(true), ..Patch::default() }
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

async fn admin_command(store: &Store, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => println!("database schema is up to date"),
        Command::Organization(OrgCommand::Create { name }) => {
            let o = store.create_organization(name.trim()).await?;
            println!("{}\t{}", o.id, o.name);
        }
        Command::Organization(OrgCommand::List) => {
            println!("{:<36}  {:<16}  {:<8}  NAME", "ID", "CREATED", "STATE");
            for o in store.list_organizations(&all()).await?.data {
                let state = if o.archived_at.is_some() { "archived" } else { "active" };
                println!("{:<36}  {:<16}  {state:<8}  {}", o.id, date(o.created_at), o.name);
            }
        }
        Command::Organization(OrgCommand::Archive { id }) => {
            store.update_organization(id, &archive()).await?;
            println!("archived organization {id}");
        }
        Command::Project(ProjectCommand::Create { organization_id, name }) => {
            let p = store.create_project(organization_id, name.trim()).await?;
            println!("{}\t{}", p.id, p.name);
        }
        Command::Project(ProjectCommand::List { organization_id }) => {
            println!("{:<36}  {:<36}  {:<8}  NAME", "ID", "ORGANIZATION", "STATE");
            for p in store.list_projects(organization_id, &all()).await?.data {
                let state = if p.archived_at.is_some() { "archived" } else { "active" };
                println!("{:<36}  {:<36}  {state:<8}  {}", p.id, p.organization_id, p.name);
            }
        }
        Command::Project(ProjectCommand::Archive { id }) => {
            store.update_project(id, &archive()).await?;
            println!("archived project {id}");
        }
        Command::User(UserCommand::Create { organization_id, external_id, email }) => {
            let u = store
                .create_user(&NewUser { organization_id, external_id: external_id.trim().to_owned(), email })
                .await?;
            println!("{}\t{}", u.id, u.external_id);
        }
        Command::User(UserCommand::List { organization_id }) => {
            println!("{:<36}  {:<36}  {:<8}  EXTERNAL ID", "ID", "ORGANIZATION", "STATE");
            for u in store.list_users(organization_id, &all()).await?.data {
                let state = if u.archived_at.is_some() { "archived" } else { "active" };
                println!("{:<36}  {:<36}  {state:<8}  {}", u.id, u.organization_id, u.external_id);
            }
        }
        Command::User(UserCommand::Archive { id }) => {
            store.update_user(id, &archive()).await?;
            println!("archived user {id}");
        }
        Command::Key(KeyCommand::Create { user_id, project_id, name, expires_at }) => {
            let req = crate::admin::requests::CreateKey { user_id, project_id, name, expires_at };
            let created = create_key(store, req).await.map_err(|e| match e {
                AdminError::Store(s) => anyhow::Error::new(s),
                other => anyhow::anyhow!("{other}"),
            })?;
            eprintln!("key {} created; it is shown once, store it now:", created.key.id);
            println!("{}", created.plaintext);
        }
        Command::Key(KeyCommand::List { user_id }) => {
            println!("{:<36}  {:<11}  {:<8}  {:<36}  PROJECT", "ID", "PREFIX", "STATE", "USER");
            for k in store.list_keys(user_id, &all()).await?.data {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= Utc::now()) {
                    "expired"
                } else {
                    "active"
                };
                println!("{:<36}  {:<11}  {state:<8}  {:<36}  {}", k.id, k.prefix, k.user_id, k.project_id);
            }
        }
        Command::Key(KeyCommand::Revoke { id }) => {
            store.revoke_key(id).await?;
            println!("revoked key {id}");
        }
        Command::Spend(args) => print_spend(store, args).await?,
        Command::Budget(cmd) => budget_command(store, cmd).await?,
        Command::AlertConfig(cmd) => alert_config_command(store, cmd).await?,
        Command::Serve | Command::CheckConfig | Command::Pricing { .. } => {}
    }
    Ok(())
}

fn limit(text: &str) -> anyhow::Result<rust_decimal::Decimal> {
    let d = rust_decimal::Decimal::from_str_exact(text.trim())
        .with_context(|| format!("'{text}' is not a USD amount"))?;
    anyhow::ensure!(d > rust_decimal::Decimal::ZERO, "the limit must be greater than 0");
    Ok(d.normalize())
}

async fn budget_command(store: &Store, cmd: BudgetCommand) -> anyhow::Result<()> {
    match cmd {
        BudgetCommand::Create { scope, scope_id, limit: l, period, soft } => {
            let scope =
                store::Scope::parse(&scope).context("--scope must be organization, project or user")?;
            let period = crate::window::Period::parse(&period)
                .context("--period must be daily, weekly, monthly or total")?;
            let b = store.create_budget(scope, scope_id, limit(&l)?, period, !soft).await?;
            println!("{}\t{} {} {} ${}", b.id, b.scope.as_str(), b.scope_id, b.period.as_str(), b.limit_usd);
        }
        BudgetCommand::List => print_budget_use(store, &store::RecordFilter::default()).await?,
        BudgetCommand::SetLimit { id, limit: l } => {
            let b = store
                .update_budget(id, &store::BudgetPatch { limit_usd: Some(limit(&l)?), ..Default::default() })
                .await?;
            println!("{}\tlimit ${}", b.id, b.limit_usd);
        }
        BudgetCommand::Delete { id } => {
            store.delete_budget(id).await?;
            println!("deleted budget {id}");
        }
    }
    Ok(())
}

async fn alert_config_command(store: &Store, cmd: AlertConfigCommand) -> anyhow::Result<()> {
    match cmd {
        AlertConfigCommand::Create { budget_id, threshold, webhook } => {
            anyhow::ensure!((1..=1000).contains(&threshold), "--threshold must be from 1 to 1000");
            let c = store.create_alert_config(budget_id, threshold, webhook.as_deref(), true).await?;
            println!("{}\t{}% of budget {}", c.id, c.threshold_percent, c.budget_id);
        }
        AlertConfigCommand::List { budget_id } => {
            println!("{:<36}  {:<36}  {:>9}  WEBHOOK", "ID", "BUDGET", "THRESHOLD");
            for c in store.list_alert_configs(budget_id).await? {
                println!(
                    "{:<36}  {:<36}  {:>8}%  {}",
                    c.id,
                    c.budget_id,
                    c.threshold_percent,
                    c.webhook_url.as_deref().unwrap_or("-")
                );
            }
        }
        AlertConfigCommand::Delete { id } => {
            store.delete_alert_config(id).await?;
            println!("deleted alert config {id}");
        }
    }
    Ok(())
}
