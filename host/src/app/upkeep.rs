//! The background loop a serving droid needs, on a thread of its own so it
//! never holds up a request: folding histogram samples (so memory stays flat
//! when nobody scrapes `/metrics`), the caches' bookkeeping of reads and
//! expiries (which would otherwise run inline in whichever read finds its
//! buffers full), the feed's gauges, dropping read-through entries of
//! tenants that moved to another realm, judging rollouts, expiring snapshot
//! batches and trimming the change log. It ends when the server shuts down
//! or the app goes away.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Control, Service};

/// How often the loop runs. Often enough that neither histograms nor cache
/// bookkeeping piles up and then stalls a request thread that happens to
/// trigger it, and that a bad rollout is caught within a fraction of a
/// second.
const INTERVAL: Duration = Duration::from_millis(250);

/// Starts the loop over `service` and `control`.
pub(super) fn start(service: &Arc<Service>, control: &Arc<Control>) {
    let (service, control): (Weak<Service>, Weak<Control>) =
        (Arc::downgrade(service), Arc::downgrade(control));
    let spawned = std::thread::Builder::new()
        .name("droid-upkeep".into())
        .spawn(move || {
            while let (Some(service), Some(control)) = (service.upgrade(), control.upgrade()) {
                if *service.closing().borrow() {
                    break;
                }
                service.metrics.run_upkeep();
                service.read_through.run_pending_tasks();
                service
                    .feed
                    .publish_gauges(service.realms.all().map(|r| r.tail.bytes()).sum());
                for tenant in service.realms.directory.take_moved() {
                    service.read_through.drop_tenant(&tenant);
                }
                service.realms.directory.publish_gauges();
                control.check_rollouts();
                service.expire_snapshots();
                service.trim_change_log();
                drop((service, control));
                std::thread::sleep(INTERVAL);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the upkeep thread; maintenance will run inline");
    }
}
