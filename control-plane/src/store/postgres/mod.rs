//! PostgreSQL, shared by several control planes: one source of truth for the configuration, its versions
//! and change log, and the cluster's records.
//!
//! A commit is one transaction that moves the single version row from the version the change was
//! validated against to the next one; a concurrent commit on another control plane makes it touch no row,
//! and the writer catches up and validates again ([`StoreError::Conflict`]). Commits and other events
//! are announced with `NOTIFY` inside the same transaction, so listeners hear of them once they are
//! visible (see [`listen`]).

mod listen;
mod schema;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use shared::{Change, ConfigState, Kind};
use tokio::sync::{broadcast, watch};
use tokio_postgres::error::SqlState;
use tracing::info;

use super::{Event, Records, SealedCa, Store, StoreError, WriteGuard};

/// The channel every control plane listens on.
const CHANNEL: &str = "portcullis";

/// Arbitrary constant naming the configuration writers' advisory lock.
const WRITE_LOCK: i64 = 0x706f_7274_7772_6974;

/// A session-level advisory lock held on a pooled connection, released when dropped. A connection whose
/// release fails is closed rather than pooled, and the server releases the lock with it.
struct AdvisoryLock(Option<deadpool_postgres::Object>);

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        tokio::spawn(async move {
            if client
                .execute("SELECT pg_advisory_unlock($1)", &[&WRITE_LOCK])
                .await
                .is_err()
            {
                drop(deadpool_postgres::Object::take(client));
            }
        });
    }
}

/// How the control plane talks to PostgreSQL.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user:password@host:port/db` (a secret: it is never logged).
    pub url: String,
    /// Most connections open at once (one more is kept for `LISTEN`).
    pub pool_size: usize,
    /// Verify the server's certificate over TLS (`verify-full`) or talk in clear (`disable`).
    pub tls: bool,
    /// CA certificates (PEM) that sign the server's certificate; the public web roots without it.
    pub tls_ca_file: Option<PathBuf>,
    /// Longest a statement may run.
    pub statement_timeout: Duration,
    /// Longest a connection attempt, or a wait for a free pooled connection, may take.
    pub connect_timeout: Duration,
    /// How often to compare the stored version with the local one, in case a notification was missed.
    pub poll_interval: Duration,
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    events: broadcast::Sender<Event>,
    /// Dropped with the store: the listener then stops.
    _alive: watch::Sender<()>,
}

/// Classifies a driver error: connection-level failures are outages (answered 503), the rest are faults.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        None => StoreError::Unavailable(shared::error::chain(&e)),
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::QUERY_CANCELED =>
        {
            StoreError::Unavailable(
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            )
        }
        Some(_) => StoreError::Io(
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()),
        ),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable("no database connection within the connect timeout".into())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A connector for either TLS setting; both `LISTEN` and the pool use it.
