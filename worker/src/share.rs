//! Each account's share of a worker's concurrency (`WORKER_ACCOUNT_SHARE`).
//!
//! The fair pickup (`domain::infra::queue::ROUND_JOBS`) decides the order jobs are taken in,
//! but a job holds its slot for as long as it runs: without a cap, one account's slow jobs (a
//! webhook receiver that hangs until the timeout, a ticket routed to 2,000 recipients) would
//! fill every slot of a worker and hold the other accounts' tickets back however fair the
//! order. So one account runs at most a share of a worker's slots at once.
//!
//! A job taken while its account holds its whole share waits in its slot a little
//! ([`WAIT`]): fast jobs free a place within milliseconds. When none frees in that time (or
//! none has for that long already), the job is put back in the queue, due a little later
//! ([`POSTPONE`]) in the account's next round, and its slot goes to the next job the fair pickup
//! hands out: another account's, when one has work. The cap holds with no other account
//! waiting too: a single busy account runs at most its share of each worker (what that costs
//! the drain is in `bench/README.md`). The cap lives in each worker process (the
//! queue's fetch does not know accounts), so with several workers an account holds at most
//! its share of each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

/// How long a job waits in its slot for a place in its account's share before it is put back.
/// Bounds what a quiet account's job waits for a slot held by a capped account's waiting job.
pub const WAIT: Duration = Duration::from_millis(200);

/// How long a job put back for its account's share waits in the queue: long enough that a
/// worker with only that account's work does not spin taking and putting back the same jobs.
pub const POSTPONE: Duration = Duration::from_secs(1);

/// The places each account holds in one worker. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Shares(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// The most jobs of one account running at once.
    cap: usize,
    /// Places held per account; an account holding none has no entry, so the map is as large
    /// as the accounts running jobs right now, at most the worker's concurrency.
    held: Mutex<HashMap<Uuid, Held>>,
    /// Woken whenever a place is given back.
    freed: Notify,
}

/// An account's places in one worker.
#[derive(Debug)]
struct Held {
    places: usize,
    /// When the account last took its share's last place or gave one back while holding all
    /// of it: a job of an account whose jobs have all run for longer than [`WAIT`] is put
    /// back at once, since waiting would most likely only hold a slot another account could use.
    moved: tokio::time::Instant,
}

/// A place in an account's share, given back when dropped.
#[derive(Debug)]
pub struct Place {
    shares: Shares,
    account: Uuid,
}

impl Shares {
    /// `percent` of `concurrency` per account, at least one job.
    pub fn new(concurrency: usize, percent: u8) -> Self {
        let cap = (concurrency * usize::from(percent) / 100).max(1);
        Shares(Arc::new(Inner {
            cap,
            held: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }))
    }

    /// The most jobs of one account this worker runs at once.
    pub fn cap(&self) -> usize {
        self.0.cap
    }

    /// Takes a place in `account`'s share, waiting at most `wait` for one to be given back;
    /// `None` when the account still holds its whole share then.
    pub async fn take(&self, account: Uuid, wait: Duration) -> Option<Place> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before looking, so a place given back in between is not missed.
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.try_take(account, wait) {
                Taken::Place(place) => return Some(place),
                Taken::Stuck => return None,
                Taken::Full => {}
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }

    fn try_take(&self, account: Uuid, wait: Duration) -> Taken {
        let mut held = self.0.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        let entry = held.entry(account).or_insert(Held {
            places: 0,
            moved: now,
        });
        if entry.places >= self.0.cap {
            return if now.duration_since(entry.moved) >= wait {
                Taken::Stuck
            } else {
                Taken::Full
            };
        }
        entry.places += 1;
        if entry.places == self.0.cap {
            entry.moved = now;
        }
        Taken::Place(Place {
            shares: self.clone(),
            account,
        })
    }
}

/// What [`Shares::try_take`] found.
enum Taken {
    Place(Place),
    /// The account holds its whole share; a place may come back soon.
    Full,
    /// The account holds its whole share and has given none back for a while.
    Stuck,
}

impl Drop for Place {
    fn drop(&mut self) {
        let inner = &self.shares.0;
        {
            let mut held = inner.held.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = held.get_mut(&self.account) {
                if entry.places >= inner.cap {
                    entry.moved = tokio::time::Instant::now();
                }
                entry.places -= 1;
                if entry.places == 0 {
                    held.remove(&self.account);
                }
            }
        }
        inner.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_holds_at_most_its_share_and_waits_for_a_place() {
        let shares = Shares::new(8, 50);
        assert_eq!(shares.cap(), 4);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(shares.take(a, Duration::ZERO).await.expect("a place"));
        }
        assert!(shares.take(a, Duration::from_millis(20)).await.is_none());
        // An account none of whose jobs ended for longer than the wait is refused at once.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let refused = tokio::time::Instant::now();
        assert!(shares.take(a, Duration::from_millis(20)).await.is_none());
        assert!(refused.elapsed() < Duration::from_millis(20));
        // Another account is not held back.
        let other = shares.take(b, Duration::ZERO).await;
        assert!(other.is_some());
        // A place given back goes to a job waiting for it.
        held.pop();
        held.push(
            shares
                .take(a, Duration::ZERO)
                .await
                .expect("the place given back"),
        );
        let waiting = tokio::spawn({
            let shares = shares.clone();
            async move { shares.take(a, Duration::from_secs(10)).await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        held.pop();
        assert!(waiting.await.unwrap());
        drop(held);
        drop(other);
        assert!(
            shares.0.held.lock().unwrap().is_empty(),
            "no account is left behind"
        );
    }

    #[test]
    fn a_share_is_at_least_one_job() {
        assert_eq!(Shares::new(1, 50).cap(), 1);
        assert_eq!(Shares::new(8, 100).cap(), 8);
        assert_eq!(Shares::new(3, 1).cap(), 1);
    }
}
