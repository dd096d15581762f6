//! Putting files in place the ways operators and their tools do, and waiting
//! for droid to notice.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a file lands in the plugin folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Written to a temporary name, then renamed over the target (`mv`).
    Atomic,
    /// Truncated and written in place in one go (`cp`).
    InPlace,
    /// Written in place in two halves with a pause between (a slow upload).
    Slow,
}

/// Puts `bytes` at `path` the way `landing` says.
pub fn land(path: &Path, bytes: &[u8], landing: Landing) {
    match landing {
        Landing::Atomic => {
            let tmp = path.with_file_name(format!(
                ".{}.partial",
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&tmp, bytes).expect("write the temporary file");
            std::fs::rename(&tmp, path).expect("rename into place");
        }
        Landing::InPlace => std::fs::write(path, bytes).expect("write in place"),
        Landing::Slow => {
            use std::io::Write;
            let mut file = std::fs::File::create(path).expect("create");
            let half = bytes.len() / 2;
            file.write_all(&bytes[..half]).expect("first half");
            file.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(300));
            file.write_all(&bytes[half..]).expect("second half");
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
