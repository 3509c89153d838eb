//! Concurrent reads of rows by key, run as one statement: PostgreSQL's token reads.
//!
//! Why: every authenticated request reads its token, and on PostgreSQL each read was a
//! statement and a transaction of its own (messages both ways, a snapshot, an executor
//! start-up, three index look-ups): in `fanout-pg`, half of the transactions a change
//! cost the server, and a round trip of Herald's (BENCHMARKS.md, "PostgreSQL: token
//! reads together"). Reads that arrive
//! while one is in flight wait for it and then go together, as one `= ANY($1)` statement
//! over their distinct keys, so under load one statement answers many requests (the
//! bench's 32 clients share one token), and an idle node reads as before, at once.
//!
//! Freshness is that of a read of its own: a waiting request's batch starts after the
//! request arrived, so it sees every write committed before that (a token revoked before
//! a request is refused to it). A read already in flight when a request arrives is never
//! shared with it: it may have started before a revocation the request must see.
//!
//! The price is a wait: under load a read waits for the one in flight before its own
//! goes, up to [`TURN`]. A statement that takes longer than that (a server or a pool
//! that stopped answering) passes the turn on while it runs, so one stuck read holds up
//! the others for at most that long, not for as long as it is stuck.
//!
//! A batch that cannot get a connection fails its reads with that error, as their own
//! reads would have failed (sending each alone would only add to the pool's queue). A
//! batch that fails otherwise is not an error of its requests: each then reads alone, so
//! the error a request reports is its own read's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// How long a read in flight holds the turn: after that the reads waiting behind it go
/// on without it. Far above a token read's time (tens of microseconds on the server, a
/// millisecond or two on a busy node), far below the pool's 10 s acquire timeout.
pub(crate) const TURN: Duration = Duration::from_secs(1);

/// Most keys in one statement; more waiting reads go in the batches that follow.
pub(crate) const MAX_BATCH: usize = 1024;

/// What the statement behind a batch answers: the rows found, each with its key.
pub(crate) type Rows<V> = Pin<Box<dyn Future<Output = StoreResult<Vec<(String, V)>>> + Send>>;

/// The statement behind a batch: the rows found for `keys` (distinct), each with its key.
/// Keys with no row are simply not in the answer.
pub(crate) type ReadMany<V> = Arc<dyn Fn(Vec<String>) -> Rows<V> + Send + Sync>;

/// What a waiting read is sent: its row (or none); a failure every read of the batch
/// shares (no connection); or nothing, when it should read alone.
enum Answer<V> {
    Row(Option<V>),
    Failed(fn() -> StoreError),
    ReadAlone,
}

/// Reads by key, batched while one is in flight; see the module docs.
pub(crate) struct ReadBatch<V> {
    read_many: ReadMany<V>,
    state: Mutex<Turns<V>>,
    /// Statements run (alone or batched): with the reads asked, what batching saved.
    statements: std::sync::atomic::AtomicU64,
}

