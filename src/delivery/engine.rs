//! The delivery engine: one per process. It takes work from two sources — deliveries this
//! process just created (handed over after commit, already leased, no claim round-trip)
//! and claims of due rows (retries, restarts, work created elsewhere) — runs each attempt
//! in its webhook's lane, and records outcomes through the batching recorder.
//!
//! Wake-ups: new local work starts at once; a claim runs when woken (PostgreSQL `NOTIFY`
//! from any node, a redelivery, a freed slot, the earliest retry just scheduled) or, as a
//! fallback, every `poll_interval`. [`DeliveryEngine::run_once`] drains what is due now,
//! for tests and tools; the production loop calls the same claim step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{ClientBuildError, ClientConfig, DeliveryClient};
use super::metrics::Metrics;
use super::recorder::{Recorder, Watchers, Written};
use super::send::{prepare, Prepared};
use super::ssrf::Policy;
use super::worker::Lanes;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::domain::event::Event;
use crate::domain::retry::{RetryPolicy, DEFAULT_JITTER};
use crate::store::{AutoDisable, ClaimRequest, DeliveryJob, FreshSink, Store, StoreResult, TargetRow};
use crate::timefmt::now_ms;

/// Most rows one claim takes.
const CLAIM_BATCH: usize = 256;
/// A queued job starts only if its lease outlives a whole attempt by this much.
const LEASE_MARGIN_MS: i64 = 2_000;

type Cached = Arc<Result<Prepared, String>>;

/// What the recorder reports back to, and what wakes the claim loop.
pub(crate) struct Signals {
    pub(crate) wake: Arc<Notify>,
    next_wake: Mutex<Option<i64>>,
    /// Set when the last claim may have left due work behind per-webhook caps.
    pub(crate) capped: AtomicBool,
    pub(crate) watchers: Watchers,
    pub(crate) lanes: Arc<Lanes>,
    pub(crate) metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
}

impl Written for Signals {
    fn written(&self, earliest_retry: Option<i64>, disabled: &[Uuid], delivered: &[Uuid]) {
        if let Some(at) = earliest_retry {
            let mut w = self.next_wake.lock().unwrap_or_else(|p| p.into_inner());
            *w = Some(w.map_or(at, |cur| cur.min(at)));
            drop(w);
            self.wake.notify_one();
        }
        if self.capped.swap(false, Ordering::Relaxed) {
            self.wake.notify_one();
        }
        if !disabled.is_empty() {
            self.metrics.disabled(disabled.len());
            let mut leases = Vec::new();
            for w in disabled {
                tracing::warn!(webhook_id = %w, "webhook disabled");
                self.lanes.forget_gone(*w);
                leases.extend(
                    self.lanes
                        .drop_webhook(*w)
                        .into_iter()
                        .map(|j| (j.id, j.lease.token)),
                );
            }
            if !leases.is_empty() {
                let store = Arc::clone(&self.store);
                tokio::spawn(async move { store.release_leases(&leases).await });
            }
        }
        self.watchers.fire(delivered);
    }

    fn write_failed(&self, given_up: bool) {
        self.metrics.record_failed(given_up);
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) client: DeliveryClient,
    pub(crate) key: Arc<MasterKey>,
    pub(crate) policy: RetryPolicy,
    pub(crate) recorder: Recorder,
    pub(crate) signals: Arc<Signals>,
    pub(crate) request_timeout_ms: i64,
    lease_ms: i64,
    per_webhook: i64,
    poll_interval: Duration,
    retention_ms: i64,
    starved: AtomicBool,
    /// Set when a claim found nothing but skipped lanes ([`Lanes::skipped`]): wake the
    /// claim loop when one of them is skipped no longer ([`Lanes::take_unskipped`]).
    lane_wait: AtomicBool,
    pub(crate) hard_stop: CancellationToken,
    cache: Mutex<HashMap<Uuid, (i64, Cached)>>,
    /// The runtime attempts run on. Fresh deliveries are handed over from SQLite's
    /// writer thread, which runs a runtime of its own (`group_commit.rs`): attempts
    /// spawned there would compete with the writer instead of running on the workers.
    runtime: tokio::runtime::Handle,
}

/// Handle to the engine; cheap to clone (API handlers hold one).
#[derive(Clone)]
pub struct DeliveryEngine {
    pub(crate) inner: Arc<Inner>,
}

impl FreshSink for DeliveryEngine {
    fn hand_off(&self, jobs: Vec<DeliveryJob>) {
        self.submit(jobs);
    }

    fn wake(&self) {
        DeliveryEngine::wake(self);
    }

    fn full(&self, webhooks: &mut dyn Iterator<Item = Uuid>) -> Vec<Uuid> {
        self.inner.signals.lanes.full(webhooks)
    }
}

