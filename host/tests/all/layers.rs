//! The host's modules form layers: no module reaches, directly or through
//! others, back into a module that uses it. Checked over the sources: every
//! `crate::MODULE` a top-level module names (outside comments and its unit
//! tests) is an edge, and the graph must have no cycle.
//!
//! `cargo test -p droid-host --test all layers -- --nocapture` prints the
//! modules in layer order, lowest first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules of `host/src` and the modules each names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (!["lib", "main", "cli"].contains(&module.as_str())).then_some(module)
        })
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for module in &modules {
        for file in files(&src.join(module), &src.join(format!("{module}.rs"))) {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests may reach anywhere; they are not part of the layers.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for used in line.split("crate::").skip(1) {
                    let name: String = used
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != *module && modules.contains(&name) {
                        graph.get_mut(module).unwrap().insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// Every `.rs` file of a module: its own file and its folder's.
fn files(dir: &Path, file: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if file.is_file() {
        out.push(file.to_path_buf());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn host_modules_form_layers_without_cycles() {
    let graph = graph();
    // Peel off modules whose dependencies are all placed: what is left at the
    // end (if anything) sits on a cycle.
    let mut placed: Vec<String> = Vec::new();
    let mut left = graph.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| placed.contains(u)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            !ready.is_empty(),
            "these host modules use each other in a cycle: {:?}",
            left
        );
        for module in ready {
            left.remove(&module);
            placed.push(module);
        }
    }
    for module in &placed {
        println!("{module} -> {:?}", graph[module]);
    }
}
