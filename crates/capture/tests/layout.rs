//! The crate's shape: its modules import each other without cycles (the crate root is
//! shared by all), and no function runs over 200 lines unless a `// Long:` comment at its
//! top (or just above it) says why.

use std::collections::{BTreeMap, BTreeSet};

fn sources() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            out.push((name, std::fs::read_to_string(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn no_module_cycles() {
    let srcs = sources();
    let mods: BTreeSet<String> = srcs.iter().map(|(n, _)| n.clone()).collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in &srcs {
        if name == "lib" {
            continue;
        }
        let d = deps.entry(name.clone()).or_default();
        for prefix in ["super::", "crate::"] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let m: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if m != *name
                    && m != "lib"
                    && mods.contains(&m)
                    && rest[m.len()..].starts_with("::")
                {
                    d.insert(m);
                }
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("module cycle: {} -> {m}", path[i..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            visit(d, deps, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in deps.keys() {
        visit(m, &deps, &mut vec![], &mut done);
    }
}

#[test]
fn no_function_over_200_lines_without_a_reason() {
    for (name, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            let t = l.trim_start();
            let is_fn = (t.starts_with("fn ")
                || t.starts_with("pub fn ")
                || t.starts_with("pub(super) fn ")
                || t.starts_with("pub(crate) fn "))
                && !t.ends_with(';');
            if !is_fn {
                i += 1;
                continue;
            }
            let indent = l.len() - t.len();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == close)
                .unwrap_or(lines.len());
            let len = end - i + 1;
            let reason = lines[i.saturating_sub(3)..end.min(i + 8)]
                .iter()
                .any(|l| l.trim_start().starts_with("// Long:"));
            assert!(
                len <= 200 || reason,
                "{name}.rs:{}: `{}` is {len} lines; split it or say why at its top (`// Long: ...`)",
                i + 1,
                t
            );
            i += 1;
        }
    }
}
