//! The figures: a summary per client, the same per phase, and the time series for the plot.

use std::time::Duration;

use crate::backend::bucket_of;
use crate::load::{Answer, Record};
use crate::scenario::{BUCKET, OUTAGE_END, OUTAGE_START, RECOVERY_BUCKET, RUN_FOR};

/// What one client did, in figures.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) name: &'static str,
    pub(crate) requests: usize,
    pub(crate) successes: usize,
    pub(crate) fallbacks: usize,
    pub(crate) errors: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    pub(crate) backend_calls: u64,
    /// `None` for a client without a breaker.
    pub(crate) transitions: Option<usize>,
    /// From the end of the outage to the end of the first [`RECOVERY_BUCKET`] whose share of
    /// backend successes is back to 90 % of the healthy phase's; `None` if it never was.
    pub(crate) recovery: Option<Duration>,
    pub(crate) phases: [Phase; 3],
}

/// One phase of the run: healthy, outage, recovery.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) requests: usize,
    pub(crate) useful: usize,
    pub(crate) backend_calls: u64,
}

/// The phases, by the time a request was sent (and a backend call arrived).
pub(crate) const PHASES: [(&str, Duration, Duration); 3] = [
    ("healthy", Duration::ZERO, OUTAGE_START),
    ("outage", OUTAGE_START, OUTAGE_END),
    ("recovery", OUTAGE_END, RUN_FOR),
];

fn phase_of(offset: Duration) -> usize {
    PHASES
        .iter()
        .position(|(_, from, to)| (*from..*to).contains(&offset))
        .unwrap_or(PHASES.len() - 1)
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Summary {
    pub(crate) fn new(
        name: &'static str,
        records: &[Record],
        calls_per_bucket: &[u64],
        transitions: Option<usize>,
    ) -> Self {
        let count = |answer: Answer| records.iter().filter(|r| r.answer == answer).count();
        let mut latencies: Vec<Duration> = records.iter().map(|r| r.latency).collect();
        latencies.sort_unstable();
        let percentile = |p: f64| -> Duration {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        };

        let mut phases = [Phase::default(); 3];
        for record in records {
            let phase = &mut phases[phase_of(record.sent)];
            phase.requests += 1;
            phase.useful += usize::from(record.answer.is_useful());
        }
        for (index, calls) in calls_per_bucket.iter().enumerate() {
            let offset = BUCKET * u32::try_from(index).unwrap_or(u32::MAX);
            phases[phase_of(offset)].backend_calls += calls;
        }

        Self {
            name,
            requests: records.len(),
            successes: count(Answer::Success),
            fallbacks: count(Answer::Fallback),
            errors: count(Answer::Error),
            p50: percentile(0.50),
            p99: percentile(0.99),
            max: latencies.last().copied().unwrap_or_default(),
            backend_calls: calls_per_bucket.iter().sum(),
            transitions,
            recovery: recovery(records),
            phases,
        }
    }
}

/// See [`Summary::recovery`].
fn recovery(records: &[Record]) -> Option<Duration> {
    let success_rate = |from: Duration, to: Duration| {
        let sent: Vec<&Record> = records
            .iter()
            .filter(|r| (from..to).contains(&r.sent))
            .collect();
        let successes = sent.iter().filter(|r| r.answer == Answer::Success).count();
        ratio(successes, sent.len())
    };
    let healthy = success_rate(Duration::ZERO, OUTAGE_START);
    let mut from = OUTAGE_END;
    while from < RUN_FOR {
        let to = from + RECOVERY_BUCKET;
        if success_rate(from, to) >= 0.9 * healthy {
            return Some(to - OUTAGE_END);
        }
        from = to;
    }
    None
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Prints the summary table and the per-phase table.
pub(crate) fn print(summaries: &[Summary]) {
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>11} {:>9}",
        "client",
        "requests",
        "useful%",
        "backend%",
        "fallback%",
        "errors%",
        "p50 ms",
        "p99 ms",
        "max ms",
        "backend",
        "calls/",
        "breaker",
        "recovery"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>11} {:>9}",
        "", "", "", "", "", "", "", "", "", "calls", "request", "transitions", "after"
    );
    println!("{}", "-".repeat(128));
    for s in summaries {
        let pct = |n: usize| 100.0 * ratio(n, s.requests);
        println!(
            "{:<10} {:>8} {:>8.1} {:>8.1} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>8.2} {:>11} {:>9}",
            s.name,
            s.requests,
            pct(s.successes + s.fallbacks),
            pct(s.successes),
            pct(s.fallbacks),
            pct(s.errors),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            s.backend_calls,
            s.backend_calls as f64 / s.requests.max(1) as f64,
            s.transitions
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            s.recovery.map_or_else(
                || "never".to_owned(),
                |d| format!("{:.2} s", d.as_secs_f64())
            ),
        );
    }

    println!();
    print!("{:<10}", "by phase");
    for (name, from, to) in PHASES {
        let title = format!("{name} {}-{} s", from.as_secs(), to.as_secs());
        print!(" {title:>33}");
    }
    println!();
    print!("{:<10}", "");
    for _ in PHASES {
        print!(" {:>16} {:>16}", "useful%", "calls/request");
    }
    println!();
    println!("{}", "-".repeat(10 + 34 * PHASES.len()));
    for s in summaries {
        print!("{:<10}", s.name);
        for phase in &s.phases {
            print!(
                " {:>16.1} {:>16.2}",
                100.0 * ratio(phase.useful, phase.requests),
                phase.backend_calls as f64 / phase.requests.max(1) as f64
            );
        }
        println!();
    }
}

/// One point per [`BUCKET`]: the share of useful answers and of backend successes among the
/// requests sent in it (in %), and the backend calls that arrived in it, per second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub(crate) at: f64,
    pub(crate) useful: f64,
    pub(crate) success: f64,
    pub(crate) load: f64,
}

/// The time series of one client, for the plot.
pub(crate) fn series(records: &[Record], calls_per_bucket: &[u64]) -> Vec<Point> {
    let buckets = bucket_of(RUN_FOR);
    let mut sent = vec![0usize; buckets];
    let mut useful = vec![0usize; buckets];
    let mut success = vec![0usize; buckets];
    for record in records {
        let index = bucket_of(record.sent);
        if index < buckets {
            sent[index] += 1;
            useful[index] += usize::from(record.answer.is_useful());
            success[index] += usize::from(record.answer == Answer::Success);
        }
    }
    (0..buckets)
        .map(|index| Point {
            // The middle of the bucket.
            at: (index as f64 + 0.5) * BUCKET.as_secs_f64(),
            useful: 100.0 * ratio(useful[index], sent[index]),
            success: 100.0 * ratio(success[index], sent[index]),
            load: calls_per_bucket.get(index).copied().unwrap_or(0) as f64 / BUCKET.as_secs_f64(),
        })
        .collect()
}
