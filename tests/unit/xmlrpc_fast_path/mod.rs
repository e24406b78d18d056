//! The poll client's fast path against the general decoder, on the same bytes.
//!
//! The fast path may decline any reply (the general decoder then reads it), but what it
//! accepts it must decode exactly as the general decoder does: the same processes, problems
//! and answers. Checked on generated replies, varied in every way XML-RPC allows (whitespace,
//! escaping, field order, unicode, missing, extra and mistyped members, int spellings,
//! wrapped multicall results, faults among the answers), on mutations of them, and on the
//! inputs that must fall back; and the fast path must accept what supervisord itself writes,
//! or it would be correct and useless.

mod generated;
mod recorded;

use crate::checks;

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
