//! What goes into a pool ([`Endpoint`]) and what it tells about each one ([`EndpointSnapshot`]).

use std::fmt;

/// One replica of the backend: a key that names it (an address, a host name) and the service
/// that calls it, in a tier (tier 0 first).
///
/// A `(key, service)` pair converts into an endpoint of tier 0.
///
/// ```
/// use steadfast::pool::Endpoint;
/// # let (local, remote) = ((), ());
/// let near = Endpoint::new("10.0.0.1:80", local);
/// let far = Endpoint::new("10.9.0.1:80", remote).tier(1); // only when tier 0 cannot cope
/// assert_eq!((near.get_tier(), far.get_tier()), (0, 1));
/// ```
#[derive(Clone)]
pub struct Endpoint<K, S> {
    pub(crate) key: K,
    pub(crate) service: S,
    pub(crate) tier: u32,
}

impl<K, S> Endpoint<K, S> {
    /// An endpoint of tier 0.
    pub fn new(key: K, service: S) -> Self {
        Self {
            key,
            service,
            tier: 0,
        }
    }

    /// Puts the endpoint in tier `tier` (a zone, a region). Traffic stays in the lowest tier
    /// that is healthy and spills into the next in proportion to the capacity it lost; see the
    /// [module docs](super#tiers).
    ///
    /// Defaults to 0.
    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// The endpoint's key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The endpoint's tier.
    pub fn get_tier(&self) -> u32 {
        self.tier
    }
}

impl<K, S> From<(K, S)> for Endpoint<K, S> {
    fn from((key, service): (K, S)) -> Self {
        Self::new(key, service)
    }
}

impl<K: fmt::Debug, S> fmt::Debug for Endpoint<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("key", &self.key)
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

/// Whether an endpoint takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointState {
    /// Takes calls.
    Healthy,
    /// Taken out by passive outlier ejection (failures in a row) until its ejection time ends.
    Ejected,
    /// Taken out by the active health check until enough probes pass.
    Unhealthy,
}

impl EndpointState {
    /// The label of the state in metrics and events: `healthy`, `ejected`, `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Ejected => "ejected",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for EndpointState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint as [`Pool::endpoints`](super::Pool::endpoints) saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot<K> {
    pub(crate) key: K,
    pub(crate) tier: u32,
    pub(crate) state: EndpointState,
    pub(crate) in_flight: usize,
    pub(crate) ejections: u32,
}

impl<K> EndpointSnapshot<K> {
    /// The endpoint's key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The endpoint's tier.
    pub fn tier(&self) -> u32 {
        self.tier
    }

    /// Whether it takes calls.
    pub fn state(&self) -> EndpointState {
        self.state
    }

    /// Its calls sent and not finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// How often it was ejected since it was inserted (saturating at 1023); the multiplier of
    /// its ejection time.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }
}
