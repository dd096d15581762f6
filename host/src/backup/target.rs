//! Where backups are written: an object store (a local folder today, any
//! `object_store` backend tomorrow). Backup files are written once under
//! names derived from their content and never rewritten; only manifests and
//! key files are replaced (an object store replaces an object whole, so a
//! reader sees the old one or the new one, never a mix).

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::BackupError;

/// The backup target.
#[derive(Debug, Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// What `Display` names it by, in errors and the admin API.
    describe: String,
}

impl Target {
    /// The local folder `path`, created if missing.
    pub fn folder(path: &std::path::Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(path).map_err(|e| BackupError::Target {
            operation: "create",
            name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| {
            BackupError::Target {
                operation: "open",
                name: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            store: Arc::new(store),
            describe: path.display().to_string(),
        })
    }

    /// What the target is, for people.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Writes `bytes` as `name` unless an object of that name exists (a
    /// content-addressed name: the same name holds the same bytes).
    pub async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&ObjectPath::from(name), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(BackupError::target("write", name)(e)),
        }
    }

    /// Writes `bytes` as `name`, replacing what it held.
    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.store
            .put(&ObjectPath::from(name), PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(BackupError::target("write", name))
    }

    /// The bytes of `name`, or `None` when there is no such object.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, BackupError> {
        match self.store.get(&ObjectPath::from(name)).await {
            Ok(found) => found
                .bytes()
                .await
                .map(Some)
                .map_err(BackupError::target("read", name)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(BackupError::target("read", name)(e)),
        }
    }

    /// The names of every object under `prefix` (a folder), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let prefix_path = ObjectPath::from(prefix);
        let mut names: Vec<String> = self
            .store
            .list(Some(&prefix_path))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(BackupError::target("list", prefix))?;
        names.sort();
        Ok(names)
    }

    /// Removes `name` (nothing when it is not there).
    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        match self.store.delete(&ObjectPath::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BackupError::target("delete", name)(e)),
        }
    }
}
