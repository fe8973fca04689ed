//! The container health check: asks the container's main process (PID 1: `control-plane`,
//! `data-plane` or a `demo` service) whether it serves, on the address its own settings give.
//! Exit 0 when it answers 200, 1 otherwise. Standard library only, so it works in images without a
//! shell or an HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() {
    let argv = main_process_argv();
    let role = argv
        .first()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let outcome = match role.as_str() {
        "control-plane" => {
            let token = std::env::var("PORTCULLIS_ADMIN_TOKEN_FILE")
                .ok()
                .and_then(|f| std::fs::read_to_string(f).ok())
                .map(|t| t.trim().to_string());
            http_ok(
                &listen("PORTCULLIS_ADMIN_LISTEN", "127.0.0.1:8001"),
                "/status",
                token.as_deref(),
            )
        }
        "data-plane" => http_ok(
            &listen("PORTCULLIS_STATUS_LISTEN", "127.0.0.1:8100"),
            "/status/ready",
            None,
        ),
        "demo" => {
            let default = match argv.get(1).map(String::as_str) {
                Some("idp") => "127.0.0.1:9080",
                Some("echo") => "127.0.0.1:9090",
                _ => "127.0.0.1:8001",
            };
            let given = argv
                .windows(2)
                .find(|w| w[0] == "--listen")
                .map(|w| w[1].clone())
                .unwrap_or_else(|| default.to_string());
            connect(&local(&given)).map(|_| ())
        }
        other => Err(format!("unknown main process '{other}'")),
    };
    if let Err(why) = outcome {
        eprintln!("unhealthy: {why}");
        std::process::exit(1);
    }
}

/// PID 1's arguments; outside a container (or when unreadable), this program's own.
fn main_process_argv() -> Vec<String> {
    std::fs::read("/proc/1/cmdline")
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| std::env::args().skip(1).collect())
}

/// The listen address from the environment, with an unspecified host replaced by loopback.
fn listen(var: &str, default: &str) -> String {
    local(&std::env::var(var).unwrap_or_else(|_| default.to_string()))
}

fn local(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => addr.to_string(),
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let target: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| format!("{addr}: {e}"))
}

fn http_ok(addr: &str, path: &str, bearer: Option<&str>) -> Result<(), String> {
    let mut conn = connect(addr)?;
    conn.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let auth = bearer
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    if head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "{addr}{path} answered {}",
            String::from_utf8_lossy(&head)
        ))
    }
}
