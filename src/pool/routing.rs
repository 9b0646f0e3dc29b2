//! Which endpoints a pool clone sends calls to: the tiers' shares of the traffic, panic
//! routing, and power-of-two-choices within a tier. Computed again only when the pool's
//! routing version moves (a membership or health change), so a call reads a ready table.

use crate::random::{SplitMix64, up_to};

/// Envoy's overprovisioning factor: a tier with 1/1.4 (71 %) of its endpoints eligible still
/// takes all the traffic it would take healthy.
pub(crate) const OVERPROVISIONING: f64 = 1.4;

/// One tier's share of the traffic.
#[derive(Debug, Clone, Copy)]
struct TierRoute {
    /// The end of its endpoints in `Routing::routes`.
    end: usize,
    /// A random `u64` below this (and at or above the previous tier's) picks this tier.
    below: u64,
}

/// A routing table: the indices (into the endpoint table) that take calls, tier by tier, with
/// each tier's share. The vectors keep their capacity, so a recomputation allocates only when
/// the pool grew.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    routes: Vec<u32>,
    tiers: Vec<TierRoute>,
    /// Routing over all endpoints because too few are eligible.
    pub(crate) panic: bool,
    /// Eligible endpoints, when the table was computed.
    pub(crate) eligible: usize,
}

/// What the routing computation needs to know of an endpoint.
pub(crate) trait Routable {
    fn tier(&self) -> u32;
    fn eligible(&self) -> bool;
    /// Calls in flight, as power of two choices weighs them.
    fn load(&self) -> u32;
    fn id(&self) -> u64;
}

impl Routing {
    /// Recomputes the table for `endpoints`, which are sorted by tier.
    pub(crate) fn compute<E: Routable>(&mut self, endpoints: &[E], panic_threshold: f64) {
        self.routes.clear();
        self.tiers.clear();
        let total = endpoints.len();
        let eligible = endpoints.iter().filter(|e| e.eligible()).count();
        self.eligible = eligible;
        self.panic = panic_threshold > 0.0 && (eligible as f64) < panic_threshold * total as f64;
        if self.panic {
            self.routes.extend((0..total).map(|i| i as u32));
            self.tiers.push(TierRoute {
                end: total,
                below: u64::MAX,
            });
            return;
        }
        // Each tier's health is min(1, 1.4 × eligible fraction); it takes that much of what the
        // tiers before it left, and what the last tier leaves is spread in proportion (Envoy's
        // normalisation), so the shares always add up to one.
        let mut left = 1.0_f64;
        let mut start = 0;
        while start < total {
            let tier = endpoints[start].tier();
            let end = start
                + endpoints[start..]
                    .iter()
                    .take_while(|e| e.tier() == tier)
                    .count();
            let before = self.routes.len();
            self.routes.extend(
                (start..end)
                    .filter(|&i| endpoints[i].eligible())
                    .map(|i| i as u32),
            );
            let here = self.routes.len() - before;
            if here > 0 {
                let health = (OVERPROVISIONING * here as f64 / (end - start) as f64).min(1.0);
                let share = health.min(left);
                left -= share;
                // Store the share for now; turned into thresholds below.
                self.tiers.push(TierRoute {
                    end: self.routes.len(),
                    below: share.to_bits(),
                });
            }
            start = end;
        }
        let sum = 1.0 - left;
        let mut cumulative = 0.0_f64;
        let count = self.tiers.len();
        for (i, tier) in self.tiers.iter_mut().enumerate() {
            cumulative += f64::from_bits(tier.below) / sum;
            tier.below = if i + 1 == count {
                u64::MAX
            } else {
                // 2^64 × cumulative, saturating.
                (cumulative * 18_446_744_073_709_551_616.0) as u64
            };
        }
    }

    /// The endpoints of the tier a random draw picks.
    #[inline]
    fn tier_routes(&self, z: u64) -> &[u32] {
        let mut start = 0;
        for tier in &self.tiers {
            if z < tier.below || tier.below == u64::MAX {
                return &self.routes[start..tier.end];
            }
            start = tier.end;
        }
        &self.routes[start..]
    }

