//! The data plane's modules form layers: no file imports, directly or through others, a file that
//! imports it back. This walks every `use` and every `crate::`/`super::`/`self::` path in `src/`
//! (test modules aside), resolves each to the file of the module it names, and fails on a cycle,
//! printing it with the paths that make each step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`proxy::h1::body`) and the file that holds it; the crate root is "".
type Modules = BTreeMap<String, PathBuf>;
/// Module → the modules it uses, each with the paths that make the edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn modules(src: &Path) -> Modules {
    let mut out = Modules::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                if rel != "bin" {
                    dirs.push(path);
                }
                continue;
            }
            let Some(stem) = rel.strip_suffix(".rs") else {
                continue;
            };
            // Test modules may reach anywhere.
            if stem == "tests" || stem.ends_with("/tests") {
                continue;
            }
            let module = match stem {
                "lib" => String::new(),
                s => s.strip_suffix("/mod").unwrap_or(s).replace('/', "::"),
            };
            out.insert(module, path);
        }
    }
    out
}

/// The source without comments and without an inline `#[cfg(test)] mod tests { … }` (kept last).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |n| &r[n..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |n| &r[n + 2..]);
        } else if let Some(r) = rest.strip_prefix('"') {
            // Strings are skipped (escapes included) so a path inside one is not an import.
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            out.push_str("\"\"");
            rest = &r[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The paths a use tree (`a::{b, c::{d, e}}`) names.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = tree[..open].trim_end_matches(':');
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| match prefix {
            "" => p,
            _ => format!("{prefix}::{p}"),
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path the code names: the trees of its `use` items, and `crate::`, `super::`, `self::` paths
/// written inline (not those of `pub(in …)` visibilities).
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("use ") {
        let before = code[..at].trim_end_matches([' ', '\t']);
        let starts_item = before.is_empty()
            || before.ends_with('\n')
            || before.ends_with("pub")
            || before.ends_with(')')
            || before.ends_with(';')
            || before.ends_with('{');
        if !starts_item || code[..at].ends_with(|c: char| is_ident(c)) {
            continue;
        }
        if let Some(end) = code[at..].find(';') {
            let tree = code[at + 4..at + end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            out.extend(
                expand(&tree)
                    .into_iter()
                    .map(|p| p.split(" as ").next().unwrap().replace(' ', "")),
            );
        }
    }
    for root in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(root) {
            if code[..at].ends_with(|c: char| is_ident(c) || c == ':')
                || code[..at].ends_with("in ")
            {
                continue;
            }
            let len = code[at..]
                .find(|c: char| !(is_ident(c) || c == ':'))
                .unwrap_or(code.len() - at);
            let path = &code[at..at + len];
            // `super::{a, b}` is a use tree, read above.
            if !path.ends_with("::") {
                out.push(path.to_string());
            }
        }
    }
    out
}

fn graph(modules: &Modules) -> Graph {
    let mut graph = Graph::new();
    for (module, file) in modules {
        let own: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let edges = graph.entry(module.clone()).or_default();
        for path in paths(&code(&std::fs::read_to_string(file).unwrap())) {
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let full: Vec<&str> = match segs.first() {
                Some(&"crate") => segs[1..].to_vec(),
                Some(&"super") | Some(&"self") => {
                    let mut base = own.clone();
                    let mut rest = &segs[..];
                    while let Some((&first, tail)) = rest.split_first() {
                        match first {
                            "super" => {
                                base.pop();
                            }
                            "self" => {}
                            _ => break,
                        }
                        rest = tail;
                    }
                    base.extend_from_slice(rest);
                    base
                }
                // A child module used by its name from its parent.
                Some(first)
                    if modules.contains_key(&[own.as_slice(), &[first]].concat().join("::")) =>
                {
                    [own.as_slice(), &segs].concat()
                }
                _ => continue,
            };
            let full: Vec<&str> = full.into_iter().filter(|s| *s != "*").collect();
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| modules.contains_key(m));
            if let Some(target) = target.filter(|t| t != module) {
                edges.entry(target).or_default().insert(path);
            }
        }
    }
    graph
}

/// A cycle of the graph, if it has one (depth-first, modules in order).
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(found) = visit(graph, next, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(graph, start, &mut Vec::new(), &mut done))
}

#[test]
fn no_file_in_the_data_plane_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    assert!(modules.len() > 50, "found {} modules", modules.len());
    let graph = graph(&modules);
    if let Some(found) = cycle(&graph) {
        let steps: Vec<String> = found
            .windows(2)
            .map(|w| format!("  {} -> {} via {:?}", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!("import cycle:\n{}", steps.join("\n"));
    }
}

#[test]
fn the_checker_sees_imports_of_every_form() {
    let code = code(
        "use crate::a::{b::C, d};\npub(crate) use super::e;\n// use crate::f;\nfn g() { crate::h::i(); }\npub(in crate::proxy) struct S;\nlet s = \"crate::j\";",
    );
    let found: BTreeSet<String> = paths(&code).into_iter().collect();
    for expected in ["crate::a::b::C", "crate::a::d", "crate::h::i", "super::e"] {
        assert!(found.contains(expected), "{expected} in {found:?}");
    }
    for absent in ["crate::f", "crate::proxy", "crate::j"] {
        assert!(!found.contains(absent), "{absent} in {found:?}");
    }
    // A loop of two modules is found and one that goes one way is not.
    let mut graph = Graph::new();
    graph
        .entry("a".into())
        .or_default()
        .entry("b".into())
        .or_default();
    graph
        .entry("b".into())
        .or_default()
        .entry("c".into())
        .or_default();
    assert!(cycle(&graph).is_none());
    graph
        .entry("c".into())
        .or_default()
        .entry("a".into())
        .or_default();
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
}
