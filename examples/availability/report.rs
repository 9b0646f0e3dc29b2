//! The figures: a summary per client, the same per phase, and the time series for the plot.

use std::time::Duration;

use steadfast::pool::EndpointState;

use crate::backend::bucket_of;
use crate::load::{Answer, Record};
use crate::scenario::{BUCKET, Faults, OUTAGE_END, OUTAGE_START, RECOVERY_BUCKET, RUN_FOR};

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
        "fresh%",
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

/// Adds up per-bucket call counts (of the replicas of one pool).
pub(crate) fn add(logs: impl IntoIterator<Item = Vec<u64>>) -> Vec<u64> {
    let mut total: Vec<u64> = Vec::new();
    for log in logs {
        if total.len() < log.len() {
            total.resize(log.len(), 0);
        }
        for (sum, calls) in total.iter_mut().zip(log) {
            *sum += calls;
        }
    }
    total
}

/// Calls per second in each [`BUCKET`], at the middle of the bucket, for the plot.
pub(crate) fn load_series(calls_per_bucket: &[u64]) -> Vec<(f64, f64)> {
    (0..bucket_of(RUN_FOR))
        .map(|index| {
            (
                (index as f64 + 0.5) * BUCKET.as_secs_f64(),
                calls_per_bucket.get(index).copied().unwrap_or(0) as f64 / BUCKET.as_secs_f64(),
            )
        })
        .collect()
}

/// What the pool did with one replica.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaRow {
    pub(crate) faults: Faults,
    /// Calls the pool sent it over the run.
    pub(crate) sent: u64,
    /// Calls the pool sent it while it was down (from the start to the end of the outage),
    /// for a replica that goes down.
    pub(crate) sent_in_outage: Option<u64>,
    pub(crate) ejections: u32,
    pub(crate) state: Option<EndpointState>,
    /// For a replica that goes down: from the end of its outage to the first success of a call
    /// the pool sent it after; `None` if none came.
    pub(crate) back_after: Option<Duration>,
}

impl ReplicaRow {
    pub(crate) fn new(
        faults: Faults,
        sent_per_bucket: &[u64],
        ejections: u32,
        state: Option<EndpointState>,
        back_after: Option<Duration>,
    ) -> Self {
        let in_outage = sent_per_bucket
            .iter()
            .enumerate()
            .filter(|(index, _)| {
                let offset = BUCKET * u32::try_from(*index).unwrap_or(u32::MAX);
                (OUTAGE_START..OUTAGE_END).contains(&offset)
            })
            .map(|(_, calls)| calls)
            .sum();
        Self {
            faults,
            sent: sent_per_bucket.iter().sum(),
            sent_in_outage: faults.outage.then_some(in_outage),
            ejections,
            state,
            back_after: if faults.outage { back_after } else { None },
        }
    }
}

/// Prints what the pool did with each replica.
pub(crate) fn print_replicas(rows: &[ReplicaRow]) {
    println!(
        "{:<8} {:<12} {:>10} {:>14} {:>10} {:>12} {:>18}",
        "replica",
        "role",
        "calls sent",
        "during outage",
        "ejections",
        "state at end",
        "back after outage"
    );
    println!("{}", "-".repeat(90));
    for row in rows {
        let dash = || "-".to_owned();
        println!(
            "{:<8} {:<12} {:>10} {:>14} {:>10} {:>12} {:>18}",
            row.faults.name,
            row.faults.role,
            row.sent,
            row.sent_in_outage.map_or_else(dash, |n| n.to_string()),
            row.ejections,
            row.state
                .map_or_else(dash, |s| format!("{s:?}").to_lowercase()),
            if row.faults.outage {
                row.back_after.map_or_else(
                    || "never".to_owned(),
                    |d| format!("{:.2} s", d.as_secs_f64()),
                )
            } else {
                dash()
            },
        );
    }
}

/// The figures the pool scenario claims: useful and fresh answers of at least 99.9 %.
pub(crate) const CLAIMED: f64 = 0.999;

/// Prints the pool's claims against its figures.
pub(crate) fn print_claims(pool: &Summary, down: &ReplicaRow) {
    let useful = ratio(pool.successes + pool.fallbacks, pool.requests);
    let fresh = ratio(pool.successes, pool.requests);
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "\npool: useful {:.2} % ({}), fresh {:.2} % ({}; goal >= {:.1} % for both); \
         {} calls sent to {} during its outage; it carried traffic again {} after it healed",
        100.0 * useful,
        mark(useful >= CLAIMED),
        100.0 * fresh,
        mark(fresh >= CLAIMED),
        100.0 * CLAIMED,
        down.sent_in_outage.unwrap_or(0),
        down.faults.name,
        down.back_after.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.2} s", d.as_secs_f64())
        ),
    );
}
