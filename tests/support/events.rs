//! Captures what `tracing` emits on this thread, for tests that check events.
//!
//! Included by the test crates that need it with `#[path = "support/events.rs"] mod events;`.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::Dispatch;
use tracing::subscriber::{DefaultGuard, NoSubscriber};

/// Events captured from [`capture`] on until this is dropped.
pub(crate) struct Events {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
    _second: Dispatch,
}

/// Installs a `DEBUG` subscriber for this thread that writes plain text (no time, no colour)
/// into a buffer.
pub(crate) fn capture() -> Events {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Writer(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    // While a single dispatcher exists, tracing caches the interest of a callsite from the first
    // thread that hits it: another test, with no subscriber, would make it "never" for everyone.
    // A second live dispatcher makes tracing ask each dispatcher on every event.
    let second = Dispatch::new(NoSubscriber::default());
    Events {
        buffer,
        _guard: tracing::subscriber::set_default(subscriber),
        _second: second,
    }
}

impl Events {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
