//! A throwaway PostgreSQL server for one test: its own data dir, a free port on 127.0.0.1, password
//! authentication, stopped (and its files removed) when dropped. The server binaries come from Debian's
//! `postgresql` package, which the test command installs when missing. PostgreSQL refuses to run as root,
//! so under root the server runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser's password of every test server (a test secret, checked never to leak).
pub const PASSWORD: &str = "pg-test-secret-4f1b9c";

/// A running test server.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect(
        "PostgreSQL server binaries not found under /usr/lib/postgresql: the test command \
         (scripts/test.sh) installs them with apt-get install postgresql",
    )
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Creates and starts a server.
    pub fn start() -> Postgres {
        let bin = server_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the test server's dir to postgres failed");
        }
        let mut pg = Postgres {
            port: 0,
            bin,
            data,
            as_postgres,
            _dir: dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.port = free_port();
        pg.start_server();
        pg
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        self.run_or_show(Path::new(""), program, args)
    }

    /// Runs `program`; when it fails, the panic shows its output and the end of `log` (if any).
    fn run_or_show(&self, log: &Path, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{program} on port {} failed: {}{}\nserver log (last lines):\n{}",
                self.port,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    fn socket_dir(&self) -> &Path {
        self.data.parent().unwrap()
    }

    /// Starts the server (again, after [`Postgres::stop_server`]) on the same port and data.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.socket_dir().display()
        );
        let log = self.socket_dir().join("server.log");
        self.run_or_show(
            &log,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        );
    }

    /// Turns TLS on and refuses clear-text TCP connections from then on (restarting the server). The
    /// server's certificate, for `127.0.0.1` and `localhost`, is issued by a fresh CA; returns the path of
    /// that CA's certificate (PEM).
    pub fn require_tls(&self) -> PathBuf {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test database CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let write = |name: &str, contents: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let path = self.data.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            if self.as_postgres {
                let ok = Command::new("chown")
                    .args(["postgres:postgres", path.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "chown {name}");
            }
        };
        write("server.crt", &cert.pem(), 0o644);
        write("server.key", &key.serialize_pem(), 0o600);
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\n");
        std::fs::write(&conf, text).unwrap();
        let hba = self.data.join("pg_hba.conf");
        let rules: String = std::fs::read_to_string(&hba)
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}\n"),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(&hba, rules).unwrap();
        self.stop_server();
        self.start_server();
        let ca_path = self.socket_dir().join("database-ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        ca_path
    }

    /// Runs `sql` in database `name`; psql's unaligned output.
    pub fn query(&self, name: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self
            .command("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-At",
                "-d",
                name,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ],
        );
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

/// A free port below the kernel's ephemeral range. The server is stopped and started again on the same
/// port in some tests; a port from the ephemeral range could meanwhile become the local end of some
/// outgoing connection, and the restart would fail to bind.
pub(crate) fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 10_000.min(ephemeral_low / 2);
    for _ in 0..1000 {
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), low..ephemeral_low);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for the test database in {low}..{ephemeral_low}")
}
