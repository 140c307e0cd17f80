//! Test-data builders: every entity with sensible, unique defaults and overridable
//! fields, so a test states only what it is about (`f.budget(project).limit("5").daily()`).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use tollgate::identity::generate_key;
use tollgate::store::{
    AlertConfig, ApiKey, Budget, CostRecord, NewKey, NewUser, Organization, Project, Scope, Store,
    UsageSource, User,
};
use tollgate::window::Period;
use uuid::Uuid;

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A UTC time from RFC 3339 text.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Builds entities in one store.
pub struct Factory {
    pub store: Store,
    /// The database's URL, for the few checks the store API has no call for.
    pub url: String,
    seq: AtomicU32,
}

/// An organization with one project and one user: who a cost record belongs to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub org: Organization,
    pub project: Project,
    pub user: User,
}

impl Factory {
    pub fn new(store: Store, url: &str) -> Factory {
        Factory { store, url: url.to_owned(), seq: AtomicU32::new(0) }
    }

    /// The database's plan for `sql`, one line per step. PostgreSQL is told to avoid
    /// sequential scans (its planner prefers them on small tables), so a scan in the plan
    /// means no index can serve the query.
    pub async fn explain(&self, sql: &str) -> String {
        use sqlx::{Connection, Row};
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}")).fetch_all(&pool).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query("SET enable_seqscan = off").execute(&mut conn).await.unwrap();
            let rows = sqlx::query(&format!("EXPLAIN {sql}")).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
        }
    }

    /// Runs one SQL statement directly on the database (either backend).
    pub async fn execute(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = crate::db::pg_pool(&self.url).await;
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    pub async fn organization(&self) -> Organization {
        self.store.create_organization(&self.unique("org")).await.unwrap()
    }

    pub fn project(&self, org: &Organization) -> ProjectBuilder<'_> {
        ProjectBuilder { f: self, organization_id: org.id, name: self.unique("project") }
    }

    pub fn user(&self, org: &Organization) -> UserBuilder<'_> {
        UserBuilder { f: self, organization_id: org.id, external_id: self.unique("user"), email: None }
    }

    pub fn key(&self, user: &User, project: &Project) -> KeyBuilder<'_> {
        KeyBuilder { f: self, user_id: user.id, project_id: project.id, name: None, expires_at: None }
    }

    pub fn budget(&self, scope: Scope, scope_id: Uuid) -> BudgetBuilder<'_> {
        BudgetBuilder { f: self, scope, scope_id, limit: dec("10"), period: Period::Monthly, hard: true }
    }

    pub fn alert_config(&self, budget: &Budget) -> AlertConfigBuilder<'_> {
        AlertConfigBuilder {
            f: self,
            budget_id: budget.id,
            threshold_percent: 80,
            webhook_url: None,
            enabled: true,
        }
    }

    /// A new organization with one project and one user.
    pub async fn owner(&self) -> Owner {
        let org = self.organization().await;
        let project = self.project(&org).create().await;
        let user = self.user(&org).create().await;
        Owner { org, project, user }
    }
}

pub struct ProjectBuilder<'a> {
    f: &'a Factory,
    pub organization_id: Uuid,
    pub name: String,
}

impl ProjectBuilder<'_> {
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }
    pub async fn create(self) -> Project {
        self.f.store.create_project(self.organization_id, &self.name).await.unwrap()
    }
}

pub struct UserBuilder<'a> {
    f: &'a Factory,
    pub organization_id: Uuid,
    pub external_id: String,
    pub email: Option<String>,
}

impl UserBuilder<'_> {
    pub fn external_id(mut self, id: &str) -> Self {
        self.external_id = id.into();
        self
    }
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.into());
        self
    }
    pub fn new_user(&self) -> NewUser {
        NewUser {
            organization_id: self.organization_id,
            external_id: self.external_id.clone(),
            email: self.email.clone(),
        }
    }
    pub async fn create(self) -> User {
        self.f.store.create_user(&self.new_user()).await.unwrap()
    }
}

