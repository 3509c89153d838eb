use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::*;
use crate::store::{Lease, TargetRow};

pub(super) fn target() -> Arc<TargetRow> {
    Arc::new(TargetRow::example())
}

/// Finishes `job` with no answer from its endpoint; returns the jobs that start now.
pub(super) fn times_out(lanes: &Lanes, job: &DeliveryJob) -> Vec<DeliveryJob> {
    lanes.finish(job.target.webhook_id, job.id, Endpoint::Silent).next
}

pub(super) fn jobs(t: &Arc<TargetRow>, n: usize) -> Vec<DeliveryJob> {
    (0..n)
        .map(|_| DeliveryJob {
            id: Uuid::new_v4(),
            tenant_id: 1,
            event_type: "Project:Updated".into(),
            body: Bytes::from_static(b"{}"),
            format_headers: Vec::new().into(),
            attempts: 0,
            tries: 0,
            lease: Lease {
                token: "t".into(),
                until: i64::MAX,
            },
            target: Arc::clone(t),
        })
        .collect()
}

/// Fills `t`'s lane: `running` jobs start (the lane's cap), [`MAX_QUEUED_PER_LANE`] wait
/// behind them, and nothing has been given back yet. Returns the started ones.
pub(super) fn fill(lanes: &Lanes, t: &Arc<TargetRow>, running: usize) -> Vec<DeliveryJob> {
    let (started, _) = lanes.push(jobs(t, MAX_QUEUED_PER_LANE));
    assert_eq!(started.len(), running);
    let (_, given_back) = lanes.push(jobs(t, running));
    assert!(given_back.is_empty());
    assert_eq!(lanes.load(), running + MAX_QUEUED_PER_LANE);
    started
}

/// The attempts running in one lane, finished one at a time, oldest first, each answered;
/// the jobs each finish starts join them.
pub(super) struct Running<'a> {
    lanes: &'a Lanes,
    ids: VecDeque<(Uuid, Uuid)>,
}

impl<'a> Running<'a> {
    pub(super) fn new(lanes: &'a Lanes, started: &[DeliveryJob]) -> Self {
        let mut r = Self {
            lanes,
            ids: VecDeque::new(),
        };
        r.add(started);
        r
    }

    fn add(&mut self, jobs: &[DeliveryJob]) {
        self.ids.extend(jobs.iter().map(|j| (j.target.webhook_id, j.id)));
    }

    pub(super) fn finish_one(&mut self) {
        let (webhook, id) = self.ids.pop_front().expect("an attempt is running");
        let next = self.lanes.finish(webhook, id, Endpoint::Answered).next;
        self.add(&next);
    }
}

#[test]
fn a_webhook_never_gets_more_than_its_share_and_others_still_start() {
    let lanes = Lanes::new(2, 3);
    let (slow, fast) = (target(), target());
    let (started, _) = lanes.push(jobs(&slow, 5));
    assert_eq!(started.len(), 2, "per-webhook cap");
    let (started_fast, _) = lanes.push(jobs(&fast, 2));
    assert_eq!(started_fast.len(), 1, "global cap leaves one slot");
    assert!(
        lanes.skipped().is_empty(),
        "a lane full of fresh jobs still takes a claim's due rows"
    );
    lanes.push_claimed(jobs(&slow, 1));
    assert_eq!(
        lanes.skipped(),
        vec![slow.webhook_id],
        "claims skip a saturated lane with a claimed job waiting"
    );
    // A finished fast job frees a slot; the next fast job takes it, not a third slow one.
    let next = lanes
        .finish(fast.webhook_id, started_fast[0].id, Endpoint::Answered)
        .next;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].target.webhook_id, fast.webhook_id);
    assert_eq!(lanes.load(), 3 + 4);
}

#[test]
fn lanes_take_turns() {
    let lanes = Lanes::new(8, 1);
    let (a, b) = (target(), target());
    let (first, _) = lanes.push(jobs(&a, 3));
    lanes.push(jobs(&b, 3));
    let mut order = vec![first[0].target.webhook_id];
    let mut current = first[0].clone();
    for _ in 0..5 {
        let next = lanes
            .finish(current.target.webhook_id, current.id, Endpoint::Answered)
            .next;
        current = next[0].clone();
        order.push(current.target.webhook_id);
    }
    // `a` was first in line when `b` arrived; from then on they alternate.
    let (a, b) = (a.webhook_id, b.webhook_id);
    assert_eq!(order, [a, a, b, a, b, b]);
}

