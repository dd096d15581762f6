//! What a fleet shares in PostgreSQL: `plugin_files`, `plugin_decisions`
//! (each change at the next revision of one sequence) and `node_reports`.

use std::collections::BTreeMap;

use super::super::{Fleet, NodeReport, PushedFile, PushedPlugin, StoreError};
use super::{Postgres, from_db, to_db};

impl Fleet for Postgres {
    fn push_plugin(&self, plugin: &PushedPlugin) -> Result<(), StoreError> {
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO plugin_files (file, sha256, wasm, signature, pushed_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (file) DO UPDATE SET sha256 = excluded.sha256, wasm = excluded.wasm, \
                   signature = excluded.signature, pushed_at_ms = excluded.pushed_at_ms",
                &[
                    &plugin.file,
                    &plugin.sha256,
                    &plugin.wasm,
                    &plugin.signature,
                    &to_db(plugin.pushed_at_ms),
                ],
            )?;
            Ok(())
        })
    }

    fn pushed_files(&self) -> Result<Vec<PushedFile>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query(
                    "SELECT file, sha256, signature IS NOT NULL, pushed_at_ms FROM plugin_files \
                     ORDER BY file",
                    &[],
                )?
                .iter()
                .map(|row| PushedFile {
                    file: row.get(0),
                    sha256: row.get(1),
                    signed: row.get(2),
                    pushed_at_ms: from_db(row.get(3)),
                })
                .collect())
        })
    }

    fn pushed_plugin(&self, file: &str) -> Result<Option<PushedPlugin>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query_opt(
                    "SELECT wasm, signature, pushed_at_ms, sha256 FROM plugin_files WHERE file = $1",
                    &[&file],
                )?
                .map(|row| PushedPlugin {
                    file: file.to_owned(),
                    wasm: row.get(0),
                    signature: row.get(1),
                    pushed_at_ms: from_db(row.get(2)),
                    sha256: row.get(3),
                }))
        })
    }

    fn put_decisions(&self, plugin: &str, decisions: &str) -> Result<(), StoreError> {
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO plugin_decisions (plugin, decisions, revision) \
                 VALUES ($1, $2, nextval('decision_revisions')) \
                 ON CONFLICT (plugin) DO UPDATE SET decisions = excluded.decisions, \
                   revision = excluded.revision \
                 WHERE plugin_decisions.decisions <> excluded.decisions",
                &[&plugin, &decisions],
            )?;
            Ok(())
        })
    }

    fn decisions_revision(&self) -> Result<u64, StoreError> {
        self.with_client("read", |client| {
            let revision: Option<i64> = client
                .query_one("SELECT max(revision) FROM plugin_decisions", &[])?
                .get(0);
            Ok(revision.map_or(0, from_db))
        })
    }

    fn decisions(&self) -> Result<(u64, BTreeMap<String, String>), StoreError> {
        self.with_client("read", |client| {
            let mut revision = 0;
            let mut out = BTreeMap::new();
            for row in client.query(
                "SELECT plugin, decisions, revision FROM plugin_decisions",
                &[],
            )? {
                revision = revision.max(from_db(row.get(2)));
                out.insert(row.get(0), row.get(1));
            }
            Ok((revision, out))
        })
    }

    fn report_node(&self, node: &str, report: &str) -> Result<(), StoreError> {
        let at = to_db(super::super::now_ms());
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO node_reports (node, report, at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (node) DO UPDATE SET report = excluded.report, at_ms = excluded.at_ms",
                &[&node, &report, &at],
            )?;
            Ok(())
        })
    }

    fn node_reports(&self) -> Result<Vec<NodeReport>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query(
                    "SELECT node, report, at_ms FROM node_reports ORDER BY node",
                    &[],
                )?
                .iter()
                .map(|row| NodeReport {
                    node: row.get(0),
                    report: row.get(1),
                    at_ms: from_db(row.get(2)),
                })
                .collect())
        })
    }
}