impl DeliveryEngine {
    /// Builds the engine (and its HTTP client) from settings. Nothing runs until
    /// [`DeliveryEngine::start`]; [`DeliveryEngine::run_once`] works either way.
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<MasterKey>,
        settings: &Settings,
    ) -> Result<Self, ClientBuildError> {
        let d = &settings.delivery;
        let client = DeliveryClient::new(&ClientConfig {
            connect_timeout: d.connect_timeout,
            timeout: d.request_timeout,
            extra_ca_file: settings.extra_ca_file.clone(),
            policy: Policy::new(settings.allowed_target_networks.clone()),
            // Every attempt may run against one receiver (many webhooks of one
            // integration platform): keep as many idle connections as attempts can run,
            // or each burst above the pool closes connections the next burst must
            // handshake again (TLS key exchange was most of the backlog drain's CPU).
            pool_max_idle_per_host: d.global_concurrency,
            ..ClientConfig::default()
        })?;
        let ms = |t: Duration| i64::try_from(t.as_millis()).unwrap_or(i64::MAX);
        let lanes = Arc::new(Lanes::new(d.per_webhook_concurrency, d.global_concurrency));
        let signals = Arc::new(Signals {
            wake: Arc::new(Notify::new()),
            next_wake: Mutex::new(None),
            capped: AtomicBool::new(false),
            watchers: Watchers::default(),
            lanes,
            metrics: Arc::new(Metrics::default()),
            store: Arc::clone(&store),
        });
        let auto = AutoDisable {
            failures: i64::from(d.auto_disable_failures),
            after_ms: ms(d.auto_disable_after),
        };
        let recorder = Recorder::start(Arc::clone(&store), auto, Arc::clone(&signals) as Arc<dyn Written>);
        let policy = RetryPolicy::new(d.retry_schedule.clone(), DEFAULT_JITTER).unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                client,
                key,
                policy,
                recorder,
                signals,
                request_timeout_ms: ms(d.request_timeout),
                lease_ms: ms(d.lease()),
                per_webhook: i64::try_from(d.per_webhook_concurrency).unwrap_or(8),
                poll_interval: d.poll_interval,
                retention_ms: ms(d.attempt_retention),
                starved: AtomicBool::new(false),
                lane_wait: AtomicBool::new(false),
                hard_stop: CancellationToken::new(),
                cache: Mutex::new(HashMap::new()),
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }

    /// Attaches to the store's fan-out (fresh deliveries come straight here) and runs the
    /// claim loop, the `LISTEN` task and retention until `stop`; then shuts down gracefully.
    pub fn start(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let store = &self.inner.store;
        store.hub().attach(Arc::new(self.clone()), self.inner.lease_ms);
        let listener = {
            let (store, wake, stop) = (
                Arc::clone(store),
                Arc::clone(&self.inner.signals.wake),
                stop.clone(),
            );
            let engine = self.clone();
            let forget: crate::store::ForgetWebhook = Arc::new(move |id| engine.forget_webhook(id));
            tokio::spawn(async move { store.listen_for_work(wake, forget, stop).await })
        };
        let retention = tokio::spawn(retention_loop(self.clone(), stop.clone()));
        let engine = self.clone();
        tokio::spawn(async move {
            engine.claim_loop(&stop).await;
            let grace = Duration::from_millis(u64::try_from(engine.inner.request_timeout_ms).unwrap_or(0))
                .min(Duration::from_secs(10));
            engine.shutdown(grace).await;
            let _ = listener.await;
            retention.abort();
        })
    }

    async fn claim_loop(&self, stop: &CancellationToken) {
        let signals = &self.inner.signals;
        while !stop.is_cancelled() {
            let full = match self.claim().await {
                Ok((n, limit)) => limit > 0 && n >= limit,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed");
                    false
                }
            };
            if full {
                tokio::task::yield_now().await;
                continue;
            }
            let now = now_ms();
            let poll = i64::try_from(self.inner.poll_interval.as_millis()).unwrap_or(i64::MAX);
            let next = signals.next_wake.lock().map(|w| *w).unwrap_or(None);
            let wait_ms = next.map_or(poll, |at| (at - now).clamp(0, poll));
            tokio::select! {
                () = stop.cancelled() => return,
                () = signals.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))) => {}
            }
        }
    }

    /// One claim: leases due work this node has room for and starts it. Returns how many
    /// rows were claimed and the limit asked for.
    async fn claim(&self) -> StoreResult<(usize, usize)> {
        let i = &self.inner;
        let limit = i.signals.lanes.room().min(CLAIM_BATCH);
        if limit == 0 {
            i.starved.store(true, Ordering::Relaxed);
            return Ok((0, 0));
        }
        let now = now_ms();
        let (exclude, one_each) = i.signals.lanes.claim_filters();
        let capped = exclude.len();
        let req = ClaimRequest {
            token: i.store.hub().new_token(),
            lease_until: now + i.lease_ms,
            now,
            limit: limit as i64,
            per_webhook: i.per_webhook,
            exclude,
            one_each,
        };
        let jobs = i.store.claim_due(&req).await?;
        {
            let mut w = i.signals.next_wake.lock().unwrap_or_else(|p| p.into_inner());
            if w.is_some_and(|at| at <= now) {
                *w = None;
            }
        }
        let n = jobs.len();
        if n > 0 {
            tracing::debug!(claimed = n, "claimed due deliveries");
        }
        // Per-webhook caps (skipped lanes, `per_webhook` rows per webhook) can leave due
        // work unclaimed although the claim came back short. Rather than sleeping until
        // the poll (a backlog behind a few webhooks would drain one batch per poll
        // interval): after a claim that took rows, look again once outcomes are written
        // (a finished attempt's row stops counting against its webhook only then); after
        // one that took nothing but skipped lanes, look again when one of them is no
        // longer skipped. Not after every outcome batch: while local fan-out keeps the lanes
        // full, that re-ran a fruitless claim — a scan of every leased row — for each
        // batch, and held SQLite's writer for a third of its time in the fan-out bench.
        if n > 0 {
            i.signals.capped.store(true, Ordering::Relaxed);
        } else if capped > 0 {
            i.lane_wait.store(true, Ordering::Relaxed);
            // A lane may have stopped being skipped while the claim ran, before the mark
            // was watched for.
            Self::wake_if_a_lane_was_freed(i);
        }
        self.submit_claimed(jobs);
        Ok((n, limit))
    }

    /// Drains the queue once: claims what is due now, attempts it, and returns after every
    /// outcome is written. For tests and tools; needs no running loop.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let (n, _) = self.claim().await?;
        self.inner.signals.lanes.idle().await;
        self.inner.recorder.flush().await;
        Ok(n)
    }

    /// Starts fresh `jobs` handed over by fan-out (or queues them at the back of their
    /// lanes).
    pub(crate) fn submit(&self, jobs: Vec<DeliveryJob>) {
        if jobs.is_empty() {
            return;
        }
        let pushed = self.inner.signals.lanes.push(jobs);
        self.start_pushed(pushed);
    }

    /// Starts claimed `jobs` (or queues them ahead of their lanes' fresh jobs:
    /// [`Lanes::push_claimed`]).
    fn submit_claimed(&self, jobs: Vec<DeliveryJob>) {
        if jobs.is_empty() {
            return;
        }
        let pushed = self.inner.signals.lanes.push_claimed(jobs);
        self.start_pushed(pushed);
    }

    fn start_pushed(&self, (start, rejected): (Vec<DeliveryJob>, Vec<DeliveryJob>)) {
        for j in rejected {
            self.inner.recorder.release(j.id, j.lease.token);
        }
        self.submit_started(start);
    }

    /// Spawns jobs the lanes already marked as running.
    pub(crate) fn submit_started(&self, jobs: Vec<DeliveryJob>) {
        for job in jobs {
            self.inner
                .runtime
                .spawn(super::attempt::run(Arc::clone(&self.inner), job));
        }
    }

    /// Asks the claim loop to look for work now (after a redelivery, say).
    pub fn wake(&self) {
        self.inner.signals.wake.notify_one();
    }

    /// A webhook was enabled or changed and is enabled: ends a 410's hold on its jobs
    /// ([`super::worker::Lanes::drop_gone`]) that the record disabling it did not end (a
    /// later 410 found it disabled already).
    pub fn webhook_enabled(&self, webhook_id: Uuid) {
        self.inner.signals.lanes.forget_gone(webhook_id);
    }

    /// Drops queued jobs of a deleted or disabled webhook and gives their leases back.
    pub fn forget_webhook(&self, webhook_id: Uuid) {
        self.inner.signals.lanes.forget_gone(webhook_id);
        for j in self.inner.signals.lanes.drop_webhook(webhook_id) {
            self.inner.recorder.release(j.id, j.lease.token);
        }
    }

    /// Creates a `Webhook:Ping` delivery and, when this node delivers, waits up to `wait`
    /// for its first attempt to be recorded. `None` if the webhook does not exist.
    pub async fn ping(
        &self,
        tenant_id: i64,
        webhook_id: Uuid,
        event: &Event,
        wait: Duration,
    ) -> StoreResult<Option<Uuid>> {
        let store = &self.inner.store;
        let Some((id, jobs)) = store.create_ping(tenant_id, webhook_id, event).await? else {
            return Ok(None);
        };
        if jobs.is_empty() {
            return Ok(Some(id));
        }
        let done = self.inner.signals.watchers.watch(id);
        store.hub().hand_off(jobs, false);
        let _ = tokio::time::timeout(wait, done).await;
        Ok(Some(id))
    }

    /// `/metrics` text: queue figures from the database plus this node's counters (without
    /// the figures when the database does not answer: `herald_delivery_queue_stats_up 0`).
    pub async fn render_metrics(&self) -> String {
        let now = now_ms();
        let stats = match self.inner.store.queue_stats(now).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read queue figures for /metrics");
                None
            }
        };
        let lanes = &self.inner.signals.lanes;
        let node = super::metrics::NodeLanes {
            in_flight: lanes.load(),
            not_answering: lanes.silent_count(),
        };
        self.inner.signals.metrics.render(stats.as_ref(), node, now)
    }

    /// Graceful stop: no new work, wait up to `grace` for running attempts, record what
    /// finished, abort the rest and give every unfinished lease back.
    pub async fn shutdown(&self, grace: Duration) {
        let i = &self.inner;
        i.store.hub().detach();
        // A change that committed before the detach may not have handed its jobs over
        // yet: they reach the lanes (before) or the hub's orphans (after), both given
        // back below.
        if let Err(e) = i.store.settle_hand_offs().await {
            tracing::warn!(error = %e, "could not wait for the last changes' hand-offs");
        }
        let lanes = &i.signals.lanes;
        let mut leases: Vec<(Uuid, String)> =
            lanes.close().into_iter().map(|j| (j.id, j.lease.token)).collect();
        if tokio::time::timeout(grace, lanes.none_running()).await.is_err() {
            let cut = lanes.running_leases();
            i.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), lanes.none_running()).await;
            // Attempts cut off mid-send end at once without a record: their leases go back.
            // One still running has sent and waits for room among the unwritten records;
            // giving its lease back now would let the flush below miss its record, the
            // row be sent again and its outcome (even a success) be dropped. Its lease
            // expires instead. Attempts that finished queued their records before
            // finishing, so the flush writes them before any lease goes back.
            let still: std::collections::HashSet<Uuid> =
                lanes.running_leases().into_iter().map(|(id, _)| id).collect();
            if !still.is_empty() {
                tracing::warn!(
                    attempts = still.len(),
                    "attempts still being recorded at shutdown; their leases will expire"
                );
            }
            leases.extend(cut.into_iter().filter(|(id, _)| !still.contains(id)));
        }
        i.recorder.flush().await;
        leases.extend(i.store.hub().take_orphans());
        if !leases.is_empty() {
            match i.store.release_leases(&leases).await {
                Ok(n) => tracing::info!(released = n, "released unfinished delivery leases"),
                Err(e) => tracing::warn!(error = %e, "could not release leases; they will expire"),
            }
        }
        tracing::info!("delivery engine stopped");
    }

    /// Whether the claim loop should be woken because slots freed up after it found none.
    pub(crate) fn after_finish(inner: &Inner) {
        if inner.starved.load(Ordering::Relaxed) && inner.signals.lanes.room() > 0 {
            inner.starved.store(false, Ordering::Relaxed);
            inner.signals.wake.notify_one();
        }
        Self::wake_if_a_lane_was_freed(inner);
    }

    /// Wakes the claim loop if the last claim found nothing but skipped lanes and one of
    /// them is skipped no longer.
    fn wake_if_a_lane_was_freed(inner: &Inner) {
        if inner.lane_wait.load(Ordering::Relaxed) && inner.signals.lanes.take_unskipped() {
            inner.lane_wait.store(false, Ordering::Relaxed);
            inner.signals.wake.notify_one();
        }
    }
}

impl Inner {
    /// The prepared target for `t`, from the cache while the webhook is unchanged.
    pub(crate) fn prepared(&self, t: &TargetRow) -> Cached {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, p)) = cache.get(&t.webhook_id) {
            if *at == t.updated_at {
                return Arc::clone(p);
            }
        }
        if cache.len() > 10_000 {
            cache.clear();
        }
        let p = Arc::new(prepare(t, &self.key));
        cache.insert(t.webhook_id, (t.updated_at, Arc::clone(&p)));
        p
    }

    /// Whether `job`'s lease still has room for a whole attempt.
    pub(crate) fn lease_ok(&self, job: &DeliveryJob, now: i64) -> bool {
        job.lease.until - now >= self.request_timeout_ms + LEASE_MARGIN_MS
    }
}

async fn retention_loop(engine: DeliveryEngine, stop: CancellationToken) {
    loop {
        let cutoff = now_ms() - engine.inner.retention_ms;
        match engine.inner.store.purge_bodies(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged old delivery bodies"),
            Err(e) => tracing::warn!(error = %e, "purging old delivery bodies failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
