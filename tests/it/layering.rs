//! The house rule of src/lib.rs: the top-level modules depend on one another without a
//! cycle (so each can be read, tested and replaced from the bottom up). Read from the
//! source: every `crate::x` a module's non-test code names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the top-level modules its code names.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        let test_file = rel.split('/').any(|p| p == "tests" || p == "tests.rs" || p == "props.rs");
        if !rel.ends_with(".rs") || top == "lib" || top == "main" || test_file {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may reach anywhere: only the code above them counts.
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = graph.entry(top.clone()).or_default();
        for line in code.lines().map(|l| l.split("//").next().unwrap()) {
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list.split('}').next().unwrap().split(',').collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String =
                        name.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != top && name != "self" {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    graph.values_mut().for_each(|deps| deps.retain(|d| modules.contains(d)));
    graph
}

/// A cycle through `from`, if any (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().unwrap().clone();
        for next in &graph[&here] {
            if *next == path[0] {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_top_level_modules_depend_on_each_other_without_a_cycle() {
    let graph = dependencies();
    assert!(graph.len() > 15, "found the modules: {graph:?}");
    assert!(graph["proxy"].contains("budget"), "found the dependencies: {graph:?}");
    for module in graph.keys() {
        if let Some(path) = cycle(&graph, module) {
            panic!("import cycle: {}", path.join(" -> "));
        }
    }
}

#[test]
fn every_top_level_module_is_on_the_map_in_lib_rs() {
    let lib = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")).unwrap();
    let map: String = lib.lines().filter(|l| l.starts_with("//!")).collect();
    for module in dependencies().keys() {
        let named = map.contains(&format!("[`{module}`]")) || map.contains(&format!("[`{module}::"));
        assert!(named, "src/lib.rs's map does not name `{module}`");
    }
}
