//! Example-based tests for field parsing and encoding, plus the fixture the property tests
//! share.

use serde_json::{json, Value};
use time::macros::date;
use uuid::Uuid;

use super::*;
use crate::domain::event::{ProjectRef, UserRef};
use crate::domain::formula::Formula;

/// Account ids every test tenant has; the last one has been deleted from the directory,
/// so the resolver no longer knows it (exercises placeholder refs).
pub(super) const USERS: [&str; 4] = [
    "5b10ac8d82e05b22cc7d4ef5",
    "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
    "DUMMY-ACCOUNT-ID-4c44-b436-73155f48d985",
    "ghost-account",
];

/// A tenant with the users above and projects 1..=50 (odd ones resolvable).
pub(super) struct World;

impl RefLookup for World {
    fn user_exists(&self, account_id: &str) -> bool {
        USERS.contains(&account_id)
    }
    fn project_exists(&self, id: i64) -> bool {
        (1..=50).contains(&id)
    }
}

impl RefResolver for World {
    fn user(&self, account_id: &str) -> Option<UserRef> {
        let i = USERS[..3].iter().position(|u| *u == account_id)?;
        Some(UserRef {
            id: i as i64 + 1,
            uuid: Uuid::from_u128(i as u128 + 1),
            account_id: account_id.to_owned(),
            name: format!("User {i}"),
            initials: format!("U{i}"),
            email: format!("user{i}@example.com"),
        })
    }
    fn project(&self, id: i64) -> Option<ProjectRef> {
        (id % 2 == 1 && id <= 50).then(|| ProjectRef {
            id,
            uuid: Uuid::from_u128(1000 + id as u128),
            key: format!("P{id}"),
            name: format!("Project {id}"),
        })
    }
}

/// A custom field of `field_type` (options for option types, a formula for formulas).
pub(super) fn def(field_type: FieldType) -> FieldDef {
    let options = if field_type.has_options() {
        vec![
            "On track".into(),
            "At risk".into(),
            "Done".into(),
            "Ärger".into(),
        ]
    } else {
        vec![]
    };
    let formula = (field_type == FieldType::Formula).then(|| Formula::parse("{Budget} * 2"));
    FieldDef {
        id: 10_001,
        name: format!("My {field_type}"),
        field_type,
        options,
        formula: formula.and_then(Result::ok),
        system: false,
    }
}

fn parse(field_type: FieldType, input: Value) -> Result<FieldValue, FieldValueError> {
    parse_input(&def(field_type), &input, &World)
}

fn num(x: f64) -> FieldValue {
    FieldValue::Number(Finite::new(x).unwrap())
}

#[test]
fn field_types_spell_as_the_spec_says() {
    for t in FieldType::ALL {
        assert_eq!(FieldType::parse(t.as_str()), Some(t));
        assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
    }
    assert_eq!(FieldType::parse("Text"), None);
    assert!(FieldType::Multiuser.is_multi() && !FieldType::User.is_multi());
    assert!(FieldType::Status.has_options() && !FieldType::Text.has_options());
}

#[test]
fn system_fields_are_stable() {
    let fields = system_fields();
    let ids: Vec<i64> = fields.iter().map(|f| f.id).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
    assert!(fields
        .iter()
        .all(|f| f.system && f.id < FIRST_CUSTOM_FIELD_ID));
    assert_eq!(
        fields[0].options,
        ["On track", "At risk", "Off track", "Done"]
    );
    assert_eq!(
        fields[1].options,
        ["Highest", "High", "Medium", "Low", "Lowest"]
    );
    assert_eq!(fields[4].field_type, FieldType::Duration);
    assert_eq!(fields[9].name, "What will success look like?");
}

