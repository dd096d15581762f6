//! Starting server processes as a user that may run them, and stopping them.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The uid and gid servers run as when the tests run as root (PostgreSQL
/// refuses to run as root): the `postgres` account's, else `nobody`'s.
pub fn unprivileged() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let account = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    account("postgres").or_else(|| account("nobody"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `program` run as the unprivileged user when there is one.
pub fn command_as(program: &Path, user: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    command
}

/// Gives `path` (and what is in it) to the unprivileged user.
pub fn hand_over(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        for entry in walk(path) {
            std::os::unix::fs::chown(&entry, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot hand {} over: {e}", entry.display()));
        }
    }
}

fn walk(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            out.extend(walk(&entry.path()));
        }
    }
    out
}

/// Sends `signal` (a number, as `kill` takes it) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}
