//! Retention: whole chains go once no instant within `backup.retention_s`
//! needs them. A chain serves the instants from its snapshot to the next
//! chain's; it goes once the next chain's snapshot is older than the
//! retention. The newest chain always stays. A manifest goes before its
//! files, so no manifest ever names a file that is gone.

use super::BackupError;
use super::manifest;
use super::writer::Context;
use crate::store::now_ms;

/// Removes `realm`'s chains past retention; returns how many went.
pub(super) fn prune(ctx: &Context<'_>, realm: &str) -> Result<usize, BackupError> {
    let horizon = now_ms().saturating_sub(ctx.settings.retention.as_millis() as u64);
    let names = ctx
        .runtime
        .block_on(manifest::manifests(ctx.target, realm))?;
    let mut chains = Vec::new();
    for name in &names {
        match ctx.runtime.block_on(manifest::load(ctx.target, name)) {
            Ok(chain) => chains.push((name, chain)),
            // A damaged manifest is kept for people to look at; verification reports it.
            Err(e) => {
                tracing::warn!(realm, error = %e, "a backup chain cannot be read; retention leaves it")
            }
        }
    }
    // In time order: a store made anew numbers its log from the start.
    chains.sort_by_key(|(_, c)| (c.base_ms, c.created_ms));
    let mut removed = 0;
    for pair in chains.windows(2) {
        let ((name, chain), (_, next)) = (&pair[0], &pair[1]);
        if next.base_ms >= horizon {
            continue;
        }
        // The pages are read before the manifest goes; a damaged one leaves
        // its segments behind (named in the log), never a manifest without
        // its files.
        let segments = match ctx.runtime.block_on(chain.all_segments(ctx.target)) {
            Ok(segments) => segments,
            Err(e) => {
                tracing::warn!(realm, chain = %name, error = %e, "a backup chain past retention has a damaged page; its segments stay");
                chain.segments.clone()
            }
        };
        ctx.runtime.block_on(ctx.target.delete(name))?;
        for file in chain.snapshot.iter().chain(&chain.pages).chain(&segments) {
            ctx.runtime.block_on(ctx.target.delete(&file.name))?;
        }
        removed += 1;
        tracing::info!(realm, chain = %name, base_seq = chain.base_seq, "backup chain past retention removed");
    }
    Ok(removed)
}
