//! The dependency rule of `src/lib.rs`, enforced: every `crate::<module>` a source file names
//! outside its tests must be one its module may import.
//!
//! The rule is read from the table in `src/lib.rs`'s module doc (rows `| layer | `module` |
//! may import |`), so the documentation is the rule and cannot drift from it. Test code
//! (`#[cfg(test)] mod …` blocks and `tests.rs` files) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it may import, from `src/lib.rs`.
fn rule(lib_rs: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for line in lib_rs.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let Some(module) = cells[1].strip_prefix('`').and_then(|m| m.strip_suffix('`')) else {
            continue;
        };
        let allowed = cells[2]
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .filter(|m| !m.is_empty() && m != "nothing" && m != "everything")
            .collect();
        out.insert(module.to_string(), allowed);
        if cells[2] == "everything" {
            out.insert(module.to_string(), BTreeSet::from(["*".to_string()]));
        }
    }
    out
}

/// The source without its `#[cfg(test)]` items: from a `#[cfg(test)]` line to the end of the
/// braces that follow it.
fn without_tests(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut depth = 0i32;
        let mut opened = false;
        for next in lines.by_ref() {
            // `mod tests;` (a sibling file) ends at its semicolon.
            if !opened && next.trim_end().ends_with(';') {
                break;
            }
            for c in next.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                break;
            }
        }
    }
    out
}

/// The top-level modules a source names as `crate::<module>`, outside comments.
fn imports(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in without_tests(source).lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::some_macro!` names a macro exported at the root, not a module.
            let is_macro = rest[name.len()..].starts_with('!');
            if !name.is_empty() && !is_macro {
                out.insert(name);
            }
        }
        // `use crate::{a, b::c}`.
        if let Some(at) = code.find("crate::{") {
            for part in code[at + "crate::{".len()..].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`, except sibling test files (`tests.rs`, `*_tests.rs`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy();
            if stem != "tests" && !stem.ends_with("_tests") {
                out.push(path);
            }
        }
    }
}

/// The top-level module a file belongs to (`src/scrape/poller.rs` → `scrape`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(module, (file, source))` of every file under `src/` but `lib.rs` and `main.rs`.
fn crate_files() -> Vec<(String, (String, String))> {
    let src = manifest().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let module = module_of(&src, &f)?;
            let text = std::fs::read_to_string(&f).unwrap();
            let shown = f.strip_prefix(manifest()).unwrap().display().to_string();
            Some((module, (shown, text)))
        })
        .collect()
}

/// Violations, one line each: the file, its module, what it imports and what it may.
fn check(
    rule: &BTreeMap<String, BTreeSet<String>>,
    files: &[(String, (String, String))],
) -> Vec<String> {
    let mut out = Vec::new();
    for (module, (file, source)) in files {
        let Some(allowed) = rule.get(module) else {
            out.push(format!(
                "{file}: module `{module}` is not in the rule's table"
            ));
            continue;
        };
        if allowed.contains("*") {
            continue;
        }
        for imported in imports(source) {
            if imported != *module && !allowed.contains(&imported) {
                out.push(format!(
                    "{file}: `{module}` imports `crate::{imported}`, which it may not (allowed: {})",
                    if allowed.is_empty() {
                        "nothing".to_string()
                    } else {
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
        }
    }
    out
}

fn lib_rule() -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(manifest().join("src/lib.rs")).unwrap();
    let rule = rule(&lib);
    assert!(
        rule.len() >= 5,
        "src/lib.rs has no dependency table (rows `//! | layer | `module` | may import |`)"
    );
    rule
}

#[test]
fn every_module_imports_only_what_the_rule_allows() {
    let problems = check(&lib_rule(), &crate_files());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rule_has_no_cycle() {
    let rule = lib_rule();
    // Depth-first search over "may import" edges.
    fn visit(
        m: &str,
        rule: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in rule.get(m).into_iter().flatten() {
            if next == "*" {
                continue;
            }
            if let Some(cycle) = visit(next, rule, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in rule.keys() {
        if let Some(cycle) = visit(m, &rule, &mut Vec::new(), &mut done) {
            panic!("the rule in src/lib.rs has a cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn only_the_loader_app_and_cli_import_the_loader() {
    let rule = lib_rule();
    for (module, allowed) in &rule {
        if allowed.contains("config") {
            assert!(
                ["app", "cli"].contains(&module.as_str()),
                "`{module}` may import the YAML loader `config`; only `app` and `cli` may"
            );
        }
    }
}

#[test]
fn the_checker_catches_a_forbidden_import() {
    let rule = rule(
        "//! | layer | module | may import |\n\
         //! |---|---|---|\n\
         //! | leaf | `vocab` | nothing |\n\
         //! | client | `supervisor` | `vocab` |\n\
         //! | root | `app` | everything |\n",
    );
    let file = |module: &str, text: &str| {
        (
            module.to_string(),
            (format!("src/{module}/x.rs"), text.to_string()),
        )
    };
    let clean = [
        file("vocab", "use std::fmt;\n"),
        file("supervisor", "use crate::vocab::ProcessState;\n"),
        file(
            "app",
            "use crate::supervisor::Client;\nuse crate::vocab::X;\n",
        ),
        // Test code may reach anywhere.
        file(
            "vocab",
            "pub struct A;\n#[cfg(test)]\nmod tests {\n    use crate::app::X;\n}\n",
        ),
    ];
    assert_eq!(check(&rule, &clean), Vec::<String>::new());
    let dirty = [
        file("vocab", "use crate::supervisor::Client;\n"),
        file("supervisor", "fn f() { crate::app::run(); }\n"),
        file("supervisor", "use crate::{vocab::X, app::Y};\n"),
        file("unlisted", "\n"),
    ];
    let found = check(&rule, &dirty);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("`vocab` imports `crate::supervisor`"));
    assert!(found[1].contains("`supervisor` imports `crate::app`"));
    assert!(found[2].contains("`supervisor` imports `crate::app`"));
    assert!(found[3].contains("not in the rule's table"));
}