#[test]
fn custom_fields_are_checked() {
    let ok = FieldDef::custom(10_001, " Budget ", FieldType::Number, vec![], None).unwrap();
    assert_eq!(ok.name, "Budget");
    let err = |r: Result<FieldDef, FieldDefError>| r.unwrap_err();
    assert!(matches!(
        err(FieldDef::custom(5, "X", FieldType::Number, vec![], None)),
        FieldDefError::ReservedId { id: 5 }
    ));
    assert_eq!(
        err(FieldDef::custom(
            10_001,
            "a{b}",
            FieldType::Text,
            vec![],
            None
        )),
        FieldDefError::InvalidName
    );
    assert!(matches!(
        err(FieldDef::custom(
            10_001,
            "123",
            FieldType::Text,
            vec![],
            None
        )),
        FieldDefError::NumericName { .. }
    ));
    assert!(matches!(
        err(FieldDef::custom(10_001, "L", FieldType::List, vec![], None)),
        FieldDefError::OptionCount { count: 0, .. }
    ));
    assert!(matches!(
        err(FieldDef::custom(
            10_001,
            "L",
            FieldType::List,
            vec!["A".into(), "a".into()],
            None
        )),
        FieldDefError::DuplicateOption { .. }
    ));
    assert!(matches!(
        err(FieldDef::custom(
            10_001,
            "T",
            FieldType::Text,
            vec!["A".into()],
            None
        )),
        FieldDefError::UnexpectedOptions { .. }
    ));
    assert_eq!(
        err(FieldDef::custom(
            10_001,
            "F",
            FieldType::Formula,
            vec![],
            None
        )),
        FieldDefError::MissingFormula
    );
    let f = Formula::parse("1 + 1").unwrap();
    assert!(FieldDef::custom(10_001, "F", FieldType::Formula, vec![], Some(f)).is_ok());
}

#[test]
fn field_defs_serialise_with_their_formula_source() {
    let d = def(FieldType::Formula);
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["type"], "formula");
    assert_eq!(json["formula"], "{Budget} * 2");
    let back: FieldDef = serde_json::from_value(json).unwrap();
    assert_eq!(back, d);
}

#[test]
fn numbers_accept_json_numbers_and_plain_decimal_strings() {
    assert_eq!(
        parse(FieldType::Number, json!(23000)).unwrap(),
        num(23000.0)
    );
    assert_eq!(
        parse(FieldType::Number, json!(" 23.5 ")).unwrap(),
        num(23.5)
    );
    assert_eq!(
        parse(FieldType::Number, json!("-1.5e3")).unwrap(),
        num(-1500.0)
    );
    assert_eq!(
        parse(FieldType::Number, json!("")).unwrap(),
        FieldValue::Null
    );
    for bad in [
        "1,000", "23.000,5", "inf", "NaN", ".5", "5.", "1e400", "0x10", "12 kg",
    ] {
        let e = parse(FieldType::Number, json!(bad)).unwrap_err();
        assert!(
            matches!(e, FieldValueError::InvalidNumber { .. }),
            "{bad}: {e}"
        );
    }
    let e = parse(FieldType::Number, json!(true)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "My number expects a number, but got a boolean"
    );
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
    assert_eq!(
        d("2024-02-29").unwrap(),
        FieldValue::Date(date!(2024 - 02 - 29))
    );
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
    for bad in [
        json!(-1),
        json!(1.5),
        json!("-8h"),
        json!("8 hours"),
        json!([]),
    ] {
        assert!(d(bad.clone()).is_err(), "{bad}");
    }
    let e = d(json!("soon")).unwrap_err().to_string();
    assert!(e.contains("1d = 24h"), "{e}");
}

#[test]
fn options_must_exist_and_are_matched_ignoring_case() {
    let o = |v: Value| parse(FieldType::Status, v);
    assert_eq!(o(json!("Done")).unwrap(), FieldValue::Option("Done".into()));
    assert_eq!(
        o(json!(" done")).unwrap(),
        FieldValue::Option("Done".into())
    );
    assert_eq!(
        o(json!("ärger")).unwrap(),
        FieldValue::Option("Ärger".into())
    );
    let e = o(json!("Finished")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "My status has no option \"Finished\"; allowed: \"On track\", \"At risk\", \"Done\", \"Ärger\""
    );
    assert_eq!(e.field(), "My status");
    let m = parse(FieldType::Multilist, json!(["Done", "At risk", "done"])).unwrap();
    assert_eq!(
        m,
        FieldValue::Options(vec!["Done".into(), "At risk".into()])
    );
}

