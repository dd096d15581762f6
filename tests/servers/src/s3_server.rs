//! An S3-compatible object store of the tests' own: moto's server
//! (`python3 -m moto.server`, from `pip install "moto[server]"`) on a free
//! loopback port, holding what it is sent in memory, with one bucket made
//! at start.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// A running S3-compatible server; dropped, it is killed.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    child: Child,
    /// The bucket made at start.
    pub bucket: String,
}

impl S3Server {
    /// A fresh server with an empty bucket `bucket`.
    pub fn start(bucket: &str) -> Self {
        let python = std::env::var("DROID_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = free_port();
        let child = std::process::Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {python} -m moto.server ({e}): install moto (pip install \"moto[server]\", as scripts/servers.sh does) or set DROID_PYTHON"
                )
            });
        let server = Self {
            port,
            child,
            bucket: bucket.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // moto takes any credentials; a plain PUT makes the bucket.
            match server.request("PUT", &format!("/{bucket}")) {
                Some(status) if status < 300 => break,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "moto's server did not answer within 60 s (is moto installed for {python}?)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a bodiless request; the status, if it answered.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
