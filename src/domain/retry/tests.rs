//! Table-driven tests for the retry rules and schedule parsing.

use super::*;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2024-05-01 12:00:00 UTC);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn retry_in(d: Duration) -> Decision {
    Decision {
        next: Next::RetryAt(NOW + d),
        disable_webhook: false,
    }
}

fn give_up(reason: GiveUpReason) -> Decision {
    Decision {
        next: Next::GiveUp(reason),
        disable_webhook: false,
    }
}

const DONE: Decision = Decision {
    next: Next::Done,
    disable_webhook: false,
};

fn http_date(at: OffsetDateTime) -> String {
    let f = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.format(f).unwrap()
}

#[test]
fn decisions_without_jitter() {
    use AttemptOutcome::{Network, Status};
    use NetworkFailure::*;
    const H: u64 = 3600;
    let in_90s = http_date(NOW + secs(90));
    let an_hour_ago = http_date(NOW - secs(H));
    #[rustfmt::skip]
    let cases: Vec<(&str, u32, AttemptOutcome, Option<&str>, Decision)> = vec![
        ("200 is done",                    1, Status(200), None, DONE),
        ("204 on the last attempt",       11, Status(204), None, DONE),
        ("299 is still 2xx",               3, Status(299), None, DONE),
        ("410 gives up and disables",      1, Status(410), None,
            Decision { next: Next::GiveUp(GiveUpReason::Gone), disable_webhook: true }),
        ("410 after the schedule too",    11, Status(410), None,
            Decision { next: Next::GiveUp(GiveUpReason::Gone), disable_webhook: true }),
        ("policy refusal never retries",   1, Network(RefusedByPolicy), None,
            give_up(GiveUpReason::RefusedByPolicy)),
        ("500 → first step",               1, Status(500), None, retry_in(secs(5))),
        ("500 → second step",              2, Status(500), None, retry_in(secs(30))),
        ("302 is a failure, retried",      1, Status(302), None, retry_in(secs(5))),
        ("1xx is a failure",               1, Status(100), None, retry_in(secs(5))),
        ("404 retried",                    3, Status(404), None, retry_in(secs(120))),
        ("connect error",                  4, Network(Connect), None, retry_in(secs(600))),
        ("timeout",                        5, Network(Timeout), None, retry_in(secs(1800))),
        ("tls",                            6, Network(Tls), None, retry_in(secs(H))),
        ("redirect error",                 7, Network(Redirect), None, retry_in(secs(3 * H))),
        ("other error",                    8, Network(Other), None, retry_in(secs(6 * H))),
        ("ninth failure → 12h",            9, Status(500), None, retry_in(secs(12 * H))),
        ("tenth failure → 24h",           10, Status(500), None, retry_in(secs(24 * H))),
        ("eleventh failure gives up",     11, Status(500), None,
            give_up(GiveUpReason::Exhausted { attempts: 11 })),
        ("far past the schedule",         50, Network(Timeout), None,
            give_up(GiveUpReason::Exhausted { attempts: 50 })),
        ("attempt 0 counts as 1",          0, Status(500), None, retry_in(secs(5))),
        // Retry-After on 429/503: clamp(asked, scheduled, following step ∧ 24h).
        ("503 RA between steps",           1, Status(503), Some("20"), retry_in(secs(20))),
        ("503 RA capped at next step",     1, Status(503), Some("120"), retry_in(secs(30))),
        ("429 RA shorter than schedule",   1, Status(429), Some("1"), retry_in(secs(5))),
        ("429 RA zero",                    1, Status(429), Some("0"), retry_in(secs(5))),
        ("429 RA later step",              3, Status(429), Some("300"), retry_in(secs(300))),
        ("429 RA on last step, 2 days",   10, Status(429), Some("172800"), retry_in(secs(24 * H))),
        ("429 RA capped at 24h",           9, Status(429), Some("259200"), retry_in(secs(24 * H))),
        ("429 RA with spaces",             2, Status(429), Some(" 45 "), retry_in(secs(45))),
        ("429 RA huge number saturates",   2, Status(429), Some("99999999999999999999999"),
            retry_in(secs(120))),
        ("503 RA http-date, capped",       1, Status(503), Some(&in_90s), retry_in(secs(30))),
        ("503 RA http-date, honoured",     2, Status(503), Some(&in_90s), retry_in(secs(90))),
        ("503 RA date in the past",        1, Status(503), Some(&an_hour_ago), retry_in(secs(5))),
        ("503 RA garbage ignored",         1, Status(503), Some("soon"), retry_in(secs(5))),
        ("503 RA negative ignored",        2, Status(503), Some("-5"), retry_in(secs(30))),
        ("500 RA ignored",                 1, Status(500), Some("20"), retry_in(secs(5))),
        ("timeout RA ignored",             1, Network(Timeout), Some("20"), retry_in(secs(5))),
        ("429 RA after schedule: give up",11, Status(429), Some("5"),
            give_up(GiveUpReason::Exhausted { attempts: 11 })),
    ];
    let policy = RetryPolicy::default();
    for (name, number, outcome, retry_after, expected) in cases {
        let attempt = Attempt {
            number,
            outcome,
            retry_after,
        };
        assert_eq!(
            next_attempt(&policy, &attempt, NOW, 0.5),
            expected,
            "case: {name}"
        );
    }
}