#[test]
fn close_returns_queued_jobs_and_refuses_new_ones() {
    let lanes = Lanes::new(1, 1);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 3));
    assert_eq!(started.len(), 1);
    assert_eq!(lanes.close().len(), 2);
    let (started, rejected) = lanes.push(jobs(&t, 2));
    assert!(started.is_empty());
    assert_eq!(rejected.len(), 2);
    assert_eq!(lanes.running_leases().len(), 1);
    assert!(lanes
        .finish(t.webhook_id, lanes.running_leases()[0].0, Endpoint::Answered)
        .next
        .is_empty());
    assert_eq!(lanes.load(), 0);
}

#[test]
fn dropping_a_webhook_returns_its_queue() {
    let lanes = Lanes::new(1, 4);
    let t = target();
    lanes.push(jobs(&t, 4));
    assert_eq!(lanes.drop_webhook(t.webhook_id).len(), 3);
    assert_eq!(lanes.load(), 1);
}

#[test]
fn after_a_410_the_webhooks_new_jobs_are_given_back_until_its_disable_is_written() {
    let lanes = Lanes::new(2, 8);
    let (gone, other) = (target(), target());
    let (started, _) = lanes.push(jobs(&gone, 3));
    assert_eq!(started.len(), 2);
    // The first attempt answered 410: its queue goes back with the disabling record.
    assert_eq!(lanes.drop_gone(gone.webhook_id).len(), 1);
    // Fan-out and claims bring more before that record is written: none start, and
    // claims leave the webhook out; other webhooks go on.
    let (started_now, given_back) = lanes.push_claimed(jobs(&gone, 2));
    assert!(started_now.is_empty());
    assert_eq!(given_back.len(), 2);
    let (started_now, given_back) = lanes.push(jobs(&other, 1));
    assert_eq!((started_now.len(), given_back.len()), (1, 0));
    assert_eq!(lanes.claim_filters().0, vec![gone.webhook_id]);
    // Written (the webhook is disabled in the database): the hold ends. Enabled again
    // later, its jobs start as before.
    lanes.forget_gone(gone.webhook_id);
    assert!(lanes.claim_filters().0.is_empty());
    lanes.finish(gone.webhook_id, started[0].id, Endpoint::Answered);
    lanes.finish(gone.webhook_id, started[1].id, Endpoint::Answered);
    let (started_now, given_back) = lanes.push(jobs(&gone, 1));
    assert_eq!((started_now.len(), given_back.len()), (1, 0));
}

#[test]
fn a_full_lane_gives_new_jobs_back_and_other_lanes_still_queue() {
    let lanes = Lanes::new(1, 1);
    let (dead, other) = (target(), Arc::new(TargetRow::example()));
    let n = MAX_QUEUED_PER_LANE + 6;
    let (started, given_back) = lanes.push(jobs(&dead, n));
    assert_eq!(started.len(), 1);
    assert_eq!(given_back.len(), 6, "the lane filled before anything started");
    assert_eq!(lanes.load(), MAX_QUEUED_PER_LANE);
    let (_, given_back) = lanes.push(jobs(&other, 3));
    assert!(given_back.is_empty(), "another webhook's lane has room");
    assert_eq!(lanes.load(), MAX_QUEUED_PER_LANE + 3);
}

#[test]
fn a_lane_is_full_until_one_of_its_jobs_starts() {
    let lanes = Lanes::new(1, 8);
    let (t, other) = (target(), target());
    let full = || lanes.full(&mut [t.webhook_id, other.webhook_id].into_iter());
    let (started, _) = lanes.push(jobs(&t, MAX_QUEUED_PER_LANE));
    assert!(
        full().is_empty(),
        "one job started: the queue holds one less than the cap"
    );
    lanes.push(jobs(&t, 1));
    assert_eq!(full(), vec![t.webhook_id]);
    lanes.push(jobs(&other, 2));
    assert_eq!(full(), vec![t.webhook_id], "another webhook's lane is not full");
    assert!(
        lanes.full(&mut std::iter::once(other.webhook_id)).is_empty(),
        "only the webhooks asked about are looked up"
    );
    let next = lanes.finish(t.webhook_id, started[0].id, Endpoint::Answered).next;
    assert_eq!(next.len(), 1);
    assert!(full().is_empty(), "the next job started and made room");
}

