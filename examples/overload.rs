//! Overload: a backend that serves 10 calls at once and queues the rest is offered ten times
//! what it can serve, on tokio's paused clock (exact and instant, the same every run).
//!
//! Without a limit every call waits behind the queue, so the latency of *every* call grows for
//! as long as the overload lasts, and almost no answer arrives in time to be useful. With
//! steadfast's adaptive limit in front, the calls over the limit are shed at once, the accepted
//! ones keep close to the unloaded latency, the backend stays busy, and the limit rises again
//! when the overload is over.
//!
//! ```text
//! cargo run --example overload --features limit
//! ```
//!
//! prints a table per phase and writes `overload.svg`. Its figures are checked by
//! `cargo test --example overload --features limit`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plotters::prelude::*;
use steadfast::BoxError;
use steadfast::limit::{AdaptiveLimitLayer, Aimd, Algorithm, Gradient2, LimitExceeded, Vegas};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt, service_fn};

/// Calls the backend serves at once.
const CAPACITY: usize = 10;
/// How long the backend takes to serve one call once it has a worker for it.
const SERVICE_TIME: Duration = Duration::from_millis(10);
/// Calls per second the backend can serve.
const CAPACITY_PER_SEC: f64 = CAPACITY as f64 / 0.010;
/// An answer later than this is useless to the caller (ten times the unloaded latency).
const USEFUL_WITHIN: Duration = Duration::from_millis(100);
/// Width of one point of the time series.
const BUCKET: Duration = Duration::from_millis(100);
const SEED: u64 = 0x5EED_0F10_AD00;

/// One phase of the offered load.
#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    until: Duration,
    /// Calls offered per second, as a multiple of the capacity.
    load: f64,
}

const PHASES: [Phase; 3] = [
    Phase {
        name: "normal (50 %)",
        until: Duration::from_secs(2),
        load: 0.5,
    },
    Phase {
        name: "overload (10x)",
        until: Duration::from_secs(6),
        load: 10.0,
    },
    Phase {
        name: "after (90 %)",
        until: Duration::from_secs(12),
        load: 0.9,
    },
];
const RUN_FOR: Duration = PHASES[2].until;

/// What became of one call.
#[derive(Debug, Clone, Copy)]
struct Call {
    sent: Duration,
    /// `None`: shed by the limit. `Some`: answered after this long.
    latency: Option<Duration>,
}

/// A run: every call (each answered or shed: the run waits for the backlog to drain), and the
/// limit every [`BUCKET`].
#[derive(Debug, Default)]
struct Run {
    calls: Vec<Call>,
    limit: Vec<(Duration, usize)>,
}

/// A seeded generator (SplitMix64) for the arrivals.
struct Rng(u64);

impl Rng {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson-distributed count with mean `mean` (Knuth's method; the means here are small).
    fn poisson(&mut self, mean: f64) -> usize {
        let threshold = (-mean).exp();
        let (mut count, mut product) = (0, self.next_unit());
        while product > threshold {
            count += 1;
            product *= self.next_unit();
        }
        count
    }
}

/// The backend: [`CAPACITY`] workers, each serving a call in [`SERVICE_TIME`]; the rest queue.
fn backend() -> BoxCloneService<(), (), BoxError> {
    let workers = Arc::new(Semaphore::new(CAPACITY));
    BoxCloneService::new(service_fn(move |()| {
        let workers = Arc::clone(&workers);
        async move {
            let _worker = workers.acquire().await?;
            sleep(SERVICE_TIME).await;
            Ok::<_, BoxError>(())
        }
    }))
}

/// The limit the demo puts in front of the backend: Gradient2 with Netflix's settings, but a
/// minimum of 1 instead of 20 (the backend serves only 10 at once).
fn limit_layer(algorithm: impl Into<Algorithm>) -> AdaptiveLimitLayer {
    AdaptiveLimitLayer::builder()
        .initial_limit(20)
        .min_limit(1)
        .max_limit(200)
        .algorithm(algorithm)
        .name("overload-demo")
        .build()
        .expect("a valid configuration")
}

/// Offers the phases' load to the backend, through `limit` if there is one.
fn run(limit: Option<AdaptiveLimitLayer>) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let service = match &limit {
            Some(layer) => BoxCloneService::new(layer.layer(backend())),
            None => backend(),
        };
        let start = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut limits = Vec::new();
        let mut rng = Rng(SEED);
        // Arrivals in 1 ms steps (the resolution of tokio's timer): a Poisson count per step.
        for step in 0..RUN_FOR.as_millis() as u64 {
            let now = Duration::from_millis(step);
            if now.as_millis() % BUCKET.as_millis() == 0 {
                limits.push((now, limit.as_ref().map_or(0, AdaptiveLimitLayer::limit)));
            }
            let phase = PHASES.iter().find(|p| now < p.until).unwrap_or(&PHASES[2]);
            for _ in 0..rng.poisson(phase.load * CAPACITY_PER_SEC / 1000.0) {
                let (service, calls) = (service.clone(), calls.clone());
                tasks.push(tokio::spawn(async move {
                    let result = service.oneshot(()).await;
                    let latency = match result {
                        Ok(()) => Some(start.elapsed() - now),
                        Err(error) if error.is::<LimitExceeded>() => None,
                        Err(error) => panic!("the backend failed: {error}"),
                    };
                    calls.lock().unwrap().push(Call { sent: now, latency });
                }));
            }
            sleep(Duration::from_millis(1)).await;
        }
        // Without a limit, the backlog takes long after the run to drain: wait for every answer,
        // so that each latency is the one its caller would see.
        for task in tasks {
            task.await.expect("a call's task");
        }
        let calls = std::mem::take(&mut *calls.lock().unwrap());
        Run {
            calls,
            limit: limits,
        }
    })
}