fn delay_of(decision: Decision) -> Duration {
    match decision.next {
        Next::RetryAt(at) => Duration::try_from(at - NOW).unwrap(),
        other => panic!("expected a retry, got {other:?}"),
    }
}

fn failed(number: u32, retry_after: Option<&str>) -> Attempt<'_> {
    Attempt {
        number,
        outcome: AttemptOutcome::Status(503),
        retry_after,
    }
}

#[test]
fn jitter_spreads_within_the_fraction() {
    let policy = RetryPolicy::default();
    #[rustfmt::skip]
    let cases = [
        (0.0,   Duration::from_millis(4_000)),
        (0.25,  Duration::from_millis(4_500)),
        (0.5,   Duration::from_millis(5_000)),
        (0.75,  Duration::from_millis(5_500)),
        (0.999, Duration::from_millis(5_998)),
        (-3.0,  Duration::from_millis(4_000)),   // clamped
        (7.0,   Duration::from_millis(6_000)),   // clamped
        (f64::NAN, Duration::from_millis(5_000)),
    ];
    for (random, expected) in cases {
        let d = delay_of(next_attempt(&policy, &failed(1, None), NOW, random));
        assert_eq!(d, expected, "random {random}");
    }
    for i in 0..1000 {
        let random = f64::from(i) / 1000.0;
        for number in 1..=10 {
            let step = policy.schedule().steps()[number as usize - 1];
            let d = delay_of(next_attempt(&policy, &failed(number, None), NOW, random));
            let (lo, hi) = (step.mul_f64(0.8), step.mul_f64(1.2));
            let ms = Duration::from_millis(1);
            assert!(d + ms >= lo && d <= hi + ms, "{d:?} vs {step:?}");
        }
    }
}

#[test]
fn zero_jitter_is_exact_and_retry_after_floor_is_the_jittered_delay() {
    let exact = RetryPolicy::new(Schedule::default(), 0.0).unwrap();
    let d = delay_of(next_attempt(&exact, &failed(2, None), NOW, 0.0));
    assert_eq!(d, secs(30));
    // Retry-After shorter than the jittered delay does not pull the retry earlier.
    let jittery = RetryPolicy::default();
    let d = delay_of(next_attempt(&jittery, &failed(1, Some("1")), NOW, 0.0));
    assert_eq!(d, secs(4));
    // A Retry-After between jittered delay and cap is taken exactly, without jitter.
    let d = delay_of(next_attempt(&jittery, &failed(1, Some("17")), NOW, 0.99));
    assert_eq!(d, secs(17));
}

