//! The server side: GCRA over a batch of cells in one Lua script, and the tower service that
//! calls it (behind a steadfast circuit breaker and timeout, see `task.rs`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::redis::Script;
use ::redis::aio::ConnectionManager;
use tower_service::Service;

use crate::BoxError;

/// GCRA for a batch, on Redis's own clock (so replicas' clocks never need to agree).
///
/// `KEYS[1]`: the TAT (µs since the Unix epoch, as a decimal string; doubles hold µs exactly
/// up to 2^53). `KEYS[2]`: a sorted set of process ids scored by their last heartbeat.
/// `ARGV`: interval µs (may be fractional), capacity µs (burst × interval), cells wanted,
/// this process's id, heartbeat time-to-live µs.
///
/// Grants as many of the wanted cells as the limit allows now (maybe none), moves the TAT by
/// that many intervals, and lets the key expire once the TAT has passed (then it would be the
/// same as a missing key). Returns `{granted, µs until the next cell, processes seen}`.
const LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + capacity - tat) / interval)
if room < 0 then room = 0 end
local granted = math.min(want, room)
if granted > 0 then
  tat = tat + granted * interval
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
local wait = tat + interval - capacity - now
if wait < 0 then wait = 0 end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], math.ceil(ttl / 1000))
local seen = redis.call('ZCARD', KEYS[2])
return {granted, math.ceil(wait), seen}
";

/// One request for cells: for the limit's own key, or for one key of a keyed limit.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    pub(crate) cells: u64,
    pub(crate) key: Option<std::sync::Arc<str>>,
}

/// Redis's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) cells: u64,
    /// ns until Redis would have a cell again.
    pub(crate) wait_ns: u64,
    pub(crate) processes: u32,
}

/// The arguments every call of one limiter passes.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) tat: String,
    pub(crate) members: String,
    pub(crate) member: String,
    pub(crate) interval_us: f64,
    pub(crate) capacity_us: f64,
    pub(crate) member_ttl_us: u64,
}

/// The tower service over the script: the breaker and the timeout wrap it.
#[derive(Clone)]
pub(crate) struct CallRedis {
    pub(crate) connection: ConnectionManager,
    pub(crate) script: Script,
    pub(crate) keys: std::sync::Arc<Keys>,
}

impl std::fmt::Debug for CallRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRedis")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl CallRedis {
    pub(crate) fn new(connection: ConnectionManager, keys: Keys) -> Self {
        Self {
            connection,
            script: Script::new(LUA),
            keys: std::sync::Arc::new(keys),
        }
    }
}

impl Service<Ask> for CallRedis {
    type Response = Grant;
    type Error = BoxError;
    // Boxed: this runs in the refill task, once per batch, never on the call path.
    type Future = Pin<Box<dyn Future<Output = Result<Grant, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ask: Ask) -> Self::Future {
        let mut connection = self.connection.clone();
        let script = self.script.clone();
        let keys = std::sync::Arc::clone(&self.keys);
        Box::pin(async move {
            // EVALSHA first; the crate loads the script and retries on NOSCRIPT (a restarted
            // Redis forgets it).
            let tat = ask.key.as_deref().unwrap_or(&keys.tat);
            let (cells, wait_us, processes): (u64, u64, u64) = script
                .key(tat)
                .key(&keys.members)
                .arg(keys.interval_us)
                .arg(keys.capacity_us)
                .arg(ask.cells)
                .arg(&keys.member)
                .arg(keys.member_ttl_us)
                .invoke_async(&mut connection)
                .await?;
            Ok(Grant {
                cells,
                wait_ns: wait_us.saturating_mul(1_000),
                processes: u32::try_from(processes).unwrap_or(u32::MAX),
            })
        })
    }
}
