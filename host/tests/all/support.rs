//! What the binary's tests share: running `droid` commands, a `droid serve`
//! child process, config folders, and raw HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use droid_test_artifacts as plugins;

pub fn droid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_droid"))
        .args(args)
        .env("DROID_LOG", "warn")
        .output()
        .expect("droid runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A folder with `droid.toml` (the given record types) and a plugin folder
/// holding the example adapter and the wrong-world component.
pub fn config_dir(record_types: &str) -> (tempfile::TempDir, PathBuf) {
    config_dir_with(record_types, &[])
}

/// Like [`config_dir`], with more built plugins (artifact paths) in the
/// plugin folder, under their own file names.
pub fn config_dir_with(record_types: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    for file in [plugins::HTTP_JSON_ADAPTER, plugins::WRONG_WORLD]
        .iter()
        .chain(extra)
    {
        let file = Path::new(file);
        std::fs::copy(
            file,
            dir.path().join("plugins").join(file.file_name().unwrap()),
        )
        .unwrap();
    }
    let path = dir.path().join("droid.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{record_types}"),
    )
    .unwrap();
    (dir, path)
}

/// A `droid serve` child process, stopped with SIGTERM when dropped.
pub struct Serving {
    pub child: std::process::Child,
    pub address: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serving {
    /// Starts `droid serve --insecure-no-auth`, logging at `info`.
    pub fn start(config: &Path) -> Self {
        Self::start_logging(config, "info")
    }

    /// Starts droid logging at `level` (everything it logs is kept: [`Serving::log`]).
    pub fn start_logging(config: &Path, level: &str) -> Self {
        let args = [
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--insecure-no-auth",
        ];
        Self::spawn(&args, level, "droid is serving")
    }

    /// Starts `droid serve` checking tokens as its `[auth]` says.
    pub fn start_authenticated(config: &Path) -> Self {
        let args = ["serve", "--config", config.to_str().unwrap()];
        Self::spawn(&args, "info", "droid is serving")
    }

    /// Kills it with SIGKILL, as a crash would, and waits for it to end.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts droid under an open-files limit of `files` (`ulimit -n`).
    pub fn start_with_open_files(config: &Path, files: u32) -> Self {
        let script = format!("ulimit -n {files} && exec \"$0\" \"$@\"");
        let args = [
            "-c",
            &script,
            env!("CARGO_BIN_EXE_droid"),
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--insecure-no-auth",
        ];
        Self::spawn_program("sh", &args, "info", "droid is serving")
    }

    /// Starts `droid sidecar --config CONFIG --upstream UPSTREAM`.
    pub fn sidecar(config: &Path, upstream: &str) -> Self {
        let args = [
            "sidecar",
            "--config",
            config.to_str().unwrap(),
            "--upstream",
            upstream,
        ];
        Self::spawn(&args, "info", "sidecar is serving")
    }

    /// Runs `droid ARGS` logging JSON at `level` until it logs `serving` with
    /// its address.
    fn spawn(args: &[&str], level: &str, serving: &str) -> Self {
        Self::spawn_program(env!("CARGO_BIN_EXE_droid"), args, level, serving)
    }

    /// Runs `program ARGS` (droid, or a shell that runs it) the same way.
    fn spawn_program(program: &str, args: &[&str], level: &str, serving: &str) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .args(["--log-format", "json"])
            .env("DROID_LOG", level)
            .stderr(Stdio::piped())
            .spawn()
            .expect("droid starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let started = Instant::now();
        let address = loop {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "droid exited before serving"
            );
            log.lock().unwrap().push_str(&line);
            let log: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if log["fields"]["message"] == serving {
                break log["fields"]["address"].as_str().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "droid did not start"
            );
        };
        // Keep draining the log so the child never blocks on a full pipe.
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            address,
            log,
        }
    }

    /// Everything droid has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds every one of `needles` (droid writes its log from
    /// a thread of its own, so a line can trail the answer it belongs to);
    /// panics naming the missing ones after a generous wait.
    pub fn log_containing(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let missing: Vec<&&str> = needles.iter().filter(|n| !log.contains(**n)).collect();
            if missing.is_empty() {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {missing:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.child.wait().unwrap()
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `droid ARGS --server SERVER`, which must succeed; returns its output.
pub fn run_against(server: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--server", server]);
    let out = droid(&all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A raw HTTP/1.1 request to `address`; returns status and body.
pub fn http(address: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_as(address, method, path, body, None)
}

/// [`http`] with a bearer token, when given.
pub fn http_as(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: droid\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// A ticket event of the ticket transformer's shape, created as version 1.
pub fn ticket_event(n: u64) -> String {
    ticket_change(&format!("ev-{n}"), n, "ticket.created", 1)
}

/// A ticket event with this id, for ticket `OPS-{n}` of tenant `acme`.
pub fn ticket_change(id: &str, n: u64, kind: &str, version: u64) -> String {
    format!(
        r#"{{"id":"{id}","kind":"{kind}","tenant":"acme","occurred_at":1763633700000,"payload":{{"ticket":{{"key":"OPS-{n}","summary":"s","description":"d","status":"open","priority":"high","labels":[],"updated_at":"2026-11-20T10:00:00Z","version":{version}}},"project":{{"key":"OPS","name":"Operations"}},"assignee":null,"reporter":{{"account_id":"u-1","display_name":"G","email":"g@example.com"}}}}}}"#
    )
}

/// A config folder with the ticket transformer behind source `tracker`.
pub fn ticket_config_dir() -> (tempfile::TempDir, PathBuf) {
    ticket_config_dir_with("")
}

/// [`ticket_config_dir`], with more settings (TOML lines) for the source.
pub fn ticket_config_dir_with(source_settings: &str) -> (tempfile::TempDir, PathBuf) {
    config_dir_with(
        &format!(
            "[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\n\n[sources.tracker]\nrecord_type = \"ticket\"\n{source_settings}"
        ),
        &[plugins::TICKET_TRANSFORMER],
    )
}
