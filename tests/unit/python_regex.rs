//! Datadog-format regexes against Python's own `re`: for every pattern, the processes the loaded
//! filter keeps are the ones the Agent's check keeps (`re.search(rgx, name)`), with Python's
//! answers computed by Python at test time. The interpreter is `python3` from PATH, the one the
//! test suite already needs to build its supervisord venv (tests/testkit/provision.rs); the
//! tests fail, rather than skip, without it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use supervisord_receiver::config::{load_bytes, ConfigError};
use supervisord_receiver::settings::filter::ProcessFilter;
use supervisord_receiver::settings::pattern::{NamePattern, BACKTRACK_LIMIT};
use supervisord_receiver::settings::Settings;
use supervisord_receiver::vocab::ProcessInfo;

/// Process names, realistic and not (a trailing newline, for `$`).
const NAMES: &[&str] = &[
    "db",
    "mysql",
    "mysqld",
    "nginx",
    "web_1",
    "web_11",
    "web_12",
    "WEB_2",
    "Web_33",
    "webapp",
    "worker_a",
    "worker_bb",
    "workers",
    "cron_tmp",
    "tmp_cron",
    "x_y_z",
    "abcabc",
    "aa",
    "aab",
    "a",
    "b",
    "café_worker",
    "CAFÉ",
    "web_1\n",
    "job:42",
    "job-42",
    "[x]",
    "a.b",
];

/// Python patterns, one per concern; each is valid Python (the script fails otherwise).
const PATTERNS: &[&str] = &[
    // look-ahead, negative look-ahead
    "^(?!web_|worker_)",
    r"web_(?=\d)",
    r"^(?=.*_)(?!.*tmp)",
    // look-behind, negative look-behind
    r"(?<=_)\d+$",
    r"(?<!web)_\d",
    r"(?<=^job)[:-]",
    // back-references, named groups
    r"(\w)\1",
    r"^(\w+)\1$",
    r"(?P<c>[a-z])(?P=c)",
    r"(?P<head>\w)\w*(?P=head)",
    r"(a)(b)?\2",
    // flags
    "(?i)^web_",
    r"(?i)(w)\1",
    "(?i)café",
    "(?i:WEB)_1",
    "(?s)1.",
    "(?m)^1",
    "(?x) ^ web _ \\d  # a comment\n $",
    // end of string: \Z is absolute, $ allows a final newline
    r"1\Z",
    "1$",
    r"^\w+$",
    // comments, alternation, groups
    "(?#only databases)^(?:db|mysql)",
    "^(?:web|db)$",
    "mysql|nginx",
    "a|",
    "(?:)",
    // character classes, Python's literal reading of what Rust reads as syntax
    "[^a-z_]",
    "[[:alpha:]]",
    r"[\w-]{5}",
    r"[a\-z]",
    "[]x]",
    "[.]",
    r"\.",
    r"[\d-]",
    // quantifiers, including the forms Rust writes differently
    "x{,2}_y",
    "^a{2}",
    "^.{5}$",
    "a{,}b",
    "{x}",
    "^w{1,}o",
    "a*?b",
    // 3.11 atomic groups and possessive quantifiers
    "(?>a|ab)c",
    r"w\w*+r",
    r"^\w++$",
    // conditionals
    "^(a)?(?(1)a|b)",
    "^(?P<w>w)?(?(w)eb|d)",
    // escapes
    r"\bdb\b",
    r"\Bql",
    r"\x5f",
    r"\137",
    r"\u00e9",
    r"\S+_\S+",
    r"\<",
];

fn python3() -> Command {
    Command::new("python3")
}

/// Runs `script` with `input` as JSON on stdin and returns its JSON output; panics, naming the
/// cause, when Python is missing, older than 3.11 or fails.
fn python(script: &str, input: &Value) -> Value {
    let mut child = python3()
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 is required for these tests (the suite's venv needs it too): {e}")
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("wait for python3");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).expect("python3 printed JSON");
    let version = value["version"].as_array().expect("version");
    let (major, minor) = (version[0].as_u64(), version[1].as_u64());
    assert!(
        (major, minor) >= (Some(3), Some(11)),
        "python3 is {major:?}.{minor:?}: 3.11 or later is needed (atomic groups, possessive \
         quantifiers), as the Agent ships"
    );
    value
}