    /// Power of two choices: two distinct endpoints drawn at random from a tier drawn by its
    /// share, the less loaded one wins, a tie is broken at random. `None` when nothing is
    /// routable. Endpoints whose id's bit (mod 64) is in `tried` are avoided while any other is
    /// routable; when every one was tried, the least loaded of them is picked.
    #[inline]
    pub(crate) fn pick<E: Routable>(
        &self,
        endpoints: &[E],
        rng: &mut SplitMix64,
        tried: u64,
    ) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        let tier = if self.tiers.len() == 1 {
            &self.routes[..]
        } else {
            self.tier_routes(rng.next_u64())
        };
        if tried != 0 {
            return Some(self.pick_untried(endpoints, tier, rng, tried));
        }
        Some(p2c_all(endpoints, tier, rng))
    }

    /// A retry's pick: P2C over the untried endpoints of the tier, else of any tier, else the
    /// least loaded of all routable ones.
    #[cold]
    fn pick_untried<E: Routable>(
        &self,
        endpoints: &[E],
        tier: &[u32],
        rng: &mut SplitMix64,
        tried: u64,
    ) -> usize {
        let untried = |i: u32| tried & (1 << (endpoints[i as usize].id() % 64)) == 0;
        if tier.iter().any(|&i| untried(i)) {
            return p2c(endpoints, tier, rng, untried);
        }
        if self.routes.iter().any(|&i| untried(i)) {
            return p2c(endpoints, &self.routes, rng, untried);
        }
        // Every routable endpoint was tried: the least loaded, ties at random (reservoir).
        let mut best = self.routes[0] as usize;
        let mut ties = 1u64;
        for &i in &self.routes[1..] {
            let (load, best_load) = (endpoints[i as usize].load(), endpoints[best].load());
            if load < best_load {
                best = i as usize;
                ties = 1;
            } else if load == best_load {
                ties += 1;
                if up_to(rng.next_u64(), ties - 1) == 0 {
                    best = i as usize;
                }
            }
        }
        best
    }
}

/// The two-choice draw: the less loaded of two distinct entries of `routes` (by position),
/// ties at random.
#[inline]
fn choose<E: Routable>(
    endpoints: &[E],
    n: u64,
    rng: &mut SplitMix64,
    nth: impl Fn(u64) -> usize,
) -> usize {
    if n <= 1 {
        return nth(0);
    }
    // One draw for both: the first choice from its high 32 bits, the second from its low 32
    // (moved up, as `up_to` reads the high bits), so a pool of up to 2^32 endpoints is drawn
    // from evenly enough.
    let z = rng.next_u64();
    let a = up_to(z & !0xFFFF_FFFF, n - 1);
    let mut b = up_to(z << 32, n - 2);
    if b >= a {
        b += 1;
    }
    let (a, b) = (nth(a), nth(b));
    let (la, lb) = (endpoints[a].load(), endpoints[b].load());
    // The second choice moves with bit 0 of `z` only when `(z << 32) × (n - 1)` carries at a
    // boundary, a chance of about n / 2^32: the tie-break bit is independent of both choices.
    if la < lb || (la == lb && z & 1 == 0) {
        a
    } else {
        b
    }
}

/// P2C over all of `routes` (not empty): the healthy path, two indexed reads.
#[inline]
fn p2c_all<E: Routable>(endpoints: &[E], routes: &[u32], rng: &mut SplitMix64) -> usize {
    choose(endpoints, routes.len() as u64, rng, |k| {
        routes[k as usize] as usize
    })
}

/// P2C over the entries of `routes` that pass `keep` (at least one does).
fn p2c<E: Routable>(
    endpoints: &[E],
    routes: &[u32],
    rng: &mut SplitMix64,
    keep: impl Fn(u32) -> bool,
) -> usize {
    let n = routes.iter().filter(|&&i| keep(i)).count() as u64;
    choose(endpoints, n, rng, |k| {
        routes
            .iter()
            .filter(|&&i| keep(i))
            .nth(k as usize)
            .map_or(routes[0] as usize, |&i| i as usize)
    })
}

