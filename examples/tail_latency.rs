//! The tail-latency demo: the same load sent to a backend with a slow tail, bare and hedged.
//!
//! The backend answers in 10 ms, except 5 % of its calls (drawn with a seeded generator), which
//! take 500 ms: a slow replica, a GC pause. Two clients send it 200 requests a second for 30 s:
//!
//! 1. **bare**: the backend alone;
//! 2. **hedged**: steadfast's `HedgeLayer` with the delay at the p95 of recent latency
//!    (`delay_percentile(0.95)`, 1 s windows, 100 calls before any hedge), one hedge per call,
//!    within the default budget.
//!
//! It prints each client's latency percentiles and the backend calls it cost, and writes
//! `tail_latency.svg` (latency against percentile, 90th to 100th). Everything runs on tokio's
//! paused clock, so the run takes a second and the figures are the same every time:
//!
//! ```text
//! cargo run --release --example tail_latency --features hedge
//! ```
//!
//! Its claims (client p99 at least 5× lower, backend calls at most 10 % more) are unit tests:
//! `cargo test --example tail_latency --features hedge`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plotters::prelude::*;
use steadfast::BoxError;
use steadfast::hedge::HedgeLayer;
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

const SEED: u64 = 0x7a11_1a7e;
const FAST: Duration = Duration::from_millis(10);
const SLOW: Duration = Duration::from_millis(500);
const SLOW_SHARE: f64 = 0.05;
const REQUESTS: u64 = 6_000;
const INTERVAL: Duration = Duration::from_millis(5);
const SVG: &str = "tail_latency.svg";

/// The figures of one client's run.
#[derive(Debug, Clone)]
struct Run {
    /// Every request's latency, sorted.
    latencies: Vec<Duration>,
    /// Calls the backend received.
    backend_calls: u64,
    /// Calls that took the slow path at the backend.
    slow_calls: u64,
}

impl Run {
    /// The latency at `percentile` (0 to 100), by nearest rank.
    fn percentile(&self, percentile: f64) -> Duration {
        let n = self.latencies.len();
        let rank = ((percentile / 100.0 * n as f64).ceil() as usize).clamp(1, n);
        self.latencies[rank - 1]
    }

    fn calls_per_request(&self) -> f64 {
        self.backend_calls as f64 / self.latencies.len() as f64
    }
}

/// SplitMix64, so the example needs no random crate: the n-th call's draw is fixed by the seed.
fn draw(seed: u64, n: u64) -> f64 {
    let mut z = seed.wrapping_add((n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The backend: 10 ms, or 500 ms for 5 % of its calls. Returns the call and slow-call counters.
fn backend() -> (
    impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send,
    Arc<AtomicU64>,
    Arc<AtomicU64>,
) {
    let calls = Arc::new(AtomicU64::new(0));
    let slow_calls = Arc::new(AtomicU64::new(0));
    let (counter, slow_counter) = (Arc::clone(&calls), Arc::clone(&slow_calls));
    let service = service_fn(move |request: u64| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let slow = draw(SEED, n) < SLOW_SHARE;
        if slow {
            slow_counter.fetch_add(1, Ordering::Relaxed);
        }
        async move {
            sleep(if slow { SLOW } else { FAST }).await;
            Ok::<_, BoxError>(request)
        }
    });
    (service, calls, slow_calls)
}

/// Sends `REQUESTS` requests, one every `INTERVAL`, each in its own task, through `client`.
async fn drive<S>(client: S) -> Vec<Duration>
where
    S: Service<u64, Response = u64, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut tasks = Vec::with_capacity(REQUESTS as usize);
    for request in 0..REQUESTS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            client.oneshot(request).await.map(|_| start.elapsed())
        }));
        sleep(INTERVAL).await;
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(Ok(latency)) = task.await {
            latencies.push(latency);
        }
    }
    latencies.sort_unstable();
    latencies
}

/// The hedge the demo uses: one hedge at the p95 of the last second's latency.
fn hedge() -> Result<HedgeLayer, BoxError> {
    Ok(HedgeLayer::builder()
        .name("tail-latency-demo")
        .delay_percentile(0.95)
        .min_samples(100)
        .latency_window(Duration::from_secs(1))
        .max_hedged_attempts(1)
        .build()?)
}

async fn run(hedged: bool) -> Result<Run, BoxError> {
    let (service, calls, slow_calls) = backend();
    let latencies = if hedged {
        drive(hedge()?.layer(service)).await
    } else {
        drive(service).await
    };
    Ok(Run {
        latencies,
        backend_calls: calls.load(Ordering::Relaxed),
        slow_calls: slow_calls.load(Ordering::Relaxed),
    })
}

