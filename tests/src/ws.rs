//! A WebSocket echo server for tests and benchmarks.

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo server: text and binary messages come back unchanged; the text `close-please`
/// makes it close with 1000 and `server bye`. Returns its port.
pub async fn echo_server() -> u16 {
    crate::serve_each(|tcp| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while let Some(Ok(m)) = ws.next().await {
            let sent = match m {
                Message::Text(t) if t.as_str() == "close-please" => {
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "server bye".into(),
                    };
                    ws.close(Some(frame)).await
                }
                Message::Text(_) | Message::Binary(_) => ws.send(m).await,
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    })
    .await
}