#[test]
fn a_saturated_lane_leaves_room_for_claims_of_other_webhooks() {
    let lanes = Lanes::new(2, 4);
    let (dead, other) = (target(), target());
    let (started, given_back) = lanes.push(jobs(&dead, MAX_QUEUED_PER_LANE));
    assert_eq!((started.len(), given_back.len()), (2, 0));
    assert!(
        lanes.skipped().is_empty(),
        "claims still bring it due rows, ahead"
    );
    assert_eq!(
        lanes.room(),
        4 * 2 - 2,
        "the dead endpoint's queue takes no room; its running attempts do"
    );
    let (started, _) = lanes.push(jobs(&other, 3));
    assert_eq!(started.len(), 2, "two global slots were left");
    assert_eq!(lanes.room(), 8 - 4 - 1, "an unsaturated lane's queued job counts");
    lanes.push(jobs(&other, 1));
    assert_eq!(
        lanes.room(),
        8 - 4,
        "once saturated, its queue is skipped by claims too"
    );
}

#[test]
fn an_endpoint_that_stops_answering_gets_one_attempt_at_a_time_until_it_answers() {
    let lanes = Lanes::new(4, 16);
    let (dead, other) = (target(), target());
    let (started, _) = lanes.push(jobs(&dead, 10));
    assert_eq!(started.len(), 4, "full concurrency while nothing is known");
    // The four hung attempts time out one after another: none frees a slot for the queue.
    for (i, job) in started.iter().enumerate().take(3) {
        let next = times_out(&lanes, job);
        assert!(next.is_empty(), "timeout {i}: still more running than one");
    }
    assert_eq!(lanes.silent_count(), 1);
    assert!(lanes.is_silent(dead.webhook_id) && !lanes.is_silent(other.webhook_id));
    let next = times_out(&lanes, &started[3]);
    assert_eq!(next.len(), 1, "the last one out lets exactly one probe start");
    // Other webhooks are not affected.
    let (started_other, _) = lanes.push(jobs(&other, 5));
    assert_eq!(started_other.len(), 4);
    // The lane empties and goes; the endpoint is still known to be silent.
    let mut probe = next[0].clone();
    for _ in 0..5 {
        let next = times_out(&lanes, &probe);
        assert_eq!(next.len(), 1, "one probe at a time");
        probe = next[0].clone();
    }
    assert!(times_out(&lanes, &probe).is_empty());
    assert_eq!(
        lanes.full(&mut [dead.webhook_id, other.webhook_id].into_iter()),
        vec![dead.webhook_id],
        "fan-out leaves a silent endpoint's new deliveries to claims"
    );
    let (started, _) = lanes.push(jobs(&dead, 6));
    assert_eq!(started.len(), 1, "a new job of a silent endpoint starts alone");
    // An answer (any status) restores full concurrency at once.
    let finished = lanes.finish(dead.webhook_id, started[0].id, Endpoint::Answered);
    assert!(finished.recovered, "the first answer wakes the claim loop");
    let next = finished.next;
    assert_eq!(next.len(), 4);
    assert!(next.iter().all(|j| j.target.webhook_id == dead.webhook_id));
    assert_eq!(lanes.silent_count(), 0);
    assert!(!lanes.is_silent(dead.webhook_id));
    assert!(lanes.full(&mut std::iter::once(dead.webhook_id)).is_empty());
}

#[test]
fn an_untried_job_changes_nothing_and_a_dropped_webhook_is_forgotten() {
    let lanes = Lanes::new(3, 16);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 4));
    assert!(times_out(&lanes, &started[0]).is_empty());
    let next = lanes.finish(t.webhook_id, started[1].id, Endpoint::Untried).next;
    assert!(next.is_empty(), "still silent: one running is the cap");
    assert_eq!(lanes.silent_count(), 1);
    lanes.drop_webhook(t.webhook_id);
    assert_eq!(lanes.silent_count(), 0, "re-enabled, it starts afresh");
    // The attempt still running when the webhook was dropped times out afterwards: that
    // does not mark the dropped webhook silent again.
    assert!(times_out(&lanes, &started[2]).is_empty());
    assert_eq!(lanes.silent_count(), 0);
    let (started, _) = lanes.push(jobs(&t, 3));
    assert_eq!(started.len(), 3, "re-enabled at full concurrency");
}

