//! A perfectly good component of the wrong world: it exports `acme:widgets/greeter`
//! rather than a droid plugin interface. droid must refuse it at load and say why.

#[allow(missing_docs, missing_debug_implementations, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "widget" });
}

struct Widget;

impl bindings::exports::acme::widgets::greeter::Guest for Widget {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

#[allow(unsafe_code)]
mod export {
    use super::*;
    bindings::export!(Widget with_types_in bindings);
}
