//! Concurrent reads of rows by key, run as one statement: PostgreSQL's token reads.
//!
//! Why: every authenticated request reads its token, and on PostgreSQL each read is a
//! statement of its own (a message, a snapshot, an executor start-up, three index
//! look-ups), which cost the server about as much as the change the request made: in
//! `fanout-pg` the token read was half of the statements a change sent. Reads that arrive
//! while one is in flight wait for it and then go together, as one `= ANY($1)` statement
//! over their distinct keys, so under load one statement answers many requests (the
//! bench's 32 clients share one token), and an idle node reads as before, at once.
//!
//! Freshness is that of a read of its own: a waiting request's batch starts after the
//! request arrived, so it sees every write committed before that (a token revoked before
//! a request is refused to it). A read already in flight when a request arrives is never
//! shared with it: it may have started before a revocation the request must see.
//!
//! A batch that fails is not an error of its requests: each then reads alone, so the
//! error a request reports is its own read's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::StoreResult;

/// The statement behind a batch: the rows found for `keys` (distinct), each with its key.
/// Keys with no row are simply not in the answer.
pub(crate) type ReadMany<V> = Arc<
    dyn Fn(Vec<String>) -> Pin<Box<dyn Future<Output = StoreResult<Vec<(String, V)>>> + Send>> + Send + Sync,
>;

/// What a waiting read is sent: its row (or none), or `None` when its batch failed.
type Answer<V> = Option<Option<V>>;

/// Reads by key, batched while one is in flight; see the module docs.
pub(crate) struct ReadBatch<V> {
    read_many: ReadMany<V>,
    state: Mutex<Turns<V>>,
}

struct Turns<V> {
    /// A read (one request's, or a batch) is in flight; new reads wait for it.
    busy: bool,
    waiting: Vec<(String, oneshot::Sender<Answer<V>>)>,
}

impl<V> std::fmt::Debug for ReadBatch<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBatch").finish_non_exhaustive()
    }
}

/// Held while a read is in flight: when it ends, however it ends (a request's read can be
/// dropped with its request), the reads that waited meanwhile go as the next batch.
struct Turn<V: Clone + Send + 'static>(Arc<ReadBatch<V>>);

impl<V: Clone + Send + 'static> Drop for Turn<V> {
    fn drop(&mut self) {
        self.0.pass_on();
    }
}

