//! Example-based tests for [`parse_input`]: what API input each field type accepts, and
//! the errors (and their wording) for what it refuses.

use serde_json::{json, Value};
use time::macros::date;

use super::tests::{def, num, World, USERS};
use super::*;

fn parse(field_type: FieldType, input: Value) -> Result<FieldValue, FieldValueError> {
    parse_input(&def(field_type), &input, &World)
}

#[test]
fn numbers_accept_json_numbers_and_plain_decimal_strings() {
    assert_eq!(parse(FieldType::Number, json!(23000)).unwrap(), num(23000.0));
    assert_eq!(parse(FieldType::Number, json!(" 23.5 ")).unwrap(), num(23.5));
    assert_eq!(parse(FieldType::Number, json!("-1.5e3")).unwrap(), num(-1500.0));
    assert_eq!(parse(FieldType::Number, json!("")).unwrap(), FieldValue::Null);
    for bad in [
        "1,000", "23.000,5", "inf", "NaN", ".5", "5.", "1e400", "0x10", "12 kg",
    ] {
        let e = parse(FieldType::Number, json!(bad)).unwrap_err();
        assert!(matches!(e, FieldValueError::InvalidNumber { .. }), "{bad}: {e}");
    }
    let e = parse(FieldType::Number, json!(true)).unwrap_err();
    assert_eq!(e.to_string(), "My number expects a number, but got a boolean");
}

#[test]
fn text_is_bounded_and_single_line() {
    let long = "x".repeat(TEXT_MAX_CHARS + 1);
    let e = parse(FieldType::Text, json!(long)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "My text is too long: 256 characters, at most 255 allowed"
    );
    assert!(parse(FieldType::Text, json!("é".repeat(255))).is_ok());
    assert!(matches!(
        parse(FieldType::Text, json!("a\nb")).unwrap_err(),
        FieldValueError::ControlCharacter { .. }
    ));
    assert!(parse(FieldType::Textarea, json!("*a*\n\tb\r\n")).is_ok());
    assert!(parse(FieldType::Textarea, json!("a\u{0}b")).is_err());
    let big = "x".repeat(TEXTAREA_MAX_BYTES + 1);
    assert!(matches!(
        parse(FieldType::Textarea, json!(big)).unwrap_err(),
        FieldValueError::TooLong { unit: "bytes", .. }
    ));
    assert!(matches!(
        parse(FieldType::Text, json!(42)).unwrap_err(),
        FieldValueError::WrongType { .. }
    ));
}

#[test]
fn dates_must_be_real_calendar_dates() {
    let d = |s: &str| parse(FieldType::Date, json!(s));
    assert_eq!(d("2024-02-29").unwrap(), FieldValue::Date(date!(2024 - 02 - 29)));
    for bad in [
        "2025-02-29",
        "2025-2-3",
        "2025-13-01",
        "0000-01-01",
        "+2025-01-01",
        "2025-01-01T00:00:00Z",
    ] {
        let e = d(bad).unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD"), "{bad}: {e}");
    }
}

#[test]
fn durations_accept_ms_and_human_strings() {
    let d = |v: Value| parse(FieldType::Duration, v);
    let ms = |n| FieldValue::Duration(DurationMs::new(n).unwrap());
    assert_eq!(d(json!(28_800_000)).unwrap(), ms(28_800_000));
    assert_eq!(d(json!(3_600_000.0)).unwrap(), ms(3_600_000));
    assert_eq!(d(json!("8h")).unwrap(), ms(28_800_000));
    assert_eq!(d(json!("1d 2h 30m")).unwrap(), ms(95_400_000));
    assert_eq!(d(json!("28800000")).unwrap(), ms(28_800_000));
    for bad in [json!(-1), json!(1.5), json!("-8h"), json!("8 hours"), json!([])] {
        assert!(d(bad.clone()).is_err(), "{bad}");
    }
    let e = d(json!("soon")).unwrap_err().to_string();
    assert!(e.contains("1d = 24h"), "{e}");
}

#[test]
fn options_must_exist_and_are_matched_ignoring_case() {
    let o = |v: Value| parse(FieldType::Status, v);
    assert_eq!(o(json!("Done")).unwrap(), FieldValue::Option("Done".into()));
    assert_eq!(o(json!(" done")).unwrap(), FieldValue::Option("Done".into()));
    assert_eq!(o(json!("ärger")).unwrap(), FieldValue::Option("Ärger".into()));
    let e = o(json!("Finished")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "My status has no option \"Finished\"; allowed: \"On track\", \"At risk\", \"Done\", \"Ärger\""
    );
    assert_eq!(e.field(), "My status");
    let m = parse(FieldType::Multilist, json!(["Done", "At risk", "done"])).unwrap();
    assert_eq!(m, FieldValue::Options(vec!["Done".into(), "At risk".into()]));
}

