//! Configuration from a file, reloaded while the server runs.
//!
//! Reads a TOML file (`examples/steadfast.toml` unless another path is given), serves an axum
//! app whose route runs under the stack the file describes, and calls a simulated `payments`
//! dependency through the named instances `[breakers.payments]` and `[retries.payments]`. Every
//! second it checks the file's modification time; when it changed, it reads the file again,
//! prints what changed, and applies it to the running layers with `reconfigure`, which keeps
//! their state (a breaker's window, the bulkhead's calls in flight, the retry budget). A file
//! that does not parse, or that a layer refuses, changes nothing: the error is printed and the
//! layers keep their settings.
//!
//! ```text
//! cargo run --example config_reload --features serde,http -- examples/steadfast.toml
//! curl http://127.0.0.1:3000/
//! # edit examples/steadfast.toml: the next second prints what changed
//! ```
//!
//! With features `rate-limit`, `limit` and `hedge` (`--features serde,http,rate-limit,limit,hedge`),
//! the file's `[rate_limit]`, `[adaptive_limit]` and `[hedge]` sections guard the route and the
//! `payments` calls too, and a reload applies them with the rest.
//!
//! `--once` serves on an ephemeral port, sends a few requests, reloads the file once, and exits:
//! a bounded run for smoke tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast::BoxError;
use steadfast::circuit_breaker::CircuitBreakerLayer;
use steadfast::config::{OptionalLayer, StackConfig, StackLayers};
use steadfast::http::RejectionsAsResponsesLayer;
use steadfast::retry::RetryLayer;
use tokio::net::TcpListener;
#[cfg(feature = "hedge")]
use tower::Layer;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// How often the file's modification time is checked.
const POLL: Duration = Duration::from_secs(1);

/// The layers the running program reconfigures.
#[derive(Clone)]
struct Running {
    /// The route's stack: the file's sections.
    stack: StackLayers,
    /// The `payments` dependency's breaker and retry: the named instances.
    payments_breaker: CircuitBreakerLayer,
    payments_retry: RetryLayer,
}

impl Running {
    fn build(config: &StackConfig) -> Result<Self, BoxError> {
        Ok(Self {
            stack: StackLayers::from_config(config)?,
            payments_breaker: CircuitBreakerLayer::from_config(&payments_breaker(config))?,
            payments_retry: RetryLayer::from_config(&payments_retry(config))?,
        })
    }

    /// Applies `config` to the running layers. Checked first as a whole, so that a refused
    /// file changes nothing: the stack checks its sections before applying any, and the named
    /// instances are checked by building them aside.
    fn reconfigure(&self, config: &StackConfig) -> Result<(), BoxError> {
        CircuitBreakerLayer::from_config(&payments_breaker(config))?;
        RetryLayer::from_config(&payments_retry(config))?;
        self.stack.reconfigure(config)?;
        self.payments_breaker
            .reconfigure(&payments_breaker(config))?;
        self.payments_retry.reconfigure(&payments_retry(config))?;
        Ok(())
    }
}

fn payments_breaker(config: &StackConfig) -> steadfast::circuit_breaker::Config {
    config.breaker("payments").unwrap_or_else(|| {
        let mut default = steadfast::circuit_breaker::Config::default();
        default.name = "payments".into();
        default
    })
}

fn payments_retry(config: &StackConfig) -> steadfast::retry::Config {
    config.retry("payments").unwrap_or_else(|| {
        let mut default = steadfast::retry::Config::default();
        default.name = "payments".into();
        default
    })
}