#[test]
fn users_and_projects_must_exist() {
    let u = parse(FieldType::User, json!(USERS[0])).unwrap();
    assert_eq!(u, FieldValue::User(USERS[0].into()));
    let obj = parse(
        FieldType::User,
        json!({"account_id": USERS[1], "name": "x"}),
    )
    .unwrap();
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
    assert_eq!(
        parse(FieldType::User, json!(null)).unwrap(),
        FieldValue::Null
    );
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
    let camel = json!({"id":1,"date":"2025-02-22","name":"Milestone name - updated","linkedIssuesId":[24,35]});
    assert_eq!(parse(FieldType::Milestone, camel).unwrap(), want);
    let snake = json!({"id":1,"date":"2025-02-22","name":"Milestone name - updated","linked_issues_id":[24,35,24]});
    assert_eq!(parse(FieldType::Milestone, snake).unwrap(), want);
    let bare = json!({"id":1,"date":"2025-02-22","name":"M"});
    assert!(parse(FieldType::Milestone, bare).is_ok());
    let bad = [
        (
            json!({"id":1,"date":"2025-02-22","name":"M","due":1}),
            MilestoneProblem::UnknownKey("due".into()),
        ),
        (
            json!({"id":1,"name":"M"}),
            MilestoneProblem::MissingKey("date"),
        ),
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

#[test]
fn canonical_json_matches_the_snapshot_schema() {
    let c = |v: &FieldValue| to_canonical_json(v, &World);
    assert_eq!(c(&num(23000.0)), json!(23000));
    assert_eq!(c(&num(23.5)), json!(23.5));
    assert_eq!(
        c(&FieldValue::Date(date!(2025 - 02 - 22))),
        json!("2025-02-22")
    );
    assert_eq!(
        c(&FieldValue::Duration(DurationMs::new(28_800_000).unwrap())),
        json!(28_800_000)
    );
    let user = c(&FieldValue::User(USERS[0].into()));
    assert_eq!(user["account_id"], USERS[0]);
    assert_eq!(user["name"], "User 0");
    assert_eq!(user["uuid"], Uuid::from_u128(1).to_string());
    let ghost = c(&FieldValue::Users(vec![USERS[3].into()]));
    assert_eq!(
        ghost,
        json!([{"id":0,"uuid":Uuid::nil().to_string(),"account_id":"ghost-account","name":"","initials":"","email":""}])
    );
    assert_eq!(
        c(&FieldValue::Projects(vec![1, 2])),
        json!([{"id":1,"uuid":Uuid::from_u128(1001).to_string(),"key":"P1","name":"Project 1"},
               {"id":2,"uuid":Uuid::nil().to_string(),"key":"","name":""}])
    );
    assert_eq!(c(&FieldValue::Options(vec![])), json!([]));
    assert_eq!(c(&FieldValue::Null), Value::Null);
    // Decoding a stored value skips membership checks: a since-deleted option still reads.
    assert_eq!(
        from_canonical_json(FieldType::Status, &json!("Retired")).unwrap(),
        FieldValue::Option("Retired".into())
    );
    assert_eq!(
        from_canonical_json(FieldType::Formula, &json!(2.5)).unwrap(),
        num(2.5)
    );
}

#[test]
fn projectrak_encoding_is_strings() {
    let p = projectrak_value;
    assert_eq!(p(&num(23000.0)), json!("23000"));
    assert_eq!(p(&num(23.5)), json!("23.5"));
    assert_eq!(
        p(&FieldValue::Duration(DurationMs::new(28_800_000).unwrap())),
        json!("28800000")
    );
    assert_eq!(p(&FieldValue::Projects(vec![13647])), json!(["13647"]));
    assert_eq!(p(&FieldValue::Users(vec![])), json!([]));
    assert_eq!(p(&FieldValue::Null), Value::Null);
    let m = FieldValue::Milestone {
        id: 1,
        date: date!(2025 - 02 - 18),
        name: "Milestone name".into(),
        linked_issues_id: vec![],
    };
    assert_eq!(
        p(&m),
        json!({"id":1,"date":"2025-02-18","name":"Milestone name","linkedIssuesId":[]})
    );
}

#[test]
fn values_know_their_types() {
    for t in FieldType::ALL {
        assert!(FieldValue::empty(t).fits(t));
        assert!(FieldValue::empty(t).is_empty());
    }
    assert!(!FieldValue::Null.fits(FieldType::Multilist));
    assert!(num(1.0).fits(FieldType::Formula));
    assert!(!num(1.0).fits(FieldType::Duration));
    assert_eq!(Finite::new(f64::NAN), None);
    assert_eq!(
        Finite::new(-0.0).map(|f| f.get().to_bits()),
        Some(0.0_f64.to_bits())
    );
    assert_eq!(DurationMs::new(-1), None);
}
