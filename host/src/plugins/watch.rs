//! Watching folders for changed files, and telling when a changed file is
//! complete.
//!
//! Files arrive in several ways: an atomic `mv` (complete at once), `cp` or an
//! upload (written over milliseconds or seconds, then closed), an editor's
//! save (a temporary file renamed over the old one). A path is handed on once
//! it has been quiet for the settle time after its last close, rename or
//! removal; a path still open for writing waits for its close, or for
//! [`PluginSettings::STALLED`] without any event. Handling a path is the
//! caller's business: it checks what is there when it gets it, on a thread
//! of its own (the handler here only passes the path on, so watching never
//! waits for a compile).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::config::PluginSettings;

/// Watches folders until dropped.
#[derive(Debug)]
pub struct Watcher {
    _watcher: RecommendedWatcher,
}

/// Starts watching `dirs` (not their subfolders) and calls `handler` on a
/// thread of its own with each path once it has settled.
pub fn start(
    dirs: &[PathBuf],
    settle: Duration,
    handler: impl FnMut(PathBuf) + Send + 'static,
) -> notify::Result<Watcher> {
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(tx)?;
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    std::thread::Builder::new()
        .name("droid-watch".into())
        .spawn(move || debounce(&rx, settle, handler))
        .map_err(notify::Error::io)?;
    Ok(Watcher { _watcher: watcher })
}

/// A path with events not yet handed on.
#[derive(Debug, Clone, Copy)]
struct Pending {
    last: Instant,
    writing: bool,
}

impl Pending {
    fn due(&self, settle: Duration) -> Instant {
        self.last
            + if self.writing {
                PluginSettings::STALLED
            } else {
                settle
            }
    }
}

/// Runs until the watcher is dropped (its sender closes the channel).
fn debounce(
    rx: &Receiver<notify::Result<Event>>,
    settle: Duration,
    mut handler: impl FnMut(PathBuf),
) {
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    loop {
        let wait = pending
            .values()
            .map(|p| p.due(settle))
            .min()
            .map_or(Duration::from_secs(3600), |due| {
                due.saturating_duration_since(Instant::now())
            });
        match rx.recv_timeout(wait) {
            Ok(Ok(event)) => note(&mut pending, &event),
            Ok(Err(e)) => tracing::warn!(error = %e, "file watcher error"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let mut ready: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, p)| p.due(settle) <= now)
            .map(|(path, _)| path.clone())
            .collect();
        ready.sort();
        for path in ready {
            pending.remove(&path);
            handler(path);
        }
    }
}

fn note(pending: &mut HashMap<PathBuf, Pending>, event: &Event) {
    let writing = match event.kind {
        // Opened for writing, or written to: more is probably coming.
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Some(true),
        // The writer closed it, or it was moved in or out, or removed: complete.
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(_))
        | EventKind::Remove(_) => Some(false),
        // Reads and opens change nothing.
        EventKind::Access(_) => return,
        // Anything else (attributes, unknown): note it, without changing whether
        // the file is being written.
        _ => None,
    };
    let now = Instant::now();
    for path in &event.paths {
        let entry = pending.entry(path.clone()).or_insert(Pending {
            last: now,
            writing: false,
        });
        entry.last = now;
        if let Some(writing) = writing {
            entry.writing = writing;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn watching() -> (tempfile::TempDir, Watcher, mpsc::Receiver<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let watcher = start(
            &[dir.path().to_path_buf()],
            Duration::from_millis(20),
            move |p| {
                let _ = tx.send(p);
            },
        )
        .unwrap();
        (dir, watcher, rx)
    }

    #[test]
    fn an_atomic_rename_is_handed_on_once() {
        let (dir, _watcher, rx) = watching();
        let tmp = dir.path().join(".a.wasm.partial");
        std::fs::write(&tmp, b"bytes").unwrap();
        std::fs::rename(&tmp, dir.path().join("a.wasm")).unwrap();
        let mut seen = Vec::new();
        while let Ok(path) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(
            seen.iter().filter(|n| *n == "a.wasm").count(),
            1,
            "{seen:?}"
        );
    }

    #[test]
    fn a_file_written_slowly_is_handed_on_after_its_close() {
        use std::io::Write;
        let (dir, _watcher, rx) = watching();
        let path = dir.path().join("b.wasm");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"first half").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            rx.try_recv().is_err(),
            "handed on while still open for writing"
        );
        file.write_all(b"second half").unwrap();
        drop(file);
        let got = rx.recv_timeout(Duration::from_secs(1)).unwrap();
        assert_eq!(got, path);
        assert_eq!(std::fs::read(&got).unwrap(), b"first halfsecond half");
    }
}
