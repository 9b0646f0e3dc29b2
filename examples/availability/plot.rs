//! `availability.svg`: useful answers and backend load over time, the outage and the breaker's
//! open and half-open periods shaded; and the calls the pool sent to each replica.

use std::time::Duration;

use plotters::prelude::*;
use steadfast::BoxError;
use steadfast::circuit_breaker::{State, Transition};

use crate::client::is_open;
use crate::report::{Point, ReplicaRow};
use crate::scenario::{OUTAGE_END, OUTAGE_START, RUN_FOR};

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4), // bare: blue
    RGBColor(0xff, 0x7f, 0x0e), // naive retry: orange
    RGBColor(0x2c, 0xa0, 0x2c), // steadfast: green
    RGBColor(0x94, 0x67, 0xbd), // pool: purple
];
/// The replicas' lines in the third panel: down, erring, healthy.
const REPLICA_COLORS: [RGBColor; 3] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// The clients whose answers include fallbacks: their backend's answers get a dashed line.
const WITH_FALLBACK: [&str; 2] = ["steadfast", "pool"];
const OPEN: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const HALF_OPEN: RGBColor = RGBColor(0xf0, 0xb0, 0x00);

/// The periods the breaker spent in `wanted` states, in seconds from the start of the run,
/// from the states it entered (`changes`, in order; it starts closed).
pub(crate) fn periods(
    changes: &[(Duration, State)],
    wanted: impl Fn(State) -> bool,
) -> Vec<(f64, f64)> {
    let mut periods = Vec::new();
    let mut since = Duration::ZERO;
    let mut state = State::Closed;
    for &(at, entered) in changes {
        if wanted(state) {
            periods.push((since.as_secs_f64(), at.as_secs_f64()));
        }
        since = at;
        state = entered;
    }
    if wanted(state) && since < RUN_FOR {
        periods.push((since.as_secs_f64(), RUN_FOR.as_secs_f64()));
    }
    periods
}

/// Draws the plot into `path`. `clients` are the names and time series, in the order of
/// [`COLORS`]; the steadfast client has the breaker whose `transitions` are shaded. `replicas`
/// are the calls per second the pool sent to each replica, and `down` the figures of the one
/// that went down.
pub(crate) fn draw(
    path: &str,
    clients: &[(&str, Vec<Point>)],
    transitions: &[(Duration, Transition)],
    replicas: &[(&str, Vec<(f64, f64)>)],
    down: &ReplicaRow,
) -> Result<(), BoxError> {
    let root = SVGBackend::new(path, (1200, 1280)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "steadfast availability demo: 20 % errors, latency spikes, outage 5-10 s; and a pool of three replicas",
        ("sans-serif", 22),
    )?;
    let (top, rest) = root.split_vertically(420);
    let (bottom, replica_area) = rest.split_vertically(420);

    let x_end = RUN_FOR.as_secs_f64();
    let changes: Vec<(Duration, State)> = transitions
        .iter()
        .map(|(at, transition)| (*at, transition.to()))
        .collect();
    let open = periods(&changes, is_open);
    let half_open = periods(&changes, |state| state == State::HalfOpen);
    let max_load = clients
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.load))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;

    for (area, y_end, y_desc, legend) in [
        (
            &top,
            105.0,
            "useful answers, % of requests sent",
            SeriesLabelPosition::LowerRight,
        ),
        (
            &bottom,
            max_load,
            "backend calls / s",
            SeriesLabelPosition::UpperRight,
        ),
    ] {
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_end, 0.0..y_end)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(y_desc)
            .y_label_formatter(&|value| format!("{value:.0}"))
            .x_label_formatter(&|value| format!("{value:.0}"))
            .light_line_style(WHITE)
            .draw()?;

        let band = |from: f64, to: f64, color: RGBColor, alpha: f64| {
            Rectangle::new([(from, 0.0), (to, y_end)], color.mix(alpha).filled())
        };
        chart
            .draw_series(std::iter::once(band(
                OUTAGE_START.as_secs_f64(),
                OUTAGE_END.as_secs_f64(),
                BLACK,
                0.08,
            )))?
            .label("backend outage")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLACK.mix(0.15).filled())
            });
        chart
            .draw_series(open.iter().map(|&(from, to)| band(from, to, OPEN, 0.15)))?
            .label("steadfast breaker open")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], OPEN.mix(0.3).filled()));
        // Half-open periods last a few milliseconds, less than a pixel: mark each with a line.
        chart
            .draw_series(half_open.iter().map(|&(from, to)| {
                let at = (from + to) / 2.0;
                PathElement::new(vec![(at, 0.0), (at, y_end)], HALF_OPEN.stroke_width(3))
            }))?
            .label("steadfast breaker half-open (probing)")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], HALF_OPEN.stroke_width(3))
            });

        for ((name, points), color) in clients.iter().zip(COLORS) {
            let style = color.stroke_width(2);
            let values: Vec<(f64, f64)> = if std::ptr::eq(area, &top) {
                points.iter().map(|p| (p.at, p.useful)).collect()
            } else {
                points.iter().map(|p| (p.at, p.load)).collect()
            };
            chart
                .draw_series(LineSeries::new(values, style))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        if std::ptr::eq(area, &top) {
            // The answers that came from the backend, fallbacks left out.
            for ((name, points), color) in clients.iter().zip(COLORS) {
                if !WITH_FALLBACK.contains(name) {
                    continue;
                }
                chart
                    .draw_series(DashedLineSeries::new(
                        points.iter().map(|p| (p.at, p.success)),
                        6,
                        4,
                        color.stroke_width(1),
                    ))?
                    .label(format!("{name}, answered by the backend (fresh)"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
        }

        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    draw_replicas(&replica_area, replicas, down)?;
    root.present()?;
    Ok(())
}

/// The third panel: calls per second the pool sent to each replica, the outage shaded, and the
/// figures of the replica that went down.
fn draw_replicas<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    replicas: &[(&str, Vec<(f64, f64)>)],
    down: &ReplicaRow,
) -> Result<(), BoxError>
where
    DB::ErrorType: 'static,
{
    let y_end = replicas
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.25;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .caption(
            format!(
                "pool: calls sent to each replica; {} during {}'s outage, back {} after it healed",
                down.sent_in_outage.unwrap_or(0),
                down.faults.name,
                down.back_after.map_or_else(
                    || "never".to_owned(),
                    |d| format!("{:.2} s", d.as_secs_f64())
                ),
            ),
            ("sans-serif", 18),
        )
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..RUN_FOR.as_secs_f64(), 0.0..y_end)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("pool calls / s, per replica")
        .y_label_formatter(&|value| format!("{value:.0}"))
        .x_label_formatter(&|value| format!("{value:.0}"))
        .light_line_style(WHITE)
        .draw()?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [
                (OUTAGE_START.as_secs_f64(), 0.0),
                (OUTAGE_END.as_secs_f64(), y_end),
            ],
            BLACK.mix(0.08).filled(),
        )))?
        .label(format!("{} down", down.faults.name))
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLACK.mix(0.15).filled()));
    for ((name, points), color) in replicas.iter().zip(REPLICA_COLORS) {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}