#[derive(Clone)]
enum Connector {
    Clear,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

fn connector(settings: &PgSettings) -> Result<Connector, StoreError> {
    if !settings.tls {
        return Ok(Connector::Clear);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &settings.tls_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Io(format!(
                    "cannot read --database-tls-ca-file {}: {e}",
                    path.display()
                ))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    StoreError::Io(format!("{} is not PEM certificates: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Io(format!("{}: unusable CA certificate: {e}", path.display()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Io(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Connector::Tls(
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
    ))
}

fn pg_config(settings: &PgSettings) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = settings.url.parse().map_err(|_| {
        // The driver's message may quote the URL, which holds the password.
        StoreError::Io(
            "--database-url is not a PostgreSQL URL (postgres://user:password@host:port/database)"
                .into(),
        )
    })?;
    config
        .connect_timeout(settings.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("portcullis-control-plane")
        .options(format!(
            "-c statement_timeout={}",
            settings.statement_timeout.as_millis().max(1)
        ));
    Ok(config)
}

impl PgStore {
    /// Connects, applies the schema's migrations and starts listening for other control planes' events.
    pub async fn connect(settings: PgSettings) -> Result<PgStore, StoreError> {
        let config = pg_config(&settings)?;
        let connector = connector(&settings)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &connector {
            Connector::Clear => {
                Manager::from_config(config.clone(), tokio_postgres::NoTls, manager_config)
            }
            Connector::Tls(tls) => {
                Manager::from_config(config.clone(), tls.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let applied = {
            let mut client = pool.get().await.map_err(pool_error)?;
            schema::migrate(&mut client).await?
        };
        info!(migrations_applied = applied, "PostgreSQL store ready");
        let events = broadcast::channel(1024).0;
        let (alive, stopped) = watch::channel(());
        tokio::spawn(listen::run(
            config,
            connector,
            settings.poll_interval,
            events.clone(),
            stopped,
        ));
        Ok(PgStore {
            pool,
            events,
            _alive: alive,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

fn notify_payload(event: &Event) -> String {
    serde_json::to_string(event).expect("events serialise")
}

fn decode_record(records: Records, id: &str, body: &str) -> Result<Value, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        key: format!("{}/{id}", records.name()),
        reason: e.to_string(),
    })
}

/// The last change to each entity, split into upserts (kind, id, JSON) and deletes (kind, id).
type Upserts = (Vec<String>, Vec<String>, Vec<String>);
fn split_changes(changes: &[Change]) -> (Upserts, (Vec<String>, Vec<String>)) {
    let mut last: HashMap<(Kind, uuid::Uuid), &Change> = HashMap::new();
    for c in changes {
        let key = match c {
            Change::Put(e) => (e.kind(), e.id()),
            Change::Delete(kind, id) => (*kind, *id),
        };
        last.insert(key, c);
    }
    let mut puts: Upserts = Default::default();
    let mut deletes: (Vec<String>, Vec<String>) = Default::default();
    for ((kind, id), c) in last {
        match c {
            Change::Put(e) => {
                puts.0.push(kind.collection().to_string());
                puts.1.push(id.to_string());
                puts.2
                    .push(serde_json::to_string(&e.to_json()).expect("entities serialise"));
            }
            Change::Delete(..) => {
                deletes.0.push(kind.collection().to_string());
                deletes.1.push(id.to_string());
            }
        }
    }
    (puts, deletes)
}

#[async_trait]
impl Store for PgStore {
    async fn load(&self) -> Result<(ConfigState, u64), StoreError> {
        let mut client = self.client().await?;
        // One snapshot of both tables.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let version: i64 = tx
            .query_one("SELECT version FROM portcullis_config WHERE id = 1", &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let rows = tx
            .query("SELECT kind, id, body FROM portcullis_entities", &[])
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        let mut state = ConfigState::default();
        for row in rows {
            let (collection, id, body): (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
            let key = format!("entities/{collection}/{id}");
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.collection() == collection)
                .ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    reason: format!("unknown entity kind '{collection}'"),
                })?;
            super::insert_stored(&mut state, kind, &key, body.as_bytes())?;
        }
        Ok((state, version as u64))
    }

    async fn commit(
        &self,
        base: u64,
        changes: &[Change],
        version: u64,
        log_record: &[u8],
    ) -> Result<(), StoreError> {
        let (puts, deletes) = split_changes(changes);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let moved = tx
            .execute(
                "UPDATE portcullis_config SET version = $1 WHERE id = 1 AND version = $2",
                &[&(version as i64), &(base as i64)],
            )
            .await
            .map_err(pg_error)?;
        if moved == 0 {
            let stored: i64 = tx
                .query_one("SELECT version FROM portcullis_config WHERE id = 1", &[])
                .await
                .map_err(pg_error)?
                .get(0);
            return Err(StoreError::Conflict {
                stored: stored as u64,
            });
        }
        if !puts.0.is_empty() {
            tx.execute(
                "INSERT INTO portcullis_entities (kind, id, body)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body",
                &[&puts.0, &puts.1, &puts.2],
            )
            .await
            .map_err(pg_error)?;
        }
        if !deletes.0.is_empty() {
            tx.execute(
                "DELETE FROM portcullis_entities e USING unnest($1::text[], $2::text[]) AS d(kind, id)
                 WHERE e.kind = d.kind AND e.id = d.id",
                &[&deletes.0, &deletes.1],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.execute(
            "INSERT INTO portcullis_change_log (version, record) VALUES ($1, $2)",
            &[&(version as i64), &log_record],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &notify_payload(&Event::Committed(version))],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn lock_writes(&self) -> Result<Option<WriteGuard>, StoreError> {
        let client = self.client().await?;
        // Bounded by the statement timeout: a lock held too long answers 503, not a hang.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&WRITE_LOCK])
            .await
            .map_err(pg_error)?;
        Ok(Some(WriteGuard(Box::new(AdvisoryLock(Some(client))))))
    }

    async fn load_log(&self, after: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT version, record FROM portcullis_change_log WHERE version > $1 ORDER BY version",
                &[&(after.min(i64::MAX as u64) as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vec<u8>>(1)))
            .collect())
    }

    async fn prune_log(&self, oldest_kept: u64) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM portcullis_change_log WHERE version < $1",
                &[&(oldest_kept.min(i64::MAX as u64) as i64)],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn get_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT body FROM portcullis_records WHERE collection = $1 AND id = $2",
                &[&records.name(), &id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| decode_record(records, id, r.get(0)))
            .transpose()
    }

    async fn put_record(
        &self,
        records: Records,
        id: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO portcullis_records (collection, id, body) VALUES ($1, $2, $3)
                 ON CONFLICT (collection, id) DO UPDATE SET body = EXCLUDED.body",
                &[&records.name(), &id, &value.to_string()],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn take_record(&self, records: Records, id: &str) -> Result<Option<Value>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM portcullis_records WHERE collection = $1 AND id = $2 RETURNING body",
                &[&records.name(), &id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| decode_record(records, id, r.get(0)))
            .transpose()
    }

    async fn update_record(
        &self,
        records: Records,
        id: &str,
        f: &(dyn for<'v> Fn(Option<&'v Value>) -> Option<Value> + Sync),
    ) -> Result<Option<Value>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // The row lock makes a concurrent updater on any control plane wait and then read this result.
        let current = tx
            .query_opt(
                "SELECT body FROM portcullis_records WHERE collection = $1 AND id = $2 FOR UPDATE",
                &[&records.name(), &id],
            )
            .await
            .map_err(pg_error)?
            .map(|r| decode_record(records, id, r.get(0)))
            .transpose()?;
        match f(current.as_ref()) {
            Some(next) if current.is_some() => {
                tx.execute(
                    "UPDATE portcullis_records SET body = $3 WHERE collection = $1 AND id = $2",
                    &[&records.name(), &id, &next.to_string()],
                )
                .await
                .map_err(pg_error)?;
            }
            Some(next) => {
                // Nothing to lock yet: of two creators the second fails on the key and nothing changes.
                tx.execute(
                    "INSERT INTO portcullis_records (collection, id, body) VALUES ($1, $2, $3)",
                    &[&records.name(), &id, &next.to_string()],
                )
                .await
                .map_err(pg_error)?;
            }
            None if current.is_some() => {
                tx.execute(
                    "DELETE FROM portcullis_records WHERE collection = $1 AND id = $2",
                    &[&records.name(), &id],
                )
                .await
                .map_err(pg_error)?;
            }
            None => {}
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(current)
    }

    async fn list_records(&self, records: Records) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, body FROM portcullis_records WHERE collection = $1 ORDER BY id",
                &[&records.name()],
            )
            .await
            .map_err(pg_error)?;
        rows.into_iter()
            .map(|r| {
                let id: String = r.get(0);
                let value = decode_record(records, &id, r.get(1))?;
                Ok((id, value))
            })
            .collect()
    }

    async fn healthy(&self) -> bool {
        match self.client().await {
            Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
            Err(_) => false,
        }
    }

    fn shared(&self) -> bool {
        true
    }

    async fn announce(&self, event: &Event) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&CHANNEL, &notify_payload(event)],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn sealed_ca(&self) -> Result<Option<SealedCa>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT cert_pem, key_nonce, key_sealed FROM portcullis_cluster_ca WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| SealedCa {
            cert_pem: r.get(0),
            nonce: r.get(1),
            sealed_key: r.get(2),
        }))
    }

    async fn keep_sealed_ca(&self, ca: &SealedCa) -> Result<SealedCa, StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO portcullis_cluster_ca (id, cert_pem, key_nonce, key_sealed)
                 VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                &[&ca.cert_pem, &ca.nonce, &ca.sealed_key],
            )
            .await
            .map_err(pg_error)?;
        self.sealed_ca().await?.ok_or_else(|| StoreError::Corrupt {
            key: "cluster_ca".into(),
            reason: "the CA row vanished after it was written".into(),
        })
    }
}
