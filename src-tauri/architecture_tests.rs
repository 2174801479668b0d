//! The workspace's dependency rule, checked on the resolved dependency graph (`cargo
//! metadata`): nothing under `crates/` depends on Tauri, and the vault core, its cryptography
//! and the governance model depend on no networking crate, directly or through anything else.

use std::collections::{BTreeMap, BTreeSet};

/// Crates that talk to the network (HTTP clients and servers, TLS, sockets).
const NETWORKING: &[&str] = &[
    "reqwest",
    "hyper",
    "h2",
    "axum",
    "ureq",
    "curl",
    "isahc",
    "rustls",
    "tokio-rustls",
    "native-tls",
    "socket2",
    "tungstenite",
    "labvault-client",
    "labvault-sync",
    "labvault-server",
];

/// Crates that must stay off the network.
const OFFLINE: &[&str] = &["labvault-core", "labvault-crypto", "labvault-governance"];

struct Graph {
    /// Package id -> name.
    names: BTreeMap<String, String>,
    /// Package id -> normal and build dependencies (dev-dependencies do not ship).
    deps: BTreeMap<String, Vec<String>>,
    /// Workspace members: id -> manifest path.
    members: BTreeMap<String, String>,
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeMap::new();
    let mut members = BTreeMap::new();
    let member_ids: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for p in meta["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap().to_string();
        names.insert(id.clone(), p["name"].as_str().unwrap().to_string());
        if member_ids.contains(id.as_str()) {
            members.insert(id, p["manifest_path"].as_str().unwrap().to_string());
        }
    }
    let mut deps = BTreeMap::new();
    for n in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap().to_string();
        let ds = n["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"))
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        deps.insert(id, ds);
    }
    Graph {
        names,
        deps,
        members,
    }
}

impl Graph {
    /// Every package `id` depends on, transitively, by name, with one path to each.
    fn closure(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stack = vec![(id.to_string(), vec![self.names[id].clone()])];
        let mut visited = BTreeSet::new();
        while let Some((cur, path)) = stack.pop() {
            if !visited.insert(cur.clone()) {
                continue;
            }
            for d in &self.deps[&cur] {
                let name = self.names[d].clone();
                let mut p = path.clone();
                p.push(name.clone());
                seen.entry(name).or_insert_with(|| p.clone());
                stack.push((d.clone(), p));
            }
        }
        seen
    }
}

#[test]
fn no_crate_under_crates_depends_on_tauri_and_the_vault_core_never_on_the_network() {
    let g = graph();
    let mut checked = 0;
    for (id, manifest) in &g.members {
        let name = &g.names[id];
        if !manifest.contains("/crates/") {
            continue;
        }
        checked += 1;
        let all = g.closure(id);
        for (dep, path) in &all {
            assert!(
                !dep.starts_with("tauri"),
                "{name} depends on {dep} through {}",
                path.join(" -> ")
            );
            if OFFLINE.contains(&name.as_str()) {
                assert!(
                    !NETWORKING.contains(&dep.as_str()),
                    "{name} must never touch the network, but depends on {dep} through {}",
                    path.join(" -> ")
                );
            }
        }
    }
    assert!(
        checked >= 6,
        "only {checked} crates under crates/ were found"
    );
}
