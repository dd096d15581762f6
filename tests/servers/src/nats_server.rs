//! A NATS server with JetStream of the tests' own: `nats-server -js` on a
//! free loopback port, its streams kept in a temporary folder.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, signal};

/// A running (or stopped) NATS server; dropped, it is killed.
#[derive(Debug)]
pub struct NatsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// A fresh server with JetStream on.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("droid-nats-")
            .tempdir()
            .expect("a folder for NATS");
        let mut server = Self {
            dir,
            port: free_port(),
            child: None,
        };
        // The free port may be taken by another test's server first.
        for attempt in 1.. {
            match server.try_start() {
                Ok(()) => break,
                Err(why) if attempt < 5 => {
                    eprintln!(
                        "nats-server did not start on port {} ({why}); trying another",
                        server.port
                    );
                    server.port = free_port();
                }
                Err(why) => panic!("{why}"),
            }
        }
        server
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it gracefully (what it stored stays), and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Starts it again on the same folder and port; waits until it listens.
    pub fn resume(&mut self) {
        if let Err(why) = self.try_start() {
            panic!("{why}");
        }
    }

    /// Starts it and waits until it listens; says why not when it exits first.
    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is running");
        let program = std::env::var_os("DROID_NATS_SERVER").unwrap_or_else(|| {
            // Debian puts it in /usr/sbin, which a user's PATH may lack.
            if std::path::Path::new("/usr/sbin/nats-server").exists() {
                "/usr/sbin/nats-server".into()
            } else {
                "nats-server".into()
            }
        });
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = std::process::Command::new(&program)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.path().join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}): install it (apt-get install nats-server) or set DROID_NATS_SERVER"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "nats-server exited ({status}):\n{}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen within 30 s:\n{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