impl<V: Clone + Send + 'static> ReadBatch<V> {
    /// Batches over `read_many`.
    pub(crate) fn new(read_many: ReadMany<V>) -> Arc<Self> {
        Arc::new(Self {
            read_many,
            state: Mutex::new(Turns {
                busy: false,
                waiting: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Turns<V>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The row of `key`, read at once when no read is in flight, otherwise in the batch
    /// that follows the one in flight.
    pub(crate) async fn read(self: &Arc<Self>, key: &str) -> StoreResult<Option<V>> {
        let waiting = {
            let mut s = self.lock();
            if s.busy {
                let (tx, rx) = oneshot::channel();
                s.waiting.push((key.to_owned(), tx));
                Some(rx)
            } else {
                s.busy = true;
                None
            }
        };
        match waiting {
            None => {
                let _turn = Turn(Arc::clone(self));
                self.read_one(key).await
            }
            Some(rx) => match rx.await {
                Ok(Some(found)) => Ok(found),
                // The batch failed (or was dropped with the runtime): read alone.
                _ => self.read_one(key).await,
            },
        }
    }

    /// One key's row through the batch statement, outside the turns.
    async fn read_one(&self, key: &str) -> StoreResult<Option<V>> {
        let rows = (self.read_many)(vec![key.to_owned()]).await?;
        Ok(rows.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// Ends the read in flight: the reads that waited go as one batch, on a task of its
    /// own (the request whose read just ended returns at once), or, with none waiting,
    /// the next read goes at once.
    fn pass_on(self: &Arc<Self>) {
        let batch = {
            let mut s = self.lock();
            if s.waiting.is_empty() {
                s.busy = false;
                return;
            }
            std::mem::take(&mut s.waiting)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let me = Arc::clone(self);
                drop(rt.spawn(async move { me.run_batch(batch).await }));
            }
            // No runtime (it is shutting down): the waiting reads get no answer and read
            // alone, if they still can; the next read goes at once.
            Err(_) => {
                drop(batch);
                self.lock().busy = false;
            }
        }
    }

    /// Reads `batch`'s distinct keys in one statement and answers each waiting read.
    async fn run_batch(self: Arc<Self>, batch: Vec<(String, oneshot::Sender<Answer<V>>)>) {
        let _turn = Turn(Arc::clone(&self));
        let mut keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
        keys.sort_unstable();
        keys.dedup();
        match (self.read_many)(keys).await {
            Ok(rows) => {
                let found: HashMap<String, V> = rows.into_iter().collect();
                for (key, tx) in batch {
                    // A request that gave up waiting has dropped its receiver: nothing to do.
                    let _ = tx.send(Some(found.get(&key).cloned()));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, reads = batch.len(), "a batched read failed; its reads go alone");
                for (_, tx) in batch {
                    let _ = tx.send(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::sync::Semaphore;

    /// A table of rows read through `ReadBatch`, recording every statement's keys; a read
    /// holds until the test lets it through (`gate`), so the test decides what overlaps.
    struct Table {
        rows: Mutex<HashMap<String, i64>>,
        statements: Mutex<Vec<Vec<String>>>,
        gate: Semaphore,
        fail_batches: AtomicBool,
    }

    fn table(rows: &[(&str, i64)]) -> (Arc<Table>, Arc<ReadBatch<i64>>) {
        let t = Arc::new(Table {
            rows: Mutex::new(rows.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            statements: Mutex::default(),
            gate: Semaphore::new(0),
            fail_batches: AtomicBool::new(false),
        });
        let tt = Arc::clone(&t);
        let batch = ReadBatch::new(Arc::new(move |keys: Vec<String>| {
            let t = Arc::clone(&tt);
            Box::pin(async move {
                t.gate.acquire().await.expect("gate open").forget();
                t.statements.lock().unwrap().push(keys.clone());
                if keys.len() > 1 && t.fail_batches.load(Ordering::SeqCst) {
                    return Err(StoreError::CommitFailed("batch refused".into()));
                }
                // The row as it is when the statement runs, not when the read was asked.
                let rows = t.rows.lock().unwrap();
                Ok(keys
                    .into_iter()
                    .filter_map(|k| rows.get(&k).map(|v| (k, *v)))
                    .collect())
            }) as Pin<Box<dyn Future<Output = _> + Send>>
        }));
        (t, batch)
    }

    /// Waits until `n` reads wait behind the one in flight.
    async fn until_waiting(b: &ReadBatch<i64>, n: usize) {
        while b.lock().waiting.len() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_read_alone_is_one_statement_and_frees_the_turn() {
        let (t, b) = table(&[("a", 1)]);
        t.gate.add_permits(2);
        assert_eq!(b.read("a").await.unwrap(), Some(1));
        assert_eq!(b.read("zz").await.unwrap(), None);
        assert_eq!(*t.statements.lock().unwrap(), vec![vec!["a"], vec!["zz"]]);
        assert!(!b.lock().busy);
    }

    #[tokio::test]
    async fn reads_that_wait_go_as_one_statement_of_distinct_keys_and_see_later_writes() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        let first = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.read("a").await }
        });
        while !b.lock().busy {
            tokio::task::yield_now().await;
        }
        let mut waiting = Vec::new();
        for k in ["b", "a", "b", "missing"] {
            let b = Arc::clone(&b);
            waiting.push(tokio::spawn(async move { b.read(k).await }));
        }
        until_waiting(&b, 4).await;
        // Written after the waiting reads arrived, before their batch: they see it.
        t.rows.lock().unwrap().insert("b".into(), 20);
        t.gate.add_permits(2);
        assert_eq!(first.await.unwrap().unwrap(), Some(1));
        let got: Vec<_> = futures::future::join_all(waiting)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![Some(20), Some(1), Some(20), None]);
        assert_eq!(
            *t.statements.lock().unwrap(),
            vec![vec!["a"], vec!["a", "b", "missing"]]
        );
        while b.lock().busy {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_failed_batch_sends_each_read_alone() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        t.fail_batches.store(true, Ordering::SeqCst);
        let first = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.read("a").await }
        });
        while !b.lock().busy {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|k| {
                let b = Arc::clone(&b);
                tokio::spawn(async move { b.read(k).await })
            })
            .collect();
        until_waiting(&b, 2).await;
        t.gate.add_permits(4);
        assert_eq!(first.await.unwrap().unwrap(), Some(1));
        let got: Vec<_> = futures::future::join_all(waiting)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![Some(1), Some(2)]);
        let mut statements = t.statements.lock().unwrap().clone();
        statements[2..].sort();
        assert_eq!(statements, vec![vec!["a"], vec!["a", "b"], vec!["a"], vec!["b"]]);
    }

    #[tokio::test]
    async fn a_read_dropped_in_flight_passes_the_turn_on() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        let first = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.read("a").await }
        });
        while !b.lock().busy {
            tokio::task::yield_now().await;
        }
        let waiting = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.read("b").await }
        });
        until_waiting(&b, 1).await;
        // The request whose read is in flight goes away (its client hung up).
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        t.gate.add_permits(1);
        assert_eq!(waiting.await.unwrap().unwrap(), Some(2));
        assert_eq!(*t.statements.lock().unwrap(), vec![vec!["b"]]);
    }
}
