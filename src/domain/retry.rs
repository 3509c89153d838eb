//! When to try a delivery again: one pure function, [`next_attempt`], from "what just happened"
//! to "what happens next". No clock, no randomness, no I/O inside — `now` and a random number
//! are passed in — so every rule below is pinned down by a table of unit tests.
//!
//! # Rules
//! - Any 2xx: [`Next::Done`].
//! - 410 Gone: the receiver says the endpoint is gone for good: give up and disable the webhook.
//! - Refused by the address policy (SSRF guard): give up at once; retrying cannot change the
//!   verdict, and hammering a refused address would be noise in the attempt log.
//! - Everything else (1xx, 3xx — redirects are never followed —, 4xx, 5xx, connect, timeout,
//!   TLS and redirect errors): retry after the schedule step for this attempt, ± jitter.
//! - After the last step's retry has failed: give up.
//!
//! # `Retry-After` (honoured on 429 and 503 only)
//! The delay becomes `max(scheduled, min(retry_after, cap))`, where `cap` is the *following*
//! schedule step (the one after the step this retry uses) and at most 24 h. So:
//! - it is **never earlier than the (jittered) schedule** would have retried: attempts are a budget sized
//!   to ride out about two days of outage, and a receiver answering `Retry-After: 0` in a loop
//!   must not burn that budget in seconds;
//! - a longer `Retry-After` is respected, but can push this retry out by at most one schedule
//!   step, so a receiver cannot park deliveries for days with one header;
//! - unparseable values and dates in the past count as absent (the schedule applies).
//!
//! Jitter applies to the scheduled delay (to spread a burst of failures), not to the time a
//! receiver asked for.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The retry delays used when configuration does not set one.
pub const DEFAULT_SCHEDULE: &str = "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h";

/// Default jitter: each scheduled delay is randomised within ±20%.
pub const DEFAULT_JITTER: f64 = 0.2;

/// A receiver's `Retry-After` never delays a retry beyond this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Longest single step a schedule may contain; longer is almost certainly a typo.
pub const MAX_STEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// Most steps a schedule may contain, bounding how long one delivery can stay pending.
pub const MAX_STEPS: usize = 100;

/// Why a retry schedule or jitter setting was rejected at config load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No steps at all.
    #[error("retry schedule is empty; give at least one delay, e.g. \"{DEFAULT_SCHEDULE}\"")]
    Empty,
    /// One step is not `<number><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
    #[error("retry schedule step {step} ({text:?}) is not a delay like \"30s\", \"2m\", \"1h\"")]
    BadStep {
        /// 1-based position of the step.
        step: usize,
        /// What was written there.
        text: String,
    },
    /// A zero-length step would retry in a hot loop.
    #[error("retry schedule step {step} is zero; the shortest delay is 1ms")]
    ZeroStep {
        /// 1-based position of the step.
        step: usize,
    },
    /// A step longer than [`MAX_STEP`].
    #[error("retry schedule step {step} is longer than 30 days")]
    StepTooLong {
        /// 1-based position of the step.
        step: usize,
    },
    /// More than [`MAX_STEPS`] steps.
    #[error("retry schedule has {0} steps; at most {MAX_STEPS} are allowed")]
    TooManySteps(usize),
    /// Jitter outside `0.0..=1.0`.
    #[error("retry jitter must be between 0.0 and 1.0, got {0}")]
    BadJitter(String),
}

/// The delays between attempts: step `i` is the wait after attempt `i + 1` failed, so a
/// schedule of `n` steps allows `n + 1` attempts in total.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    steps: Vec<Duration>,
}

impl Schedule {
    /// Builds a schedule from explicit delays, with the same checks as parsing.
    pub fn new(steps: Vec<Duration>) -> Result<Self, ScheduleError> {
        if steps.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if steps.len() > MAX_STEPS {
            return Err(ScheduleError::TooManySteps(steps.len()));
        }
        for (i, step) in steps.iter().enumerate() {
            if step.is_zero() {
                return Err(ScheduleError::ZeroStep { step: i + 1 });
            }
            if *step > MAX_STEP {
                return Err(ScheduleError::StepTooLong { step: i + 1 });
            }
        }
        Ok(Self { steps })
    }

    /// The delays, in order.
    pub fn steps(&self) -> &[Duration] {
        &self.steps
    }

    /// How many attempts a delivery gets before giving up (first try plus one per step).
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.steps.len() + 1).unwrap_or(u32::MAX)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        const H: u64 = 3600;
        let secs = [5, 30, 120, 600, 1800, H, 3 * H, 6 * H, 12 * H, 24 * H];
        Self {
            steps: secs.into_iter().map(Duration::from_secs).collect(),
        }
    }
}

/// Parses a config value such as `"5s,30s,2m,10m,30m,1h,3h,6h,12h,24h"` (units `ms`, `s`,
/// `m`, `h`, `d`; spaces around commas allowed).
pub fn parse_schedule(s: &str) -> Result<Schedule, ScheduleError> {
    if s.trim().is_empty() {
        return Err(ScheduleError::Empty);
    }
    let steps = s
        .split(',')
        .enumerate()
        .map(|(i, part)| {
            parse_step(part.trim()).ok_or_else(|| ScheduleError::BadStep {
                step: i + 1,
                text: part.trim().to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Schedule::new(steps)
}

fn parse_step(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(millis_per_unit)?))
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_schedule(s)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ScheduleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_schedule(&s)
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> Self {
        s.to_string()
    }
}

impl fmt::Display for Schedule {
    /// Round-trips through [`parse_schedule`], in the largest unit that divides each step.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let ms = step.as_millis();
            match ms {
                _ if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000)?,
                _ if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000)?,
                _ if ms % 1_000 == 0 => write!(f, "{}s", ms / 1_000)?,
                _ => write!(f, "{ms}ms")?,
            }
        }
        Ok(())
    }
}

