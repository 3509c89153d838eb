//! One webhook's lane: its waiting jobs (claimed ones first), how many run, and whether
//! fan-out found it full ([`Lane::spilled_at`]). The rules across lanes (turns, caps,
//! the node's bound) live in [`super::Lanes`].

use std::collections::VecDeque;

use crate::store::DeliveryJob;

#[derive(Default)]
pub(super) struct Lane {
    pub(super) queue: VecDeque<DeliveryJob>,
    /// How many jobs at the front of `queue` came from a claim (see [`super::Lanes::push_claimed`]).
    pub(super) claimed: usize,
    /// How many jobs waited when fan-out found the lane full ([`super::Lanes::full`], or a fresh
    /// job given back); 0 when it has not, once the lane has drained to half that, and
    /// once fan-out has fed it past that again (the node fell under its bound). While
    /// set, fan-out is (or was just) leaving this webhook's new deliveries in the
    /// database, and claims skip the lane when saturated ([`Lane::skipped`]). Half of what
    /// it held, not of [`super::MAX_QUEUED_PER_LANE`]: a lane found full under the node's bound
    /// ([`super::MAX_QUEUED`]) holds fewer, and would stop being skipped at its next start.
    pub(super) spilled_at: usize,
    pub(super) running: usize,
    pub(super) in_ready: bool,
    /// The webhook was dropped (disabled, deleted) while attempts of its were running:
    /// what those attempts learn about the endpoint no longer counts.
    pub(super) dropped: bool,
}

impl Lane {
    /// As many queued as the lane may run at once (`cap`: [`super::State::cap`]): its queue
    /// takes none of a claim's room ([`super::Lanes::room`]), and a claim brings it due rows only
    /// while it is not [`Lane::skipped`]. A silent endpoint's lane (cap 1) is saturated
    /// with one job waiting, and then skipped: it starts one per request timeout, and more
    /// would wait until their leases ran short and be given back.
    pub(super) fn saturated(&self, cap: usize) -> bool {
        self.queue.len() >= cap
    }

    /// Whether a claim leaves this webhook out: its lane is [`Lane::saturated`] and its
    /// endpoint is silent, claimed jobs already wait at its front, or it is spilling
    /// ([`Lane::spilled_at`]).
    ///
    /// A saturated lane of an answering endpoint with none claimed waiting takes up to the
    /// per-webhook cap of due rows, ahead of its fresh jobs: otherwise, while fan-out keeps
    /// such a lane saturated (a busy webhook whose endpoint answers a little slower than
    /// changes arrive), its retries and redeliveries would wait until the changes stopped.
    ///
    /// Why not a spilling lane: fan-out is then leaving that webhook's new deliveries in
    /// the database, so every claimed job it runs first pushes one more fresh delivery
    /// there, to be claimed later — a lease write and a read that handing it over saved.
    /// Measured in `fanout-wide` (50 webhooks, more changes than the machine can send):
    /// claiming into such lanes doubled the claiming thread's CPU and cost 10–20 % of the
    /// throughput, in every interleaved pair; skipping only lanes full at the moment of
    /// the claim did not help (a lane that fan-out keeps full is one short of it whenever
    /// an attempt has just started). While the lane spills, due rows wait as fresh
    /// deliveries left in the database do: the node is over capacity, and both go once
    /// it catches up.
    pub(super) fn skipped(&self, cap: usize, silent: bool) -> bool {
        self.saturated(cap) && (silent || self.claimed > 0 || self.spilled_at > 0)
    }

    /// Marks the lane found full with what waits in it now (see [`Lane::spilled_at`]);
    /// a lane is found full only with jobs waiting, so the mark is never 0.
    pub(super) fn spill(&mut self) {
        self.spilled_at = self.spilled_at.max(self.queue.len());
    }
}
