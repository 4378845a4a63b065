//! The schema migrations, embedded in the binary so the daemon needs no files besides its database:
//! one set for SQLite (`migrations/`) and one for PostgreSQL (`migrations_pg/`), each run by sqlx's
//! migrator when a store opens.
//!
//! `sqlx::migrate!` needs sqlx's `macros` feature, which the workspace does not enable; this module
//! builds the same [`Migrator`] from `include_str!`'d files instead. Add a migration by adding a file to
//! `migrations/` and a line to [`MIGRATIONS`], and its PostgreSQL form to `migrations_pg/` and
//! [`MIGRATIONS_PG`] (the two sets are numbered independently: PostgreSQL started at SQLite's version 8);
//! never edit one that has shipped (its checksum is recorded).

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// `(version, description, sql)` for every migration, oldest first.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "action origin",
        include_str!("../migrations/0002_action_origin.sql"),
    ),
    (
        3,
        "audit index",
        include_str!("../migrations/0003_audit_index.sql"),
    ),
    (4, "outbox", include_str!("../migrations/0004_outbox.sql")),
    (
        5,
        "api keys expiry",
        include_str!("../migrations/0005_api_keys_expiry.sql"),
    ),
    (6, "rollups", include_str!("../migrations/0006_rollups.sql")),
    (
        7,
        "alert list indexes",
        include_str!("../migrations/0007_alert_list_indexes.sql"),
    ),
    (
        8,
        "active actions index",
        include_str!("../migrations/0008_active_actions_index.sql"),
    ),
];

/// The PostgreSQL migrations, oldest first: the SQLite schema at its version 8.
const MIGRATIONS_PG: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations_pg/0001_init.sql")),
    (
        2,
        "rollups",
        include_str!("../migrations_pg/0002_rollups.sql"),
    ),
];

/// One set of migrations compiled into this crate.
#[derive(Debug, Clone, Copy)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A migrator holding every embedded SQLite migration.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(MIGRATIONS)).await
}

/// A migrator holding every embedded PostgreSQL migration.
pub(crate) async fn migrator_pg() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(MIGRATIONS_PG)).await
}
