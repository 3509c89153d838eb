//! Concurrency and isolation: leased jobs wait in one lane per webhook; a lane runs at most
//! `per_webhook` attempts at once and the node at most `global`, and lanes take turns, so a
//! slow or dead endpoint fills only its own lane and never holds up the others.
//!
//! A job starts only while its lease has room for a whole attempt; a job that waited too
//! long in a lane is given back instead (another node, or this one, claims it again), so
//! no delivery is ever attempted by two nodes at once.
//!
//! A lane holds at most [`MAX_QUEUED_PER_LANE`] jobs (plus one claim's share, at most the
//! per-webhook cap, queued ahead: [`Lanes::push_claimed`]), so an endpoint that stopped
//! answering costs bounded memory however long it stays down (its deliveries wait in the
//! database, not here): fan-out writes a full lane's new deliveries unleased
//! ([`Lanes::full`]), and jobs that arrive beyond the cap all the same (planned while the
//! lane filled up) are given back the same way. All lanes together hold about
//! [`MAX_QUEUED`] jobs: past it, fan-out counts every lane that has its share waiting
//! ([`NODE_FULL_SHARE`]) as full, so the memory a node spends on waiting jobs grows with
//! the number of busy webhooks by that share each, not by [`MAX_QUEUED_PER_LANE`].
//!
//! An endpoint that stops answering (no HTTP response: a timeout, a refused or reset
//! connection, a failed handshake) gets one attempt at a time until an attempt is answered
//! again ([`Endpoint`]). Each of its attempts holds a slot for up to the request timeout;
//! at full concurrency a handful of dead endpoints (32 with the defaults) held every slot
//! of the node, and each hung attempt only told us again what the first one had.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::store::DeliveryJob;

mod lane;
use lane::Lane;

/// Most jobs one lane keeps in memory. Handed-off deliveries of a dead endpoint would
/// otherwise pile up here for as long as it is down: the `slow-endpoint` bench's Herald
/// peaked at ~140 MiB against ~77 MiB without the dead endpoint.
pub const MAX_QUEUED_PER_LANE: usize = 1024;

/// Jobs all lanes together keep waiting, past which fan-out leaves the new deliveries of
/// every lane that has its share waiting ([`NODE_FULL_SHARE`]) in the database
/// ([`Lanes::full`]). Why: the per-lane bound alone let memory grow with the number of
/// busy webhooks by 1,024 jobs each — the `fanout-wide` bench (50 webhooks, changes
/// arriving faster than the machine sends) peaked at 213–230 MiB with ~51,000 jobs
/// waiting, and a node sending to a few hundred webhooks could hold gigabytes. Sixteen
/// lanes' worth keeps every slot of the default `global_concurrency` (256) fed many times
/// over. Lanes holding less than their share still take fresh jobs, so the bound can be
/// passed by at most that share per lane (plus what changes in flight planned before it
/// was reached, and a claim's rows, which [`Lanes::room`] bounds).
pub const MAX_QUEUED: usize = 16 * MAX_QUEUED_PER_LANE;

/// The most a lane's share may be while the node holds [`MAX_QUEUED`]; its share is as
/// many as it may run at once (so every webhook keeps its slots busy), at most this
/// (`per_webhook_concurrency` may be set as high as [`MAX_QUEUED_PER_LANE`], which would
/// leave the node's bound nothing to do).
pub const NODE_FULL_SHARE: usize = 64;

/// What a finished attempt learnt about its endpoint; it sets how many attempts the
/// webhook's lane may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// An HTTP response arrived, whatever its status: the lane runs at full concurrency.
    Answered,
    /// No response (timeout, connection refused or reset, TLS failure): the lane runs one
    /// attempt at a time until one is answered.
    Silent,
    /// The job was not sent (its lease ran short, the node is stopping, the SSRF policy
    /// refused the address): nothing learnt, nothing changes.
    Untried,
}

