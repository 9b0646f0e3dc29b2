//! The ejection rules of the state word against a plain sequential model.

use proptest::prelude::*;

use super::state::{
    EjectedCount, KIND_EJECTED, KIND_HEALTHY, KIND_UNHEALTHY, OnFailure, StateWord,
};

#[derive(Debug, Clone)]
enum Op {
    Fail(usize),
    Succeed(usize),
    Advance(u64),
    Health(usize, bool),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..n).prop_map(Op::Fail),
        2 => (0..n).prop_map(Op::Succeed),
        2 => (1u64..400).prop_map(Op::Advance),
        1 => ((0..n), any::<bool>()).prop_map(|(i, u)| Op::Health(i, u)),
    ]
}

/// One endpoint, as the documentation describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Model {
    kind: u64,
    failures: u32,
    ejections: u32,
    until: u64,
}

proptest! {
    #[test]
    fn ejection_follows_the_sequential_model(
        n in 1usize..6,
        threshold in 1u32..4,
        base in 1u64..100,
        max_factor in 1u64..5,
        fraction in 0.0f64..=1.0,
        ops in proptest::collection::vec(op(6), 1..200),
    ) {
        let max = base * max_factor;
        let cap = ((fraction * n as f64).floor() as u32).max(1);
        let words: Vec<StateWord> = (0..n).map(|_| StateWord::new()).collect();
        let ejected = EjectedCount::new();
        let mut model = vec![Model { kind: KIND_HEALTHY, failures: 0, ejections: 0, until: 0 }; n];
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Fail(i) if i < n => {
                    let sent = words[i].load().ejections();
                    let got = words[i].on_failure(sent, threshold, &ejected, || cap, |k| now + (base * u64::from(k)).min(max));
                    let m = &mut model[i];
                    if m.kind == KIND_HEALTHY {
                        let failures = (m.failures + 1).min(threshold);
                        let ejected_now = model.iter().filter(|m| m.kind == KIND_EJECTED).count() as u32;
                        let m = &mut model[i];
                        if failures >= threshold && ejected_now < cap {
                            m.ejections += 1;
                            *m = Model { kind: KIND_EJECTED, failures: 0, ejections: m.ejections, until: now + (base * u64::from(m.ejections)).min(max) };
                            prop_assert!(matches!(got, OnFailure::Ejected(_)));
                        } else {
                            m.failures = failures;
                            prop_assert_eq!(got, OnFailure::Counted);
                        }
                    } else {
                        prop_assert_eq!(got, OnFailure::Stale);
                    }
                }
                Op::Succeed(i) if i < n => {
                    words[i].on_success(words[i].load().ejections());
                    if model[i].kind == KIND_HEALTHY {
                        model[i].failures = 0;
                    }
                }
                Op::Advance(ms) => {
                    now += ms;
                    for (word, m) in words.iter().zip(model.iter_mut()) {
                        let returned = word.return_if_due(now, &ejected).is_ok();
                        let due = m.kind == KIND_EJECTED && m.until <= now;
                        prop_assert_eq!(returned, due);
                        if due {
                            *m = Model { kind: KIND_HEALTHY, failures: 0, ejections: m.ejections, until: 0 };
                        }
                    }
                }
                Op::Health(i, unhealthy) if i < n => {
                    let changed = words[i].set_unhealthy(unhealthy, &ejected).is_ok();
                    let m = &mut model[i];
                    let expected = match (m.kind, unhealthy) {
                        (KIND_HEALTHY | KIND_EJECTED, true) => Some(KIND_UNHEALTHY),
                        (KIND_UNHEALTHY, false) => Some(KIND_HEALTHY),
                        _ => None,
                    };
                    prop_assert_eq!(changed, expected.is_some());
                    if let Some(kind) = expected {
                        *m = Model { kind, failures: 0, ejections: m.ejections, until: 0 };
                    }
                }
                _ => {}
            }
            for (word, m) in words.iter().zip(&model) {
                let w = word.load();
                prop_assert_eq!(Model { kind: w.kind(), failures: w.failures(), ejections: w.ejections(), until: w.until_ms() }, *m);
            }
            let ejected_model = model.iter().filter(|m| m.kind == KIND_EJECTED).count() as u32;
            prop_assert_eq!(ejected.get(), ejected_model);
            prop_assert!(ejected_model <= cap);
        }
    }
}
