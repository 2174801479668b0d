//! The module dependency rule of this crate, checked on its sources: modules use only modules
//! below them (no import circles), in the layers `lib.rs` documents. Test code is exempt (it
//! drives the vault from above).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first: a module may use modules of its own layer or below, never above.
const LAYERS: &[&[&str]] = &[
    &[
        "error",
        "names",
        "model",
        "layout",
        "locks",
        "fsutil",
        "keyring",
        "keyfile_io",
        "checkpoint",
        "bundle_seal",
        "bundle",
    ],
    &[
        "catalog",
        "audit",
        "journal_file",
        "packs",
        "holds",
        "changes",
        "rotation_state",
    ],
    &["vault"],
    &[
        "blob_files",
        "journal",
        "projects",
        "items",
        "retention",
        "account",
        "rekey",
        "anchors",
        "audit_log",
        "transfer",
        "view",
        "copies",
        "watches",
        "bundle_export",
        "evidence",
    ],
    &["sync"],
];

fn layer_of(m: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&m))
        .unwrap_or_else(|| panic!("module {m} is in no layer of layering.rs"))
}

/// The source of a module without comments and test code.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        // The test module ends the product code (single `#[cfg(test)]` items are kept).
        let next = lines.get(i + 1).map(|l| l.trim_start()).unwrap_or("");
        if line.trim_start().starts_with("#[cfg(test)]") && next.starts_with("mod ") {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level items `lib.rs` re-exports, by the module that defines them.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim();
            if !name.is_empty() {
                map.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    map
}

/// The crate modules `code` uses (`crate::x`, `crate::{x, y::z}`, `crate::Reexported`).
fn uses(code: &str, modules: &BTreeSet<String>, re: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |first: &str| {
        if modules.contains(first) {
            out.insert(first.to_string());
        } else if let Some(m) = re.get(first) {
            if modules.contains(m) {
                out.insert(m.clone());
            }
        }
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A `use crate::{a, b::c, d::{e, f}}` group: the first segment of each top item.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        add(item.trim().split("::").next().unwrap_or(""));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            add(item.trim().split("::").next().unwrap_or(""));
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            add(&first);
        }
    }
    out
}

#[test]
fn modules_only_use_modules_below_them_and_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = code_of(&src.join("lib.rs"));
    let re = reexports(&lib);
    let modules: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter())
        .map(|m| m.to_string())
        .collect();
    // Every module declared in lib.rs is placed in a layer.
    for line in lib.lines() {
        let l = line.trim();
        if let Some(m) = l
            .strip_prefix("pub mod ")
            .or_else(|| l.strip_prefix("mod "))
            .and_then(|m| m.strip_suffix(';'))
        {
            assert!(
                modules.contains(m) || m == "layering",
                "module {m} is in no layer"
            );
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let file = src.join(format!("{m}.rs"));
        let files: Vec<std::path::PathBuf> = if file.exists() {
            vec![file]
        } else {
            std::fs::read_dir(src.join(m))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                .collect()
        };
        let mut deps = BTreeSet::new();
        for f in files {
            deps.extend(uses(&code_of(&f), &modules, &re));
        }
        deps.remove(m);
        for d in &deps {
            assert!(
                layer_of(d) <= layer_of(m),
                "{m} (layer {}) uses {d} (layer {}), which is above it",
                layer_of(m),
                layer_of(d)
            );
        }
        graph.insert(m.clone(), deps);
    }
    // No circle, within a layer either: a depth-first search finds no back edge.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import circle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in &graph[m] {
            visit(d, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}