#[test]
fn users_and_projects_must_exist() {
    let u = parse(FieldType::User, json!(USERS[0])).unwrap();
    assert_eq!(u, FieldValue::User(USERS[0].into()));
    let obj = parse(FieldType::User, json!({"account_id": USERS[1], "name": "x"})).unwrap();
    assert_eq!(obj, FieldValue::User(USERS[1].into()));
    assert!(matches!(
        parse(FieldType::User, json!("nobody")).unwrap_err(),
        FieldValueError::UnknownUser { .. }
    ));
    assert!(matches!(
        parse(FieldType::User, json!("has space")).unwrap_err(),
        FieldValueError::InvalidAccountId { .. }
    ));
    assert_eq!(
        parse(FieldType::Project, json!("7")).unwrap(),
        FieldValue::Project(7)
    );
    assert_eq!(
        parse(FieldType::Project, json!({"id": 8})).unwrap(),
        FieldValue::Project(8)
    );
    let e = parse(FieldType::Project, json!(51)).unwrap_err();
    assert_eq!(e.to_string(), "My project: there is no project with id 51");
    for bad in [json!(0), json!(-3), json!(1.5), json!("7a")] {
        assert!(matches!(
            parse(FieldType::Project, bad).unwrap_err(),
            FieldValueError::InvalidProjectId { .. }
        ));
    }
}

#[test]
fn multi_values_clear_dedupe_and_are_capped() {
    for empty in [json!(null), json!(""), json!([])] {
        assert_eq!(
            parse(FieldType::Multiproject, empty).unwrap(),
            FieldValue::Projects(vec![])
        );
    }
    let p = parse(FieldType::Multiproject, json!([3, "1", 3, {"id": 1}, 2])).unwrap();
    assert_eq!(p, FieldValue::Projects(vec![3, 1, 2]));
    let many: Vec<i64> = (1..=101).map(|i| i % 50 + 1).collect();
    let e = parse(FieldType::Multiproject, json!(many)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "My multiproject accepts at most 100 items, but got 101"
    );
    assert!(parse(FieldType::Multiuser, json!(USERS[0])).is_err());
    assert_eq!(parse(FieldType::User, json!(null)).unwrap(), FieldValue::Null);
}

#[test]
fn formula_fields_cannot_be_set() {
    let e = parse(FieldType::Formula, json!(3)).unwrap_err();
    assert!(matches!(e, FieldValueError::NotSettable { .. }));
    assert!(parse(FieldType::Formula, json!(null)).is_err());
}

#[test]
fn milestones_accept_both_key_spellings() {
    let want = FieldValue::Milestone {
        id: 1,
        date: date!(2025 - 02 - 22),
        name: "Milestone name - updated".into(),
        linked_issues_id: vec![24, 35],
    };
    let camel =
        json!({"id":1,"date":"2025-02-22","name":"Milestone name - updated","linkedIssuesId":[24,35]});
    assert_eq!(parse(FieldType::Milestone, camel).unwrap(), want);
    let snake =
        json!({"id":1,"date":"2025-02-22","name":"Milestone name - updated","linked_issues_id":[24,35,24]});
    assert_eq!(parse(FieldType::Milestone, snake).unwrap(), want);
    let bare = json!({"id":1,"date":"2025-02-22","name":"M"});
    assert!(parse(FieldType::Milestone, bare).is_ok());
    let bad = [
        (
            json!({"id":1,"date":"2025-02-22","name":"M","due":1}),
            MilestoneProblem::UnknownKey("due".into()),
        ),
        (json!({"id":1,"name":"M"}), MilestoneProblem::MissingKey("date")),
        (
            json!({"id":0,"date":"2025-02-22","name":"M"}),
            MilestoneProblem::BadId,
        ),
        (
            json!({"id":1,"date":"2025-02-30","name":"M"}),
            MilestoneProblem::BadDate,
        ),
        (
            json!({"id":1,"date":"2025-02-22","name":""}),
            MilestoneProblem::BadName,
        ),
        (
            json!({"id":1,"date":"2025-02-22","name":"M","linkedIssuesId":[-1]}),
            MilestoneProblem::BadLinkedIssues,
        ),
    ];
    for (input, problem) in bad {
        match parse(FieldType::Milestone, input).unwrap_err() {
            FieldValueError::InvalidMilestone { problem: p, .. } => assert_eq!(p, problem),
            other => panic!("{other}"),
        }
    }
}
