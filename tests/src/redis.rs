//! A throwaway Redis server for one test: its own dir, a free port on 127.0.0.1, no persistence, stopped
//! when dropped. `redis-server` comes from Debian's package, which the test command installs when
//! missing. It can be killed and started again on the same port, as an outage a node must ride out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) test server.
pub struct Redis {
    /// The plain port (the test's own commands go there).
    pub port: u16,
    /// The TLS port, when started with a certificate.
    pub tls_port: Option<u16>,
    tls: Option<Tls>,
    password: Option<String>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server without a password.
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// Starts a server that asks for `password` (`requirepass`).
    pub fn start_with(password: Option<&str>) -> Redis {
        Redis::start_full(password, None)
    }

    /// Starts a server that also serves TLS with `tls`'s certificate, on [`Redis::tls_port`].
    pub fn start_tls(tls: Tls) -> Redis {
        Redis::start_full(None, Some(tls))
    }

    fn start_full(password: Option<&str>, tls: Option<Tls>) -> Redis {
        let mut r = Redis {
            port: crate::postgres::free_port(),
            tls_port: tls.as_ref().map(|_| crate::postgres::free_port()),
            tls,
            password: password.map(str::to_string),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.start_server();
        r
    }

    /// Starts the server (again, after [`Redis::kill`]) on the same port, empty.
    pub fn start_server(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let (Some(tls), Some(port)) = (&self.tls, self.tls_port) {
            cmd.args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}): the test command (scripts/test.sh) installs it with \
                 apt-get install redis-server"
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (SIGKILL), as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The `host:port` the server listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Sends one command (inline protocol) and returns the raw reply's first line.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = Vec::new();
        if let Some(p) = &self.password {
            out.extend_from_slice(&resp_command(&["AUTH", p]));
        }
        out.extend_from_slice(&resp_command(args));
        s.write_all(&out)?;
        let mut reply = String::new();
        let mut buf = [0u8; 4096];
        let wanted_lines = if self.password.is_some() { 2 } else { 1 };
        while reply.matches("\r\n").count() < wanted_lines {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reply.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Ok(reply
            .split("\r\n")
            .nth(wanted_lines - 1)
            .unwrap_or_default()
            .to_string())
    }

    fn ping(&self) -> std::io::Result<()> {
        match self.command(&["PING"])?.as_str() {
            "+PONG" => Ok(()),
            other => Err(std::io::Error::other(format!("PING answered {other}"))),
        }
    }
}

/// The certificate and key files a TLS server presents.
pub struct Tls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// `args` as a RESP array of bulk strings.
fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
