//! The poll client's fast path against the general decoder, on the same bytes.
//!
//! The fast path may decline any reply (the general decoder then reads it), but what it
//! accepts it must decode exactly as the general decoder does: the same processes, problems
//! and answers. Checked on generated replies, varied in every way XML-RPC allows (whitespace,
//! escaping, field order, unicode, missing, extra and mistyped members, int spellings,
//! wrapped multicall results, faults among the answers), on mutations of them, and on the
//! inputs that must fall back; and the fast path must accept what supervisord itself writes,
//! or it would be correct and useless.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use supervisord_receiver::supervisor::client::{
    decode_multicall_reply, decode_processes_reply, fast_multicall_reply, fast_processes_reply,
    general_multicall_reply, general_processes_reply,
};
use supervisord_receiver::supervisor::decode::{
    MAX_NAME_BYTES, MAX_PROCESSES, PROCESS_INFO_FIELDS,
};

const CASES: u32 = 1_000;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

const FIELDS: [&str; 14] = PROCESS_INFO_FIELDS;

/// A member's value as generated.
#[derive(Debug, Clone)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Raw XML of a type the fast path leaves to the general decoder.
    Other(&'static str),
}

type Entry = Vec<(String, Scalar)>;

/// What a multicall answer after `getAllProcessInfo` is.
#[derive(Debug, Clone)]
enum Answer {
    State(i64, String),
    Text(String),
    Fault(i64, String),
}

#[derive(Debug, Clone)]
struct Multicall {
    entries: Vec<Entry>,
    /// The conventional one-element wrapper around each result, or supervisord's bare results.
    wrapped: bool,
    answers: Vec<Answer>,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_/. :,-]{0,40}",
        2 => "[<>&'\" \\]\\r\\n\\t;#x0-9é🦀\u{1}\u{85}\u{2028}]{0,12}",
        1 => any::<String>(),
        1 => Just("]]>".to_owned()),
    ]
}

fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9_:-]{0,12}",
        1 => "[a-zé🦀 &<]{0,6}",
        1 => (MAX_NAME_BYTES - 1..MAX_NAME_BYTES + 3).prop_map(|n| "n".repeat(n)),
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..2_000_000_000,
        1 => -100i64..100,
        1 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ]
}

/// A plausible entry: the fourteen fields with the right types, in supervisord's order or
/// shuffled.
fn full_entry() -> impl Strategy<Value = Entry> {
    let states = prop::sample::select(vec![
        "RUNNING", "STOPPED", "FATAL", "EXITED", "BACKOFF", "STARTING", "STOPPING", "UNKNOWN",
        "NEW",
    ]);
    (
        (name_text(), name_text(), text(), text(), text()),
        (int(), int(), int(), int(), int(), int()),
        (states, text(), text()),
        any::<bool>(),
    )
        .prop_flat_map(
            |((name, group, description, spawnerr, logfile), ints, strings, shuffle)| {
                let (start, stop, now, state, exitstatus, pid) = ints;
                let (statename, stdout_logfile, stderr_logfile) = strings;
                let members: Entry = vec![
                    ("name".into(), Scalar::Str(name)),
                    ("group".into(), Scalar::Str(group)),
                    ("start".into(), Scalar::Int(start)),
                    ("stop".into(), Scalar::Int(stop)),
                    ("now".into(), Scalar::Int(now)),
                    ("state".into(), Scalar::Int(state)),
                    ("statename".into(), Scalar::Str(statename.to_owned())),
                    ("spawnerr".into(), Scalar::Str(spawnerr)),
                    ("exitstatus".into(), Scalar::Int(exitstatus)),
                    ("logfile".into(), Scalar::Str(logfile)),
                    ("stdout_logfile".into(), Scalar::Str(stdout_logfile)),
                    ("stderr_logfile".into(), Scalar::Str(stderr_logfile)),
                    ("pid".into(), Scalar::Int(pid)),
                    ("description".into(), Scalar::Str(description)),
                ];
                if shuffle {
                    Just(members).prop_shuffle().boxed()
                } else {
                    Just(members).boxed()
                }
            },
        )
}