/// Both runs, on a paused clock.
fn figures() -> Result<(Run, Run), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async { Ok((run(false).await?, run(true).await?)) })
}

const PERCENTILES: [f64; 5] = [50.0, 90.0, 95.0, 99.0, 99.9];

fn print_table(runs: &[(&str, &Run)]) {
    print!("{:<8}", "client");
    for p in PERCENTILES {
        print!("{:>10}", format!("p{p}"));
    }
    println!("{:>10}{:>15}{:>12}", "max", "backend calls", "per request");
    for (name, run) in runs {
        print!("{name:<8}");
        for p in PERCENTILES {
            print!("{:>10}", format!("{} ms", run.percentile(p).as_millis()));
        }
        let max = run.latencies.last().copied().unwrap_or_default();
        println!(
            "{:>10}{:>15}{:>12.3}",
            format!("{} ms", max.as_millis()),
            run.backend_calls,
            run.calls_per_request()
        );
    }
}

fn plot(runs: &[(&str, &Run)]) -> Result<(), BoxError> {
    const COLORS: [RGBColor; 2] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0x2c, 0xa0, 0x2c)];
    let root = SVGBackend::new(SVG, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "steadfast tail-latency demo: 10 ms, 5 % at 500 ms; hedge at p95",
        ("sans-serif", 20),
    )?;
    let mut chart = ChartBuilder::on(&root)
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(90.0..100.0, 0.0..550.0)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("client latency (ms)")
        .x_label_formatter(&|value| format!("{value:.0}"))
        .y_label_formatter(&|value| format!("{value:.0}"))
        .light_line_style(WHITE)
        .draw()?;
    for ((name, run), color) in runs.iter().zip(COLORS) {
        let style = color.stroke_width(2);
        let points = (900..=1000).map(|tenth| {
            let p = f64::from(tenth) / 10.0;
            (p, run.percentile(p).as_secs_f64() * 1000.0)
        });
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(format!(
                "{name}: {:.3} backend calls per request",
                run.calls_per_request()
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    println!(
        "backend: {} ms, {:.0} % of calls {} ms (seed {SEED:#x}); load: {} requests, one every {} ms\n",
        FAST.as_millis(),
        SLOW_SHARE * 100.0,
        SLOW.as_millis(),
        REQUESTS,
        INTERVAL.as_millis()
    );
    let (bare, hedged) = figures()?;
    let runs = [("bare", &bare), ("hedged", &hedged)];
    print_table(&runs);
    for (name, run) in runs {
        println!(
            "{name}: {} of {} backend calls were slow ({:.1} %)",
            run.slow_calls,
            run.backend_calls,
            run.slow_calls as f64 / run.backend_calls as f64 * 100.0
        );
    }
    println!(
        "\np99 {:.1}× lower with hedging; backend calls +{:.1} %",
        bare.percentile(99.0).as_secs_f64() / hedged.percentile(99.0).as_secs_f64(),
        (hedged.backend_calls as f64 / bare.backend_calls as f64 - 1.0) * 100.0
    );
    plot(&runs)?;
    println!("wrote {SVG}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    fn runs() -> &'static (Run, Run) {
        static RUNS: OnceLock<(Run, Run)> = OnceLock::new();
        RUNS.get_or_init(|| figures().expect("the demo runs"))
    }

    #[test]
    fn the_backend_is_as_described() {
        let (bare, _) = runs();
        assert_eq!(bare.latencies.len() as u64, REQUESTS);
        assert_eq!(bare.backend_calls, REQUESTS);
        let slow_share = bare.slow_calls as f64 / bare.backend_calls as f64;
        assert!((0.04..0.06).contains(&slow_share), "{slow_share}");
        assert_eq!(bare.percentile(50.0), FAST);
        assert_eq!(bare.percentile(99.0), SLOW);
    }

    #[test]
    fn hedging_cuts_p99_at_least_five_times() {
        let (bare, hedged) = runs();
        assert_eq!(
            hedged.latencies.len() as u64,
            REQUESTS,
            "every request answered"
        );
        let ratio = bare.percentile(99.0).as_secs_f64() / hedged.percentile(99.0).as_secs_f64();
        assert!(ratio >= 5.0, "p99 only {ratio:.1}× lower");
    }

    #[test]
    fn backend_calls_grow_at_most_ten_percent() {
        let (bare, hedged) = runs();
        let growth = hedged.backend_calls as f64 / bare.backend_calls as f64 - 1.0;
        assert!(growth > 0.0, "hedges were sent");
        assert!(growth <= 0.10, "backend calls +{:.1} %", growth * 100.0);
    }

    #[test]
    fn the_median_is_untouched() {
        let (bare, hedged) = runs();
        assert_eq!(hedged.percentile(50.0), bare.percentile(50.0));
    }
}