#[derive(Default)]
struct State {
    lanes: HashMap<Uuid, Lane>,
    /// Lanes with queued jobs and a free slot, in turn order.
    ready: VecDeque<Uuid>,
    /// Leases of running attempts, for a hard stop.
    running: HashMap<Uuid, String>,
    queued: usize,
    closed: bool,
    /// Webhooks whose last attempt got no answer ([`Endpoint::Silent`]). Kept apart from
    /// the lanes, which go when empty: the next job of a dead endpoint must still start
    /// alone. Bounded by the node's webhooks.
    silent: HashSet<Uuid>,
    /// A lane stopped being [`Lane::skipped`] since the last claim read its filters: a
    /// claim that found nothing but skipped lanes should look again.
    unskipped: bool,
    /// Webhooks whose endpoint answered 410 Gone, until the record disabling them is
    /// written ([`Lanes::forget_gone`]) or [`GONE_HOLD`] passes: their jobs are given back
    /// rather than started (each would get 410 and fail for good, where they should wait
    /// for the webhook to be enabled again) and claims leave them out.
    gone: HashMap<Uuid, Instant>,
}

/// Longest a 410's mark holds a webhook's jobs back ([`State::gone`]) while the record
/// disabling it waits to be written: a write that failed for good must not hold them for
/// ever.
const GONE_HOLD: Duration = Duration::from_secs(60);

impl State {
    /// Whether `webhook` answered 410 Gone and is not disabled in the database yet.
    fn is_gone(&self, webhook: &Uuid) -> bool {
        self.gone.get(webhook).is_some_and(|at| at.elapsed() < GONE_HOLD)
    }

    /// Attempts `webhook`'s lane may run at once.
    fn cap(&self, webhook: &Uuid, per_webhook: usize) -> usize {
        if self.silent.contains(webhook) {
            1
        } else {
            per_webhook
        }
    }

    /// Whether a claim leaves `webhook` (whose lane is `lane`) out: [`Lane::skipped`].
    fn skips(&self, webhook: &Uuid, lane: &Lane, per_webhook: usize) -> bool {
        lane.skipped(self.cap(webhook, per_webhook), self.silent.contains(webhook))
    }
}

/// The lanes; see the module docs.
pub struct Lanes {
    per_webhook: usize,
    global: usize,
    state: Mutex<State>,
    idle: Notify,
}

/// What [`Lanes::finish`] did.
pub struct Finished {
    /// Jobs that can start now.
    pub next: Vec<DeliveryJob>,
    /// The attempt was the first answer from a silent endpoint: fan-out left that
    /// webhook's new deliveries to claims meanwhile, so the claim loop should look now.
    pub recovered: bool,
}

