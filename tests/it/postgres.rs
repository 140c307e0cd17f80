//! The two migration sets describe one schema: the same tables, columns, nullability,
//! primary and unique keys, foreign keys (with their ON DELETE rules) and indexes, read
//! back from the migrated databases themselves (SQLite's pragmas, PostgreSQL's catalog).
//! The rules they enforce are exercised on both by the contract suite.

use std::collections::BTreeSet;

use sqlx::Row;

use crate::db::{pg_pool, Backend, TestDb};

/// Everything compared, as sorted, printable facts.
type Facts = BTreeSet<String>;

#[test]
fn both_backends_have_the_same_migration_files() {
    let names = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("migrations/sqlite"), names("migrations/postgres"));
}

#[tokio::test]
async fn both_migration_sets_build_the_same_schema() {
    let (sqlite, postgres) = (TestDb::new(Backend::Sqlite).await, TestDb::new(Backend::Postgres).await);
    drop(sqlite.store().await);
    drop(postgres.store().await);
    let lite = sqlite_facts(&sqlite.url).await;
    let pg = postgres_facts(&postgres.url).await;
    let only_sqlite: Vec<_> = lite.difference(&pg).collect();
    let only_postgres: Vec<_> = pg.difference(&lite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
    // The comparison has something to compare: every table of SPEC §6 is there.
    for table in
        ["organizations", "ai_cost_records", "ai_user_budgets", "ai_budget_leases", "ai_spend_windows"]
    {
        assert!(lite.iter().any(|f| f.starts_with(&format!("table {table}"))), "{table} missing");
    }
}

async fn sqlite_facts(url: &str) -> Facts {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut facts = Facts::new();
    for t in &tables {
        facts.insert(format!("table {t}"));
        let mut pk: Vec<(i64, String)> = Vec::new();
        for row in sqlx::query(&format!("SELECT name, \"notnull\", pk FROM pragma_table_xinfo('{t}')"))
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let (name, notnull, key): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let nullable = notnull == 0 && key == 0;
            facts.insert(format!("column {t}.{name} nullable={nullable}"));
            if key > 0 {
                pk.push((key, name));
            }
        }
        pk.sort();
        let pk: Vec<_> = pk.into_iter().map(|(_, n)| n).collect();
        let mut uniques = Vec::new();
        for row in sqlx::query(&format!("SELECT name, origin FROM pragma_index_list('{t}')"))
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let (index, origin): (String, String) = (row.get(0), row.get(1));
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            match origin.as_str() {
                "u" => uniques.push(columns.join(", ")),
                "c" => {
                    facts.insert(format!("index {index} on {t} ({})", columns.join(", ")));
                }
                _ => {} // the primary key, read from the columns
            }
        }
        uniques.sort();
        if pk.is_empty() && !uniques.is_empty() {
            // SQLite cannot put a generated column (ai_spend_windows.scope_id) in a PRIMARY
            // KEY; a rowid table's UNIQUE key is its key, as the PRIMARY KEY is there.
            facts.insert(format!("primary key {t} ({})", uniques.remove(0)));
        } else {
            facts.insert(format!("primary key {t} ({})", pk.join(", ")));
        }
        for unique in uniques {
            facts.insert(format!("unique {t} ({unique})"));
        }
        let fks = sqlx::query(&format!(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('{t}') ORDER BY id, seq"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut by_id: std::collections::BTreeMap<i64, (String, Vec<String>, Vec<String>, String)> =
            std::collections::BTreeMap::new();
        for row in fks {
            let entry = by_id.entry(row.get(0)).or_insert_with(|| (row.get(1), vec![], vec![], row.get(4)));
            entry.1.push(row.get(2));
            entry.2.push(row.get(3));
        }
        for (parent, from, to, on_delete) in by_id.into_values() {
            let on_delete = if on_delete == "NO ACTION" { "NO ACTION".to_owned() } else { on_delete };
            facts.insert(format!(
                "foreign key {t} ({}) -> {parent} ({}) on delete {on_delete}",
                from.join(", "),
                to.join(", ")
            ));
        }
    }
    facts
}

async fn postgres_facts(url: &str) -> Facts {
    let pool = pg_pool(url).await;
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for t in &tables {
        facts.insert(format!("table {t}"));
    }
    for row in sqlx::query(
        "SELECT table_name::text, column_name::text, is_nullable = 'YES' FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        let (t, c, nullable): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        facts.insert(format!("column {t}.{c} nullable={nullable}"));
    }
    // Keys, with columns in key order.
    let constraints = sqlx::query(
        "SELECT c.contype::text, t.relname::text, f.relname::text,
                (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
                c.confdeltype::text
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN pg_class f ON f.oid = c.confrelid
         WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f') AND t.relname NOT LIKE '_sqlx%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in constraints {
        let (kind, t, parent): (String, String, Option<String>) = (row.get(0), row.get(1), row.get(2));
        let cols: Vec<String> = row.get(3);
        let parent_cols: Option<Vec<String>> = row.get(4);
        let on_delete = match row.get::<String, _>(5).as_str() {
            "c" => "CASCADE",
            "r" => "RESTRICT",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "NO ACTION",
        };
        facts.insert(match kind.as_str() {
            "p" => format!("primary key {t} ({})", cols.join(", ")),
            "u" => format!("unique {t} ({})", cols.join(", ")),
            _ => format!(
                "foreign key {t} ({}) -> {} ({}) on delete {on_delete}",
                cols.join(", "),
                parent.unwrap_or_default(),
                parent_cols.unwrap_or_default().join(", ")
            ),
        });
    }
    // Indexes that back no constraint.
    for row in sqlx::query(
        "SELECT i.relname::text, t.relname::text,
                (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum)
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public' AND t.relname NOT LIKE '_sqlx%'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        let (index, t, cols): (String, String, Vec<String>) = (row.get(0), row.get(1), row.get(2));
        facts.insert(format!("index {index} on {t} ({})", cols.join(", ")));
    }
    facts
}

#[tokio::test]
async fn a_window_row_made_by_a_lease_does_not_keep_its_owner_from_being_deleted() {
    use tollgate::store::{LeaseWindow, Scope};
    let db = TestDb::new(Backend::Postgres).await;
    let f = crate::factory::Factory::new(db.store().await, &db.url);
    let owner = f.owner().await;
    let pg = f.store.postgres().unwrap();
    for (scope, scope_id) in [(Scope::Project, owner.project.id), (Scope::User, owner.user.id)] {
        let window = LeaseWindow {
            scope,
            scope_id,
            period: tollgate::window::Period::Daily,
            window_start: tollgate::window::Period::Daily.start(chrono::Utc::now()),
        };
        let grant = pg
            .take_lease(
                window,
                rust_decimal::Decimal::TEN,
                rust_decimal::Decimal::ONE,
                rust_decimal::Decimal::ONE,
                4,
                std::time::Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(grant.amount, rust_decimal::Decimal::from(3), "1 needed + 2 of the 9 left");
    }
    // No request was ever counted: the project, the user and then the organization go.
    f.store.delete_project(owner.project.id).await.unwrap();
    f.store.delete_organization(owner.org.id).await.unwrap();
}
