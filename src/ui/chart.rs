//! The small inline-SVG chart of a webhook's deliveries over the last 24 hours: one
//! stacked bar per hour, successes (green) under failures (red). Inline SVG needs no
//! script and passes the strict CSP (presentation attributes, no `style`). The same
//! numbers are given in text (`aria-label` and a visible legend), so colour is never the
//! only carrier of meaning.

use maud::{html, Markup};

const HOUR: i64 = 3_600_000;
const BUCKETS: usize = 24;

/// Counts per hour, oldest first: `(succeeded, failed)`.
pub fn buckets(outcomes: &[(i64, bool)], now: i64) -> [(u32, u32); BUCKETS] {
    let mut b = [(0u32, 0u32); BUCKETS];
    let start = now - HOUR * BUCKETS as i64;
    for (at, ok) in outcomes {
        if *at <= start || *at > now {
            continue;
        }
        let i = usize::try_from((at - start - 1) / HOUR)
            .unwrap_or(0)
            .min(BUCKETS - 1);
        if *ok {
            b[i].0 += 1;
        } else {
            b[i].1 += 1;
        }
    }
    b
}

/// The chart for `outcomes` (attempt time, success) as of `now`.
pub fn render(outcomes: &[(i64, bool)], now: i64) -> Markup {
    let b = buckets(outcomes, now);
    let ok: u32 = b.iter().map(|x| x.0).sum();
    let failed: u32 = b.iter().map(|x| x.1).sum();
    let max = b.iter().map(|x| x.0 + x.1).max().unwrap_or(0).max(1);
    let (w, h, pad) = (480.0_f64, 120.0_f64, 18.0_f64);
    let bar = (w - 8.0) / BUCKETS as f64;
    let scale = (h - pad - 6.0) / f64::from(max);
    let summary = format!("Deliveries in the last 24 hours: {ok} succeeded, {failed} failed");
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(summary) xmlns="http://www.w3.org/2000/svg" {
                title { (summary) }
                line x1="4" y1=(h - pad) x2=(w - 4.0) y2=(h - pad) stroke="#8c959f" stroke-width="1" {}
                @for (i, (s, f)) in b.iter().enumerate() {
                    @let x = 4.0 + bar * i as f64 + 1.5;
                    @let hs = f64::from(*s) * scale;
                    @let hf = f64::from(*f) * scale;
                    @if *s > 0 { rect x=(fmt(x)) y=(fmt(h - pad - hs)) width=(fmt(bar - 3.0)) height=(fmt(hs)) fill="#22a04b" {} }
                    @if *f > 0 { rect x=(fmt(x)) y=(fmt(h - pad - hs - hf)) width=(fmt(bar - 3.0)) height=(fmt(hf)) fill="#d92d20" {} }
                }
                text x="4" y=(h - 4.0) font-size="11" fill="#57606a" { "24 h ago" }
                text x=(w - 4.0) y=(h - 4.0) font-size="11" fill="#57606a" text-anchor="end" { "now" }
                text x="4" y="12" font-size="11" fill="#57606a" { "max " (max) " per hour" }
            }
            figcaption {
                ul.legend {
                    li { span.swatch.sw-ok {} (ok) " succeeded" }
                    li { span.swatch.sw-err {} (failed) " failed" }
                }
            }
        }
    }
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_land_in_their_hour() {
        let now = 100 * HOUR;
        let b = buckets(
            &[
                (now, true),
                (now - 1, false),
                (now - 23 * HOUR - 1, true),
                (now - 25 * HOUR, true),
            ],
            now,
        );
        assert_eq!(b[23], (1, 1));
        assert_eq!(b[0], (1, 0));
        assert_eq!(
            b.iter().map(|x| x.0 + x.1).sum::<u32>(),
            3,
            "older than 24 h is left out"
        );
    }

    #[test]
    fn the_summary_is_in_text() {
        let svg = render(&[(1_000, true), (2_000, false)], 3_000).into_string();
        assert!(svg.contains("1 succeeded, 1 failed"));
        assert!(svg.contains("fill=\"#22a04b\"") && svg.contains("fill=\"#d92d20\""));
    }
}