#[test]
fn short_custom_schedule() {
    let policy = RetryPolicy::new(parse_schedule("10ms,20ms").unwrap(), 0.0).unwrap();
    assert_eq!(policy.schedule().max_attempts(), 3);
    assert_eq!(
        delay_of(next_attempt(&policy, &failed(2, None), NOW, 0.3)),
        Duration::from_millis(20)
    );
    // No following step: Retry-After is capped only by 24h.
    assert_eq!(
        delay_of(next_attempt(&policy, &failed(2, Some("60")), NOW, 0.3)),
        secs(60)
    );
    assert_eq!(
        next_attempt(&policy, &failed(3, None), NOW, 0.3),
        give_up(GiveUpReason::Exhausted { attempts: 3 })
    );
}

#[test]
fn retry_after_formats() {
    let now = datetime!(2015-10-21 07:27:00 UTC);
    #[rustfmt::skip]
    let cases = [
        ("120",                              Some(secs(120))),
        ("0",                                Some(secs(0))),
        ("Wed, 21 Oct 2015 07:28:00 GMT",    Some(secs(60))),
        ("Wed, 21 Oct 2015 07:28:00 +0000",  Some(secs(60))),
        ("Wed, 21 Oct 2015 07:20:00 GMT",    Some(secs(0))),
        ("Thu, 22 Oct 2015 07:27:00 GMT",    Some(secs(86_400))),
        ("",                                 None),
        ("1.5",                              None),
        ("+5",                               None),
        ("tomorrow",                         None),
        ("2015-10-21T07:28:00Z",             None),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
    }
}

#[test]
fn default_schedule_parses_and_round_trips() {
    let parsed = parse_schedule(DEFAULT_SCHEDULE).unwrap();
    assert_eq!(parsed, Schedule::default());
    assert_eq!(parsed.to_string(), DEFAULT_SCHEDULE);
    assert_eq!(parsed.max_attempts(), 11);
    let odd: Schedule = " 250ms, 1s ,90s, 2d".parse().unwrap();
    assert_eq!(
        odd.steps(),
        [Duration::from_millis(250), secs(1), secs(90), secs(2 * 86_400)]
    );
    assert_eq!(odd.to_string(), "250ms,1s,90s,48h");
    assert_eq!(odd.to_string().parse::<Schedule>().unwrap(), odd);
}

#[test]
fn schedule_serde_is_the_config_string() {
    let s: Schedule = serde_json::from_str("\"5s,1m\"").unwrap();
    assert_eq!(s.steps(), [secs(5), secs(60)]);
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"5s,1m\"");
    assert!(serde_json::from_str::<Schedule>("\"5s,\"").is_err());
}

#[test]
fn schedule_errors() {
    let bad = |step: usize, text: &str| ScheduleError::BadStep {
        step,
        text: text.to_owned(),
    };
    let too_many = vec!["1s"; MAX_STEPS + 1].join(",");
    #[rustfmt::skip]
    let cases: Vec<(&str, ScheduleError)> = vec![
        ("",                       ScheduleError::Empty),
        ("   ",                    ScheduleError::Empty),
        ("5s,",                    bad(2, "")),
        ("5x",                     bad(1, "5x")),
        ("s",                      bad(1, "s")),
        ("5",                      bad(1, "5")),
        ("5 s",                    bad(1, "5 s")),
        ("-5s",                    bad(1, "-5s")),
        ("1.5h",                   bad(1, "1.5h")),
        ("99999999999999999999s",  bad(1, "99999999999999999999s")),
        ("999999999999999999d",    bad(1, "999999999999999999d")),
        ("5s,0s",                  ScheduleError::ZeroStep { step: 2 }),
        ("31d",                    ScheduleError::StepTooLong { step: 1 }),
        (&too_many,                ScheduleError::TooManySteps(MAX_STEPS + 1)),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_schedule(input).unwrap_err(), expected, "{input:?}");
    }
    // Messages are for operators: they name the step.
    assert!(bad(2, "").to_string().contains("step 2"));
}

#[test]
fn jitter_must_be_a_fraction() {
    for j in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
        assert!(RetryPolicy::new(Schedule::default(), j).is_err(), "{j}");
    }
    for j in [0.0, 0.2, 1.0] {
        assert!(RetryPolicy::new(Schedule::default(), j).is_ok(), "{j}");
    }
}