/// `re.search` of every pattern over every name.
const SEARCH: &str = r#"
import json, re, sys
data = json.load(sys.stdin)
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "results": [[re.search(p, n) is not None for n in data["names"]] for p in data["patterns"]],
}))
"#;

/// The check's rule (supervisord check 2.5+): include when no include filter is set or a
/// `proc_regex` searches, then drop what a `proc_regex_exclude` searches.
const MONITORED: &str = r#"
import json, re, sys
data = json.load(sys.stdin)
inc, exc = data["proc_regex"], data["proc_regex_exclude"]
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "kept": [n for n in data["names"]
             if (not inc or any(re.search(r, n) for r in inc))
             and not any(re.search(r, n) for r in exc)],
}))
"#;

/// Python's `re.error` message and position for each pattern, or null when it compiles.
const ERRORS: &str = r#"
import json, re, sys
data = json.load(sys.stdin)
def error(p):
    try:
        re.compile(p)
        return None
    except re.error as e:
        return [e.msg, e.pos]
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "errors": [error(p) for p in data["patterns"]],
}))
"#;

fn processes(names: &[&str]) -> Vec<ProcessInfo> {
    names
        .iter()
        .map(|n| ProcessInfo {
            name: n.to_string(),
            group: "g".to_string(),
            ..Default::default()
        })
        .collect()
}

/// A Datadog file (JSON is YAML) with one instance per entry.
fn load(instances: Vec<Value>) -> Result<Settings, ConfigError> {
    let text = json!({ "init_config": null, "instances": instances }).to_string();
    load_bytes(
        Path::new("supervisord.d/conf.yaml"),
        text.as_bytes(),
        &|_| None,
    )
}

fn kept(filter: &ProcessFilter, names: &[&str]) -> Vec<String> {
    filter
        .apply(processes(names))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[test]
fn proc_regex_selects_what_pythons_re_search_selects() {
    let answers = python(SEARCH, &json!({ "patterns": PATTERNS, "names": NAMES }));
    let results = answers["results"].as_array().expect("results");
    let instances = PATTERNS
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "name": format!("p{i}"), "proc_regex": [p] }))
        .collect();
    let settings = load(instances).unwrap_or_else(|e| panic!("every pattern loads:\n{e}"));
    let mut differences = Vec::new();
    for ((pattern, target), row) in PATTERNS.iter().zip(&settings.targets).zip(results) {
        let expected: Vec<String> = NAMES
            .iter()
            .zip(row.as_array().expect("row"))
            .filter(|(_, hit)| hit.as_bool() == Some(true))
            .map(|(n, _)| n.to_string())
            .collect();
        let got = kept(&target.filter, NAMES);
        if got != expected {
            differences.push(format!(
                "{pattern:?}: python keeps {expected:?}, we keep {got:?}"
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

#[test]
fn proc_regex_exclude_drops_what_pythons_re_search_finds() {
    let answers = python(SEARCH, &json!({ "patterns": PATTERNS, "names": NAMES }));
    let results = answers["results"].as_array().expect("results");
    let instances = PATTERNS
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "name": format!("p{i}"), "proc_regex_exclude": [p] }))
        .collect();
    let settings = load(instances).unwrap_or_else(|e| panic!("every pattern loads:\n{e}"));
    for ((pattern, target), row) in PATTERNS.iter().zip(&settings.targets).zip(results) {
        let expected: Vec<String> = NAMES
            .iter()
            .zip(row.as_array().expect("row"))
            .filter(|(_, hit)| hit.as_bool() == Some(false))
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(kept(&target.filter, NAMES), expected, "exclude {pattern:?}");
    }
}

#[test]
fn include_and_exclude_together_follow_the_checks_rule() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["^(?!web_|worker_)"], &[]),
        (&["^(?!web_|worker_)", r"(\w)\1"], &[r"(?<=_)tmp\Z"]),
        (&[r"(?i)^web_(?P<d>\d)(?P=d)?$"], &["(?<!web)_1"]),
        (&[], &["^(?!web_)", r"\d\Z"]),
    ];
    for (include, exclude) in cases {
        let answer = python(
            MONITORED,
            &json!({ "proc_regex": include, "proc_regex_exclude": exclude, "names": NAMES }),
        );
        let expected: Vec<String> = answer["kept"]
            .as_array()
            .expect("kept")
            .iter()
            .map(|n| n.as_str().expect("name").to_string())
            .collect();
        let settings = load(vec![json!({
            "name": "s",
            "proc_regex": include,
            "proc_regex_exclude": exclude,
        })])
        .unwrap_or_else(|e| panic!("loads:\n{e}"));
        assert_eq!(
            kept(&settings.targets[0].filter, NAMES),
            expected,
            "include {include:?}, exclude {exclude:?}"
        );
    }
}