/// Who holds the turn, and who waits for it.
struct Turns<V> {
    /// A read (one request's, or a batch) holds the turn; new reads wait for it.
    busy: bool,
    /// The reads waiting, in arrival order, each with where its answer goes.
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
    /// Batches over `read_many`, the one statement every read goes through (alone or
    /// together), so a read alone and a batch cannot disagree on what a row is.
    pub(crate) fn new(read_many: ReadMany<V>) -> Arc<Self> {
        Arc::new(Self {
            read_many,
            state: Mutex::new(Turns {
                busy: false,
                waiting: Vec::new(),
            }),
            statements: std::sync::atomic::AtomicU64::new(0),
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
            None => holding_turn(Turn(Arc::clone(self)), self.read_one(key)).await,
            Some(rx) => match rx.await {
                Ok(Answer::Row(found)) => Ok(found),
                Ok(Answer::Failed(error)) => Err(error()),
                // The batch failed, or its task was dropped (the runtime is stopping).
                Ok(Answer::ReadAlone) | Err(_) => self.read_one(key).await,
            },
        }
    }

    /// Statements run so far, alone or batched.
    pub(crate) fn statements(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `read_many`, counted.
    fn statement(&self, keys: Vec<String>) -> Rows<V> {
        self.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (self.read_many)(keys)
    }

    /// One key's row through the batch statement, outside the turns.
    async fn read_one(&self, key: &str) -> StoreResult<Option<V>> {
        let rows = self.statement(vec![key.to_owned()]).await?;
        Ok(rows.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// Ends the read holding the turn: the reads that waited go as one batch, on a task
    /// of its own (the request whose read just ended returns at once), or, with none
    /// waiting, the next read goes at once.
    fn pass_on(self: &Arc<Self>) {
        let rt = tokio::runtime::Handle::try_current().ok();
        let batch = {
            let mut s = self.lock();
            if s.waiting.is_empty() || rt.is_none() {
                // Without a runtime no batch can run: the waiting reads get no answer
                // (their senders drop here) and read alone, if they still can.
                s.busy = false;
                std::mem::take(&mut s.waiting)
            } else {
                let n = s.waiting.len().min(MAX_BATCH);
                s.waiting.drain(..n).collect()
            }
        };
        if let (Some(rt), false) = (rt, batch.is_empty()) {
            // The batch's turn is held from here, so a task dropped before it first runs
            // (spawned while the runtime stops) still passes it on.
            let turn = Turn(Arc::clone(self));
            drop(rt.spawn(Arc::clone(self).run_batch(batch, turn)));
        }
    }

    /// Reads `batch`'s distinct keys in one statement and answers each waiting read.
    async fn run_batch(self: Arc<Self>, batch: Vec<(String, oneshot::Sender<Answer<V>>)>, turn: Turn<V>) {
        let mut keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
        keys.sort_unstable();
        keys.dedup();
        match holding_turn(turn, self.statement(keys)).await {
            Ok(rows) => {
                let found: HashMap<String, V> = rows.into_iter().collect();
                for (key, tx) in batch {
                    // A request that gave up waiting has dropped its receiver: nothing to do.
                    let _ = tx.send(Answer::Row(found.get(&key).cloned()));
                }
            }
            Err(e) => {
                let shared = shared_failure(&e);
                tracing::debug!(error = %e, reads = batch.len(), "a batched read failed");
                for (_, tx) in batch {
                    let _ = tx.send(shared.map_or(Answer::ReadAlone, Answer::Failed));
                }
            }
        }
    }
}

/// Runs `read` holding `turn`, which passes on when `read` ends or after [`TURN`],
/// whichever is first (see the module docs).
async fn holding_turn<V: Clone + Send + 'static, T>(turn: Turn<V>, read: impl Future<Output = T>) -> T {
    let mut read = std::pin::pin!(read);
    tokio::select! {
        out = &mut read => out,
        () = tokio::time::sleep(TURN) => {
            drop(turn);
            read.await
        }
    }
}

/// The failure a batch shares with every read in it: no connection to be had, which a
/// read alone would meet too. Other failures may be one key's (or one statement's), so
/// the batch's reads go alone instead.
fn shared_failure(e: &StoreError) -> Option<fn() -> StoreError> {
    match e {
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            Some(|| StoreError::Database(sqlx::Error::PoolTimedOut))
        }
        StoreError::Database(sqlx::Error::PoolClosed) => {
            Some(|| StoreError::Database(sqlx::Error::PoolClosed))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use tokio::sync::Semaphore;

    /// A table of rows read through `ReadBatch`, recording every statement's keys. A read
    /// holds until the test lets it through (`gate`), so the test decides what overlaps;
    /// a read of a `stuck` key never ends; batches (more than one key) fail with `fail`.
    struct Table {
        rows: Mutex<HashMap<String, i64>>,
        statements: Mutex<Vec<Vec<String>>>,
        gate: Semaphore,
        stuck: Mutex<HashSet<String>>,
        fail: Mutex<Option<fn() -> StoreError>>,
    }

    fn table(rows: &[(&str, i64)]) -> (Arc<Table>, Arc<ReadBatch<i64>>) {
        let t = Arc::new(Table {
            rows: Mutex::new(rows.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            statements: Mutex::default(),
            gate: Semaphore::new(0),
            stuck: Mutex::default(),
            fail: Mutex::default(),
        });
        let tt = Arc::clone(&t);
        let batch = ReadBatch::new(Arc::new(move |keys: Vec<String>| {
            let t = Arc::clone(&tt);
            Box::pin(async move {
                if keys.iter().any(|k| t.stuck.lock().unwrap().contains(k)) {
                    std::future::pending::<()>().await;
                }
                t.gate.acquire().await.expect("gate open").forget();
                t.statements.lock().unwrap().push(keys.clone());
                if let (true, Some(fail)) = (keys.len() > 1, *t.fail.lock().unwrap()) {
                    return Err(fail());
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

    /// A read of `key` on a task of its own.
    fn read(b: &Arc<ReadBatch<i64>>, key: &str) -> tokio::task::JoinHandle<StoreResult<Option<i64>>> {
        let (b, key) = (Arc::clone(b), key.to_owned());
        tokio::spawn(async move { b.read(&key).await })
    }

    /// Waits (at most 5 s: a broken turn fails the test instead of hanging it) until
    /// `cond` holds of the turns.
    async fn until(b: &ReadBatch<i64>, cond: impl Fn(&Turns<i64>) -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !cond(&b.lock()) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the turns reached the state awaited");
    }

    /// The answers of `reads`, each within 5 s.
    async fn answers(
        reads: Vec<tokio::task::JoinHandle<StoreResult<Option<i64>>>>,
    ) -> Vec<StoreResult<Option<i64>>> {
        let all = futures::future::join_all(reads);
        let done = tokio::time::timeout(Duration::from_secs(5), all).await;
        done.expect("every read answered")
            .into_iter()
            .map(|r| r.unwrap())
            .collect()
    }

    /// A read of `first` in flight and reads of `keys` queued behind it.
    async fn behind<K: AsRef<str>>(
        b: &Arc<ReadBatch<i64>>,
        first: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> (
        tokio::task::JoinHandle<StoreResult<Option<i64>>>,
        Vec<tokio::task::JoinHandle<StoreResult<Option<i64>>>>,
    ) {
        let first = read(b, first);
        until(b, |s| s.busy).await;
        let waiting: Vec<_> = keys.into_iter().map(|k| read(b, k.as_ref())).collect();
        let n = waiting.len();
        until(b, |s| s.waiting.len() == n).await;
        (first, waiting)
    }

    fn rows(got: Vec<StoreResult<Option<i64>>>) -> Vec<Option<i64>> {
        got.into_iter().map(|r| r.unwrap()).collect()
    }

    #[tokio::test]
    async fn a_read_alone_is_one_statement_and_frees_the_turn() {
        let (t, b) = table(&[("a", 1)]);
        t.gate.add_permits(2);
        assert_eq!(b.read("a").await.unwrap(), Some(1));
        assert_eq!(b.read("zz").await.unwrap(), None);
        assert_eq!(*t.statements.lock().unwrap(), vec![vec!["a"], vec!["zz"]]);
        assert_eq!(b.statements(), 2);
        assert!(!b.lock().busy);
    }

    #[tokio::test]
    async fn reads_that_wait_go_as_one_statement_of_distinct_keys_and_see_later_writes() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        let (first, waiting) = behind(&b, "a", ["b", "a", "b", "missing"]).await;
        // Written after the waiting reads arrived, before their batch: they see it.
        t.rows.lock().unwrap().insert("b".into(), 20);
        t.gate.add_permits(2);
        assert_eq!(rows(answers(vec![first]).await), vec![Some(1)]);
        assert_eq!(
            rows(answers(waiting).await),
            vec![Some(20), Some(1), Some(20), None]
        );
        assert_eq!(
            *t.statements.lock().unwrap(),
            vec![vec!["a"], vec!["a", "b", "missing"]]
        );
        until(&b, |s| !s.busy).await;
    }

    #[tokio::test]
    async fn a_batch_takes_at_most_max_batch_reads_and_the_rest_follow() {
        let (t, b) = table(&[]);
        let keys = (0..MAX_BATCH + 3).map(|i| format!("k{i:05}"));
        let (first, waiting) = behind(&b, "first", keys).await;
        t.gate.add_permits(3);
        assert_eq!(rows(answers(vec![first]).await), vec![None]);
        assert!(rows(answers(waiting).await).iter().all(Option::is_none));
        let sizes: Vec<usize> = t.statements.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, MAX_BATCH, 3]);
        until(&b, |s| !s.busy).await;
    }

    #[tokio::test]
    async fn a_failed_batch_sends_each_read_alone() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        *t.fail.lock().unwrap() = Some(|| StoreError::CommitFailed("batch refused".into()));
        let (first, waiting) = behind(&b, "a", ["a", "b"]).await;
        t.gate.add_permits(4);
        assert_eq!(rows(answers(vec![first]).await), vec![Some(1)]);
        assert_eq!(rows(answers(waiting).await), vec![Some(1), Some(2)]);
        let mut statements = t.statements.lock().unwrap().clone();
        statements[2..].sort();
        assert_eq!(statements, vec![vec!["a"], vec!["a", "b"], vec!["a"], vec!["b"]]);
        until(&b, |s| !s.busy).await;
    }

    #[tokio::test]
    async fn a_batch_with_no_connection_fails_its_reads_without_more_statements() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        *t.fail.lock().unwrap() = Some(|| StoreError::Database(sqlx::Error::PoolTimedOut));
        let (first, waiting) = behind(&b, "a", ["a", "b"]).await;
        t.gate.add_permits(2);
        assert_eq!(rows(answers(vec![first]).await), vec![Some(1)]);
        for got in answers(waiting).await {
            assert!(
                matches!(got, Err(StoreError::Database(sqlx::Error::PoolTimedOut))),
                "{got:?}"
            );
        }
        assert_eq!(t.statements.lock().unwrap().len(), 2, "no read went alone");
        until(&b, |s| !s.busy).await;
    }

    #[tokio::test]
    async fn a_read_dropped_in_flight_passes_the_turn_on() {
        let (t, b) = table(&[("a", 1), ("b", 2)]);
        let (first, waiting) = behind(&b, "a", ["b"]).await;
        // The request whose read is in flight goes away (its client hung up).
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        t.gate.add_permits(1);
        assert_eq!(rows(answers(waiting).await), vec![Some(2)]);
        assert_eq!(*t.statements.lock().unwrap(), vec![vec!["b"]]);
        until(&b, |s| !s.busy).await;
    }

    #[tokio::test]
    async fn a_stuck_read_holds_the_others_up_for_one_turn_at_most() {
        let (t, b) = table(&[("a", 1)]);
        t.stuck.lock().unwrap().insert("stuck".into());
        let started = tokio::time::Instant::now();
        let (stuck, waiting) = behind(&b, "stuck", ["a"]).await;
        t.gate.add_permits(1);
        assert_eq!(rows(answers(waiting).await), vec![Some(1)]);
        assert!(
            started.elapsed() >= TURN,
            "the turn passed on only after {TURN:?}"
        );
        assert!(!stuck.is_finished(), "the stuck read is still in flight");
        stuck.abort();
        until(&b, |s| !s.busy).await;
    }

    #[test]
    fn without_a_runtime_the_turn_is_freed_and_waiting_reads_go_alone() {
        let (_t, b) = table(&[]);
        let (tx, mut rx) = oneshot::channel();
        {
            let mut s = b.lock();
            s.busy = true;
            s.waiting.push(("a".into(), tx));
        }
        b.pass_on();
        assert!(!b.lock().busy);
        assert!(b.lock().waiting.is_empty());
        assert!(rx.try_recv().is_err(), "no answer: the read goes alone");
    }
}
