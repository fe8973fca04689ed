//! The PostgreSQL schema, as numbered migrations applied at start under an advisory lock, so control
//! planes starting at once apply each migration once.

use tokio_postgres::Client;

use super::pg_error;
use crate::store::StoreError;

/// Arbitrary constant naming Portcullis's migration lock among the database's advisory locks.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// Every migration, in order; the schema version is the number of those applied.
const MIGRATIONS: &[&str] = &[
    // 1: configuration, its change log, cluster records.
    r#"
    CREATE TABLE portcullis_config (
        id int PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL CHECK (version >= 0)
    );
    INSERT INTO portcullis_config (id, version) VALUES (1, 0);
    CREATE TABLE portcullis_entities (
        kind text NOT NULL,
        id text NOT NULL,
        body text NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE TABLE portcullis_change_log (
        version bigint PRIMARY KEY,
        record bytea NOT NULL
    );
    CREATE TABLE portcullis_records (
        collection text NOT NULL,
        id text NOT NULL,
        body text NOT NULL,
        PRIMARY KEY (collection, id)
    );
    CREATE TABLE portcullis_cluster_ca (
        id int PRIMARY KEY CHECK (id = 1),
        cert_pem text NOT NULL,
        key_nonce bytea NOT NULL,
        key_sealed bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
];

/// Brings the schema up to date. Refuses a database whose schema is newer than this program knows.
pub async fn migrate(client: &mut Client) -> Result<usize, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn apply(client: &mut Client) -> Result<usize, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS portcullis_migrations (
                version int PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM portcullis_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let current = row.get::<_, i32>(0) as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Io(format!(
            "the database schema is at version {current}, newer than this control plane knows ({}); \
             run a newer control plane",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO portcullis_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
    }
    Ok(MIGRATIONS.len() - current)
}
