//! Generated replies, as supervisord writes them and varied in every way XML-RPC allows, and
//! mutations of them: what the fast path accepts it reads as the general decoder does.

use super::*;

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