impl Lanes {
    /// Lanes with the given caps (each at least 1).
    pub fn new(per_webhook: usize, global: usize) -> Self {
        Self {
            per_webhook: per_webhook.max(1),
            global: global.max(1),
            state: Mutex::default(),
            idle: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues fresh `jobs` (handed over by fan-out) at the back of their lanes; returns
    /// the ones to start now and the ones given back, for their leases to be released:
    /// all of them after [`Lanes::close`], otherwise those that found their lane full
    /// ([`MAX_QUEUED_PER_LANE`]).
    pub fn push(&self, jobs: Vec<DeliveryJob>) -> (Vec<DeliveryJob>, Vec<DeliveryJob>) {
        self.enqueue(jobs, false)
    }

    /// Queues claimed `jobs` ahead of their lanes' fresh jobs (after claimed ones already
    /// waiting), as [`Lanes::push`] otherwise. Why ahead: a claim takes due rows — retries,
    /// redeliveries, deliveries fan-out could not hand over — which were due before
    /// anything fan-out hands over now; behind a full lane they would also wait until
    /// their leases ran short. A lane takes a claim's jobs up to [`MAX_QUEUED_PER_LANE`]
    /// plus the per-webhook cap: a claim brings at most that cap of one webhook, and to a
    /// saturated lane only while none claimed wait there ([`Lane::skipped`]).
    pub fn push_claimed(&self, jobs: Vec<DeliveryJob>) -> (Vec<DeliveryJob>, Vec<DeliveryJob>) {
        self.enqueue(jobs, true)
    }

    fn enqueue(&self, jobs: Vec<DeliveryJob>, claimed: bool) -> (Vec<DeliveryJob>, Vec<DeliveryJob>) {
        let mut guard = self.lock();
        if guard.closed {
            return (Vec::new(), jobs);
        }
        let s = &mut *guard;
        let mut given_back = Vec::new();
        let limit = if claimed {
            MAX_QUEUED_PER_LANE + self.per_webhook
        } else {
            MAX_QUEUED_PER_LANE
        };
        for job in jobs {
            let w = job.target.webhook_id;
            if s.is_gone(&w) {
                given_back.push(job);
                continue;
            }
            let cap = s.cap(&w, self.per_webhook);
            let lane = s.lanes.entry(w).or_default();
            if lane.queue.len() >= limit {
                if !claimed {
                    lane.spill();
                }
                given_back.push(job);
                continue;
            }
            s.queued += 1;
            lane.dropped = false;
            if claimed {
                lane.queue.insert(lane.claimed, job);
                lane.claimed += 1;
            } else {
                lane.queue.push_back(job);
                if lane.spilled_at > 0 && lane.queue.len() > lane.spilled_at {
                    // Fan-out feeds it again: its due rows may be claimed ahead of these.
                    lane.spilled_at = 0;
                    s.unskipped = true;
                }
            }
            if !lane.in_ready && lane.running < cap {
                lane.in_ready = true;
                s.ready.push_back(w);
            }
        }
        (self.startable(s), given_back)
    }

    fn startable(&self, s: &mut State) -> Vec<DeliveryJob> {
        let mut out = Vec::new();
        while s.running.len() < self.global {
            let Some(w) = s.ready.pop_front() else { break };
            let cap = s.cap(&w, self.per_webhook);
            let silent = s.silent.contains(&w);
            let Some(lane) = s.lanes.get_mut(&w) else { continue };
            lane.in_ready = false;
            if lane.running >= cap {
                // Its endpoint went silent while it waited for a turn; the finish that
                // brings it under the cap puts it back.
                continue;
            }
            let skipped = lane.skipped(cap, silent);
            let next = loop {
                let claimed = lane.claimed > 0;
                let Some(job) = lane.queue.pop_front() else {
                    break None;
                };
                // A delivery already running here is never started twice: its finish
                // would take the other attempt out of `running` (keyed by delivery id).
                // A fresh copy is the stale one: fan-out's lease on a job deep in a long
                // lane can run out before it starts, and a claim then leases the delivery
                // again and queues it ahead, so it is dropped (one that comes up after the
                // claimed copy finished fails its lease check and gives back nothing). A
                // claimed copy is the newer one (its delivery was claimed again while an
                // older copy was finishing): it waits for that finish, which puts the
                // lane back in turn.
                if s.running.contains_key(&job.id) {
                    if claimed {
                        lane.queue.push_front(job);
                        break None;
                    }
                    s.queued -= 1;
                    continue;
                }
                lane.claimed = lane.claimed.saturating_sub(1);
                s.queued -= 1;
                break Some(job);
            };
            if lane.queue.len() <= lane.spilled_at / 2 {
                lane.spilled_at = 0;
            }
            s.unskipped |= skipped && !lane.skipped(cap, silent);
            let Some(job) = next else {
                continue;
            };
            lane.running += 1;
            if !lane.queue.is_empty() && lane.running < cap {
                lane.in_ready = true;
                s.ready.push_back(w);
            }
            s.running.insert(job.id, job.lease.token.clone());
            out.push(job);
        }
        out
    }

    /// Marks a started job finished with what it learnt about its `endpoint`.
    pub fn finish(&self, webhook: Uuid, id: Uuid, endpoint: Endpoint) -> Finished {
        let mut s = self.lock();
        s.running.remove(&id);
        let skipped = |s: &State| {
            s.lanes
                .get(&webhook)
                .is_some_and(|l| s.skips(&webhook, l, self.per_webhook))
        };
        let was_skipped = skipped(&s);
        let dropped = s.lanes.get(&webhook).is_some_and(|l| l.dropped);
        let changed = match endpoint {
            _ if dropped => false,
            Endpoint::Answered => s.silent.remove(&webhook),
            Endpoint::Silent => s.silent.insert(webhook),
            Endpoint::Untried => false,
        };
        let cap = s.cap(&webhook, self.per_webhook);
        if let Some(lane) = s.lanes.get_mut(&webhook) {
            lane.running = lane.running.saturating_sub(1);
            if lane.queue.is_empty() && lane.running == 0 {
                s.lanes.remove(&webhook);
            } else if !lane.in_ready && !lane.queue.is_empty() && lane.running < cap {
                lane.in_ready = true;
                s.ready.push_back(webhook);
            }
        }
        // Its endpoint answered again: the cap went up.
        s.unskipped |= was_skipped && !skipped(&s);
        let next = if s.closed {
            Vec::new()
        } else {
            self.startable(&mut s)
        };
        if s.running.is_empty() && s.queued == 0 {
            self.idle.notify_waiters();
        }
        drop(s);
        match (changed, endpoint) {
            (true, Endpoint::Silent) => tracing::warn!(
                webhook_id = %webhook,
                "endpoint not answering; its deliveries are attempted one at a time until it answers"
            ),
            (true, Endpoint::Answered) => tracing::info!(
                webhook_id = %webhook,
                "endpoint answering again; its deliveries run at full concurrency"
            ),
            _ => {}
        }
        Finished {
            next,
            recovered: changed && endpoint == Endpoint::Answered,
        }
    }

    /// As [`Lanes::drop_webhook`] for a webhook whose endpoint answered 410 Gone: until
    /// the record disabling it is written ([`Lanes::forget_gone`]), its new jobs are given
    /// back as they come and claims leave it out.
    pub fn drop_gone(&self, webhook: Uuid) -> Vec<DeliveryJob> {
        self.lock().gone.insert(webhook, Instant::now());
        self.drop_webhook(webhook)
    }

    /// Ends [`Lanes::drop_gone`]'s hold: the webhook is disabled in the database now (or
    /// deleted), so neither fan-out nor claims bring its jobs any more.
    pub fn forget_gone(&self, webhook: Uuid) {
        let mut s = self.lock();
        s.gone.remove(&webhook);
        s.gone.retain(|_, at| at.elapsed() < GONE_HOLD);
    }

    /// Removes a webhook's queued jobs (it was disabled or deleted); returns them.
    pub fn drop_webhook(&self, webhook: Uuid) -> Vec<DeliveryJob> {
        let mut s = self.lock();
        s.silent.remove(&webhook);
        let dropped: Vec<DeliveryJob> = match s.lanes.get_mut(&webhook) {
            Some(lane) => {
                lane.claimed = 0;
                lane.spilled_at = 0;
                lane.queue.drain(..).collect()
            }
            None => Vec::new(),
        };
        s.queued -= dropped.len();
        match s.lanes.get_mut(&webhook) {
            Some(lane) if lane.running == 0 => {
                s.lanes.remove(&webhook);
            }
            Some(lane) => lane.dropped = true,
            None => {}
        }
        dropped
    }

    /// Stops starting jobs; returns every queued one.
    pub fn close(&self) -> Vec<DeliveryJob> {
        let mut s = self.lock();
        s.closed = true;
        s.ready.clear();
        s.queued = 0;
        let mut out = Vec::new();
        for lane in s.lanes.values_mut() {
            lane.claimed = 0;
            out.extend(lane.queue.drain(..));
        }
        if s.running.is_empty() {
            self.idle.notify_waiters();
        }
        out
    }

    /// Those of `webhooks` whose lane is full ([`MAX_QUEUED_PER_LANE`], or its share
    /// waiting while the node holds [`MAX_QUEUED`]: [`NODE_FULL_SHARE`]) or whose endpoint
    /// is silent: fan-out does not lease their new deliveries but leaves them in the
    /// database. A full lane's [`Lanes::push`] would give the jobs back; a silent lane
    /// starts one attempt per request timeout, so jobs handed to it would mostly sit until
    /// their leases ran short and then be given back, a write each, over and over while the
    /// endpoint stays down. Claims feed a silent lane instead, one job at a time.
    /// Looks up only the webhooks asked about: fan-out asks once per event, with the lock
    /// the attempts also take.
    pub fn full(&self, webhooks: &mut dyn Iterator<Item = Uuid>) -> Vec<Uuid> {
        let mut guard = self.lock();
        let s = &mut *guard;
        // Past the node's bound a lane is full at its share; the lanes asked about here are
        // not silent (those are full anyway), so their cap is the per-webhook one.
        let limit = if s.queued >= MAX_QUEUED {
            self.per_webhook.min(NODE_FULL_SHARE)
        } else {
            MAX_QUEUED_PER_LANE
        };
        webhooks
            .filter(|w| {
                if s.silent.contains(w) {
                    return true;
                }
                match s.lanes.get_mut(w) {
                    Some(lane) if lane.queue.len() >= limit => {
                        lane.spill();
                        true
                    }
                    _ => false,
                }
            })
            .collect()
    }

    /// Attempts running plus jobs queued.
    pub fn load(&self) -> usize {
        let s = self.lock();
        s.running.len() + s.queued
    }

    /// Whether `webhook`'s last attempt got no answer.
    #[cfg(test)]
    fn is_silent(&self, webhook: Uuid) -> bool {
        self.lock().silent.contains(&webhook)
    }

    /// Webhooks whose last attempt got no answer, now attempted one at a time.
    pub fn silent_count(&self) -> usize {
        self.lock().silent.len()
    }

    /// How many more jobs a claim should fetch: enough to keep every slot busy for a
    /// while, not so many that they sit in lanes until their leases run short.
    ///
    /// Jobs queued in saturated lanes do not count: a claim skips those webhooks or
    /// brings them at most the per-webhook cap of jobs, ahead of the rest
    /// ([`Lane::skipped`]), so their queues never compete with what it fetches, and each
    /// lane is bounded on its own ([`MAX_QUEUED_PER_LANE`]). Counting them let one
    /// endpoint that stopped answering stop every claim on the node: its full lane alone
    /// was more than twice the global cap, so retries, redeliveries and ordered deliveries
    /// of every other webhook (all of which only a claim starts) waited until that lane
    /// drained.
    pub fn room(&self) -> usize {
        let s = self.lock();
        let waiting: usize = s
            .lanes
            .iter()
            .filter(|(w, l)| !l.saturated(s.cap(w, self.per_webhook)))
            .map(|(_, l)| l.queue.len())
            .sum();
        (self.global * 2).saturating_sub(s.running.len() + waiting)
    }

    /// Webhooks a claim leaves out ([`Lane::skipped`]).
    pub fn skipped(&self) -> Vec<Uuid> {
        self.claim_filters().0
    }

    /// What a claim leaves out and limits, read under one lock so that a lane cannot go
    /// silent between the two: the [`Lane::skipped`] webhooks, and those whose endpoint
    /// is silent and whose lane is not saturated (so it is empty), of which a claim takes
    /// at most one row — the one attempt such a lane runs next.
    pub fn claim_filters(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        let mut s = self.lock();
        s.unskipped = false;
        let skip = s
            .lanes
            .iter()
            .filter(|(w, l)| s.skips(w, l, self.per_webhook))
            .map(|(w, _)| *w)
            .chain(s.gone.keys().filter(|w| s.is_gone(w)).copied())
            .collect();
        let one_each = s
            .silent
            .iter()
            .filter(|w| {
                !s.lanes
                    .get(w)
                    .is_some_and(|l| l.saturated(s.cap(w, self.per_webhook)))
            })
            .copied()
            .collect();
        (skip, one_each)
    }

    /// Whether a lane stopped being [`Lane::skipped`] since the last claim read its
    /// filters ([`Lanes::claim_filters`]); clears the mark. Why a mark and not a count of
    /// skipped lanes: lanes start being skipped as often as they stop (claimed jobs
    /// queued, fan-out finding a lane full), so a lane freed while another was newly
    /// skipped left the count where it was, and its due rows waited for the poll.
    pub fn take_unskipped(&self) -> bool {
        std::mem::take(&mut self.lock().unskipped)
    }

    /// Leases of the attempts running now.
    pub fn running_leases(&self) -> Vec<(Uuid, String)> {
        self.lock()
            .running
            .iter()
            .map(|(id, t)| (*id, t.clone()))
            .collect()
    }

    /// Resolves once nothing runs or waits.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            {
                let s = self.lock();
                if s.running.is_empty() && s.queued == 0 {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Resolves once nothing runs (queued jobs are ignored: used after `close`).
    pub async fn none_running(&self) {
        loop {
            let notified = self.idle.notified();
            if self.lock().running.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// Shared so the engine and its tasks can hold it.
pub type SharedLanes = Arc<Lanes>;

#[cfg(test)]
mod spill_tests;
#[cfg(test)]
mod tests;
