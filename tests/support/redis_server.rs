//! A throwaway `redis-server` for tests: a free loopback port, no persistence, killed on drop.
//!
//! Where `redis-server` is not on PATH, it installs Debian's package when running as root, and
//! otherwise fails with the one command that would: never a silent skip.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`; dropping it kills the process.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
}

fn on_path() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn ensure_installed() {
    if on_path() {
        return;
    }
    const INSTALL: &str = "apt-get install -y redis-server";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    assert!(
        root,
        "the `redis` tests need redis-server on PATH; install it with: sudo {INSTALL}"
    );
    let installed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive {INSTALL}"
        ))
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        installed && on_path(),
        "installing redis-server failed; run: {INSTALL}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl RedisServer {
    /// Starts a server on a free port and waits (at most 5 s) until it answers.
    pub(crate) fn start() -> Self {
        ensure_installed();
        let mut server = Self {
            child: None,
            port: free_port(),
        };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid url")
    }

    /// Kills the server (as a crash would: no shutdown, no save).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty; waits until it answers.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--enable-debug-command", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let answered = self.client().get_connection().is_ok_and(|mut connection| {
                redis::cmd("PING").query::<String>(&mut connection).is_ok()
            });
            if answered {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "redis-server did not answer on port {} within 5 s",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
