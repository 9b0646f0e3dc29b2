//! A smoke run of every fuzz target's properties without libFuzzer (`cargo test` in `fuzz/`,
//! on stable Rust): the seed corpus, then pseudo-random inputs, near-miss inputs built from the
//! formats' own alphabets, and every input of up to 3 bytes from a small alphabet.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("grpc_timeout", steadfast_fuzz::grpc_timeout),
    ("retry_after", steadfast_fuzz::retry_after),
    ("grpc_pushback", steadfast_fuzz::grpc_pushback),
    ("deadline_header", steadfast_fuzz::deadline_header),
    ("deadline_propagate", steadfast_fuzz::deadline_propagate),
];

/// Random inputs per target.
const RANDOM_INPUTS: usize = 100_000;

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Characters the parsers care about, and some they must reject.
const ALPHABET: &[u8] = b"0123456789HMSmunhs -+.,:GMTWedOctJan\t\xff\x00";

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect()
}

#[test]
fn every_target_holds_on_the_corpus_and_random_inputs() {
    for (name, target) in TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} has seeds");
        for seed in &seeds {
            target(seed);
        }
        let mut rng = Rng(0x5EED ^ name.len() as u64);
        for _ in 0..RANDOM_INPUTS {
            let len = rng.below(40);
            let input: Vec<u8> = match rng.below(3) {
                // Any bytes.
                0 => (0..len).map(|_| rng.next_u64() as u8).collect(),
                // The formats' own characters.
                1 => (0..len)
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect(),
                // A seed, mutated.
                _ => {
                    let mut input = seeds[rng.below(seeds.len())].clone();
                    for _ in 0..1 + rng.below(3) {
                        let at = rng.below(input.len() + 1);
                        match rng.below(3) {
                            0 if at < input.len() => input[at] = rng.next_u64() as u8,
                            1 if at < input.len() => {
                                input.remove(at);
                            }
                            _ => input.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                        }
                    }
                    input
                }
            };
            target(&input);
        }
    }
}

#[test]
fn every_target_holds_on_every_short_input() {
    let alphabet = b"09HSmn -\x01\x03";
    for (_, target) in TARGETS {
        target(&[]);
        for a in alphabet {
            target(&[*a]);
            for b in alphabet {
                target(&[*a, *b]);
                for c in alphabet {
                    target(&[*a, *b, *c]);
                }
            }
        }
    }
}
