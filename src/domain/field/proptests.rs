//! Property tests: every encoding of every field type round-trips, and the Projectrak
//! encoding always has the shape the spec allows.

use proptest::prelude::*;
use serde_json::Value;
use time::Date;

use super::tests::{def, World, USERS};
use super::*;

fn arb_date() -> impl Strategy<Value = Date> {
    let lo = Date::from_calendar_date(1, time::Month::January, 1)
        .unwrap()
        .to_julian_day();
    let hi = Date::from_calendar_date(9999, time::Month::December, 31)
        .unwrap()
        .to_julian_day();
    (lo..=hi).prop_map(|j| Date::from_julian_day(j).unwrap())
}

fn arb_number() -> impl Strategy<Value = Finite> {
    prop_oneof![
        any::<f64>().prop_filter_map("finite", Finite::new),
        (-1_000_000_000i64..1_000_000_000).prop_map(|i| Finite::new(i as f64).unwrap()),
        (-1_000_000i64..1_000_000).prop_map(|i| Finite::new(i as f64 / 100.0).unwrap()),
    ]
}

/// An ordered selection of up to [`MAX_ITEMS`] distinct items of `pool`.
fn arb_subset<T: Clone + std::fmt::Debug + 'static>(pool: Vec<T>) -> impl Strategy<Value = Vec<T>> {
    let n = pool.len().min(MAX_ITEMS);
    (Just(pool).prop_shuffle(), 0..=n).prop_map(|(p, k)| p[..k].to_vec())
}

/// A field type and a valid value for the field [`def`] builds for it.
fn arb_typed_value() -> impl Strategy<Value = (FieldType, FieldValue)> {
    let options = def(FieldType::List).options;
    let opt = prop::sample::select(options.clone());
    let users: Vec<String> = USERS.iter().map(|u| (*u).to_owned()).collect();
    let one_line = "[^\\p{Cc}]{1,40}";
    prop_oneof![
        Just((FieldType::Text, FieldValue::Null)),
        one_line.prop_map(|s| (FieldType::Text, FieldValue::Text(s))),
        "(\\PC|\n|\t|\r){1,80}".prop_map(|s| (FieldType::Textarea, FieldValue::Text(s))),
        arb_number().prop_map(|x| (FieldType::Number, FieldValue::Number(x))),
        arb_number().prop_map(|x| (FieldType::Formula, FieldValue::Number(x))),
        arb_date().prop_map(|d| (FieldType::Date, FieldValue::Date(d))),
        (0..=i64::MAX).prop_map(|ms| (
            FieldType::Duration,
            FieldValue::Duration(DurationMs::new(ms).unwrap())
        )),
        (
            prop::sample::select(vec![FieldType::Status, FieldType::Priority, FieldType::List]),
            opt
        )
            .prop_map(|(t, o)| (t, FieldValue::Option(o))),
        arb_subset(options).prop_map(|o| (FieldType::Multilist, FieldValue::Options(o))),
        prop::sample::select(users.clone()).prop_map(|u| (FieldType::User, FieldValue::User(u))),
        arb_subset(users).prop_map(|u| (FieldType::Multiuser, FieldValue::Users(u))),
        (1i64..=50).prop_map(|p| (FieldType::Project, FieldValue::Project(p))),
        arb_subset((1i64..=50).collect()).prop_map(|p| (FieldType::Multiproject, FieldValue::Projects(p))),
        (
            1i64..=i64::MAX,
            arb_date(),
            one_line,
            arb_subset((1i64..=200).collect())
        )
            .prop_map(|(id, date, name, linked_issues_id)| {
                (
                    FieldType::Milestone,
                    FieldValue::Milestone {
                        id,
                        date,
                        name,
                        linked_issues_id,
                    },
                )
            }),
        prop::sample::select(FieldType::ALL.to_vec()).prop_map(|t| (t, FieldValue::empty(t))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonical_json_round_trips((t, v) in arb_typed_value()) {
        prop_assert!(v.fits(t));
        let json = to_canonical_json(&v, &World);
        let back = from_canonical_json(t, &json).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(to_canonical_json(&back, &World), json.clone());
        // Stored as text and read back, the JSON is still the same JSON.
        let reparsed: Value = serde_json::from_str(&json.to_string()).unwrap();
        prop_assert_eq!(reparsed, json);
    }

    #[test]
    fn api_accepts_canonical_and_projectrak_forms((t, v) in arb_typed_value()) {
        let d = def(t);
        for form in [to_canonical_json(&v, &World), projectrak_value(&v)] {
            let parsed = parse_input(&d, &form, &World);
            if t == FieldType::Formula {
                let is_not_settable = matches!(parsed, Err(FieldValueError::NotSettable { .. }));
                prop_assert!(is_not_settable);
            } else {
                prop_assert_eq!(parsed.unwrap(), v.clone(), "form {}", form);
            }
        }
    }

    #[test]
    fn projectrak_values_are_strings_nulls_lists_or_milestones((t, v) in arb_typed_value()) {
        let p = projectrak_value(&v);
        match (&v, &p) {
            (FieldValue::Null, Value::Null) => {}
            (FieldValue::Milestone { .. }, Value::Object(o)) => {
                let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                keys.sort_unstable();
                prop_assert_eq!(keys, ["date", "id", "linkedIssuesId", "name"]);
            }
            (_, Value::Array(items)) => {
                prop_assert!(t.is_multi());
                prop_assert!(items.iter().all(Value::is_string));
            }
            (_, Value::String(_)) => prop_assert!(!t.is_multi()),
            (_, other) => prop_assert!(false, "unexpected Projectrak value {}", other),
        }
    }

    #[test]
    fn numbers_format_as_plain_decimals_that_read_back(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        let s = format_number(x);
        prop_assert!(s.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-'), "{}", s);
        prop_assert_eq!(s.parse::<f64>().unwrap(), if x == 0.0 { 0.0 } else { x });
    }

    #[test]
    fn human_durations_add_up(w in 0i64..5, d in 0i64..7, h in 0i64..24, m in 0i64..60, s in 0i64..60) {
        let text = format!("{w}w {d}d {h}h {m}m {s}s");
        let want = (((w * 7 + d) * 24 + h) * 60 + m) * 60_000 + s * 1000;
        let got = parse_input(&def(FieldType::Duration), &Value::String(text), &World).unwrap();
        prop_assert_eq!(got, FieldValue::Duration(DurationMs::new(want).unwrap()));
    }
}