#[test]
fn claims_skip_a_silent_lane_with_one_job_waiting() {
    let lanes = Lanes::new(4, 16);
    let (dead, other) = (target(), target());
    let (started, _) = lanes.push(jobs(&dead, 1));
    assert!(times_out(&lanes, &started[0]).is_empty());
    let (probe, _) = lanes.push(jobs(&dead, 1));
    assert_eq!(probe.len(), 1);
    assert!(lanes.skipped().is_empty(), "nothing waits behind the probe");
    assert_eq!(
        lanes.claim_filters(),
        (Vec::new(), vec![dead.webhook_id]),
        "an empty silent lane: a claim takes one row of it"
    );
    lanes.push(jobs(&dead, 1));
    lanes.push(jobs(&other, 1));
    assert_eq!(
        lanes.skipped(),
        vec![dead.webhook_id],
        "one job waiting is as many as a silent lane runs: claims skip it"
    );
    assert_eq!(
        lanes.claim_filters(),
        (vec![dead.webhook_id], Vec::new()),
        "skipped, so not limited to one row either; an answering lane never is"
    );
    assert_eq!(lanes.skipped().len(), 1);
    assert_eq!(
        lanes.room(),
        16 * 2 - 2,
        "two running (the probe, other's job); the silent lane's waiting job takes no room"
    );
}

#[test]
fn a_lane_waiting_for_a_global_slot_respects_a_cap_lowered_meanwhile() {
    let lanes = Lanes::new(3, 3);
    let (t, other) = (target(), target());
    let (started, _) = lanes.push(jobs(&t, 2));
    assert_eq!(started.len(), 2);
    let (started_other, _) = lanes.push(jobs(&other, 1));
    assert_eq!(started_other.len(), 1, "the global cap is now full");
    lanes.push(jobs(&t, 2));
    // One of t's attempts times out: t may run one at a time, and still runs one.
    let next = times_out(&lanes, &started[0]);
    assert!(
        next.is_empty(),
        "t's turn in the queue must not start a second attempt"
    );
    let next = lanes
        .finish(other.webhook_id, started_other[0].id, Endpoint::Answered)
        .next;
    assert!(next.is_empty(), "a free global slot does not lift t's cap either");
    let next = times_out(&lanes, &started[1]);
    assert_eq!(next.len(), 1, "t's last attempt ended: the next starts");
}

#[test]
fn claimed_jobs_start_ahead_of_fresh_ones_in_the_order_claimed() {
    let lanes = Lanes::new(1, 4);
    let t = target();
    let fresh = jobs(&t, 3);
    let fresh_ids: Vec<Uuid> = fresh.iter().map(|j| j.id).collect();
    let (started, _) = lanes.push(fresh);
    assert_eq!(started.len(), 1);
    let claimed = jobs(&t, 2);
    let claimed_ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    let (started, given_back) = lanes.push_claimed(claimed);
    assert!(started.is_empty() && given_back.is_empty());
    let mut order = Vec::new();
    let mut current = fresh_ids[0];
    for _ in 0..4 {
        let next = lanes.finish(t.webhook_id, current, Endpoint::Answered).next;
        assert_eq!(next.len(), 1);
        current = next[0].id;
        order.push(current);
    }
    assert_eq!(
        order,
        [claimed_ids[0], claimed_ids[1], fresh_ids[1], fresh_ids[2]],
        "due rows first, then fresh jobs, each in their own order"
    );
}

#[test]
fn a_lane_is_skipped_while_claimed_jobs_wait_in_it() {
    let lanes = Lanes::new(2, 8);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 10));
    assert!(lanes.skipped().is_empty(), "only fresh jobs wait");
    let (none, _) = lanes.push_claimed(jobs(&t, 2));
    assert!(none.is_empty());
    assert_eq!(lanes.skipped(), vec![t.webhook_id]);
    let next = lanes.finish(t.webhook_id, started[0].id, Endpoint::Answered).next;
    assert_eq!(lanes.skipped(), vec![t.webhook_id], "one claimed job still waits");
    lanes.finish(t.webhook_id, next[0].id, Endpoint::Answered);
    assert!(
        lanes.skipped().is_empty(),
        "both claimed jobs started: the next claim may bring more"
    );
}

