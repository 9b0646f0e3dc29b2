//! Active health checks: a task that probes every endpoint every interval and marks it
//! unhealthy, or brings it back, after enough probes in a row agree. The thresholds are read
//! from the pool's live settings at each verdict, so a reload applies to the streaks counted
//! so far (which it keeps).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval_at, timeout};

use super::{Pool, Roster};
use crate::random::up_to;

/// Probes in a row that agreed, for one endpoint.
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    failed: u32,
    passed: u32,
}

/// Spawns the probe task of `pool` on `runtime`. The task holds the pool only weakly, and the
/// pool aborts it when its last clone is dropped.
pub(crate) fn spawn<K, S, C, P, F>(
    runtime: &Handle,
    pool: &Pool<K, S, C>,
    interval: Duration,
    probe: P,
) where
    K: Clone + fmt::Debug + Send + Sync + 'static,
    S: Send + Sync + 'static,
    P: Fn(K) -> F + Send + Sync + 'static,
    F: Future<Output = bool> + Send + 'static,
{
    let weak = Arc::downgrade(&pool.shared);
    // The first probe at a random point of the first interval, so that pools built at once do
    // not probe in step; then one every `interval`.
    let nanos = crate::clock::nanos(interval);
    let phase = pool.shared.seeds.other(Arc::as_ptr(&pool.shared) as usize);
    let first = Duration::from_nanos(up_to(phase, nanos - 1) + 1);
    // Timed from the build, not from the task's first poll.
    let start = Instant::now() + first;
    let task = run(weak, interval, start, probe);
    let handle = runtime.spawn(task);
    pool.shared.set_health_task(handle.abort_handle());
}

async fn run<K, S, P, F>(pool: Weak<Roster<K, S>>, interval: Duration, start: Instant, probe: P)
where
    K: Clone + fmt::Debug + Send + Sync + 'static,
    S: Send + Sync + 'static,
    P: Fn(K) -> F,
    F: Future<Output = bool> + Send + 'static,
{
    let mut ticks = interval_at(start, interval);
    // A round that overran is followed by the next at once, then the schedule moves on.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streaks: HashMap<u64, Streak> = HashMap::new();
    loop {
        ticks.tick().await;
        let Some(shared) = pool.upgrade() else { return };
        let members = shared.members();
        drop(shared);

        let mut probes = JoinSet::new();
        for (index, member) in members.iter().enumerate() {
            let check = probe(member.key.clone());
            // A probe that outlasts the interval has failed: the next round is due.
            probes.spawn(async move { (index, timeout(interval, check).await.unwrap_or(false)) });
        }
        while let Some(joined) = probes.join_next().await {
            // A probe that panicked is not counted either way.
            let Ok((index, passed)) = joined else {
                continue;
            };
            let member = &members[index];
            // Read at each verdict, so that a reload applies to the streaks as they are.
            let live = &member.core.live;
            let streak = streaks.entry(member.id).or_default();
            if passed {
                streak.failed = 0;
                streak.passed = streak.passed.saturating_add(1);
                if streak.passed >= live.healthy_threshold() {
                    member.set_unhealthy(false);
                }
            } else {
                streak.passed = 0;
                streak.failed = streak.failed.saturating_add(1);
                if streak.failed >= live.unhealthy_threshold() {
                    member.set_unhealthy(true);
                }
            }
            tracing::trace!(
                pool.name = %member.core.name,
                pool.endpoint = ?member.key,
                pool.probe_passed = passed,
                "pool health probe"
            );
        }
        // Forget the endpoints that left the pool.
        streaks.retain(|id, _| members.iter().any(|m| m.id == *id));
    }
}
