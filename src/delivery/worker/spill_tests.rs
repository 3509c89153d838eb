//! The lanes under pressure: a lane fan-out found full ([`super::MAX_QUEUED_PER_LANE`])
//! and the node's bound on all lanes together ([`super::MAX_QUEUED`]) — when fan-out
//! leaves deliveries in the database, and when claims skip a lane.

use std::sync::Arc;

use super::tests::{fill, jobs, target, Running};
use super::*;
use crate::store::TargetRow;

#[test]
fn a_lane_that_filled_up_is_skipped_until_half_drained() {
    let lanes = Lanes::new(2, 8);
    let t = target();
    let started = fill(&lanes, &t, 2);
    assert!(
        lanes.skipped().is_empty(),
        "full, but fan-out has not found it so: claims still bring due rows"
    );
    assert_eq!(lanes.full(&mut [t.webhook_id].into_iter()), vec![t.webhook_id]);
    assert_eq!(
        lanes.skipped(),
        vec![t.webhook_id],
        "fan-out leaves its new deliveries in the database: claims leave it be"
    );
    let mut running = Running::new(&lanes, &started);
    running.finish_one();
    assert!(lanes.full(&mut [t.webhook_id].into_iter()).is_empty());
    assert_eq!(
        lanes.skipped(),
        vec![t.webhook_id],
        "one short of full still spills"
    );
    while lanes.load() - 2 > MAX_QUEUED_PER_LANE / 2 + 1 {
        running.finish_one();
    }
    assert_eq!(lanes.skipped(), vec![t.webhook_id], "not yet half drained");
    running.finish_one();
    assert!(
        lanes.skipped().is_empty(),
        "half drained: claims bring due rows again"
    );
}

#[test]
fn a_fresh_job_given_back_marks_its_lane_spilling() {
    let lanes = Lanes::new(1, 8);
    let t = target();
    fill(&lanes, &t, 1);
    assert!(lanes.skipped().is_empty(), "full, nothing given back yet");
    let (_, given_back) = lanes.push(jobs(&t, 1));
    assert_eq!(given_back.len(), 1);
    assert_eq!(lanes.skipped(), vec![t.webhook_id]);
}

#[test]
fn past_the_nodes_bound_every_lane_with_its_share_waiting_counts_as_full() {
    let lanes = Lanes::new(2, 64);
    let full_lanes: Vec<Arc<TargetRow>> = (0..MAX_QUEUED / MAX_QUEUED_PER_LANE).map(|_| target()).collect();
    for t in &full_lanes {
        assert_eq!(lanes.push(jobs(t, MAX_QUEUED_PER_LANE)).0.len(), 2);
        assert!(lanes.push(jobs(t, 2)).1.is_empty(), "{MAX_QUEUED_PER_LANE} wait");
    }
    let (busy, light, new) = (target(), target(), target());
    assert_eq!(lanes.push(jobs(&busy, 2 + 2)).0.len(), 2, "two start, two wait");
    assert_eq!(lanes.push(jobs(&light, 2 + 1)).0.len(), 2, "two start, one waits");
    let asked = [busy.webhook_id, light.webhook_id, new.webhook_id];
    assert_eq!(
        lanes.full(&mut asked.into_iter()),
        vec![busy.webhook_id],
        "the node holds its bound: a lane with its running share waiting is full, one with \
         less (or none yet) still takes fresh jobs, so every webhook keeps its slots busy"
    );
    assert_eq!(lanes.skipped(), vec![busy.webhook_id], "and claims leave it be");
    // Below the bound again (one full lane's jobs taken back), a saturated lane is full
    // only by its own bound, but one found full keeps spilling until half drained or fed
    // past what it held.
    assert_eq!(
        lanes.drop_webhook(full_lanes[0].webhook_id).len(),
        MAX_QUEUED_PER_LANE
    );
    assert!(lanes.full(&mut [light.webhook_id].into_iter()).is_empty());
    lanes.push(jobs(&light, 1));
    assert!(
        lanes.full(&mut [light.webhook_id].into_iter()).is_empty(),
        "saturated, but the node is under its bound"
    );
    assert_eq!(lanes.skipped(), vec![busy.webhook_id]);
    lanes.take_unskipped();
    let (started, given_back) = lanes.push(jobs(&busy, 1));
    assert!(started.is_empty() && given_back.is_empty());
    assert!(lanes.take_unskipped(), "the claim loop is told");
    assert!(
        lanes.skipped().is_empty(),
        "fan-out fed it past what it held when found full: claims may bring its due rows again"
    );
}

/// Fills `lanes` (per-webhook cap `cap`, global cap at least 16 × `cap`) to the node's
/// bound: [`MAX_QUEUED_PER_LANE`] waiting in each of 16 lanes.
fn fill_node(lanes: &Lanes, cap: usize) {
    for _ in 0..MAX_QUEUED / MAX_QUEUED_PER_LANE {
        let t = target();
        let (started, _) = lanes.push(jobs(&t, MAX_QUEUED_PER_LANE));
        assert!(lanes.push(jobs(&t, started.len())).1.is_empty());
        assert_eq!(started.len(), cap);
    }
    assert_eq!(lanes.load(), 16 * cap + MAX_QUEUED);
}

#[test]
fn a_lane_found_full_under_the_nodes_bound_spills_until_half_of_what_it_held() {
    let lanes = Lanes::new(2, 64);
    fill_node(&lanes, 2);
    let t = target();
    let (started, _) = lanes.push(jobs(&t, 2 + 4));
    assert_eq!(lanes.full(&mut [t.webhook_id].into_iter()), vec![t.webhook_id]);
    let mut running = Running::new(&lanes, &started);
    running.finish_one();
    assert_eq!(lanes.skipped(), vec![t.webhook_id], "3 of the 4 it held wait");
    running.finish_one();
    assert!(lanes.skipped().is_empty(), "2 of 4 wait: half drained");
}

#[test]
fn under_the_nodes_bound_a_lane_allowed_many_at_once_is_full_at_its_node_share() {
    let lanes = Lanes::new(MAX_QUEUED_PER_LANE, 16 * MAX_QUEUED_PER_LANE);
    fill_node(&lanes, MAX_QUEUED_PER_LANE);
    let (under, at) = (target(), target());
    // Every global slot is taken: none of these start, all wait.
    assert!(lanes.push(jobs(&under, NODE_FULL_SHARE - 1)).0.is_empty());
    assert!(lanes.push(jobs(&at, NODE_FULL_SHARE)).0.is_empty());
    assert_eq!(
        lanes.full(&mut [under.webhook_id, at.webhook_id].into_iter()),
        vec![at.webhook_id],
        "not saturated (it may run {MAX_QUEUED_PER_LANE}), but it has its share of the node waiting"
    );
}