/// Any member: known or unknown names, any scalar type, sometimes a type only the general
/// decoder reads.
fn any_member(odd_types: bool) -> impl Strategy<Value = (String, Scalar)> {
    let name = prop_oneof![
        6 => prop::sample::select(&FIELDS[..]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["directory", "enabled", "Name", " name", "name ", "n&me", "é"])
            .prop_map(str::to_owned),
        1 => "[a-z_]{0,200}",
    ];
    let scalar = prop_oneof![
        3 => text().prop_map(Scalar::Str),
        3 => int().prop_map(Scalar::Int),
        1 => any::<bool>().prop_map(Scalar::Bool),
    ];
    let scalar = if odd_types {
        prop_oneof![
            30 => scalar,
            1 => prop::sample::select(vec![
                "<double>1.5</double>",
                "<nil/>",
                "<base64>aGk=</base64>",
                "<dateTime.iso8601>20240101T00:00:00</dateTime.iso8601>",
                "<array><data></data></array>",
                "<struct></struct>",
                "<ex:i8>1</ex:i8>",
            ])
            .prop_map(Scalar::Other),
        ]
        .boxed()
    } else {
        scalar.boxed()
    };
    (name, scalar)
}

/// An entry: plausible, plausible with members removed, added or repeated, or anything.
fn entry(odd_types: bool) -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => full_entry(),
        3 => (
            full_entry(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            prop::collection::vec((any::<prop::sample::Index>(), any_member(odd_types)), 0..4),
        )
            .prop_map(|(mut members, removed, added)| {
                for index in removed {
                    if !members.is_empty() {
                        members.remove(index.index(members.len()));
                    }
                }
                for (index, member) in added {
                    members.insert(index.index(members.len() + 1), member);
                }
                members
            }),
        1 => prop::collection::vec(any_member(odd_types), 0..18),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => (int(), prop::sample::select(vec!["RUNNING", "SHUTDOWN", "x"]))
            .prop_map(|(code, name)| Answer::State(code, name.to_owned())),
        3 => text().prop_map(Answer::Text),
        1 => (int(), text()).prop_map(|(code, message)| Answer::Fault(code, message)),
    ]
}

fn multicall(odd_types: bool) -> BoxedStrategy<Multicall> {
    (
        prop::collection::vec(entry(odd_types), 0..6),
        any::<bool>(),
        prop_oneof![
            4 => (answer(), answer(), answer()).prop_map(|(a, b, c)| vec![a, b, c]),
            1 => prop::collection::vec(answer(), 0..6),
        ],
    )
        .prop_map(|(entries, wrapped, answers)| Multicall {
            entries,
            wrapped,
            answers,
        })
        .boxed()
}

/// Writes replies, either exactly as supervisord's marshaller does (`canonical`) or with every
/// choice XML allows made at random from `seed`.
struct Writer {
    out: String,
    canonical: bool,
    state: u64,
}

impl Writer {
    fn new(canonical: bool, seed: u64) -> Self {
        Writer {
            out: String::new(),
            canonical,
            state: seed | 1,
        }
    }