pub struct KeyBuilder<'a> {
    f: &'a Factory,
    pub user_id: Uuid,
    pub project_id: Uuid,
    pub name: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyBuilder<'_> {
    pub fn expires_at(mut self, t: DateTime<Utc>) -> Self {
        self.expires_at = Some(t);
        self
    }
    /// The stored key and its plaintext.
    pub async fn try_create(self) -> Result<(ApiKey, String), tollgate::store::StoreError> {
        let generated = generate_key();
        let key = self
            .f
            .store
            .create_key(&NewKey {
                user_id: self.user_id,
                project_id: self.project_id,
                name: self.name,
                expires_at: self.expires_at,
                key_hash: generated.hash,
                prefix: generated.prefix,
            })
            .await?;
        Ok((key, generated.plaintext))
    }
    pub async fn create(self) -> (ApiKey, String) {
        self.try_create().await.unwrap()
    }
}

pub struct BudgetBuilder<'a> {
    f: &'a Factory,
    pub scope: Scope,
    pub scope_id: Uuid,
    pub limit: Decimal,
    pub period: Period,
    pub hard: bool,
}

impl BudgetBuilder<'_> {
    pub fn limit(mut self, usd: &str) -> Self {
        self.limit = dec(usd);
        self
    }
    pub fn period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }
    pub fn soft(mut self) -> Self {
        self.hard = false;
        self
    }
    pub async fn create(self) -> Budget {
        self.f
            .store
            .create_budget(self.scope, self.scope_id, self.limit, self.period, self.hard)
            .await
            .unwrap()
    }
}

pub struct AlertConfigBuilder<'a> {
    f: &'a Factory,
    pub budget_id: Uuid,
    pub threshold_percent: u32,
    pub webhook_url: Option<String>,
    pub enabled: bool,
}

impl AlertConfigBuilder<'_> {
    pub fn threshold(mut self, percent: u32) -> Self {
        self.threshold_percent = percent;
        self
    }
    pub fn webhook(mut self, url: &str) -> Self {
        self.webhook_url = Some(url.into());
        self
    }
    pub async fn create(self) -> AlertConfig {
        self.f
            .store
            .create_alert_config(
                self.budget_id,
                self.threshold_percent,
                self.webhook_url.as_deref(),
                self.enabled,
            )
            .await
            .unwrap()
    }
}

/// A cost record of `owner` with typical values; every field can be changed on the result.
pub fn cost_record(owner: &Owner, cost: &str) -> CostRecord {
    CostRecord {
        id: Uuid::now_v7(),
        request_id: Uuid::now_v7(),
        // Both databases keep microseconds.
        created_at: Utc::now().trunc_subsecs(6),
        organization_id: owner.org.id,
        project_id: owner.project.id,
        user_id: owner.user.id,
        api_key_id: None,
        provider: "openai".into(),
        model: Some("gpt-4o".into()),
        endpoint: "/v1/chat/completions".into(),
        input_tokens: Some(10),
        cached_input_tokens: Some(0),
        cache_write_tokens: Some(0),
        output_tokens: Some(5),
        reasoning_tokens: Some(0),
        cost_usd: dec(cost),
        status_code: 200,
        latency_ms: 3,
        streamed: false,
        usage_source: UsageSource::Reported,
        priced: true,
        service_tier: None,
        inference_geo: None,
        audio_input_tokens: None,
        audio_output_tokens: None,
        web_search_requests: None,
        web_fetch_requests: None,
    }
}

/// A cost record of `owner` with every billed dimension beyond tokens set.
pub fn cost_record_with_dimensions(owner: &Owner, cost: &str) -> CostRecord {
    CostRecord {
        model: Some("claude-opus-4-6".into()),
        provider: "anthropic".into(),
        endpoint: "/v1/messages".into(),
        service_tier: Some("priority".into()),
        inference_geo: Some("us".into()),
        audio_input_tokens: Some(4),
        audio_output_tokens: Some(2),
        web_search_requests: Some(3),
        web_fetch_requests: Some(0),
        ..cost_record(owner, cost)
    }
}