fn read(path: &Path) -> Result<StackConfig, BoxError> {
    let text = std::fs::read_to_string(path)?;
    Ok(toml::from_str(&text)?)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The settings that differ between two configs, one line each: `section.field: old -> new`.
fn changes(old: &StackConfig, new: &StackConfig) -> Vec<String> {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&path, value, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let settings = |config: &StackConfig| {
        let mut out = BTreeMap::new();
        if let Ok(value) = toml::Value::try_from(config) {
            flatten("", &value, &mut out);
        }
        out
    };
    let (old, new) = (settings(old), settings(new));
    // A section or a named instance that appears or goes is one line, not one per field.
    let table = |key: &str| -> String {
        let parts: Vec<&str> = key.split('.').collect();
        let depth = if matches!(parts[0], "breakers" | "retries" | "timeouts" | "bulkheads") {
            2
        } else {
            1
        };
        parts[..depth.min(parts.len())].join(".")
    };
    let has_table =
        |map: &BTreeMap<String, String>, name: &str| map.keys().any(|key| table(key) == name);
    let mut lines = Vec::new();
    for (key, value) in &new {
        match old.get(key) {
            Some(before) if before == value => {}
            Some(before) => lines.push(format!("{key}: {before} -> {value}")),
            None if !has_table(&old, &table(key)) => {
                let line = format!("{}: added", table(key));
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
            None => lines.push(format!("{key}: (default) -> {value}")),
        }
    }
    for (key, value) in &old {
        if !new.contains_key(key) {
            if has_table(&new, &table(key)) {
                lines.push(format!("{key}: {value} -> (default)"));
            } else {
                let line = format!("{}: removed", table(key));
                if !lines.contains(&line) {
                    lines.push(line);
                }
            }
        }
    }
    lines
}

/// The app: one route under the file's stack, calling `payments` through its named instances.
fn app(running: &Running) -> Router {
    // A simulated dependency that fails every fifth call.
    let calls = Arc::new(AtomicU64::new(0));
    let backend = service_fn(move |_: ()| {
        let n = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            if n % 5 == 4 {
                Err::<u64, BoxError>("payments: unavailable".into())
            } else {
                Ok(n)
            }
        }
    });
    // With feature `hedge`, the file's `[hedge]` (if any) hedges each attempt, inside retry.
    #[cfg(feature = "hedge")]
    let backend = OptionalLayer::new(running.stack.hedge.clone()).layer(backend);
    let payments: BoxCloneSyncService<(), u64, BoxError> = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(running.payments_retry.clone())
            .layer(running.payments_breaker.clone())
            .service(backend),
    );
    let handler = move || {
        let payments = payments.clone();
        async move {
            match payments.oneshot(()).await {
                Ok(n) => format!("payment {n} accepted\n"),
                Err(error) => format!("payment failed: {error}\n"),
            }
        }
    };
    // Retry stays on the client side (`payments` above): an axum request body is not `Clone`,
    // and a server does not retry its own handler. The rest of the stack guards the route.
    let stack = &running.stack;
    let router = Router::new().route("/", get(handler)).layer(
        ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(OptionalLayer::new(stack.overall_timeout.clone()))
            .layer(OptionalLayer::new(stack.circuit_breaker.clone()))
            .layer(OptionalLayer::new(stack.bulkhead.clone()))
            .layer(OptionalLayer::new(stack.attempt_timeout.clone())),
    );
    // With features `rate-limit` and `limit`, the file's `[rate_limit]` and `[adaptive_limit]`
    // (if any) shed load outermost, their rejections answered as 429 and 503. Each is its own
    // route layer, so the route's type does not grow with them.
    #[cfg(feature = "limit")]
    let router = router.layer(
        ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(OptionalLayer::new(stack.adaptive_limit.clone())),
    );
    #[cfg(feature = "rate-limit")]
    let router = router.layer(
        ServiceBuilder::new()
            .layer(RejectionsAsResponsesLayer::new())
            .layer(OptionalLayer::new(stack.rate_limit.clone())),
    );
    router
}

/// Reads `path` again and applies it; prints what changed, or why nothing did.
fn reload(path: &Path, running: &Running, current: &mut StackConfig) {
    match read(path) {
        Err(error) => println!(
            "reload: {} does not parse, nothing changed: {error}",
            path.display()
        ),
        Ok(new) => {
            let changed = changes(current, &new);
            match running.reconfigure(&new) {
                Err(error) => println!("reload: refused, nothing changed: {error}"),
                Ok(()) if changed.is_empty() => println!("reload: no setting changed"),
                Ok(()) => {
                    for line in changed {
                        println!("reload: {line}");
                    }
                    *current = new;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut once = false;
    let mut path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/steadfast.toml"
    ));
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => once = true,
            other => path = PathBuf::from(other),
        }
    }
    let mut current = read(&path)?;
    let running = Running::build(&current)?;
    println!("loaded {}", path.display());

    let listener = TcpListener::bind(if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    })
    .await?;
    let addr = listener.local_addr()?;
    let app = app(&running);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("server: {error}");
        }
    });
    println!("serving http://{addr}/");

    if once {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        for _ in 0..3 {
            let request = axum::http::Request::get(format!("http://{addr}/")).body(Empty::new())?;
            let response = client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            print!("GET / -> {status}: {}", String::from_utf8_lossy(&body));
        }
        reload(&path, &running, &mut current);
        return Ok(());
    }

    let mut seen = modified(&path);
    let mut poll = tokio::time::interval(POLL);
    loop {
        poll.tick().await;
        let now = modified(&path);
        if now != seen {
            seen = now;
            reload(&path, &running, &mut current);
        }
    }
}
