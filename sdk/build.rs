//! Writes the transformer world's bindings call, whose `with` keys must name
//! the interfaces at the package version `wit/plugin.wit` declares: the WIT
//! file stays the one source of that version.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/plugin.wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let text = std::fs::read_to_string(&wit)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", wit.display()));
    let version = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("package droid:plugin@"))
        .map(|rest| rest.trim_end_matches(';').trim())
        .unwrap_or_else(|| panic!("{}: no `package droid:plugin@VERSION;` line", wit.display()));
    let shared = ["types", "log", "clock", "config"]
        .map(|iface| {
            format!(
                "        \"droid:plugin/{iface}@{version}\": crate::__private::adapter::droid::plugin::{iface},\n"
            )
        })
        .concat();
    let call = format!(
        "wit_bindgen::generate!({{
    path: \"../wit\",
    world: \"transformer\",
    pub_export_macro: true,
    export_macro_name: \"export\",
    default_bindings_module: \"$crate::__private::transformer\",
    with: {{
{shared}    }},
}});
"
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("transformer_bindings.rs");
    std::fs::write(&out, call).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
