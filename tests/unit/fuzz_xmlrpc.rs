//! Property tests of the XML-RPC decoder and of everything a reply goes through after the
//! transport (multicall split, model, filters, OTLP builder): arbitrary bytes, mutated real
//! replies, XML token soup, and generated values round-tripping through encode and decode.
//!
//! Bounded (2,000 cases per property) so they take seconds in `cargo test`; the same checks
//! run unbounded under cargo-fuzz (fuzz/README.md).

use crate::checks;

use proptest::prelude::*;

use super::mutation::Mutation;
use proptest::test_runner::Config;
use supervisord_receiver::supervisor::client::decode_multicall_reply;
use supervisord_receiver::supervisor::decode::{MAX_NAME_BYTES, PROCESS_INFO_FIELDS};
use supervisord_receiver::supervisor::xmlrpc::{self, DecodeError, Fault, Value, MAX_DEPTH};

fn config() -> Config {
    Config {
        cases: 2_000,
        // A failure prints its minimal input; it goes into tests/unit/fuzz_regressions.rs.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Real replies to mutate: the recorded and Datadog fixtures.
const FIXTURES: [&str; 5] = [
    include_str!("../fixtures/xmlrpc/multicall_recorded_supervisord_4.3.0.xml"),
    include_str!("../fixtures/xmlrpc/multicall_ok.xml"),
    include_str!("../fixtures/xmlrpc/datadog_server1.xml"),
    include_str!("../fixtures/xmlrpc/datadog_ruby.xml"),
    include_str!("../fixtures/xmlrpc/fault_bad_name.xml"),
];

/// The syntax the decoder cares about, for mutations and token soup.
const TOKENS: [&str; 40] = [
    "<value>",
    "</value>",
    "<array>",
    "</array>",
    "<data>",
    "</data>",
    "<struct>",
    "</struct>",
    "<member>",
    "</member>",
    "<name>",
    "</name>",
    "<string>",
    "</string>",
    "<int>",
    "</int>",
    "<i8>",
    "<boolean>",
    "<double>",
    "<base64>",
    "<nil/>",
    "<value/>",
    "<fault>",
    "</fault>",
    "<params><param>",
    "</param></params>",
    "<methodResponse>",
    "</methodResponse>",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    "&amp;",
    "&#0;",
    "&#x1F980;",
    "&a;",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "faultCode",
    "statename",
    "99999999999999999999",
    "\u{FEFF}",
];

/// Mutations over this target's tokens (`super::mutation`).
fn mutation() -> impl Strategy<Value = Mutation> {
    super::mutation::mutation(TOKENS.len(), 64, 128)
}

fn apply(input: &mut Vec<u8>, mutation: &Mutation) {
    super::mutation::apply(input, mutation, &TOKENS);
}

/// Text the encoder carries unchanged (what it would replace is replaced here already).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[<>&'\" \\]\\r\\n\\t;#x0-9a-z]{0,16}",
        Just("]]>".to_owned()),
    ]
    .prop_map(|s| {
        s.chars()
            .map(|c| {
                if checks::representable_char(c) {
                    c
                } else {
                    '\u{FFFD}'
                }
            })
            .collect()
    })
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        text().prop_map(Value::String),
        any::<f64>()
            .prop_filter("XML-RPC has no form for NaN or infinity", |d| d.is_finite())
            .prop_map(Value::Double),
        // The decoder trims whitespace around a dateTime.
        text().prop_map(|s| Value::DateTime(s.trim_matches([' ', '\t', '\r', '\n']).to_owned())),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(Value::Base64),
        Just(Value::Nil),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..8).prop_map(Value::Struct),
        ]
    })
}

/// A `getProcessInfo`-like entry: known fields, each present or not, with a right or wrong type.
fn process_entry() -> impl Strategy<Value = Value> {
    const FIELDS: [&str; 14] = PROCESS_INFO_FIELDS;
    const WORDS: [&str; 10] = [
        "web",
        "db",
        "",
        "RUNNING",
        "STOPPED",
        "EXPLODING",
        "UNKNOWN",
        "g:1",
        "é🦀",
        "a b",
    ];
    let field_value = prop_oneof![
        4 => prop::sample::select(&WORDS[..]).prop_map(|w| Value::String(w.to_owned())),
        3 => (-5i64..1000).prop_map(Value::Int),
        1 => (100usize..200).prop_map(|n| Value::String("x".repeat(n))),
        1 => leaf(),
    ];
    prop::collection::vec((0..FIELDS.len(), field_value), 0..16).prop_map(|members| {
        Value::Struct(
            members
                .into_iter()
                .map(|(field, value)| {
                    let name = FIELDS.get(field).copied().unwrap_or("name");
                    (name.to_owned(), value)
                })
                .collect(),
        )
    })
}