/// The `q`-quantile of `latencies` (sorted in place), zero if there are none.
fn quantile(latencies: &mut [Duration], q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[index]
}

/// The figures of one phase (or any window of sending times).
#[derive(Debug, Clone, Copy)]
struct Figures {
    offered: usize,
    shed: usize,
    answered: usize,
    /// Answered within [`USEFUL_WITHIN`], per second, as a fraction of the capacity.
    goodput: f64,
    p50: Duration,
    p99: Duration,
    /// The limit at the end of the window (0 without one).
    limit: usize,
}

impl Run {
    fn figures(&self, from: Duration, until: Duration) -> Figures {
        let window = |sent: Duration| sent >= from && sent < until;
        let calls: Vec<&Call> = self.calls.iter().filter(|c| window(c.sent)).collect();
        let mut latencies: Vec<Duration> = calls.iter().filter_map(|c| c.latency).collect();
        let useful = latencies.iter().filter(|&&l| l <= USEFUL_WITHIN).count();
        let seconds = (until - from).as_secs_f64();
        let limit = self
            .limit
            .iter()
            .rev()
            .find(|(at, _)| *at < until)
            .map_or(0, |&(_, limit)| limit);
        Figures {
            offered: calls.len(),
            shed: calls.iter().filter(|c| c.latency.is_none()).count(),
            answered: latencies.len(),
            goodput: useful as f64 / seconds / CAPACITY_PER_SEC,
            p50: quantile(&mut latencies, 0.50),
            p99: quantile(&mut latencies, 0.99),
            limit,
        }
    }

    fn phase(&self, index: usize) -> Figures {
        let from = if index == 0 {
            Duration::ZERO
        } else {
            PHASES[index - 1].until
        };
        self.figures(from, PHASES[index].until)
    }

    /// p99 latency of the calls sent in each bucket, in milliseconds.
    fn p99_series(&self) -> Vec<(f64, f64)> {
        (0..(RUN_FOR.as_millis() / BUCKET.as_millis()) as u32)
            .map(|i| {
                let from = BUCKET * i;
                let until = from + BUCKET;
                let mut latencies: Vec<Duration> = self
                    .calls
                    .iter()
                    .filter(|c| c.sent >= from && c.sent < until)
                    .filter_map(|c| c.latency)
                    .collect();
                let p99 = quantile(&mut latencies, 0.99);
                (from.as_secs_f64(), p99.as_secs_f64() * 1000.0)
            })
            .collect()
    }
}

fn print_table(name: &str, run: &Run) {
    println!("\n{name}");
    println!(
        "{:<16} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10} {:>6}",
        "phase", "offered", "shed", "answered", "goodput", "p50", "p99", "limit"
    );
    for (index, phase) in PHASES.iter().enumerate() {
        let f = run.phase(index);
        println!(
            "{:<16} {:>8} {:>8} {:>9} {:>8.0}% {:>8.1}ms {:>8.1}ms {:>6}",
            phase.name,
            f.offered,
            f.shed,
            f.answered,
            f.goodput * 100.0,
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0,
            if f.limit == 0 {
                "-".to_owned()
            } else {
                f.limit.to_string()
            },
        );
    }
}