#[test]
fn patterns_python_refuses_are_refused_with_pythons_message() {
    let patterns = [
        "a**",
        "*a",
        r"\q",
        r"(a\1)",
        r"\2(a)",
        "(?P=n)",
        "(?P<1>a)",
        "(?P<a>x)(?P<a>y)",
        "a(?i)",
        "(?<n>a)",
        "((a)",
        "a)",
        "[a",
        "[z-a]",
        r"[\d-z]",
        "a{3,2}",
        "(?L)a",
        r"\x4",
        "(?(1)a|b|c)(x)",
        "(?(2)a)(x)",
        "(?i-i:a)",
        r"\477",
    ];
    let answer = python(ERRORS, &json!({ "patterns": patterns }));
    let errors = answer["errors"].as_array().expect("errors");
    for (pattern, error) in patterns.iter().zip(errors) {
        let (Some(message), Some(position)) = (error[0].as_str(), error[1].as_u64()) else {
            panic!("python accepts {pattern:?}: this list is for patterns it refuses")
        };
        let problems = match load(vec![json!({ "name": "s", "proc_regex": [pattern] })]) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{pattern:?}: unexpected error {e}"),
            Ok(_) => panic!("{pattern:?} loads, but python refuses it: {message}"),
        };
        let quoted = format!("'{pattern}'");
        assert_eq!(
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>(),
            [format!(
                "invalid regex {quoted}: {message} at position {position} (Python's re refuses \
                 it too)"
            )],
        );
    }
}

/// Collects what the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_pathological_pattern_gives_up_counts_as_no_match_and_warns_once() {
    // The look-ahead keeps it on the backtracking engine, where 40 `a`s and a mismatch at the
    // end take about 2^40 steps: Python would not finish. Ours stops at the backtracking limit.
    let pattern = "^(?:(a)|a)+(?!a)b$";
    let long = format!("{}!", "a".repeat(40));
    let names = [long.as_str(), "aab", "db"];
    let settings = load(vec![
        json!({ "name": "include", "proc_regex": [pattern] }),
        json!({ "name": "exclude", "proc_regex_exclude": [pattern] }),
    ])
    .unwrap_or_else(|e| panic!("loads:\n{e}"));
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            // As an include it does not take the process; as an exclude it does not drop it.
            assert_eq!(kept(&settings.targets[0].filter, &names), ["aab"]);
            assert_eq!(
                kept(&settings.targets[1].filter, &names),
                [long.as_str(), "db"]
            );
        }
    });
    let log = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    // Once per pattern (the two targets compiled it separately), not once per poll.
    assert_eq!(warnings.len(), 2, "{log}");
    for w in warnings {
        let what = format!("regex '{pattern}' is treated as not matching '{long}'");
        let why = format!("more than {BACKTRACK_LIMIT} backtracking steps");
        assert!(w.contains(&what) && w.contains(&why), "{w}");
    }
}

/// Random patterns from Python's whole syntax (nested groups, every group kind, classes with
/// what regex-syntax would read as syntax, escapes, every quantifier form, flags), a fixed seed,
/// and Python's verdict on each: its error, or `re.search` over a set of names.
const RANDOM_PATTERNS: &str = r##"
import json, random, re, sys, warnings
warnings.simplefilter("ignore")
random.seed(20240611)
lits = list("abAB_1-.é \n#&~[]{}^$|*+?()\\<>,:=!P") + ["\\\\", "\\.", "\\-", "\\]", "\\[", "\\n",
    "\\t", "\\x41", "\\x2d", "\\101", "\\0", "\\u00e9", "\\U00000062", "\\ ", "\\#", "\\&", "\\~"]
cls_items = ["a", "b", "A", "-", "]", "[", "^", "&", "~", "\\d", "\\w", "\\s", "\\W", "\\S",
    "\\D", "\\b", "\\-", "\\]", "\\\\", "a-c", "0-9", "\\x41-\\x5a", "é", " ", "#", ":", "\\1",
    "\\07", "--", "&&", "~~", "||"]
