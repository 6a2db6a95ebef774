//! The module structure ARCHITECTURE.md describes, checked from the sources: the domain's
//! modules import each other without cycles, the vocabulary layer imports none of them, and
//! the infrastructure (`infra/`) knows no feature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test fails"
)]

use std::collections::{BTreeMap, BTreeSet};

/// The source of a file without its comments.
fn code_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each module of `src/` (with its submodules in `src/<module>/`) and the modules of this
/// crate it names (`crate::x`, or `x` inside a `use crate::{...}` group); comments are left
/// out.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()) {
                modules
                    .entry(name.clone())
                    .or_default()
                    .push_str(&code_of(&sub));
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            modules.entry(name).or_default().push_str(&code_of(&path));
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(name, code)| {
            let mut found = BTreeSet::new();
            for part in code.split("crate::").skip(1) {
                let group = part
                    .strip_prefix('{')
                    .map(|g| g.split('}').next().unwrap_or(""));
                let words: Vec<&str> = match group {
                    Some(g) => g.split(',').map(str::trim).collect(),
                    None => vec![part],
                };
                for word in words {
                    let module: String = word
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if names.contains(&module) && &module != name {
                        found.insert(module);
                    }
                }
            }
            (name.clone(), found)
        })
        .collect()
}

#[test]
fn domain_modules_import_each_other_without_cycles() {
    let graph = imports();
    assert!(graph.len() > 15, "{graph:?}");
    // Depth-first search for a path back to the start.
    fn reaches(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        target: &str,
        path: &mut Vec<String>,
    ) -> bool {
        for next in &graph[from] {
            if next == target {
                return true;
            }
            if !path.contains(next) {
                path.push(next.clone());
                if reaches(graph, next, target, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        assert!(
            !reaches(&graph, module, module, &mut path),
            "import cycle: {} -> {module}",
            path.join(" -> ")
        );
    }
}

#[test]
fn the_vocabulary_imports_no_feature() {
    let graph = imports();
    assert_eq!(graph["vocab"], BTreeSet::new());
    assert!(
        graph["error"].iter().all(|m| m == "vocab"),
        "{:?}",
        graph["error"]
    );
}

#[test]
fn the_infrastructure_knows_no_feature() {
    let graph = imports();
    let below: BTreeSet<String> = ["vocab", "error"].map(String::from).into();
    assert!(
        graph["infra"].is_subset(&below),
        "infra imports {:?}",
        graph["infra"]
    );
}
