//! Formula tests: examples for syntax errors, evaluation and ordering; properties for
//! display/parse round trips and evaluation against an independent reference evaluator.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::domain::field::{FieldDef, FieldType, FieldValue, Finite};

fn f(src: &str) -> Formula {
    Formula::parse(src).unwrap()
}

fn err(src: &str) -> FormulaError {
    Formula::parse(src).unwrap_err()
}

fn values<'a>(get: &'a [(&'a str, f64)]) -> impl Fn(&FieldRef) -> Option<f64> + 'a {
    move |r| {
        let key = match r {
            FieldRef::Id(id) => id.to_string(),
            FieldRef::Name(n) => n.clone(),
        };
        get.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

#[test]
fn parses_precedence_and_associativity() {
    let none = values(&[]);
    assert_eq!(f("1 + 2 * 3").eval(&none), Some(7.0));
    assert_eq!(f("(1 + 2) * 3").eval(&none), Some(9.0));
    assert_eq!(f("10 - 4 - 3").eval(&none), Some(3.0));
    assert_eq!(f("64 / 4 / 2").eval(&none), Some(8.0));
    assert_eq!(f("-2 * -3").eval(&none), Some(6.0));
    assert_eq!(f("--2").eval(&none), Some(2.0));
    assert_eq!(f("1.5e3 + 0.5").eval(&none), Some(1500.5));
    assert_eq!(f("0 * -1").eval(&none), Some(0.0));
    assert!(f("0 * -1").eval(&none).is_some_and(|x| x.is_sign_positive()));
}

#[test]
fn references_by_name_and_id() {
    let formula = f("{ Budget } * 1.2 + {10002} - {Budget}");
    assert_eq!(
        formula.references(),
        [FieldRef::Name("Budget".into()), FieldRef::Id(10_002)]
    );
    let get = values(&[("Budget", 100.0), ("10002", 5.0)]);
    assert_eq!(formula.eval(&get), Some(100.0 * 1.2 + 5.0 - 100.0));
    assert_eq!(formula.to_string(), "{Budget} * 1.2 + {10002} - {Budget}");
    assert_eq!(formula.source(), "{ Budget } * 1.2 + {10002} - {Budget}");
}

#[test]
fn undefined_results_are_none() {
    let get = values(&[("Zero", 0.0), ("Big", 1e308)]);
    assert_eq!(f("1 / {Zero}").eval(&get), None);
    assert_eq!(f("0 / 0").eval(&get), None);
    assert_eq!(f("{Missing} + 1").eval(&get), None);
    assert_eq!(f("{Big} * 10").eval(&get), None);
    assert_eq!(f("{Big} * 10 - {Big} * 10").eval(&get), None);
}

#[test]
fn syntax_errors_say_where() {
    let cases: [(&str, &str); 12] = [
        ("", "the formula is empty"),
        ("1 +", "expected a number, a {field} reference, \"-\" or \"(\" at column 4, but the formula ends there"),
        ("(1 + 2", "the parenthesis opened at column 1 is never closed"),
        ("1 + 2)", "expected an operator at column 6, but found \")\" without a matching \"(\""),
        ("{Budget", "the field reference starting at column 1 is not closed with }"),
        ("{ }", "empty field reference at column 1; write {Field name} or {field id}"),
        ("1 $ 2", "unexpected character '$' at column 3; formulas use numbers, + - * /, parentheses and {field} references"),
        ("1..2", "malformed number at column 1; write numbers like 12, 0.5 or 1e6"),
        ("1 2", "expected an operator at column 3, but found a number"),
        ("* 2", "expected a number, a {field} reference, \"-\" or \"(\" at column 1, but found \"*\""),
        ("{0}", "the field id at column 1 is not a valid id"),
        ("1e999", "the number at column 1 is too large"),
    ];
    for (src, msg) in cases {
        assert_eq!(err(src).to_string(), msg, "{src:?}");
    }
    // Columns count characters, not bytes.
    assert!(err("{Größe} $").to_string().contains("column 9"));
}

#[test]
fn size_and_depth_are_bounded() {
    let deep_ok = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Formula::parse(&deep_ok).is_ok());
    let too_deep = format!("{}1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert!(matches!(err(&too_deep), FormulaError::TooDeep { column: 33, .. }));
    assert!(matches!(err(&"-".repeat(40)), FormulaError::TooDeep { .. }));
    let long_chain = vec!["1"; 512].join("+");
    assert_eq!(f(&long_chain).eval(values(&[])), Some(512.0));
    let too_long = format!("{long_chain}+1");
    assert!(matches!(
        err(&too_long),
        FormulaError::TooLong { len: 1025, max: 1024 }
    ));
}

fn field(id: i64, name: &str, t: FieldType, formula: Option<&str>) -> FieldDef {
    FieldDef {
        id,
        name: name.into(),
        field_type: t,
        options: vec![],
        formula: formula.map(f),
        system: false,
    }
}

#[test]
fn formulas_are_ordered_after_the_formulas_they_read() {
    let defs = vec![
        field(
            10_004,
            "Margin %",
            FieldType::Formula,
            Some("{Margin} / {Budget} * 100"),
        ),
        field(10_001, "Budget", FieldType::Number, None),
        field(10_002, "Cost", FieldType::Number, None),
        field(10_003, "Margin", FieldType::Formula, Some("{10001} - {Cost}")),
        field(10_005, "Constant", FieldType::Formula, Some("42")),
    ];
    assert_eq!(evaluation_order(&defs).unwrap(), [10_003, 10_004, 10_005]);

    let num = |x: f64| FieldValue::Number(Finite::new(x).unwrap());
    let mut given = BTreeMap::from([(10_001, num(200.0)), (10_002, num(150.0))]);
    given.insert(10_003, num(-1.0)); // stale: recomputed, not trusted
    let got = evaluate_formulas(&defs, &given).unwrap();
    assert_eq!(got[&10_003], num(50.0));
    assert_eq!(got[&10_004], num(25.0));
    assert_eq!(got[&10_005], num(42.0));

    given.remove(&10_002);
    let got = evaluate_formulas(&defs, &given).unwrap();
    assert_eq!(got[&10_003], FieldValue::Null);
    assert_eq!(got[&10_004], FieldValue::Null);
}

#[test]
fn bad_references_and_cycles_are_refused() {
    let cyc = vec![
        field(10_001, "A", FieldType::Formula, Some("{B} + 1")),
        field(10_002, "B", FieldType::Formula, Some("{C} * 2")),
        field(10_003, "C", FieldType::Formula, Some("{A}")),
    ];
    assert_eq!(
        evaluation_order(&cyc).unwrap_err().to_string(),
        "formulas refer to each other in a cycle: A → B → C → A"
    );
    let selfref = vec![field(10_001, "A", FieldType::Formula, Some("{10001}"))];
    assert!(
        matches!(evaluation_order(&selfref), Err(FormulaError::Cycle { fields }) if fields == ["A", "A"])
    );

    let unknown = vec![field(10_001, "A", FieldType::Formula, Some("{Nope} + 1"))];
    assert_eq!(
        evaluation_order(&unknown).unwrap_err().to_string(),
        "the formula of A refers to {Nope}, which is not a field"
    );
    let text = vec![
        field(10_001, "T", FieldType::Text, None),
        field(10_002, "A", FieldType::Formula, Some("{T} + 1")),
    ];
    assert!(matches!(
        evaluation_order(&text),
        Err(FormulaError::NotNumeric {
            field_type: FieldType::Text,
            ..
        })
    ));
    let missing = vec![field(10_001, "A", FieldType::Formula, None)];
    assert!(matches!(
        evaluation_order(&missing),
        Err(FormulaError::MissingFormula { .. })
    ));
}

/// An expression built independently of the parser, for the properties below.
#[derive(Debug, Clone)]
enum T {
    Num(f64),
    Ref(usize),
    Neg(Box<T>),
    Bin(char, Box<T>, Box<T>),
}

/// Field names the generated expressions refer to; `"10002"` is written as an id.
const NAMES: [&str; 4] = ["Budget", "Cost δ", "10002", "Missing"];
/// Their values: the last one is unset.
const VALUES: [Option<f64>; 4] = [Some(1250.5), Some(-3.0), Some(0.0), None];

fn arb_t() -> impl Strategy<Value = T> {
    let leaf = prop_oneof![
        (0u32..1000).prop_map(|i| T::Num(f64::from(i))),
        (0u32..100_000).prop_map(|i| T::Num(f64::from(i) / 1000.0)),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| T::Num(x.abs())),
        (0..NAMES.len()).prop_map(T::Ref),
    ];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| T::Neg(Box::new(t))),
            (
                prop::sample::select(vec!['+', '-', '*', '/']),
                inner.clone(),
                inner
            )
                .prop_map(|(op, l, r)| T::Bin(op, Box::new(l), Box::new(r))),
        ]
    })
}

