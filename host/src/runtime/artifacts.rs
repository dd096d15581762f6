//! Compiled plugins cached on disk, keyed by the plugin's content hash.
//!
//! Compiling a component takes from tens of milliseconds to seconds; loading a
//! cached artifact takes about a millisecond. An entry is named by the SHA-256 of
//! the `.wasm` bytes plus a hash of everything that makes compiled code compatible
//! with this engine (wasmtime version, compiler settings, CPU features, droid's own
//! version), so an upgrade or a changed setting simply misses the cache.
//!
//! Entries are written to a temporary file and renamed into place, so a reader
//! never sees half an artifact. An entry that fails to load for any reason is
//! recompiled and replaced: the cache can speed things up but never break them.

#![allow(unsafe_code)]

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from, for logs and `plugin inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Loaded from a cached artifact.
    Cache,
    /// Compiled now (and written to the cache when possible).
    Compiled,
}

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: Option<PathBuf>,
    compat: String,
}

impl ArtifactCache {
    /// A cache in `dir`; `None` disables caching.
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Self {
            dir,
            compat: format!("{:016x}", hasher.finish()),
        }
    }

    /// The compiled form of `wasm`, whose SHA-256 is `sha256`: from the cache when a
    /// valid entry exists, compiled (and cached) otherwise.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, Provenance)> {
        let Some(path) = self.entry_path(sha256) else {
            return Ok((Component::new(engine, wasm)?, Provenance::Compiled));
        };
        if path.is_file() {
            // SAFETY: entries are written only by `store` below, from bytes this
            // engine produced, and are replaced by rename, never modified in place,
            // so the mapped file cannot change under wasmtime. The name carries the
            // content hash and the engine compatibility hash, and wasmtime itself
            // checks the artifact's header against the engine before using it.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Provenance::Cache)),
                Err(e) => tracing::warn!(
                    artifact = %path.display(),
                    error = %e,
                    "cached artifact unusable; recompiling"
                ),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(artifact = %path.display(), error = %e, "could not write compiled artifact to the cache");
        }
        Ok((component, Provenance::Compiled))
    }

    fn entry_path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{sha256}-{}.cwasm", self.compat)))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let dir = path
            .parent()
            .expect("cache entries live in the cache folder");
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(&bytes)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)?;
        Ok(())
    }
}

/// A uniquely named temporary file in `dir`; created exclusively, so two droid
/// processes sharing a cache never write into the same temporary file.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}
