//! Example-based tests for field types, definitions and encodings, plus the fixture the
//! other test modules share.

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
        vec!["On track".into(), "At risk".into(), "Done".into(), "Ärger".into()]
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

pub(super) fn num(x: f64) -> FieldValue {
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
    assert!(fields.iter().all(|f| f.system && f.id < FIRST_CUSTOM_FIELD_ID));
    assert_eq!(fields[0].options, ["On track", "At risk", "Off track", "Done"]);
    assert_eq!(fields[1].options, ["Highest", "High", "Medium", "Low", "Lowest"]);
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
        err(FieldDef::custom(10_001, "a{b}", FieldType::Text, vec![], None)),
        FieldDefError::InvalidName
    );
    assert!(matches!(
        err(FieldDef::custom(10_001, "123", FieldType::Text, vec![], None)),
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
        err(FieldDef::custom(10_001, "F", FieldType::Formula, vec![], None)),
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
fn canonical_json_matches_the_snapshot_schema() {
    let c = |v: &FieldValue| to_canonical_json(v, &World);
    assert_eq!(c(&num(23000.0)), json!(23000));
    assert_eq!(c(&num(23.5)), json!(23.5));
    assert_eq!(c(&FieldValue::Date(date!(2025 - 02 - 22))), json!("2025-02-22"));
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