#[test]
fn a_full_lane_takes_a_claims_worth_beyond_its_cap() {
    let lanes = Lanes::new(2, 8);
    let t = target();
    fill(&lanes, &t, 2);
    let (_, given_back) = lanes.push(jobs(&t, 1));
    assert_eq!(given_back.len(), 1, "fresh jobs stop at the cap");
    let (started, given_back) = lanes.push_claimed(jobs(&t, 3));
    assert!(started.is_empty());
    assert_eq!(given_back.len(), 1, "a claim brings at most the per-webhook cap");
    assert_eq!(lanes.load(), 2 + MAX_QUEUED_PER_LANE + 2);
}

#[test]
fn dropping_or_closing_forgets_claimed_jobs() {
    let lanes = Lanes::new(1, 8);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 2));
    lanes.push_claimed(jobs(&t, 1));
    assert_eq!(lanes.drop_webhook(t.webhook_id).len(), 2);
    lanes.finish(t.webhook_id, started[0].id, Endpoint::Answered);
    let (started, _) = lanes.push(jobs(&t, 2));
    assert_eq!(started.len(), 1);
    assert!(lanes.skipped().is_empty(), "no claimed job left counted");
    lanes.push_claimed(jobs(&t, 1));
    assert_eq!(lanes.close().len(), 2);
}

#[test]
fn a_stale_copy_of_a_running_job_is_dropped_instead_of_started() {
    let lanes = Lanes::new(2, 8);
    let t = target();
    let fresh = jobs(&t, 4);
    let (started, _) = lanes.push(fresh.clone());
    assert_eq!(started.len(), 2);
    // The last fresh job's lease ran out while it waited; a claim leased it again.
    let mut again = fresh[3].clone();
    again.lease.token = "claim".into();
    lanes.push_claimed(vec![again]);
    let next = lanes.finish(t.webhook_id, fresh[0].id, Endpoint::Answered).next;
    assert_eq!((next[0].id, next[0].lease.token.as_str()), (fresh[3].id, "claim"));
    let next = lanes.finish(t.webhook_id, fresh[1].id, Endpoint::Answered).next;
    assert_eq!(next[0].id, fresh[2].id);
    // The stale copy comes up while the claimed one runs: dropped, not started.
    let next = lanes.finish(t.webhook_id, fresh[2].id, Endpoint::Answered).next;
    assert!(next.is_empty());
    assert_eq!(lanes.load(), 1, "the claimed copy, running; nothing queued");
    assert_eq!(lanes.running_leases(), vec![(fresh[3].id, "claim".to_owned())]);
    lanes.finish(t.webhook_id, fresh[3].id, Endpoint::Answered);
    assert_eq!(lanes.load(), 0);
}

#[test]
fn a_lane_that_stops_being_skipped_is_marked_for_the_claim_loop() {
    let lanes = Lanes::new(1, 8);
    let (a, b) = (target(), target());
    let (started, _) = lanes.push(jobs(&a, 2));
    lanes.push_claimed(jobs(&a, 1));
    let (skip, _) = lanes.claim_filters();
    assert_eq!(
        skip,
        vec![a.webhook_id],
        "a claim reads its filters: a is skipped"
    );
    // Another lane becomes skipped meanwhile: a count of skipped lanes would not move
    // when a stops being skipped below.
    lanes.push(jobs(&b, 2));
    lanes.push_claimed(jobs(&b, 1));
    assert!(!lanes.take_unskipped(), "lanes only became skipped");
    let next = lanes.finish(a.webhook_id, started[0].id, Endpoint::Answered).next;
    assert_eq!(next.len(), 1, "a's claimed job starts; a fresh one still waits");
    assert!(lanes.take_unskipped(), "a is no longer skipped");
    assert!(!lanes.take_unskipped(), "taken once");
    assert_eq!(lanes.skipped(), vec![b.webhook_id]);
}

#[test]
fn a_claimed_copy_waits_for_an_older_copy_still_finishing() {
    let lanes = Lanes::new(2, 8);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 1));
    // Its retry came due and was claimed before this attempt's finish was counted.
    let mut again = started[0].clone();
    again.lease.token = "claim".into();
    let (now, _) = lanes.push_claimed(vec![again]);
    assert!(now.is_empty(), "not started beside the copy still running");
    assert_eq!(lanes.load(), 2);
    let next = lanes.finish(t.webhook_id, started[0].id, Endpoint::Answered).next;
    assert_eq!(
        (next[0].id, next[0].lease.token.as_str()),
        (started[0].id, "claim"),
        "started once the older copy finished"
    );
    lanes.finish(t.webhook_id, next[0].id, Endpoint::Answered);
    assert_eq!(lanes.load(), 0);
}