fn draw(path: &str, bare: &Run, limited: &Run) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "steadfast overload demo: capacity 10 calls at once, 10x load from 2 to 6 s",
        ("sans-serif", 22),
    )?;
    let (top, bottom) = root.split_vertically(400);
    let x_end = RUN_FOR.as_secs_f64();
    let blue = RGBColor(0x1f, 0x77, 0xb4);
    let green = RGBColor(0x2c, 0xa0, 0x2c);

    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, (1.0..100_000.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("time sent (s)")
        .y_desc("p99 latency (ms, log)")
        .light_line_style(WHITE)
        .draw()?;
    for (name, run, color) in [("no limit", bare, blue), ("adaptive limit", limited, green)] {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                run.p99_series().into_iter().map(|(x, y)| (x, y.max(1.0))),
                style,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let max_limit = limited.limit.iter().map(|&(_, l)| l).max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, 0.0..max_limit)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("concurrency limit")
        .light_line_style(WHITE)
        .draw()?;
    let style = green.stroke_width(2);
    chart
        .draw_series(LineSeries::new(
            limited
                .limit
                .iter()
                .map(|&(at, limit)| (at.as_secs_f64(), limit as f64)),
            style,
        ))?
        .label("adaptive limit")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    let capacity = RGBColor(0x80, 0x80, 0x80);
    chart
        .draw_series(LineSeries::new(
            [(0.0, CAPACITY as f64), (x_end, CAPACITY as f64)],
            capacity.stroke_width(1),
        ))?
        .label("backend capacity (10)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], capacity));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let bare = run(None);
    let limited = run(Some(limit_layer(Gradient2::new())));
    print_table("no limit", &bare);
    print_table("adaptive limit: Gradient2 (the default)", &limited);
    print_table(
        "for comparison: Vegas",
        &run(Some(limit_layer(Vegas::new()))),
    );
    print_table(
        "for comparison: AIMD, a call slower than 25 ms counts as a drop",
        &run(Some(limit_layer(
            Aimd::new().timeout(Duration::from_millis(25)),
        ))),
    );
    let every_call = AdaptiveLimitLayer::builder()
        .initial_limit(20)
        .min_limit(1)
        .window(Duration::ZERO)
        .window_samples(1)
        .build()?;
    print_table(
        "for comparison: Gradient2 fed every call instead of 100 ms windows (the limit swings)",
        &run(Some(every_call)),
    );
    draw("overload.svg", &bare, &limited)?;
    println!("\nwrote overload.svg");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures the module docs claim, from one deterministic run of each.
    #[test]
    fn the_limit_keeps_latency_and_goodput_where_no_limit_loses_both() {
        let bare = run(None);
        let limited = run(Some(limit_layer(Gradient2::new())));
        let unloaded = limited.phase(0).p50;
        assert_eq!(unloaded, SERVICE_TIME, "no queue at 50 %");
        assert_eq!(bare.phase(0).p50, SERVICE_TIME);

        // No limit: every call waits behind a queue that grows as long as the overload lasts.
        let overload = bare.phase(1);
        assert!(overload.p50 > unloaded * 100, "{overload:?}");
        assert!(overload.goodput < 0.10, "{overload:?}");
        let p99 = bare.p99_series();
        let during: Vec<f64> = p99[20..60].iter().map(|&(_, ms)| ms).collect();
        assert!(
            during.windows(2).all(|w| w[1] >= w[0]),
            "latency grows with the queue: {during:?}"
        );
        assert_eq!(
            bare.phase(2).goodput,
            0.0,
            "still serving the backlog after it"
        );

        // The adaptive limit: the accepted calls stay within 3x the unloaded latency (the
        // median over the whole overload; the p99 once the limit had a second to adapt), and
        // the backend's answers stay useful.
        let shed = limited.phase(1);
        assert!(shed.p50 <= unloaded * 3, "{shed:?}");
        let settled = limited.figures(PHASES[0].until + Duration::from_secs(1), PHASES[1].until);
        assert!(settled.p99 <= unloaded * 3, "{settled:?}");
        assert!(shed.goodput >= 0.70, "{shed:?}");
        assert!(
            shed.shed > shed.answered,
            "most of a 10x load is shed: {shed:?}"
        );

        // The limit came down in the overload and rises again after it.
        let before = limited.phase(0).limit;
        let after = limited.phase(2);
        assert!(shed.limit < before, "{} !< {before}", shed.limit);
        assert!(
            after.limit > shed.limit + 10,
            "{} after, {} during",
            after.limit,
            shed.limit
        );
        assert!(
            after.goodput >= 0.85 && after.p50 <= unloaded * 2,
            "{after:?}"
        );
    }

    #[test]
    fn the_runs_are_deterministic() {
        let (a, b) = (
            run(Some(limit_layer(Gradient2::new()))),
            run(Some(limit_layer(Gradient2::new()))),
        );
        assert_eq!(a.limit, b.limit);
        assert_eq!(a.calls.len(), b.calls.len());
    }

    #[test]
    fn the_plot_is_written() {
        let path = std::env::temp_dir().join("steadfast-overload-test.svg");
        let path = path.to_str().expect("a UTF-8 temp dir");
        let limited = run(Some(limit_layer(Gradient2::new())));
        draw(path, &run(None), &limited).expect("drawn");
        let svg = std::fs::read_to_string(path).expect("written");
        assert!(svg.contains("adaptive limit") && svg.contains("<svg"));
    }
}
