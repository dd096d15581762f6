//! An adapter built against `droid:plugin@1.0.0`, a major version this host does
//! not speak. droid must refuse it at load and name both versions.

#[allow(missing_docs, missing_debug_implementations, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "adapter" });
}

use bindings::droid::plugin::types::PluginError;
use bindings::exports::droid::plugin::read_through::{FetchOutcome, Guest};

struct FromTheFuture;

impl Guest for FromTheFuture {
    fn fetch(
        _record_type: String,
        _key: String,
        _tenant: String,
    ) -> Result<FetchOutcome, PluginError> {
        Ok(FetchOutcome::NotFound)
    }
}

#[allow(unsafe_code)]
mod export {
    use super::*;
    bindings::export!(FromTheFuture with_types_in bindings);
}
