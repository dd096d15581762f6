//! A PostgreSQL server of the tests' own: `initdb` in a temporary folder,
//! `postgres` on a free loopback port (and a socket in that folder), run as
//! an unprivileged user when the tests run as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::{command_as, free_port, hand_over, signal, unprivileged};

/// A running (or stopped) PostgreSQL server; dropped, it is stopped at once.
#[derive(Debug)]
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    durable: bool,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PostgresServer {
    /// A fresh server for tests: nothing is synced to disk (a test never
    /// survives the machine crashing), so it starts and writes fast.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A fresh server that syncs every commit, as production does: what a
    /// benchmark compares with the embedded store's durable commits.
    pub fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        off_runtime(move || Self::start_here(durable))
    }

    fn start_here(durable: bool) -> Self {
        let bin = binaries();
        let dir = tempfile::Builder::new()
            .prefix("droid-pg-")
            .tempdir()
            .expect("a folder for PostgreSQL");
        let user = unprivileged();
        hand_over(dir.path(), user);
        let initdb = command_as(&bin.join("initdb"), user)
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "droid",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = Self {
            dir,
            bin,
            port: free_port(),
            durable,
            user,
            child: None,
        };
        // The free port may be taken by another test's server before this
        // one binds it: then another port is tried.
        for attempt in 1.. {
            match server.try_start() {
                Ok(()) => break,
                Err(why) if attempt < 5 => {
                    eprintln!(
                        "postgres did not start on port {} ({why}); trying another",
                        server.port
                    );
                    server.port = free_port();
                }
                Err(why) => panic!("{why}"),
            }
        }
        let mut admin = server.client("postgres");
        admin
            .batch_execute("CREATE DATABASE droid")
            .expect("the droid database is created");
        server
    }

    /// The URL of database `droid` (user `droid`, no password).
    pub fn url(&self) -> String {
        self.url_of("droid")
    }

    /// The URL of database `database`.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgresql://droid@127.0.0.1:{}/{database}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client of `database` (the synchronous client: call it off any async
    /// runtime's threads, as in `spawn_blocking`).
    pub fn client(&self, database: &str) -> postgres::Client {
        postgres::Client::connect(&self.url_of(database), postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"))
    }

    /// Runs `sql` (statements separated by `;`) in database `droid`, from
    /// any thread.
    pub fn execute(&self, sql: &str) {
        off_runtime(|| {
            self.client("droid")
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        });
    }

    /// Stops the server the way an operator would (fast shutdown: clients
    /// are disconnected, committed work is kept), and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "INT");
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same folder and port; waits until it
    /// accepts connections.
    pub fn resume(&mut self) {
        off_runtime(|| self.resume_here());
    }

    fn resume_here(&mut self) {
        if let Err(why) = self.try_start() {
            panic!("{why}");
        }
    }

    /// Starts the server on its folder and port and waits until it accepts
    /// connections; says why not when it exits first.
    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the server log opens");
        hand_over(&self.log_path(), self.user);
        let fsync = if self.durable { "on" } else { "off" };
        let child = command_as(&self.bin.join("postgres"), self.user)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("fsync={fsync}")])
            .args(["-c", &format!("synchronous_commit={fsync}")])
            .args(["-c", &format!("full_page_writes={fsync}")])
            .args(["-c", "max_connections=400"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "postgres exited ({status}) before accepting connections:\n{}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within a minute:\n{}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the folder is deleted next.
            signal(child.id(), "QUIT");
            let _ = child.wait();
        }
    }
}

/// Runs `f` on a thread of its own: the synchronous PostgreSQL client may
/// not block a thread that drives async tasks, and tests call from both.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The folder of PostgreSQL's server programs: `DROID_PG_BIN`, else the
/// newest `/usr/lib/postgresql/*/bin` (Debian's layout), else the `PATH`.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("DROID_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| Path::new(dir).join("initdb").exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server programs were not found (install them: apt-get install postgresql, or set DROID_PG_BIN)"
        )
    })
}