    /// 0..n, from a xorshift of the seed.
    fn pick(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n.max(1) as u64) as usize
    }

    /// The first of `forms` (supervisord's) when canonical, any of them otherwise.
    fn one_of(&mut self, forms: &[&'static str]) -> &'static str {
        let at = if self.canonical {
            0
        } else {
            self.pick(forms.len())
        };
        forms.get(at).copied().unwrap_or_default()
    }

    fn chance(&mut self, one_in: usize) -> bool {
        !self.canonical && self.pick(one_in) == 0
    }

    fn put(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// Whitespace between elements: supervisord's, or any.
    fn gap(&mut self, canonical: &str) {
        if self.canonical || self.pick(3) == 0 {
            self.out.push_str(canonical);
        } else {
            const GAPS: [&str; 6] = ["", "\n", " ", "\t", "\r\n", "\n  \n\t"];
            let gap = GAPS.get(self.pick(GAPS.len())).copied().unwrap_or("");
            self.out.push_str(gap);
        }
    }

    /// Text content: `<` and `&` escaped (as supervisord does, with `>`), every other
    /// character raw or as an entity or character reference at random.
    fn text(&mut self, text: &str) {
        for c in text.chars() {
            let escaped = match c {
                '<' => self.one_of(&["&lt;", "&#60;", "&#x3c;", "&#x3C;"]),
                '&' => self.one_of(&["&amp;", "&#38;", "&#x26;"]),
                '>' if self.canonical || self.pick(2) == 0 => "&gt;",
                '"' if self.chance(2) => "&quot;",
                '\'' if self.chance(2) => "&apos;",
                // supervisord writes `\r` raw, which the general decoder turns into `\n`.
                '\r' if self.canonical || self.pick(4) != 0 => "&#13;",
                _ if self.chance(8) => {
                    let reference = if self.pick(2) == 0 {
                        format!("&#{};", u32::from(c))
                    } else {
                        format!("&#x{:X};", u32::from(c))
                    };
                    self.out.push_str(&reference);
                    continue;
                }
                _ => {
                    self.out.push(c);
                    continue;
                }
            };
            self.out.push_str(escaped);
        }
    }

    fn scalar(&mut self, scalar: &Scalar) {
        self.put("<value>");
        if self.chance(6) {
            self.gap("");
        }
        match scalar {
            Scalar::Str(s) if s.is_empty() && self.chance(3) => {
                let forms = ["<string/>", "", "<string></string>"];
                let form = forms.get(self.pick(forms.len())).copied().unwrap_or("");
                self.put(form);
            }
            Scalar::Str(s) if self.chance(4) => {
                // Untyped: the text is the string, whitespace included.
                self.text(s);
                self.put("</value>");
                return;
            }
            Scalar::Str(s) => {
                self.put("<string>");
                self.text(s);
                self.put("</string>");
            }
            Scalar::Int(i) => {
                // `ex:i8` (rare) is left to the general decoder.
                let tag = if self.chance(400) {
                    "ex:i8"
                } else {
                    self.one_of(&["int", "i4", "i8"])
                };
                let mut digits = i.unsigned_abs().to_string();
                if self.chance(5) {
                    digits.insert_str(0, "00");
                }
                let sign = if *i < 0 {
                    "-"
                } else if self.chance(5) {
                    "+"
                } else {
                    ""
                };
                let pad = if self.chance(5) { " \n" } else { "" };
                self.put(&format!("<{tag}>{pad}{sign}{digits}{pad}</{tag}>"));
            }
            Scalar::Bool(b) => {
                let pad = if self.chance(4) { "\t" } else { "" };
                self.put(&format!("<boolean>{pad}{}{pad}</boolean>", u8::from(*b)));
            }
            Scalar::Other(xml) => self.put(xml),
        }
        if self.chance(6) {
            self.gap("");
        }
        self.put("</value>");
    }

    fn member(&mut self, name: &str, value: &Scalar) {
        self.put("<member>");
        self.gap("\n");
        self.put("<name>");
        self.text(name);
        self.put("</name>");
        self.gap("\n");
        self.scalar(value);
        self.gap("\n");
        self.put("</member>");
        self.gap("\n");
    }

    fn entry(&mut self, entry: &[(String, Scalar)]) {
        self.put("<value><struct>");
        self.gap("\n");
        for (name, value) in entry {
            self.member(name, value);
        }
        self.put("</struct></value>");
        self.gap("\n");
    }

    fn array_open(&mut self) {
        self.put("<value><array><data>");
        self.gap("\n");
    }

    fn array_close(&mut self) {
        self.put("</data></array></value>");
        self.gap("\n");
    }

    fn process_array(&mut self, entries: &[Entry]) {
        self.array_open();
        for entry in entries {
            self.entry(entry);
        }
        self.array_close();
    }

    fn head(&mut self) {
        if self.chance(10) {
            self.put("\u{FEFF}");
        }
        // A declared encoding is left to the general decoder.
        let prolog = if self.chance(20) {
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        } else {
            self.one_of(&["<?xml version='1.0'?>", "<?xml version=\"1.0\"?>", ""])
        };
        self.put(prolog);
        self.gap("\n");
        self.put("<methodResponse>");
        self.gap("\n");
        self.put("<params>");
        self.gap("\n");
        self.put("<param>");
        self.gap("\n");
    }

    fn tail(mut self) -> Vec<u8> {
        self.put("</param>");
        self.gap("\n");
        self.put("</params>");
        self.gap("\n");
        self.put("</methodResponse>");
        self.gap("\n");
        self.out.into_bytes()
    }

    fn processes_reply(mut self, entries: &[Entry]) -> Vec<u8> {
        self.head();
        self.process_array(entries);
        self.tail()
    }

    fn multicall_reply(mut self, reply: &Multicall) -> Vec<u8> {
        self.head();
        self.array_open();
        let wrap = |w: &mut Writer, write: &dyn Fn(&mut Writer)| {
            if reply.wrapped {
                w.array_open();
                write(w);
                w.array_close();
            } else {
                write(w);
            }
        };
        wrap(&mut self, &|w| w.process_array(&reply.entries));
        for answer in &reply.answers {
            match answer {
                // A fault is never wrapped.
                Answer::Fault(code, message) => self.entry(&[
                    ("faultCode".into(), Scalar::Int(*code)),
                    ("faultString".into(), Scalar::Str(message.clone())),
                ]),
                Answer::State(code, name) => wrap(&mut self, &|w| {
                    w.entry(&[
                        ("statecode".into(), Scalar::Int(*code)),
                        ("statename".into(), Scalar::Str(name.clone())),
                    ])
                }),
                Answer::Text(text) => wrap(&mut self, &|w| {
                    w.scalar(&Scalar::Str(text.clone()));
                    w.gap("\n");
                }),
            }
        }
        self.array_close();
        self.tail()
    }
}

/// The fast path's answer on `body`, checked against the general decoder's; whether it
/// accepted.
fn agrees(body: &[u8]) -> Result<bool, TestCaseError> {
    let mut accepted = false;
    if let Some(fast) = fast_multicall_reply(body) {
        accepted = true;
        match general_multicall_reply(body) {
            Ok(Ok(general)) => prop_assert_eq!(fast, general),
            other => {
                return Err(TestCaseError::fail(format!(
                    "fast path accepted, general decoder gave {other:?}"
                )))
            }
        }
    }
    if let Some(fast) = fast_processes_reply(body) {
        accepted = true;
        match general_processes_reply(body) {
            Ok(Ok(general)) => prop_assert_eq!(fast, general),
            other => {
                return Err(TestCaseError::fail(format!(
                    "fast path accepted, general decoder gave {other:?}"
                )))
            }
        }
    }
    Ok(accepted)
}

/// Runs `test` on `CASES` inputs and returns how many of them the fast path accepted.
fn run<S: Strategy>(
    strategy: impl FnOnce() -> S + Send,
    test: impl Fn(S::Value) -> Result<bool, TestCaseError> + Send,
) -> usize {
    // In a debug build, generating these nested values takes more than a test thread's stack.
    std::thread::scope(|scope| {
        let runner = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(scope, move || {
                let accepted = AtomicUsize::new(0);
                let mut runner = TestRunner::new(config());
                let result = runner.run(&strategy(), |input| {
                    if test(input)? {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
                result
                    .map(|()| accepted.into_inner())
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| panic!("cannot start the property runner: {e}"));
        match runner.join() {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(error)) => panic!("{error}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// What supervisord writes, the fast path reads, whatever the content.
#[test]
fn supervisord_layout_is_always_read_by_the_fast_path() {
    run(
        || (multicall(false), any::<u64>()),
        |(reply, seed)| {
            let body = Writer::new(true, seed).multicall_reply(&reply);
            prop_assert!(
                agrees(&body)?,
                "declined: {}",
                String::from_utf8_lossy(&body)
            );
            prop_assert!(fast_multicall_reply(&body).is_some());
            let body = Writer::new(true, seed).processes_reply(&reply.entries);
            prop_assert!(fast_processes_reply(&body).is_some());
            agrees(&body)
        },
    );
}

/// Every variation: whatever the fast path accepts, it reads as the general decoder does; and
/// it accepts a good share of them.
#[test]
fn varied_replies_decode_the_same_on_both_paths() {
    let accepted = run(
        || (multicall(true), any::<u64>(), any::<bool>()),
        |(reply, seed, plain)| {
            let writer = Writer::new(false, seed);
            let body = if plain {
                writer.processes_reply(&reply.entries)
            } else {
                writer.multicall_reply(&reply)
            };
            agrees(&body)
        },
    );
    assert!(
        accepted as u32 >= CASES / 2,
        "the fast path accepted only {accepted} of {CASES} varied replies"
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(prop::sample::Index, u8),
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index, usize),
    Duplicate(prop::sample::Index, usize, prop::sample::Index),
    Truncate(prop::sample::Index),
}

/// Insertions aimed at the fast path's edges.
const INSERTS: [&str; 26] = [
    "<!-- c -->",
    "<![CDATA[x]]>",
    "<?pi?>",
    "&amp;",
    "&#x41;",
    "&#X41;",
    "&#0;",
    "&a;",
    "&",
    "\r",
    " ",
    "\n",
    "<value>",
    "</value>",
    "<member>",
    "</struct>",
    "<int>",
    "</string>",
    "-",
    "+",
    "9",
    "é",
    "\u{FEFF}",
    "<value a='1'>",
    // Whitespace to Unicode, not to XML.
    "\x0c",
    "\u{a0}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
        (at.clone(), prop::sample::select(&INSERTS[..])).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (at.clone(), 1usize..24).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (at.clone(), 1usize..200, at.clone()).prop_map(|(a, n, to)| Mutation::Duplicate(a, n, to)),
        at.prop_map(Mutation::Truncate),
    ]
}

fn apply(input: &mut Vec<u8>, mutation: &Mutation) {
    let len = input.len();
    match mutation {
        Mutation::FlipBit(at, bit) => {
            if len > 0 {
                if let Some(b) = input.get_mut(at.index(len)) {
                    *b ^= 1 << bit;
                }
            }
        }
        Mutation::Insert(at, text) => {
            let at = at.index(len + 1);
            input.splice(at..at, text.bytes());
        }
        Mutation::Delete(at, n) => {
            let at = at.index(len + 1);
            input.drain(at..(at + n).min(len));
        }
        Mutation::Duplicate(at, n, to) => {
            let at = at.index(len + 1);
            let piece = input
                .get(at..(at + n).min(len))
                .unwrap_or_default()
                .to_vec();
            let to = to.index(len + 1);
            input.splice(to..to, piece);
        }
        Mutation::Truncate(at) => input.truncate(at.index(len + 1)),
    }
}

/// Broken and odd replies: the fast path declines them or reads them as the general decoder.
#[test]
fn mutated_replies_decode_the_same_on_both_paths() {
    run(
        || {
            (
                multicall(false),
                any::<u64>(),
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec(mutation(), 1..5),
            )
        },
        |(reply, seed, canonical, plain, mutations)| {
            let writer = Writer::new(canonical, seed);
            let mut body = if plain {
                writer.processes_reply(&reply.entries)
            } else {
                writer.multicall_reply(&reply)
            };
            for m in &mutations {
                apply(&mut body, m);
            }
            agrees(&body)
        },
    );
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/xmlrpc/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The replies recorded from real servers go through the fast path.
#[test]
fn recorded_replies_take_the_fast_path() {
    for name in [
        "multicall_recorded_supervisord_4.3.0.xml",
        "multicall_ok.xml",
    ] {
        let body = fixture(name);
        let fast = fast_multicall_reply(&body);
        assert!(fast.is_some(), "{name} declined");
        assert!(matches!(agrees(&body), Ok(true)), "{name}");
        let Ok(Ok(general)) = general_multicall_reply(&body) else {
            panic!("{name} does not decode");
        };
        assert_eq!(fast, Some(general), "{name}");
    }
    for name in [
        "datadog_server1.xml",
        "datadog_server0_auth.xml",
        "datadog_ruby.xml",
    ] {
        let body = fixture(name);
        assert!(fast_processes_reply(&body).is_some(), "{name} declined");
        assert!(matches!(agrees(&body), Ok(true)), "{name}");
    }
}

/// Line ends in text are normalised as quick-xml does: `\r\n` and `\r` become `\n`, a `\r`
/// written as a reference stays.
#[test]
fn line_ends_are_normalised_on_the_fast_path() {
    let body = recorded_with("<string>bad</string>", "<string>b\r\na\rd&#13;\r</string>");
    let Some(fast) = fast_multicall_reply(&body) else {
        panic!("declined");
    };
    assert!(matches!(agrees(&body), Ok(true)));
    let names: Vec<&str> = fast
        .snapshot
        .processes
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["b\na\nd\r\n", "off", "web"]);
}

/// `decode_multicall_reply`'s result, made comparable (errors have no `PartialEq`).
fn multicall_outcome(body: &[u8]) -> String {
    format!("{:?}", decode_multicall_reply(body))
}

fn general_outcome(body: &[u8]) -> String {
    format!("{:?}", general_multicall_reply(body))
}

/// The recorded reply with `from` replaced by `to` (the first occurrence).
fn recorded_with(from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("multicall_recorded_supervisord_4.3.0.xml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1).into_bytes()
}

/// Each of these falls back, and then decodes (or fails) exactly as the general decoder
/// alone decodes it: with its result, its problems and its error message.
#[test]
fn what_the_fast_path_does_not_know_falls_back() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("comment", recorded_with("<member>", "<!-- c --><member>")),
        ("cdata", recorded_with("<string>bad</string>", "<string><![CDATA[bad]]></string>")),
        ("processing instruction", recorded_with("<member>", "<?pi?><member>")),
        ("doctype", recorded_with("<methodResponse>", "<!DOCTYPE x><methodResponse>")),
        ("attribute", recorded_with("<value><string>bad", "<value a='1'><string>bad")),
        ("space in a tag", recorded_with("<struct>", "<struct >")),
        ("form feed between tags", recorded_with("<member>", "\x0c<member>")),
        ("form feed around an int", recorded_with("<int>0</int>", "<int>0\x0c</int>")),
        ("unknown entity", recorded_with("<string>bad", "<string>&bad;")),
        ("uppercase hex reference", recorded_with("<string>bad", "<string>&#X41;")),
        ("NUL reference", recorded_with("<string>bad", "<string>&#0;")),
        ("bare ampersand", recorded_with("<string>bad", "<string>& bad")),
                ("double", recorded_with("<int>0</int>", "<double>0.5</double>")),
        ("nil", recorded_with("<value><int>0</int>", "<value><nil/>")),
        ("nested struct", recorded_with("<int>0</int>", "<struct></struct>")),
        ("empty struct element", recorded_with("<value><int>0</int>", "<value><struct/>")),
        ("ex:i8", recorded_with("<int>0</int>", "<ex:i8>0</ex:i8>")),
        ("bad int", recorded_with("<int>0</int>", "<int>0x</int>")),
        ("overflowing int", recorded_with("<int>0</int>", "<int>9223372036854775808</int>")),
        ("mismatched end tag", recorded_with("<int>0</int>", "<int>0</i4>")),
        ("bad boolean", recorded_with("<int>0</int>", "<boolean>2</boolean>")),
        ("text beside a type", recorded_with("<value><int>0</int>", "<value>x<int>0</int>")),
        ("encoding", recorded_with("<?xml version='1.0'?>", "<?xml version='1.0' encoding='latin-1'?>")),
        ("trailing comment", recorded_with("</methodResponse>\n", "</methodResponse>\n<!-- c -->")),
        ("trailing text", recorded_with("</methodResponse>\n", "</methodResponse>\nx")),
        ("invalid UTF-8", {
            let mut body = recorded_with("<string>bad", "<string>b\u{e9}d");
            if let Some(at) = body.windows(2).position(|w| w == "\u{e9}".as_bytes()) {
                body.splice(at..at + 2, [0xE9]);
            }
            body
        }),
        ("truncated", {
            let mut body = fixture("multicall_recorded_supervisord_4.3.0.xml");
            body.truncate(body.len() / 2);
            body
        }),
        ("html", b"<!DOCTYPE html><html><body>Supervisor</body></html>".to_vec()),
        ("empty", Vec::new()),
        ("entry that is not a struct", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><array><data>\n<value><string>x</string></value>\n",
        )),
        ("wrapper holding two arrays", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><array><data>\n<value><array><data>\n</data></array></value>\n\
             <value><array><data>\n</data></array></value>\n</data></array></value>\n<value><array><data>\n",
        )),
        ("no results", b"<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n\
            <value><array><data>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n".to_vec()),
        ("multicall fault", fixture("fault_unknown_method.xml")),
        ("getAllProcessInfo fault", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><struct>\n<member>\n<name>faultCode</name>\n\
             <value><int>2</int></value>\n</member>\n<member>\n<name>faultString</name>\n\
             <value><string>FAILED</string></value>\n</member>\n</struct></value>\n<value><array><data>\n",
        )),
        ("getAllProcessInfo not an array", recorded_with(
            "<value><array><data>\n<value><array><data>\n",
            "<value><array><data>\n<value><string>x</string></value>\n<value><array><data>\n",
        )),
    ];
    for (what, body) in &cases {
        assert_eq!(
            fast_multicall_reply(body),
            None,
            "{what}: the fast path accepted it"
        );
        assert_eq!(multicall_outcome(body), general_outcome(body), "{what}");
    }
    // Some of these the general decoder reads, some it refuses: both kinds are covered.
    let read = cases
        .iter()
        .filter(|(_, body)| matches!(general_multicall_reply(body), Ok(Ok(_))))
        .count();
    assert!(
        read >= 5 && read + 5 <= cases.len(),
        "{read} of {}",
        cases.len()
    );
}

/// Past [`MAX_PROCESSES`] entries the general decoder reports the ignored ones; the fast path
/// leaves that to it.
#[test]
fn more_processes_than_the_cap_fall_back() {
    let entry = "<value><struct>\n<member>\n<name>name</name>\n<value><string>p</string></value>\n\
                 </member>\n</struct></value>\n";
    let reply = |count: usize| {
        format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n{}\
             </data></array></value>\n</param>\n</params>\n</methodResponse>\n",
            entry.repeat(count)
        )
        .into_bytes()
    };
    let at_cap = reply(MAX_PROCESSES);
    assert!(fast_processes_reply(&at_cap).is_some());
    let over = reply(MAX_PROCESSES + 1);
    assert_eq!(fast_processes_reply(&over), None);
    let Ok(Ok((processes, problems))) = decode_processes_reply(&over) else {
        panic!("the reply decodes");
    };
    assert_eq!(processes.len(), MAX_PROCESSES);
    assert_eq!(
        problems.last().map(String::as_str),
        Some("1 processes past the first 10000 ignored")
    );
}

/// Entries the model skips or reports are the shared builder's business: the fast path
/// reads them, with the same problems.
#[test]
fn problem_entries_stay_on_the_fast_path_with_the_same_problems() {
    let long = "n".repeat(MAX_NAME_BYTES + 1);
    let body = recorded_with("<string>bad</string>", &format!("<string>{long}</string>"));
    let body = String::from_utf8(body).unwrap_or_default();
    // The first two are 'bad' (skipped for its name) and 'off'.
    let body = body
        .replacen("<name>pid</name>", "<name>unknown</name>", 2)
        .replacen("<string>STOPPED</string>", "<boolean>1</boolean>", 1)
        .into_bytes();
    let Some(fast) = fast_multicall_reply(&body) else {
        panic!("declined");
    };
    assert!(matches!(agrees(&body), Ok(true)));
    assert_eq!(
        fast.problems,
        [
            format!(
                "process #1: name '{}...' longer than {MAX_NAME_BYTES} bytes, skipped",
                "n".repeat(100)
            ),
            "process 'off': field 'statename' is not a string".to_owned(),
            "process 'off': field 'pid' is missing".to_owned(),
        ]
    );
}

/// Hostile replies the fast path meets before the general decoder: each is one forward pass,
/// then at most one general one (run here, so a quadratic or unbounded path would show as a
/// test that does not end).
#[test]
fn hostile_replies_are_bounded() {
    let head = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n";
    let bodies = [
        format!("{head}{}", "<value><struct>\n".repeat(200_000)),
        format!(
            "{head}<value><struct>{}",
            "<member><name>x</name><value><int>1</int></value></member>".repeat(100_000)
        ),
        format!("{head}<value><string>{}", "&amp;".repeat(1_000_000)),
        format!("{head}<value><string>{}", "&".repeat(1_000_000)),
        format!(
            "{head}<value><string>{}</string></value>",
            "x".repeat(8_000_000)
        ),
        format!("{head}{}", "<value><array><data>\n".repeat(100_000)),
        format!(
            "{head}<value><struct><member><name>{}",
            "n".repeat(4_000_000)
        ),
    ];
    for body in &bodies {
        assert!(matches!(agrees(body.as_bytes()), Ok(false)));
        assert!(decode_multicall_reply(body.as_bytes()).is_err());
        assert!(decode_processes_reply(body.as_bytes()).is_err());
        checks::fast_path_agrees(body.as_bytes());
    }
}
