//! The fuzz targets' properties as property tests, so that every `cargo test` on stable checks
//! them; `fuzz/` stays for deep runs under libFuzzer (`cargo +nightly fuzz run <target>`).
//!
//! The properties are not copied: `fuzz/src/lib.rs`, which the fuzz targets and fuzz/'s smoke
//! test call, is compiled into this test as a module. Each target gets three kinds of input:
//! any bytes; bytes drawn from the characters its format is made of (where the near misses
//! are); and its seed corpus (`fuzz/corpus/<target>`) with a few bytes changed.

#[path = "../fuzz/src/lib.rs"]
#[allow(unreachable_pub)] // `pub` for the fuzz crate's targets
mod properties;

use std::path::Path;

use proptest::prelude::*;

/// The characters the parsers care about, and some they must reject.
const ALPHABET: &[u8] = b"0123456789HMSmunhs -+.,:GMTWedOctJan\t\xff\x00";

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target);
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect();
    seeds.sort(); // read_dir's order is the file system's
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} has seeds");
    seeds
}

/// Inputs for `target`: any bytes, the formats' alphabet, or a seed with up to three bytes
/// replaced, removed or inserted.
fn inputs(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4);
    let mutated = (prop::sample::select(seeds), edits).prop_map(|(mut input, edits)| {
        for (at, edit, byte) in edits {
            let at = at.index(input.len() + 1);
            match edit {
                0 if at < input.len() => input[at] = byte,
                1 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.insert(at, ALPHABET[usize::from(byte) % ALPHABET.len()]),
            }
        }
        input
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(prop::sample::select(ALPHABET), 0..24),
        mutated,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn grpc_timeout(input in inputs("grpc_timeout")) {
        properties::grpc_timeout(&input);
    }

    #[test]
    fn retry_after(input in inputs("retry_after")) {
        properties::retry_after(&input);
    }

    #[test]
    fn grpc_pushback(input in inputs("grpc_pushback")) {
        properties::grpc_pushback(&input);
    }

    #[test]
    fn deadline_header(input in inputs("deadline_header")) {
        properties::deadline_header(&input);
    }

    #[test]
    fn deadline_propagate(input in inputs("deadline_propagate")) {
        properties::deadline_propagate(&input);
    }
}

/// Formats the fuzzers reach only by luck: a well-formed `grpc-timeout` of any length and unit,
/// and delta-seconds of any size.
mod shaped {
    use super::*;

    proptest! {
        #[test]
        fn grpc_timeout_values(text in "[0-9]{0,10}[HMSmunx]?") {
            properties::grpc_timeout(text.as_bytes());
        }

        #[test]
        fn retry_after_seconds(now in any::<[u8; 8]>(), text in " ?[0-9]{1,25} ?") {
            let mut input = now.to_vec();
            input.extend_from_slice(text.as_bytes());
            properties::retry_after(&input);
        }

        #[test]
        fn grpc_pushback_values(text in "-?[0-9]{0,25}") {
            properties::grpc_pushback(text.as_bytes());
        }
    }
}
