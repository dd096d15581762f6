//! The generated bindings for `wit/`, and the conversions between them and the
//! host's own types.
//!
//! This is the only module that names generated types: everything else in the host
//! speaks [`crate::entity`] types, so a change to the WIT shows up as a compile error
//! here and nowhere else. Both worlds share their imported interfaces: the
//! transformer bindings reuse the adapter bindings' modules through `with`, so one
//! set of host implementations serves both.

use crate::entity::{Entity, EntityOp, EntityRef, FetchOutcome, PluginFailure, SourceEvent};

/// Bindings for the `adapter` world.
pub(crate) mod adapter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "adapter",
        imports: {
            "droid:plugin/outbound-http.send": async,
        },
        exports: { default: async },
    });
}

/// Bindings for the `transformer` world, sharing the adapter's import interfaces.
pub(crate) mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
        exports: { default: async },
        with: {
            "droid:plugin/types": super::adapter::droid::plugin::types,
            "droid:plugin/log": super::adapter::droid::plugin::log,
            "droid:plugin/clock": super::adapter::droid::plugin::clock,
            "droid:plugin/config": super::adapter::droid::plugin::config,
        },
    });
}

pub(crate) use adapter::droid::plugin::{clock, config, log, outbound_http, types};
pub(crate) use adapter::exports::droid::plugin::read_through;
pub(crate) use adapter::{Adapter, AdapterPre};
pub(crate) use transformer::{Transformer, TransformerPre};

impl From<types::PluginError> for PluginFailure {
    fn from(e: types::PluginError) -> Self {
        use types::PluginError as E;
        match e {
            E::InvalidInput(m) => PluginFailure::InvalidInput(m),
            E::UpstreamStatus(s) => PluginFailure::UpstreamStatus {
                status: s.status,
                message: s.message,
            },
            E::UpstreamUnavailable(m) => PluginFailure::UpstreamUnavailable(m),
            E::UpstreamTimeout(m) => PluginFailure::UpstreamTimeout(m),
            E::Internal(m) => PluginFailure::Internal(m),
        }
    }
}

impl From<types::Entity> for Entity {
    fn from(e: types::Entity) -> Self {
        Entity {
            key: e.key,
            tenant: e.tenant,
            body: e.body,
            version: e.version,
        }
    }
}

impl From<types::EntityOp> for EntityOp {
    fn from(op: types::EntityOp) -> Self {
        match op {
            types::EntityOp::Upsert(e) => EntityOp::Upsert(e.into()),
            types::EntityOp::Delete(r) => EntityOp::Delete(EntityRef {
                key: r.key,
                tenant: r.tenant,
                version: r.version,
            }),
        }
    }
}

impl read_through::FetchOutcome {
    /// The outcome of a fetch of `key` of `tenant`: a found record is that
    /// key's, whatever the adapter might have wanted.
    pub(crate) fn of(self, key: &str, tenant: &str) -> FetchOutcome {
        match self {
            read_through::FetchOutcome::Found(record) => FetchOutcome::Found(Entity {
                key: key.to_owned(),
                tenant: tenant.to_owned(),
                body: record.body,
                version: record.version,
            }),
            read_through::FetchOutcome::NotFound => FetchOutcome::NotFound,
        }
    }
}

impl From<SourceEvent> for types::SourceEvent {
    fn from(e: SourceEvent) -> Self {
        types::SourceEvent {
            id: e.id,
            source: e.source,
            kind: e.kind,
            tenant: e.tenant,
            occurred_at: e.occurred_at,
            payload: e.payload,
        }
    }
}