#[cfg(all(test, not(steadfast_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy)]
    struct E {
        tier: u32,
        eligible: bool,
        load: u32,
        id: u64,
    }

    impl Routable for E {
        fn tier(&self) -> u32 {
            self.tier
        }
        fn eligible(&self) -> bool {
            self.eligible
        }
        fn load(&self) -> u32 {
            self.load
        }
        fn id(&self) -> u64 {
            self.id
        }
    }

    fn endpoints() -> impl Strategy<Value = Vec<E>> {
        proptest::collection::vec((0u32..3, any::<bool>(), 0u32..4), 0..12).prop_map(|mut v| {
            v.sort_by_key(|e| e.0);
            v.into_iter()
                .enumerate()
                .map(|(i, (tier, eligible, load))| E {
                    tier,
                    eligible,
                    load,
                    id: i as u64,
                })
                .collect()
        })
    }

    /// Each tier's share by the sequential rule: health = min(1, 1.4 × eligible fraction),
    /// taken from what is left, normalised.
    fn model_shares(endpoints: &[E]) -> Vec<(u32, f64)> {
        let mut tiers: Vec<u32> = endpoints.iter().map(|e| e.tier).collect();
        tiers.dedup();
        let mut left = 1.0;
        let mut shares = Vec::new();
        for tier in tiers {
            let all = endpoints.iter().filter(|e| e.tier == tier).count() as f64;
            let up = endpoints
                .iter()
                .filter(|e| e.tier == tier && e.eligible)
                .count() as f64;
            if up > 0.0 {
                let share = (OVERPROVISIONING * up / all).min(1.0).min(left);
                left -= share;
                shares.push((tier, share));
            }
        }
        let sum = 1.0 - left;
        shares.into_iter().map(|(t, s)| (t, s / sum)).collect()
    }

    proptest! {
        #[test]
        fn tier_shares_follow_the_model(endpoints in endpoints(), panic in prop_oneof![Just(0.0), 0.0f64..=1.0]) {
            let mut routing = Routing::default();
            routing.compute(&endpoints, panic);
            let eligible = endpoints.iter().filter(|e| e.eligible).count();
            let panicking = panic > 0.0 && (eligible as f64) < panic * endpoints.len() as f64;
            prop_assert_eq!(routing.panic, panicking);
            if panicking {
                prop_assert_eq!(routing.routes.len(), endpoints.len());
                return Ok(());
            }
            prop_assert_eq!(routing.routes.len(), eligible);
            prop_assert!(routing.routes.iter().all(|&i| endpoints[i as usize].eligible));
            let model = model_shares(&endpoints);
            prop_assert_eq!(routing.tiers.len(), model.len());
            let mut previous = 0u64;
            let mut start = 0;
            for (i, (tier, (model_tier, share))) in routing.tiers.iter().zip(&model).enumerate() {
                prop_assert!(routing.routes[start..tier.end].iter().all(|&j| endpoints[j as usize].tier == *model_tier));
                let width = if i + 1 == model.len() { u64::MAX - previous } else { tier.below - previous };
                let got = width as f64 / u64::MAX as f64;
                prop_assert!((got - share).abs() < 1e-9, "tier {} got {} want {}", model_tier, got, share);
                previous = tier.below;
                start = tier.end;
            }
        }

        #[test]
        fn a_pick_is_routable_and_avoids_what_was_tried(endpoints in endpoints(), seed in any::<u64>(), tried in any::<u64>()) {
            let mut routing = Routing::default();
            routing.compute(&endpoints, 0.0);
            let mut rng = SplitMix64::new(seed);
            let picked = routing.pick(&endpoints, &mut rng, tried);
            prop_assert_eq!(picked.is_none(), routing.routes.is_empty());
            let Some(i) = picked else { return Ok(()) };
            prop_assert!(endpoints[i].eligible);
            let untried = |e: &E| tried & (1 << (e.id % 64)) == 0;
            if tried != 0 && endpoints.iter().any(|e| e.eligible && untried(e)) {
                prop_assert!(untried(&endpoints[i]));
            }
            if tried != 0 && !endpoints.iter().any(|e| e.eligible && untried(e)) {
                let least = endpoints.iter().filter(|e| e.eligible).map(|e| e.load).min();
                prop_assert_eq!(Some(endpoints[i].load), least);
            }
            if tried == 0 {
                // P2C never picks the most loaded of a tier with two or more distinct loads...
                // unless the two drawn tie; it never picks a load above both drawn, which over
                // one pick means: not above every other routable endpoint of its tier.
                let tier = endpoints[i].tier;
                let others = endpoints.iter().enumerate().filter(|(j, e)| *j != i && e.eligible && e.tier == tier).count();
                let higher_than_all = endpoints.iter().enumerate()
                    .filter(|(j, e)| *j != i && e.eligible && e.tier == tier)
                    .all(|(_, e)| e.load < endpoints[i].load);
                prop_assert!(others == 0 || !higher_than_all);
            }
        }
    }
}
