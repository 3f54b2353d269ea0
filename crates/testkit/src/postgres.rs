//! A PostgreSQL database of a test's own: on the server named by `EMGUARD_TEST_POSTGRES_URL`
//! (a fresh database there, dropped afterwards), else in a throwaway cluster started with the
//! local PostgreSQL binaries (`initdb` + `pg_ctl` from `/usr/lib/postgresql/*/bin`, under a
//! temporary directory, on a free port, as user `postgres` when running as root since the
//! server refuses root).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Prerequisite, skip};

/// A database for one test. Dropping it stops the cluster this started, or drops the
/// database this created on `EMGUARD_TEST_POSTGRES_URL`'s server.
pub struct TestPostgres {
    /// Connection URL of the test's database.
    pub url: String,
    cluster: Option<Cluster>,
    /// The server's URL and the database's name, when the database is on a given server.
    created_on: Option<(String, String)>,
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// Data, socket, log and port file; removed after the server stops.
    dir: tempfile::TempDir,
    run_as_postgres: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin.join("pg_ctl"), self.run_as_postgres)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.created_on
            && let Ok(mut admin) = postgres::Client::connect(server, postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

impl TestPostgres {
    /// `None` (after [`skip`]) when no PostgreSQL can be had here.
    pub fn start(test: &str) -> Option<TestPostgres> {
        let result = match std::env::var("EMGUARD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => fresh_database(&url).map(|(db_url, name)| TestPostgres {
                url: db_url,
                cluster: None,
                created_on: Some((url, name)),
            }),
            _ => start_cluster(),
        };
        match result {
            Ok(pg) => Some(pg),
            Err(why) => skip(
                test,
                Prerequisite::Service,
                &format!(
                    "no PostgreSQL: {why} (install postgresql, or set EMGUARD_TEST_POSTGRES_URL)"
                ),
            ),
        }
    }

    /// A client of the test's database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url))
    }

    /// Kills the server the way a crash would (no shutdown checkpoint) and starts it again on
    /// the same data directory. Only for clusters this started.
    pub fn crash_and_restart(&self) {
        let c = self.cluster.as_ref().expect("a cluster this test started");
        let stop = pg_command(&c.bin.join("pg_ctl"), c.run_as_postgres)
            .arg("-D")
            .arg(&c.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            stop.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&stop.stderr)
        );
        start_server(c).expect("restart PostgreSQL");
    }

    pub fn started_cluster(&self) -> bool {
        self.cluster.is_some()
    }
}

/// Creates a database of its own on the server at `url`; returns its URL and name.
fn fresh_database(url: &str) -> Result<(String, String), String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "emguard_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("connect {url}: {e}"))?;
    // One statement per call: a multi-statement string runs as one transaction, and CREATE
    // DATABASE refuses to run inside a transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client
            .batch_execute(&sql)
            .map_err(|e| format!("create database on {url}: {e}"))?;
    }
    let (base, tail) = url
        .rsplit_once('/')
        .ok_or_else(|| format!("no database in {url}"))?;
    let (base, query) = match tail.split_once('?') {
        Some((_, q)) => (base, format!("?{q}")),
        None => (base, String::new()),
    };
    Ok((format!("{base}/{name}{query}"), name))
}

fn postgres_bin() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "/usr/lib/postgresql does not exist".to_string())?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

/// PostgreSQL refuses to run as root: as root, run its binaries as user `postgres`.
fn pg_command(program: &Path, run_as_postgres: bool) -> Command {
    if run_as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<TestPostgres, String> {
    let bin = postgres_bin()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let run_as_postgres = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0;
    if run_as_postgres {
        let uid = Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .ok_or("running as root and there is no user `postgres` to run the server as")?;
        std::os::unix::fs::chown(dir.path(), Some(uid), None).map_err(|e| e.to_string())?;
    }
    let data = dir.path().join("data");
    let init = pg_command(&bin.join("initdb"), run_as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "emguard", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !init.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        ));
    }
    let cluster = Cluster {
        bin,
        data,
        dir,
        run_as_postgres,
    };
    let port = start_server(&cluster)?;
    Ok(TestPostgres {
        url: format!("postgresql://emguard@127.0.0.1:{port}/postgres"),
        cluster: Some(cluster),
        created_on: None,
    })
}

/// Starts the cluster's server on the port it used before, or on a free one the first time.
fn start_server(c: &Cluster) -> Result<u16, String> {
    let port_file = c.dir.path().join("port");
    let port = match std::fs::read_to_string(&port_file) {
        Ok(p) => p.trim().parse::<u16>().map_err(|e| e.to_string())?,
        Err(_) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            std::fs::write(&port_file, port.to_string()).map_err(|e| e.to_string())?;
            port
        }
    };
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1",
        c.dir.path().display()
    );
    let start = pg_command(&c.bin.join("pg_ctl"), c.run_as_postgres)
        .arg("-D")
        .arg(&c.data)
        .args(["-o", &options, "-l"])
        .arg(c.dir.path().join("log"))
        .args(["-w", "start"])
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !start.status.success() {
        let log = std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {}{log}",
            String::from_utf8_lossy(&start.stderr)
        ));
    }
    Ok(port)
}