def cls():
    s = "[" + ("^" if random.random() < .3 else "")
    return s + "".join(random.choice(cls_items) for _ in range(random.randint(1, 4))) + "]"
def atom(d):
    r = random.random()
    if d > 3 or r < .35: return random.choice(lits)
    if r < .5: return cls()
    if r < .55: return random.choice(["^", "$", "\\A", "\\Z", "\\b", "\\B", ".", "\\d", "\\w"])
    if r < .62: return random.choice(["\\1", "\\2", "(?P=g)", "(?P=h)"])
    kind = random.choice(["(", "(?:", "(?P<g>", "(?P<h>", "(?=", "(?!", "(?<=", "(?<!", "(?>",
        "(?i:", "(?-i:", "(?x:", "(?s:", "(?m:", "(?(1)", "(?(g)", "(?#"])
    return kind + alt(d + 1) + ")"
def quant():
    return random.choice([""] * 6 + ["*", "+", "?", "*?", "+?", "??", "*+", "++", "?+", "{2}",
        "{1,3}", "{,2}", "{2,}", "{,}", "{}", "{x}", "{1, 2}", "{2}?", "{1,2}+"])
def seq(d):
    return "".join(atom(d) + quant() for _ in range(random.randint(0, 4)))
def alt(d):
    return "|".join(seq(d) for _ in range(random.randint(1, 2)))
data = json.load(sys.stdin)
cases = []
for _ in range(data["count"]):
    p = random.choice(["", "", "(?i)", "(?x)", "(?m)", "(?s)", "(?ix)", "(?#c)(?i)"]) + alt(0)
    try:
        r = re.compile(p)
    except re.error as e:
        cases.append({"pattern": p, "error": e.msg})
        continue
    cases.append({"pattern": p, "hits": [r.search(n) is not None for n in data["names"]]})
print(json.dumps({"version": list(sys.version_info[:2]), "cases": cases}))
"##;

/// Where the receiver knowingly accepts what Python refuses: look-behinds of variable width
/// (fancy-regex matches them) and Python's finer rules on groups inside look-behinds.
fn lenient(python_error: &str, pattern: &str) -> bool {
    python_error.contains("look-behind requires fixed-width pattern")
        || python_error.contains("same lookbehind subpattern")
        || (python_error.contains("cannot refer to an open group") && pattern.contains("(?<"))
}

#[test]
fn random_patterns_agree_with_python() {
    // No empty name: Python 3.11's `\B` never matches one (3.14 changed that), and supervisord
    // has no process without a name.
    let names = [
        "a", "b", "ab", "aab", "aA", "Aa", "ba", "_", "a_1", "1", "11", "a\n", "ab\n", "\n", "é",
        "É", "a b", "a-b", "{", "}", "]", "[", "<", "#", "abab", "a1a1", "\u{8}", "\u{0}", "a.b",
        "-", "a~&", "AB", "web_1", "a{2}", "-A-", "\t", "a#b", "x{x}", "(a)", "^$", "\\", "P=g",
    ];
    let answer = python(
        RANDOM_PATTERNS,
        &json!({ "count": 3000, "names": &names[..] }),
    );
    let mut problems = Vec::new();
    let mut engine_refusals = Vec::new();
    for case in answer["cases"].as_array().expect("cases") {
        let pattern = case["pattern"].as_str().expect("pattern");
        match (case["error"].as_str(), NamePattern::python(pattern)) {
            (Some(_), Err(_)) => {}
            (Some(e), Ok(_)) if lenient(e, pattern) => {}
            (Some(e), Ok(_)) => problems.push(format!("{pattern:?}: accepted, python: {e}")),
            (None, Err(e)) if e.to_string().contains("by the matcher") => {
                engine_refusals.push(format!("{pattern:?}: {e}"));
            }
            (None, Err(e)) => problems.push(format!("{pattern:?}: refused ({e}), python accepts")),
            (None, Ok(ours)) => {
                let hits = case["hits"].as_array().expect("hits");
                for (name, hit) in names.iter().zip(hits) {
                    if ours.is_match(name) != (hit.as_bool() == Some(true)) {
                        problems.push(format!("{pattern:?} on {name:?}: python says {hit}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // fancy-regex refuses a few constructs Python accepts (a repeated empty group inside a
    // look-behind, say): rare, and named at load when they happen.
    assert!(engine_refusals.len() <= 3, "{}", engine_refusals.join("\n"));
}
