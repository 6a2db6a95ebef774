//! Group commit: the same write of many concurrent jobs made as one statement.
//!
//! apalis runs every job as a task of its own, and each routing job writes the same few
//! statements (read the ticket and its rules, insert its deliveries, record the accepted mails,
//! notify). Made one by one, those statements, each its own commit, are what limits the drain:
//! PostgreSQL's CPU and WAL flushes, not SMTP. A [`Batcher`] lets jobs hand their item in and
//! wait; whoever finds no batch running starts one, which takes every item waiting (up to a
//! maximum) and runs them together, and again while items keep arriving. Nothing waits for a
//! batch to fill: an idle worker's single job runs at once, and items gather only while a
//! batch is already in the database, which is when sharing the next one pays.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;

use tokio::sync::oneshot;

/// One kind of work that can be done for many items at once.
pub trait Work: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    /// Does the work for `items`: one output per item, in their order. The items are lent,
    /// so that a batch that panics can be run again item by item.
    fn run(&self, items: &[Self::Item]) -> impl Future<Output = Vec<Self::Output>> + Send;
}

/// Items of one kind of work, gathered into batches; cheap to clone.
pub struct Batcher<W: Work> {
    inner: Arc<Inner<W>>,
}

impl<W: Work> Clone for Batcher<W> {
    fn clone(&self) -> Self {
        Batcher {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<W: Work> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max", &self.inner.max)
            .finish_non_exhaustive()
    }
}

struct Inner<W: Work> {
    /// The `kind` label of its metric.
    kind: &'static str,
    work: W,
    max: usize,
    waiting: Mutex<Waiting<W>>,
}

type Reply<W> = oneshot::Sender<<W as Work>::Output>;

struct Waiting<W: Work> {
    items: Vec<(W::Item, Reply<W>)>,
    /// A task is taking batches; it ends when it finds none waiting.
    running: bool,
}

impl<W: Work> Inner<W> {
    fn waiting(&self) -> MutexGuard<'_, Waiting<W>> {
        // Nothing panics while holding the lock; a poisoned lock still holds a usable list.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<W: Work> Batcher<W> {
    /// At most `max` items per batch; `kind` names it in the metric
    /// `ticketing_shared_write_jobs` (items per batch).
    pub fn new(kind: &'static str, work: W, max: usize) -> Self {
        Batcher {
            inner: Arc::new(Inner {
                kind,
                work,
                max: max.max(1),
                waiting: Mutex::new(Waiting {
                    items: Vec::new(),
                    running: false,
                }),
            }),
        }
    }

    /// Does the work for `item` in the next batch and returns its output. Panics when the
    /// work panics on this item (run alone, after its batch panicked), as the job would have
    /// had it done the work itself (the worker's catch-panic layer fails the job).
    pub async fn run(&self, item: W::Item) -> W::Output {
        let (reply, output) = oneshot::channel();
        let start = {
            let mut waiting = self.inner.waiting();
            waiting.items.push((item, reply));
            !std::mem::replace(&mut waiting.running, true)
        };
        if start {
            tokio::spawn(take_batches(Arc::clone(&self.inner)));
        }
        match output.await {
            Ok(output) => output,
            Err(_) => panic!("this job's shared write panicked"),
        }
    }
}

/// Runs batches until none is waiting.
async fn take_batches<W: Work>(inner: Arc<Inner<W>>) {
    // The work's panics are caught below; should anything else here panic, the items still
    // waiting are dropped (their jobs fail) rather than left to wait for ever.
    let _reset = Reset(Arc::clone(&inner));
    loop {
        let batch: Vec<(W::Item, Reply<W>)> = {
            let mut waiting = inner.waiting();
            if waiting.items.is_empty() {
                waiting.running = false;
                return;
            }
            let n = waiting.items.len().min(inner.max);
            waiting.items.drain(..n).collect()
        };
        let (items, replies): (Vec<W::Item>, Vec<Reply<W>>) = batch.into_iter().unzip();
        metrics::histogram!("ticketing_shared_write_jobs", "kind" => inner.kind)
            .record(items.len() as f64);
        match run_caught(&inner.work, &items).await {
            Some(outputs) => answer::<W>(replies, outputs),
            // One item's panic must not fail the others, as it would not have alone: each is
            // run again by itself, and only the one that panics again is answered by a panic
            // (its reply dropped).
            None => {
                for (item, reply) in items.iter().zip(replies) {
                    if let Some(outputs) = run_caught(&inner.work, std::slice::from_ref(item)).await
                    {
                        answer::<W>(vec![reply], outputs);
                    }
                }
            }
        }
    }
}

/// Runs one batch; `None` when it panicked.
async fn run_caught<W: Work>(work: &W, items: &[W::Item]) -> Option<Vec<W::Output>> {
    AssertUnwindSafe(work.run(items)).catch_unwind().await.ok()
}

struct Reset<W: Work>(Arc<Inner<W>>);

impl<W: Work> Drop for Reset<W> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut waiting = self.0.waiting();
            waiting.items.clear();
            waiting.running = false;
        }
    }
}

