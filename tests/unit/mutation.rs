//! Byte-level mutations for the property tests of the fuzz targets (`fuzz_xmlrpc`,
//! `fuzz_http1`): a bit flipped, a byte or one of the target's tokens inserted, a run deleted
//! or duplicated elsewhere, the input cut. Positions are taken modulo the input's length, so
//! every mutation applies to any input.

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(usize, u8),
    InsertByte(usize, u8),
    /// An index into the target's tokens.
    InsertToken(usize, usize),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
}

/// Mutations over `tokens` tokens, deleting at most `max_delete` bytes and duplicating at most
/// `max_duplicate`.
pub fn mutation(
    tokens: usize,
    max_delete: usize,
    max_duplicate: usize,
) -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
        (at, any::<u8>()).prop_map(|(a, b)| Mutation::InsertByte(a, b)),
        (at, 0..tokens).prop_map(|(a, t)| Mutation::InsertToken(a, t)),
        (at, 1..max_delete).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (at, 1..max_duplicate, any::<usize>()).prop_map(|(a, n, to)| Mutation::Duplicate(a, n, to)),
        at.prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutation` to `input`; `tokens` are the ones [`mutation`] was given the count of.
pub fn apply(input: &mut Vec<u8>, mutation: &Mutation, tokens: &[&str]) {
    let len = input.len();
    let pos = |at: usize| if len == 0 { 0 } else { at % (len + 1) };
    match *mutation {
        Mutation::FlipBit(at, bit) => {
            if len > 0 {
                if let Some(b) = input.get_mut(at % len) {
                    *b ^= 1 << bit;
                }
            }
        }
        Mutation::InsertByte(at, byte) => input.insert(pos(at), byte),
        Mutation::InsertToken(at, token) => {
            let at = pos(at);
            let token = tokens.get(token).copied().unwrap_or("");
            input.splice(at..at, token.bytes());
        }
        Mutation::Delete(at, n) => {
            let at = pos(at);
            let end = (at + n).min(len);
            input.drain(at..end);
        }
        Mutation::Duplicate(at, n, to) => {
            let at = pos(at);
            let piece = input
                .get(at..(at + n).min(len))
                .unwrap_or_default()
                .to_vec();
            let to = pos(to);
            input.splice(to..to, piece);
        }
        Mutation::Truncate(at) => input.truncate(pos(at)),
    }
}
