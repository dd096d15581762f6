//! Hearing that the shared log grew: one thread per store listens on the
//! schema's channel and reads the log's end whenever a notification comes,
//! and every poll interval whatever comes (a notification sent while the
//! thread was disconnected is lost; the table never is).

use std::sync::Weak;
use std::time::Duration;

use postgres::NoTls;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

/// Starts the thread; it ends once `grown` is dropped (within a poll
/// interval).
pub(super) fn start(
    config: postgres::Config,
    channel: String,
    grown: Weak<watch::Sender<u64>>,
    poll: Duration,
) {
    let started = std::thread::Builder::new()
        .name("droid-store-follow".to_owned())
        .spawn(move || follow(&config, &channel, &grown, poll));
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start following the PostgreSQL log; other nodes' changes reach followers only through this node's own");
    }
}

fn follow(
    config: &postgres::Config,
    channel: &str,
    grown: &Weak<watch::Sender<u64>>,
    poll: Duration,
) {
    let mut failing = false;
    while grown.strong_count() > 0 {
        match listen(config, channel, grown, poll) {
            Ok(()) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "lost the PostgreSQL connection that follows the log; retrying every {poll:?}");
                }
                failing = true;
                std::thread::sleep(poll);
            }
        }
    }
}

/// Listens until the store is gone (`Ok`) or the connection fails.
fn listen(
    config: &postgres::Config,
    channel: &str,
    grown: &Weak<watch::Sender<u64>>,
    poll: Duration,
) -> Result<(), postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(&format!("LISTEN {channel}"))?;
    loop {
        let last: i64 = client.query_one("SELECT last_seq FROM log", &[])?.get(0);
        let Some(sender) = grown.upgrade() else {
            return Ok(());
        };
        let last = last as u64;
        sender.send_if_modified(|seen| {
            let newer = last > *seen;
            if newer {
                *seen = last;
            }
            newer
        });
        drop(sender);
        // Wait for a notification or the poll interval, then take whatever
        // else arrived meanwhile: one read of the log's end serves them all.
        let mut notifications = client.notifications();
        notifications.timeout_iter(poll).next()?;
        while notifications.iter().next()?.is_some() {}
    }
}
