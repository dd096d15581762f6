//! The generated bindings and the glue between them and the provider's trait
//! implementation. Hidden from the docs: providers use [`export_adapter!`] and
//! [`export_transformer!`](crate::export_transformer) instead.
//!
//! Both worlds are generated here with `pub_export_macro`, which keeps the SDK's own
//! type information to imports only; the full world (with its export) is emitted
//! into the provider's crate by the export macro, so a component carries exactly
//! the one world it implements and imports only the functions it calls.

use std::marker::PhantomData;

use crate::types::{
    Entity, EntityOp, EntityRef, FetchOutcome, FetchRequest, PluginError, SourceEvent,
};
use crate::{Adapter, Transformer};

/// Bindings for the `adapter` world.
#[allow(missing_docs, missing_debug_implementations)]
pub mod adapter {
    wit_bindgen::generate!({
        path: "../wit",
        world: "adapter",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "$crate::__private::adapter",
    });
}

/// Bindings for the `transformer` world; its imports are the adapter's. The
/// call is written by `build.rs`, which reads the package version from the WIT.
#[allow(missing_docs, missing_debug_implementations)]
pub mod transformer {
    include!(concat!(env!("OUT_DIR"), "/transformer_bindings.rs"));
}

use adapter::droid::plugin::types as wit;
use adapter::exports::droid::plugin::read_through;

/// Implements the generated adapter export for any [`Adapter`].
#[derive(Debug)]
pub struct AdapterShim<T>(PhantomData<T>);

/// Implements the generated transformer export for any [`Transformer`].
#[derive(Debug)]
pub struct TransformerShim<T>(PhantomData<T>);

impl<T: Adapter> read_through::Guest for AdapterShim<T> {
    fn fetch(
        record_type: String,
        key: String,
        tenant: String,
    ) -> Result<read_through::FetchOutcome, wit::PluginError> {
        let outcome = T::fetch(FetchRequest {
            record_type,
            key,
            tenant,
        });
        match outcome {
            Ok(FetchOutcome::Found(record)) => {
                Ok(read_through::FetchOutcome::Found(read_through::Fetched {
                    body: record.body,
                    version: record.version,
                }))
            }
            Ok(FetchOutcome::NotFound) => Ok(read_through::FetchOutcome::NotFound),
            Err(e) => Err(error_to_wit(e)),
        }
    }
}

impl<T: Transformer> transformer::exports::droid::plugin::transform::Guest for TransformerShim<T> {
    fn transform(
        events: Vec<wit::SourceEvent>,
    ) -> Vec<Result<Vec<wit::EntityOp>, wit::PluginError>> {
        let events = events.into_iter().map(event_from_wit);
        crate::transform_batch::<T>(events)
            .into_iter()
            .map(|result| match result {
                Ok(ops) => Ok(ops.into_iter().map(op_to_wit).collect()),
                Err(e) => Err(error_to_wit(e)),
            })
            .collect()
    }
}

fn event_from_wit(e: wit::SourceEvent) -> SourceEvent {
    SourceEvent {
        id: e.id,
        source: e.source,
        kind: e.kind,
        tenant: e.tenant,
        occurred_at: e.occurred_at,
        payload: e.payload,
    }
}

fn entity_to_wit(e: Entity) -> wit::Entity {
    wit::Entity {
        key: e.key,
        tenant: e.tenant,
        body: e.body,
        version: e.version,
    }
}

fn op_to_wit(op: EntityOp) -> wit::EntityOp {
    match op {
        EntityOp::Upsert(e) => wit::EntityOp::Upsert(entity_to_wit(e)),
        EntityOp::Delete(EntityRef {
            key,
            tenant,
            version,
        }) => wit::EntityOp::Delete(wit::EntityRef {
            key,
            tenant,
            version,
        }),
    }
}

fn error_to_wit(e: PluginError) -> wit::PluginError {
    match e {
        PluginError::InvalidInput(m) => wit::PluginError::InvalidInput(m),
        PluginError::UpstreamStatus { status, message } => {
            wit::PluginError::UpstreamStatus(wit::UpstreamStatus { status, message })
        }
        PluginError::UpstreamUnavailable(m) => wit::PluginError::UpstreamUnavailable(m),
        PluginError::UpstreamTimeout(m) => wit::PluginError::UpstreamTimeout(m),
        PluginError::Internal(m) => wit::PluginError::Internal(m),
    }
}

/// Copies `text` into an array of its exact length, at compile time: the form a
/// custom section's contents must take.
#[doc(hidden)]
pub const fn version_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Writes `version` into the component as the `droid:plugin-version` custom
/// section, where droid reads a plugin's version from (unless the file name
/// carries one, `NAME@VERSION.wasm`).
#[doc(hidden)]
#[macro_export]
macro_rules! __droid_version_section {
    ($version:expr) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            const __DROID_VERSION: &str = $version;
            #[unsafe(link_section = "droid:plugin-version")]
            #[used]
            static __DROID_PLUGIN_VERSION: [u8; __DROID_VERSION.len()] =
                $crate::__private::version_bytes(__DROID_VERSION);
        };
    };
}

/// Exports a type implementing [`Adapter`](crate::Adapter) as this component's
/// `droid:plugin/read-through` implementation. Call it once, at the crate root.
///
/// The plugin's version, as droid reports it and rolls it out, is the crate's
/// `version` from `Cargo.toml`; `export_adapter!(MyAdapter, version = "1.2.0")`
/// sets another.
///
/// ```ignore
/// struct MyAdapter;
/// impl droid_sdk::Adapter for MyAdapter { /* ... */ }
/// droid_sdk::export_adapter!(MyAdapter);
/// ```
#[macro_export]
macro_rules! export_adapter {
    ($t:ty) => {
        $crate::export_adapter!($t, version = env!("CARGO_PKG_VERSION"));
    };
    ($t:ty, version = $version:expr) => {
        $crate::__droid_version_section!($version);
        const _: () = {
            fn __droid_check<T: $crate::Adapter>() {}
            let _ = __droid_check::<$t>;
        };
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            type __DroidAdapterExport = $crate::__private::AdapterShim<$t>;
            $crate::__private::adapter::export!(__DroidAdapterExport with_types_in $crate::__private::adapter);
        };
    };
}

/// Exports a type implementing [`Transformer`](crate::Transformer) as this
/// component's `droid:plugin/transform` implementation. Call it once, at the crate
/// root.
///
/// ```ignore
/// struct MyTransformer;
/// impl droid_sdk::Transformer for MyTransformer { /* ... */ }
/// droid_sdk::export_transformer!(MyTransformer);
/// ```
///
/// As with [`export_adapter!`], the version is the crate's unless
/// `version = "..."` is given.
#[macro_export]
macro_rules! export_transformer {
    ($t:ty) => {
        $crate::export_transformer!($t, version = env!("CARGO_PKG_VERSION"));
    };
    ($t:ty, version = $version:expr) => {
        $crate::__droid_version_section!($version);
        const _: () = {
            fn __droid_check<T: $crate::Transformer>() {}
            let _ = __droid_check::<$t>;
        };
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            type __DroidTransformerExport = $crate::__private::TransformerShim<$t>;
            $crate::__private::transformer::export!(__DroidTransformerExport with_types_in $crate::__private::transformer);
        };
    };
}
