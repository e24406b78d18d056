//! Sharding a fleet among several receivers (`run --shard INDEX/COUNT`): each receiver keeps
//! the targets whose name hashes to its index, so replicas that read the same configuration
//! split its targets between them without talking to each other.
//!
//! A target belongs to shard `shard_hash(name) % COUNT`. Every replica of every version must
//! compute the same hash, or a target would be polled twice or by no one during a rolling
//! update: the function is written out here and pinned by a golden test, never taken from the
//! standard library (whose `DefaultHasher` may change between Rust releases).

use std::fmt;

/// `SUPERVISORD_RECEIVER_SHARD`: the shard when `--shard` is not given.
pub const SHARD_VARIABLE: &str = "SUPERVISORD_RECEIVER_SHARD";

/// One shard of `count`: this receiver keeps the targets of shard `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `INDEX/COUNT`, where INDEX is a number or a name ending in `-<number>` (a StatefulSet
    /// pod's name, `receiver-2`, so that `--shard "$(POD_NAME)/3"` works).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let text = text.trim();
        let Some((index_text, count_text)) = text.rsplit_once('/') else {
            return Err(format!(
                "invalid shard '{text}': expected INDEX/COUNT, e.g. 0/3 or receiver-0/3"
            ));
        };
        let count: u64 = count_text.trim().parse().map_err(|_| {
            format!(
                "invalid shard '{text}': COUNT '{}' is not a number",
                count_text.trim()
            )
        })?;
        if count == 0 {
            return Err(format!("invalid shard '{text}': COUNT must be at least 1"));
        }
        let index_text = index_text.trim();
        // `receiver-2` gives 2; `-2` (a negative number, or a name without its name) gives
        // nothing.
        let number = match index_text.rsplit_once('-') {
            Some((name, number)) if !name.is_empty() => number,
            Some(_) => "",
            None => index_text,
        };
        let index: u64 = number
            .parse()
            .ok()
            .filter(|_| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!(
                    "invalid shard '{text}': INDEX '{index_text}' is neither a number nor a name \
                     ending in -<number> (a StatefulSet pod name such as receiver-2)"
                )
            })?;
        if index >= count {
            return Err(format!(
                "invalid shard '{text}': INDEX {index} is not below COUNT {count} (shards are \
                 numbered from 0 to {})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the target named `name` belongs to this shard.
    pub fn keeps(&self, name: &str) -> bool {
        shard_of(name, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of `count` the target named `name` belongs to.
pub fn shard_of(name: &str, count: u64) -> u64 {
    shard_hash(name) % count.max(1)
}

/// The hash that places a target in a shard: FNV-1a (64 bits) of the name's UTF-8 bytes, then
/// MurmurHash3's 64-bit finalizer (`fmix64`), so that every bit of the result depends on every
/// byte (FNV-1a alone leaves its low bits, which `% COUNT` reads for a power of two, to the low
/// bits of each byte).
///
/// This function must never change: receivers of different versions share one fleet during an
/// update, and a changed hash moves targets between shards (polled twice, or by no one). The
/// test `the_shard_of_known_names_never_changes` pins it.
pub fn shard_hash(name: &str) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET_BASIS;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    fmix64(hash)
}

/// MurmurHash3's 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_and_fmix64_match_their_published_values() {
        // FNV-1a 64 test vectors (the empty string is the offset basis; "a" is from the
        // reference implementation's test suite), checked before the finalizer.
        let fnv = |s: &str| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in s.as_bytes() {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h
        };
        assert_eq!(fnv(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fmix64(0), 0);
        assert_eq!(shard_hash("a"), fmix64(fnv("a")));
    }

    /// Golden values: if this fails, the hash changed, and a fleet updated one receiver at a
    /// time would poll some targets twice and others not at all. Do not update the table;
    /// restore the function.
    #[test]
    fn the_shard_of_known_names_never_changes() {
        let names = [
            "web-1",
            "web-2",
            "web-3",
            "db-primary",
            "db-replica",
            "worker-0",
            "worker-17",
            "host0042.example.com",
            "supervisord0",
            "ünïcødé",
            "",
            "receiver-2",
        ];
        let of3: Vec<u64> = names.iter().map(|n| shard_of(n, 3)).collect();
        let of7: Vec<u64> = names.iter().map(|n| shard_of(n, 7)).collect();
        assert_eq!(of3, GOLDEN_3, "shards of 3");
        assert_eq!(of7, GOLDEN_7, "shards of 7");
    }

    const GOLDEN_3: [u64; 12] = [1, 2, 0, 2, 0, 1, 0, 0, 1, 2, 2, 0];
    const GOLDEN_7: [u64; 12] = [6, 6, 2, 3, 3, 6, 5, 6, 6, 0, 1, 0];

    #[test]
    fn every_name_lands_in_exactly_one_shard_and_shards_are_balanced() {
        let names: Vec<String> = (0..1000).map(|i| format!("target-{i:04}")).collect();
        for count in 1..=8u64 {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            let mut sizes = vec![0usize; count as usize];
            for name in &names {
                let owners: Vec<&Shard> = shards.iter().filter(|s| s.keeps(name)).collect();
                assert_eq!(owners.len(), 1, "{name} of {count}: {owners:?}");
                sizes[owners[0].index as usize] += 1;
            }
            let mean = names.len() as f64 / count as f64;
            for (index, size) in sizes.iter().enumerate() {
                let off = (*size as f64 - mean).abs() / mean;
                assert!(
                    off <= 0.25,
                    "shard {index}/{count} has {size} targets, {:.0}% off the mean {mean:.0}: \
                     {sizes:?}",
                    off * 100.0
                );
            }
        }
    }

    #[test]
    fn shards_parse_from_numbers_and_pod_names() {
        assert_eq!(Shard::parse("0/3"), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(Shard::parse(" 2 / 3 "), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(
            Shard::parse("receiver-2/3"),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(
            Shard::parse("supervisord-receiver-10/12"),
            Ok(Shard {
                index: 10,
                count: 12
            })
        );
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard::parse("1/3").map(|s| s.to_string()), Ok("1/3".into()));
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        let error = |text: &str| Shard::parse(text).unwrap_err();
        assert!(
            error("3/3").contains("INDEX 3 is not below COUNT 3 (shards are numbered from 0 to 2)"),
            "{}",
            error("3/3")
        );
        assert!(
            error("x/2").contains("INDEX 'x' is neither a number nor a name ending in -<number>"),
            "{}",
            error("x/2")
        );
        assert!(
            error("1/0").contains("COUNT must be at least 1"),
            "{}",
            error("1/0")
        );
        assert!(
            error("3").contains("expected INDEX/COUNT"),
            "{}",
            error("3")
        );
        assert!(error("1/two").contains("COUNT 'two' is not a number"));
        assert!(error("receiver-/2").contains("neither a number"));
        assert!(error("-1/2").contains("neither a number"));
        assert!(error("receiver-5/3").contains("INDEX 5 is not below COUNT 3"));
    }
}
