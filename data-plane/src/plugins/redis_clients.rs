//! Connections to Redis servers, one multiplexed connection per server and setting (commands of every
//! request are pipelined on it), shared by every plugin instance and across snapshots.
//!
//! A connection is made on first use, not when a snapshot is built, so a Redis server that is down
//! never stops a configuration from applying. While a server cannot be reached, every call fails at
//! once for [`RETRY_AFTER`] after a failure instead of each waiting its timeout; then one call tries
//! again, so the node recovers by itself when the server is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, ProtocolVersion, RedisConnectionInfo};
use shared::plugins::redis::Redis;

/// How long calls fail at once after a connection attempt or a call failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a Redis call did not answer. Its text names the server, never the password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis {server}: no answer within {timeout_ms} ms")]
    Timeout { server: String, timeout_ms: u64 },
    #[error("redis {server}: {reason}")]
    Failed { server: String, reason: String },
    #[error("redis {server}: unavailable since a failure {since_ms} ms ago; retried after {retry_ms} ms")]
    Backoff {
        server: String,
        since_ms: u128,
        retry_ms: u128,
    },
}

/// Every server this node talks to, by setting.
#[derive(Default)]
pub struct RedisClients {
    servers: Mutex<HashMap<Redis, Arc<RedisServer>>>,
    /// Extra CA certificates (PEM) to trust for `ssl_verify` (the node's identity-provider CA file).
    extra_ca_pem: Option<Vec<u8>>,
}

impl RedisClients {
    /// Clients that also trust the CA certificates in `extra_ca_pem` when verifying a server.
    pub fn new(extra_ca_pem: Option<Vec<u8>>) -> RedisClients {
        RedisClients {
            servers: Mutex::default(),
            extra_ca_pem,
        }
    }

    /// The server of `config` (made once per distinct setting; nothing is connected yet).
    pub fn get(&self, config: &Redis) -> Result<Arc<RedisServer>, String> {
        // Key prefixes are the caller's business: one connection serves them all.
        let config = &Redis {
            prefix: None,
            ..config.clone()
        };
        let mut servers = self.servers.lock().expect("redis clients lock");
        if let Some(s) = servers.get(config) {
            return Ok(s.clone());
        }
        let server = Arc::new(RedisServer::new(config, self.extra_ca_pem.as_deref())?);
        servers.insert(config.clone(), server.clone());
        Ok(server)
    }
}

/// One Redis server: its client, its connection once made, and its last failure.
pub struct RedisServer {
    client: redis::Client,
    label: String,
    timeout: Duration,
    connection: ArcSwapOption<ConnectionManager>,
    connecting: tokio::sync::Mutex<()>,
    failed_at: Mutex<Option<Instant>>,
}

impl RedisServer {
    fn new(config: &Redis, extra_ca_pem: Option<&[u8]>) -> Result<RedisServer, String> {
        let host = config
            .host
            .clone()
            .ok_or_else(|| "redis.host is not set".to_string())?;
        let label = format!("{host}:{}/{}", config.port, config.database);
        let addr = match config.ssl {
            false => ConnectionAddr::Tcp(host, config.port),
            true => ConnectionAddr::TcpTls {
                host,
                port: config.port,
                insecure: !config.ssl_verify,
                tls_params: None,
            },
        };
        let info = ConnectionInfo {
            addr,
            redis: RedisConnectionInfo {
                db: config.database,
                username: config.username.clone(),
                password: config.password.clone(),
                protocol: ProtocolVersion::RESP2,
            },
        };
        let client = match (config.ssl && config.ssl_verify, extra_ca_pem) {
            (true, Some(pem)) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            _ => redis::Client::open(info),
        }
        .map_err(|e| format!("redis {label}: {e}"))?;
        Ok(RedisServer {
            client,
            label,
            timeout: Duration::from_millis(config.timeout.max(1)),
            connection: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            failed_at: Mutex::new(None),
        })
    }

    /// `host:port/database`, for logs and errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Runs `pipe` and returns its answers, within the configured timeout. A connection found broken (the
    /// server restarted since its last use) is made again and the pipeline sent once more at once.
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisFailure> {
        self.backoff()?;
        let mut conn = self.connection().await?;
        let mut retried = false;
        loop {
            match tokio::time::timeout(self.timeout, pipe.query_async::<T>(&mut conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !retried && (e.is_connection_dropped() || e.is_io_error()) => {
                    retried = true;
                }
                Ok(Err(e)) => return Err(self.failed(e.to_string())),
                Err(_) => return Err(self.timed_out()),
            }
        }
    }

    /// The connection, made now if there is none (one attempt at a time; callers waiting on an attempt
    /// that fails fail too).
    async fn connection(&self) -> Result<ConnectionManager, RedisFailure> {
        if let Some(c) = self.connection.load_full() {
            return Ok((*c).clone());
        }
        let _one_attempt = self.connecting.lock().await;
        if let Some(c) = self.connection.load_full() {
            return Ok((*c).clone());
        }
        self.backoff()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(self.timeout.as_millis() as u64);
        let made = tokio::time::timeout(
            self.timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match made {
            Ok(Ok(c)) => {
                self.connection.store(Some(Arc::new(c.clone())));
                Ok(c)
            }
            Ok(Err(e)) => Err(self.failed(e.to_string())),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn backoff(&self) -> Result<(), RedisFailure> {
        let failed_at = *self.failed_at.lock().expect("redis failure lock");
        match failed_at {
            Some(at) if at.elapsed() < RETRY_AFTER => Err(RedisFailure::Backoff {
                server: self.label.clone(),
                since_ms: at.elapsed().as_millis(),
                retry_ms: RETRY_AFTER.as_millis(),
            }),
            _ => Ok(()),
        }
    }

    fn mark_failed(&self) {
        *self.failed_at.lock().expect("redis failure lock") = Some(Instant::now());
    }

    fn failed(&self, reason: String) -> RedisFailure {
        self.mark_failed();
        RedisFailure::Failed {
            server: self.label.clone(),
            reason,
        }
    }

    fn timed_out(&self) -> RedisFailure {
        self.mark_failed();
        RedisFailure::Timeout {
            server: self.label.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }
}