fn answer<W: Work>(replies: Vec<Reply<W>>, outputs: Vec<W::Output>) {
    for (reply, output) in replies.into_iter().zip(outputs) {
        // A job cancelled meanwhile (the worker stopping) no longer waits.
        let _ = reply.send(output);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The item that makes a batch panic.
    const UNLUCKY: u32 = 999;

    /// Doubles numbers, a batch at a time, slowly, counting its batches and the largest.
    struct Double {
        batches: Arc<AtomicUsize>,
        largest: Arc<AtomicUsize>,
    }

    impl Work for Double {
        type Item = u32;
        type Output = u32;
        async fn run(&self, items: &[u32]) -> Vec<u32> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(items.len(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if items.contains(&UNLUCKY) {
                panic!("unlucky");
            }
            items.iter().map(|i| i * 2).collect()
        }
    }

    /// A batcher of [`Double`] with at most `max` items a batch, and its batch count and
    /// largest batch.
    fn doubler(max: usize) -> (Batcher<Double>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (batches, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work = Double {
            batches: Arc::clone(&batches),
            largest: Arc::clone(&largest),
        };
        (Batcher::new("double", work, max), batches, largest)
    }

    /// Runs `item` through the batcher in a task of its own, as a job would.
    fn spawn_run(batcher: &Batcher<Double>, item: u32) -> tokio::task::JoinHandle<u32> {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.run(item).await })
    }

    #[tokio::test]
    async fn items_arriving_while_a_batch_runs_share_the_next_one() {
        let (batcher, batches, _) = doubler(100);
        let first = spawn_run(&batcher, 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let rest: Vec<_> = (2..=50).map(|i| spawn_run(&batcher, i)).collect();
        assert_eq!(first.await.unwrap(), 2);
        for (i, task) in (2..=50).zip(rest) {
            assert_eq!(task.await.unwrap(), i * 2, "each gets its own output");
        }
        assert_eq!(
            batches.load(Ordering::SeqCst),
            2,
            "one alone, then the 49 together"
        );
        // Idle again: the next item runs at once, alone.
        assert_eq!(batcher.run(7).await, 14);
        assert_eq!(batches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_item_that_panics_fails_alone_and_leaves_the_batcher_working() {
        let (batcher, _, _) = doubler(100);
        // The unlucky item and two others arrive while a batch runs: they share the next
        // batch, which panics; only the unlucky one fails.
        let first = spawn_run(&batcher, 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let [before, unlucky, after] = [2, UNLUCKY, 3].map(|i| spawn_run(&batcher, i));
        assert_eq!(first.await.unwrap(), 2);
        assert!(unlucky.await.unwrap_err().is_panic());
        assert_eq!(before.await.unwrap(), 4);
        assert_eq!(after.await.unwrap(), 6);
        assert_eq!(batcher.run(4).await, 8, "still working");
    }

    #[tokio::test]
    async fn no_batch_holds_more_than_the_maximum() {
        let (batcher, batches, largest) = doubler(10);
        let tasks: Vec<_> = (0..30).map(|i| spawn_run(&batcher, i)).collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(largest.load(Ordering::SeqCst), 10);
        assert!(batches.load(Ordering::SeqCst) >= 3);
    }
}
