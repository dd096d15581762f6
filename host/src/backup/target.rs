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
    /// The target `settings` name.
    pub fn open(settings: &crate::config::BackupTarget) -> Result<Self, BackupError> {
        match settings {
            crate::config::BackupTarget::Folder(path) => Self::folder(path),
            crate::config::BackupTarget::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                allow_http,
                credentials,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http)
                    // Written once under their content's hash: created only
                    // if absent (If-None-Match), so racing writers cannot
                    // replace one another's files.
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some((id, file)) = credentials {
                    let secret =
                        std::fs::read_to_string(file).map_err(|e| BackupError::Target {
                            operation: "read",
                            name: file.display().to_string(),
                            reason: format!("the S3 secret access key file: {e}"),
                        })?;
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret.trim());
                }
                let store = builder.build().map_err(|e| BackupError::Target {
                    operation: "open",
                    name: settings.to_string(),
                    reason: e.to_string(),
                })?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(
                        store,
                        prefix.as_str(),
                    ))
                };
                Ok(Self {
                    store,
                    describe: settings.to_string(),
                })
            }
        }
    }

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
    /// content-addressed name: the same name holds the same bytes); says
    /// whether it wrote them.
    pub async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<bool, BackupError> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&ObjectPath::from(name), PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
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