/// The schedule plus how much to randomise it: everything [`next_attempt`] needs from config.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Schedule,
    jitter: f64,
}

impl RetryPolicy {
    /// `jitter` is a fraction in `0.0..=1.0`: 0.2 spreads each delay over ±20%.
    pub fn new(schedule: Schedule, jitter: f64) -> Result<Self, ScheduleError> {
        if !(0.0..=1.0).contains(&jitter) {
            return Err(ScheduleError::BadJitter(jitter.to_string()));
        }
        Ok(Self { schedule, jitter })
    }

    /// The delays between attempts.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: Schedule::default(),
            jitter: DEFAULT_JITTER,
        }
    }
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered with this status (2xx is success; everything else a failure).
    Status(u16),
    /// No usable response.
    Network(NetworkFailure),
}

/// The kinds of "no usable response" the delivery client distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkFailure {
    /// DNS failure, connection refused or reset, unreachable network.
    Connect,
    /// Connect or total timeout.
    Timeout,
    /// Handshake or certificate failure.
    Tls,
    /// The target address is refused by the SSRF policy; never retried.
    RefusedByPolicy,
    /// A redirect error (redirects are not followed, so this is rare).
    Redirect,
    /// Anything else the client reported.
    Other,
}

/// The attempt that just finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// 1-based number of the attempt just made (0 is treated as 1).
    pub number: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The raw `Retry-After` response header, if there was one.
    pub retry_after: Option<&'a str>,
}

/// Why a delivery will not be tried again although it never succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The receiver answered 410 Gone.
    Gone,
    /// The target address is refused by the SSRF policy.
    RefusedByPolicy,
    /// Every step of the schedule was used.
    Exhausted {
        /// Attempts made in total.
        attempts: u32,
    },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gone => f.write_str("receiver answered 410 Gone; webhook disabled"),
            Self::RefusedByPolicy => f.write_str("target address refused by policy"),
            Self::Exhausted { attempts } => write!(f, "gave up after {attempts} attempts"),
        }
    }
}

/// What happens to the delivery next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Done,
    /// Try again at this instant.
    RetryAt(OffsetDateTime),
    /// Stop trying.
    GiveUp(GiveUpReason),
}

/// The full verdict: the delivery's next step and whether its webhook should be disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The delivery's next step.
    pub next: Next,
    /// True only for 410 Gone: the receiver asked never to be called again.
    pub disable_webhook: bool,
}

impl Decision {
    fn next(next: Next) -> Self {
        Self {
            next,
            disable_webhook: false,
        }
    }
}

/// Decides what follows `attempt` under `policy`. `now` is when the attempt finished;
/// `random` is a uniform sample from `[0, 1)` (values outside are clamped) that drives jitter.
pub fn next_attempt(
    policy: &RetryPolicy,
    attempt: &Attempt<'_>,
    now: OffsetDateTime,
    random: f64,
) -> Decision {
    let number = attempt.number.max(1);
    let status = match attempt.outcome {
        AttemptOutcome::Status(s) if (200..300).contains(&s) => return Decision::next(Next::Done),
        AttemptOutcome::Status(410) => {
            return Decision {
                next: Next::GiveUp(GiveUpReason::Gone),
                disable_webhook: true,
            }
        }
        AttemptOutcome::Network(NetworkFailure::RefusedByPolicy) => {
            return Decision::next(Next::GiveUp(GiveUpReason::RefusedByPolicy))
        }
        AttemptOutcome::Status(s) => Some(s),
        AttemptOutcome::Network(_) => None,
    };

    let steps = policy.schedule.steps();
    let index = usize::try_from(number - 1).unwrap_or(usize::MAX);
    let Some(&scheduled) = steps.get(index) else {
        return Decision::next(Next::GiveUp(GiveUpReason::Exhausted { attempts: number }));
    };
    let mut delay = jittered(scheduled, policy.jitter, random);

    let honours_retry_after = matches!(status, Some(429 | 503));
    if let Some(asked) = attempt
        .retry_after
        .filter(|_| honours_retry_after)
        .and_then(|v| parse_retry_after(v, now))
    {
        let following = steps.get(index + 1).copied().unwrap_or(MAX_RETRY_AFTER);
        let cap = following.min(MAX_RETRY_AFTER).max(delay);
        delay = asked.clamp(delay, cap);
    }
    Decision::next(Next::RetryAt(now + delay))
}

/// Spreads `base` uniformly over `base × (1 ± jitter)`, to whole milliseconds.
fn jittered(base: Duration, jitter: f64, random: f64) -> Duration {
    let random = if random.is_nan() {
        0.5
    } else {
        random.clamp(0.0, 1.0)
    };
    let factor = 1.0 + jitter.clamp(0.0, 1.0) * (2.0 * random - 1.0);
    let millis = (base.as_millis() as f64 * factor).round();
    Duration::from_millis(millis.max(1.0) as u64)
}

/// Reads a `Retry-After` value: delta-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), as a wait from `now`. Dates in the past mean zero;
/// anything unparseable is `None` (treated as if the header were absent).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly long numbers: they are capped at 24h anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let imf_fixdate = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = PrimitiveDateTime::parse(value, imf_fixdate)
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(value, &Rfc2822))
        .ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
