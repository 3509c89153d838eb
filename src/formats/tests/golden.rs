//! Golden tests: the vendors' own example payloads (tests/golden/<format>/<name>.json,
//! normalised to strict JSON) against our rendering of the same data (the samples).
//!
//! Each case lists the differences we accept on purpose, with the reason; the test fails on
//! any other difference and on an accepted difference that no longer occurs, so the list
//! stays an exact record of where Herald deviates from the vendor examples. Our rendering is
//! also kept next to each example as `<name>.rendered.json` (refreshed with
//! `HERALD_BLESS=1`), so reviewers can read both side by side.

use super::shape::{shape_diff, Tree};
use super::{bless, pretty, repo_path};
use crate::domain::event_type::EventType;
use crate::formats::{build, samples, Format};

struct Case {
    format: Format,
    name: &'static str,
    event: EventType,
    golden: &'static str,
    rendered: &'static str,
    /// `(difference, why we accept it)`.
    accepted: &'static [(&'static str, &'static str)],
}

macro_rules! golden {
    ($dir:literal, $name:literal) => {
        (
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/",
                $dir,
                "/",
                $name,
                ".json"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/",
                $dir,
                "/",
                $name,
                ".rendered.json"
            )),
        )
    };
}

const FULL_SNAPSHOT: &str = "Herald sends the full snapshot (formats.md §5); the vendor example is a subset";
const SEVEN_DIGITS: &str =
    "PPM audit dates always have 7 fractional digits (the Project example); the Idea example shows 3";
const CUSTOM_LAST: &str = "custom attributes follow the built-in ones; PPM's position for them is arbitrary";
const CUSTOM_VALUE: &str =
    "custom values are stored as JSON values, whose object keys are sorted (no preserve_order)";
const CHANGED_ORDER: &str = "changed values follow snapshot key order; Tracker's order is not specified";
const CREATE_FULL: &str = "a created story lists every field it has, unset ones as null/[] (task brief)";

fn cases() -> Vec<Case> {
    let case = |format, name, event, (golden, rendered): (&'static str, &'static str), accepted| Case {
        format,
        name,
        event,
        golden,
        rendered,
        accepted,
    };
    vec![
        case(Format::Ppm, "project_created", EventType::PROJECT_CREATED, golden!("ppm", "project_created"), &[]),
        case(
            Format::Ppm,
            "idea_updated",
            EventType::IDEA_UPDATED,
            golden!("ppm", "idea_updated"),
            &[
                ("$.Data.Attributes.CreatedDate: expected timestamp-ms string, got timestamp-7-digits string", SEVEN_DIGITS),
                ("$.Data.Attributes.LastModifiedDate: expected timestamp-ms string, got timestamp-7-digits string", SEVEN_DIGITS),
                ("$.Data.Attributes.Idea’s sponsor: out of order", CUSTOM_LAST),
                ("$.Data.Attributes.Idea’s sponsor.Id: out of order", CUSTOM_VALUE),
                ("$.Data.BeforeAttributes.CreatedDate: expected timestamp-ms string, got timestamp-7-digits string", SEVEN_DIGITS),
                ("$.Data.BeforeAttributes.LastModifiedDate: expected timestamp-ms string, got timestamp-7-digits string", SEVEN_DIGITS),
                ("$.Data.BeforeAttributes.Idea’s sponsor: out of order", CUSTOM_LAST),
                ("$.Data.BeforeAttributes.Idea’s sponsor.Id: out of order", CUSTOM_VALUE),
            ],
        ),
        case(
            Format::Ppm,
            "key_date_updated",
            EventType::KEY_DATE_UPDATED,
            golden!("ppm", "key_date_updated"),
            &[("$.Data.BeforeAttributes.ShowOnTimeline: unexpected", FULL_SNAPSHOT)],
        ),
        case(
            Format::Ppm,
            "task_deleted",
            EventType::TASK_DELETED,
            golden!("ppm", "task_deleted"),
            &[
                ("$.Data.Attributes.Description: unexpected", FULL_SNAPSHOT),
                ("$.Data.Attributes.AssignedTo: unexpected", FULL_SNAPSHOT),
            ],
        ),
        case(Format::Projectrak, "updated", EventType::PROJECT_UPDATED, golden!("projectrak", "updated"), &[]),
        case(
            Format::TrackerV5,
            "story_update",
            EventType::STORY_UPDATED,
            golden!("tracker-v5", "story_update"),
            &[
                ("$.changes[0].original_values.current_state: out of order", CHANGED_ORDER),
                ("$.changes[0].new_values.current_state: out of order", CHANGED_ORDER),
            ],
        ),
        case(
            Format::TrackerV5,
            "story_create",
            EventType::STORY_CREATED,
            golden!("tracker-v5", "story_create"),
            &[
                ("$.changes[0].new_values.estimate: unexpected", CREATE_FULL),
                ("$.changes[0].new_values.owner_ids: unexpected", CREATE_FULL),
            ],
        ),
        case(Format::TrackerV5, "comment_create", EventType::COMMENT_CREATED, golden!("tracker-v5", "comment_create"), &[]),
    ]
}

#[test]
fn renderings_have_the_shape_of_the_vendor_examples() {
    let ctx = samples::context();
    let mut failures = Vec::new();
    for case in cases() {
        let event = samples::event(case.event);
        let body = build(case.format, &event, &ctx).expect("sample renders");
        let rendered = pretty(&body);
        let path = format!(
            "tests/golden/{}/{}.rendered.json",
            case.format.as_str(),
            case.name
        );
        if bless() {
            std::fs::write(repo_path(&path), &rendered).expect("write rendered golden");
        } else if rendered != case.rendered {
            failures.push(format!("{path} is stale: run with HERALD_BLESS=1"));
        }
        let diff = shape_diff(&Tree::parse(case.golden), &Tree::parse(&rendered));
        for d in &diff {
            if !case.accepted.iter().any(|(a, _)| a == d) {
                failures.push(format!("{}/{}: {d}", case.format.as_str(), case.name));
            }
        }
        for (a, _) in case.accepted {
            if !diff.iter().any(|d| d == a) {
                failures.push(format!(
                    "{}/{}: accepted difference no longer occurs: {a}",
                    case.format.as_str(),
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden differences:\n{}",
        failures.join("\n")
    );
}
