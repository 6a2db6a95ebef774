//! Rate limits for what the public can do: per client address, per widget key, and per client
//! address for requests without a key this process knows (each one costs a database lookup).
//! GCRA from `governor`, in this process's memory: with several API processes behind a
//! balancer the effective limit is that many times higher.
//!
//! Order matters (see `http::auth`): a request refused for its address is refused before
//! its key is charged, so one address flooding a widget key cannot use up the key's
//! allowance for every other visitor of the site.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

/// Past this many tracked keys, those whose allowance is full again are forgotten: a flood
/// from many addresses cannot grow the table without bound.
const FORGET_ABOVE: usize = 10_000;

/// Requests per minute per key, with a burst of the same size; `None` when off.
pub struct RateLimiter<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` = 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            limiter: NonZeroU32::new(per_minute)
                .map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n).allow_burst(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request for `key`; `Err(wait)` says when the next one will be allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > FORGET_ABOVE {
            limiter.retain_recent();
        }
        limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The service's limits.
pub struct Limits {
    /// Widget requests per client address.
    pub per_address: RateLimiter<IpAddr>,
    /// Requests per widget key (by the key's id, not its account: each key has its own).
    pub per_key: RateLimiter<Uuid>,
    /// Requests per client address without a key this process has cached: no key, an unknown
    /// or revoked key, or a key's first use here.
    pub unknown_per_address: RateLimiter<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check(&"k").is_ok());
        }
        let wait = limiter.check(&"k").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.check(&"other").is_ok(), "keys are counted apart");
    }

    #[test]
    fn zero_is_off() {
        let limiter = RateLimiter::new(0);
        for _ in 0..1_000 {
            assert!(limiter.check(&1).is_ok());
        }
    }
}
