//! What `droid plugin inspect` reports about a component: its world and version,
//! its exports and imports with their function signatures, and whether this host
//! accepts it.

use std::fmt;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

use super::error::LoadError;
use super::world::{ACCEPTED, Identity};

/// A report on one plugin file.
#[derive(Debug)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, in hex.
    pub sha256: String,
    /// Its droid world and package version, when it has one.
    pub identity: Option<Identity>,
    /// Its exports.
    pub exports: Vec<ItemSignature>,
    /// Its imports.
    pub imports: Vec<ItemSignature>,
    /// Whether this host would load it, and if not, why.
    pub verdict: Result<(), LoadError>,
}

/// One imported or exported item and, for interfaces, their functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSignature {
    /// The item's full name, such as `droid:plugin/read-through@0.2.0`.
    pub name: String,
    /// Function signatures in WIT-like syntax.
    pub functions: Vec<String>,
}

pub(crate) fn describe(
    engine: &Engine,
    path: &Path,
    component: &Component,
    size: u64,
    sha256: &str,
) -> Inspection {
    let ty = component.component_type();
    let list =
        |items: &mut dyn Iterator<Item = (&str, wasmtime::component::types::ComponentExtern)>| {
            items
                .map(|(name, ext)| ItemSignature {
                    name: name.to_owned(),
                    functions: functions(engine, &ext.ty),
                })
                .collect::<Vec<_>>()
        };
    Inspection {
        path: path.to_path_buf(),
        size,
        sha256: sha256.to_owned(),
        identity: None,
        exports: list(&mut ty.exports(engine)),
        imports: list(&mut ty.imports(engine)),
        verdict: Ok(()),
    }
}

fn functions(engine: &Engine, item: &ComponentItem) -> Vec<String> {
    match item {
        ComponentItem::ComponentFunc(f) => vec![signature("", f)],
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .filter_map(|(name, ext)| match ext.ty {
                ComponentItem::ComponentFunc(f) => Some(signature(name, &f)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn signature(name: &str, f: &ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(p, t)| format!("{p}: {}", type_name(&t, 0)))
        .collect();
    let results: Vec<String> = f.results().map(|t| type_name(&t, 0)).collect();
    let mut out = format!("{name}({})", params.join(", "));
    if !results.is_empty() {
        out.push_str(" -> ");
        out.push_str(&results.join(", "));
    }
    out
}

/// A WIT-like rendering of a type; records and variants nested deeper than two
/// levels are abbreviated so signatures stay on one line.
fn type_name(t: &Type, depth: usize) -> String {
    let inner = |t: &Type| type_name(t, depth + 1);
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", inner(&l.ty())),
        Type::Option(o) => format!("option<{}>", inner(&o.ty())),
        Type::Result(r) => {
            let ok = r.ok().map_or("_".to_owned(), |t| inner(&t));
            let err = r.err().map_or("_".to_owned(), |t| inner(&t));
            format!("result<{ok}, {err}>")
        }
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types().map(|t| inner(&t)).collect::<Vec<_>>().join(", ")
        ),
        Type::Record(_) | Type::Variant(_) if depth >= 2 => "{…}".into(),
        Type::Record(r) => format!(
            "record {{ {} }}",
            r.fields()
                .map(|f| format!("{}: {}", f.name, inner(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            v.cases()
                .map(|c| match c.ty {
                    Some(t) => format!("{}({})", c.name, inner(&t)),
                    None => c.name.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("?")
            .to_lowercase(),
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "file:     {}", self.path.display())?;
        writeln!(f, "size:     {} bytes", self.size)?;
        writeln!(f, "sha256:   {}", self.sha256)?;
        match &self.identity {
            Some(id) => {
                writeln!(f, "world:    droid:plugin/{}", id.world)?;
                writeln!(f, "package:  droid:plugin@{}", id.version)?;
            }
            None => writeln!(f, "world:    (not a droid plugin world)")?,
        }
        match &self.verdict {
            Ok(()) => writeln!(
                f,
                "accepted: yes (this host accepts droid:plugin@{})",
                *ACCEPTED
            )?,
            Err(e) => writeln!(f, "accepted: no: {e}")?,
        }
        for (title, items) in [("exports", &self.exports), ("imports", &self.imports)] {
            writeln!(f, "{title}:")?;
            if items.is_empty() {
                writeln!(f, "  (none)")?;
            }
            for item in items {
                writeln!(f, "  {}", item.name)?;
                for func in &item.functions {
                    writeln!(f, "    {func}")?;
                }
            }
        }
        Ok(())
    }
}