/// Whether the decoder keeps an entry: a struct whose last `name` is a short enough string, and
/// whose `group` is not too long a string (any other group falls back to the name).
fn kept(entry: &Value) -> bool {
    let name_ok = matches!(entry.get("name"), Some(Value::String(s)) if s.len() <= MAX_NAME_BYTES);
    let group_too_long =
        matches!(entry.get("group"), Some(Value::String(s)) if s.len() > MAX_NAME_BYTES);
    name_ok && !group_too_long
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        checks::xmlrpc_decode(&bytes);
    }

    #[test]
    fn arbitrary_text_after_a_valid_prologue(text in ".{0,512}") {
        checks::xmlrpc_decode(text.as_bytes());
        checks::xmlrpc_decode(format!("<?xml version='1.0'?><methodResponse>{text}").as_bytes());
    }

    #[test]
    fn mutated_real_replies(
        fixture in 0..FIXTURES.len(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut input = FIXTURES.get(fixture).copied().unwrap_or_default().as_bytes().to_vec();
        for m in &mutations {
            apply(&mut input, m);
        }
        checks::xmlrpc_decode(&input);
    }

    #[test]
    fn token_soup(tokens in prop::collection::vec(
        prop_oneof![
            4 => (0..TOKENS.len()).prop_map(|t| TOKENS.get(t).copied().unwrap_or("").to_owned()),
            1 => "[a-z0-9 .-]{0,6}",
        ],
        0..48,
    )) {
        let soup = tokens.concat();
        checks::xmlrpc_decode(soup.as_bytes());
        let framed = format!(
            "<?xml version='1.0'?><methodResponse><params><param>{soup}</param></params></methodResponse>"
        );
        checks::xmlrpc_decode(framed.as_bytes());
    }

    #[test]
    fn values_round_trip(v in value()) {
        let encoded = xmlrpc::encode_response(&v);
        prop_assert_eq!(xmlrpc::decode_response(&encoded), Ok(Ok(v)));
        checks::xmlrpc_decode(&encoded);
    }

    #[test]
    fn faults_round_trip(code in any::<i64>(), message in text()) {
        let fault = Fault { code, message };
        prop_assert_eq!(xmlrpc::decode_response(&xmlrpc::encode_fault(&fault)), Ok(Err(fault)));
    }

    #[test]
    fn any_string_encodes_to_a_decodable_reply(s in any::<String>(), name in any::<String>()) {
        let v = Value::Struct(vec![(name, Value::String(s))]);
        let decoded = xmlrpc::decode_response(&xmlrpc::encode_response(&v));
        prop_assert!(matches!(decoded, Ok(Ok(Value::Struct(_)))), "{:?}", decoded);
    }

    #[test]
    fn nesting_is_accepted_up_to_the_cap_only(levels in 1usize..(3 * MAX_DEPTH), structs in any::<u64>()) {
        let mut open = String::new();
        let mut close = String::new();
        for level in 0..levels {
            if (structs >> (level % 64)) & 1 == 1 {
                open.push_str("<value><struct><member><name>k</name>");
                close.insert_str(0, "</member></struct></value>");
            } else {
                open.push_str("<value><array><data>");
                close.insert_str(0, "</data></array></value>");
            }
        }
        let body = format!(
            "<?xml version='1.0'?><methodResponse><params><param>{open}<value><int>1</int></value>{close}</param></params></methodResponse>"
        );
        let decoded = xmlrpc::decode_response(body.as_bytes());
        if levels <= MAX_DEPTH {
            prop_assert!(matches!(decoded, Ok(Ok(_))), "{} levels: {:?}", levels, decoded);
        } else {
            prop_assert_eq!(decoded, Err(DecodeError::TooDeep { limit: MAX_DEPTH }));
        }
    }

    /// A multicall reply whose entries are wrong in every way a field can be: the poll never
    /// fails for it, and keeps exactly the entries with a usable name.
    #[test]
    fn broken_entries_never_fail_the_poll(
        entries in prop::collection::vec(process_entry(), 0..8),
        wrapped in any::<bool>(),
    ) {
        let wrap = |v: Value| if wrapped { Value::Array(vec![v]) } else { v };
        let expected = entries.iter().filter(|e| kept(e)).count();
        let reply = Value::Array(vec![
            wrap(Value::Array(entries)),
            wrap(Value::Struct(vec![
                ("statecode".into(), Value::Int(1)),
                ("statename".into(), Value::String("RUNNING".into())),
            ])),
            wrap(Value::String("supervisor".into())),
            wrap(Value::String("4.3.0".into())),
        ]);
        let body = xmlrpc::encode_response(&reply);
        let polled = decode_multicall_reply(&body);
        let Ok(Ok(polled)) = polled else {
            return Err(TestCaseError::fail(format!("{polled:?}")));
        };
        prop_assert_eq!(polled.snapshot.processes.len(), expected);
        checks::xmlrpc_decode(&body);
    }
}
