//! The `LISTEN` side: one dedicated connection per control plane hears every control plane's events and
//! re-broadcasts them in-process. When the connection drops, it is re-opened with back-off and an
//! [`Event::Resync`] tells the control plane that something may have been missed; the same event is also
//! sent every poll interval, as a safety net for a listener that is silently cut off.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, watch};
use tokio_postgres::tls::TlsStream;
use tokio_postgres::{AsyncMessage, Client, Connection};
use tracing::{debug, warn};

use super::{Connector, CHANNEL};
use crate::store::Event;

/// Listens until `stopped` sees its sender dropped.
pub async fn run(
    config: tokio_postgres::Config,
    connector: Connector,
    poll_interval: Duration,
    events: broadcast::Sender<Event>,
    mut stopped: watch::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let attempt = async {
            match &connector {
                Connector::Clear => match config.connect(tokio_postgres::NoTls).await {
                    Ok((client, conn)) => {
                        listen(client, conn, poll_interval, &events, !first).await
                    }
                    Err(e) => Err(e.to_string()),
                },
                Connector::Tls(tls) => match config.connect(tls.clone()).await {
                    Ok((client, conn)) => {
                        listen(client, conn, poll_interval, &events, !first).await
                    }
                    Err(e) => Err(e.to_string()),
                },
            }
        };
        tokio::select! {
            outcome = attempt => {
                match outcome {
                    // The connection was up, so the next failure starts the back-off afresh.
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(reason) => {
                        warn!(%reason, retry_in_ms = backoff.as_millis() as u64,
                            "cannot listen for other control planes' changes");
                    }
                }
                first = false;
            }
            _ = stopped.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Runs one listening connection until it fails. Returns `Ok` when it had been established.
async fn listen<S, T>(
    client: Client,
    mut conn: Connection<S, T>,
    poll_interval: Duration,
    events: &broadcast::Sender<Event>,
    resync_at_start: bool,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: TlsStream + Unpin + Send + 'static,
{
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    // The connection is driven by a task of its own, so queries on `client` progress while this loop waits.
    let mut driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_string());
                }
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
        "the database closed the connection".to_string()
    });
    let ended = |r: Result<String, tokio::task::JoinError>| r.unwrap_or_else(|e| e.to_string());
    let statement = format!("LISTEN {CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::select! {
        r = subscribe => r.map_err(|e| e.to_string())?,
        reason = &mut driver => return Err(ended(reason)),
    }
    debug!("listening for other control planes' changes");
    if resync_at_start {
        let _ = events.send(Event::Resync);
    }
    let mut tick = tokio::time::interval(poll_interval.max(Duration::from_millis(50)));
    tick.tick().await;
    loop {
        tokio::select! {
            reason = &mut driver => {
                let reason = ended(reason);
                warn!(%reason, "lost the connection that listens for other control planes' changes");
                let _ = events.send(Event::Resync);
                return Ok(());
            }
            Some(payload) = notifications.recv() => match serde_json::from_str::<Event>(&payload) {
                Ok(event) => { let _ = events.send(event); }
                Err(e) => warn!(error = %e, "ignoring a notification this control plane does not understand"),
            },
            _ = tick.tick() => {
                // Also keeps the connection proven alive: a dead one fails this query.
                if let Err(e) = client.simple_query("SELECT 1").await {
                    driver.abort();
                    let _ = events.send(Event::Resync);
                    return Err(e.to_string());
                }
                let _ = events.send(Event::Resync);
            }
        }
    }
}