/// Fully parenthesised, with `Debug` or `Display` literals and some spacing variety.
fn render(t: &T, debug_literals: bool) -> String {
    match t {
        T::Num(x) if debug_literals => format!("{x:?}"),
        T::Num(x) => {
            let plain = format!("{x}");
            if plain.len() <= 24 {
                plain
            } else {
                format!("{x:e}")
            }
        }
        T::Ref(i) => format!("{{ {} }}", NAMES[*i]),
        T::Neg(e) => format!("-({})", render(e, debug_literals)),
        T::Bin(op, l, r) => format!(
            "({}){op} ( {} )",
            render(l, debug_literals),
            render(r, debug_literals)
        ),
    }
}

fn reference_eval(t: &T) -> Option<f64> {
    let v = match t {
        T::Num(x) => *x,
        T::Ref(i) => VALUES[*i]?,
        T::Neg(e) => -reference_eval(e)?,
        T::Bin(op, l, r) => {
            let (a, b) = (reference_eval(l)?, reference_eval(r)?);
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ if b == 0.0 => return None,
                _ => a / b,
            }
        }
    };
    v.is_finite().then_some(v)
}

fn lookup(r: &FieldRef) -> Option<f64> {
    let key = match r {
        FieldRef::Id(id) => id.to_string(),
        FieldRef::Name(n) => n.clone(),
    };
    VALUES[NAMES.iter().position(|n| *n == key)?]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_then_parse_is_identity(t in arb_t(), debug in any::<bool>()) {
        let formula = Formula::parse(&render(&t, debug)).unwrap();
        let shown = formula.to_string();
        let again = Formula::parse(&shown).unwrap();
        prop_assert_eq!(&again, &formula);
        prop_assert_eq!(again.to_string(), shown);
    }

    #[test]
    fn evaluation_matches_the_reference(t in arb_t(), debug in any::<bool>()) {
        let formula = Formula::parse(&render(&t, debug)).unwrap();
        let want = reference_eval(&t).map(|x| if x == 0.0 { 0.0 } else { x });
        let got = formula.eval(lookup);
        prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits));
    }

    #[test]
    fn parsing_never_panics(s in "[0-9a-z{}()+*/. eE-]{0,60}") {
        let _ = Formula::parse(&s);
    }
}
