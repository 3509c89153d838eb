//! `shape_diff`: compares two JSON documents by shape (keys, nesting, value types, string
//! encodings, key order) while ignoring the values themselves, so a rendering of our sample
//! data can be checked against a vendor example that carries different ids and timestamps.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A parsed JSON document that keeps object key order (serde_json's `Value` sorts keys in
/// this crate, and key order is part of what we check).
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Null,
    Bool,
    Number,
    Str(String),
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

impl Tree {
    /// Parses JSON text, keeping key order.
    pub fn parse(text: &str) -> Tree {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn type_name(&self) -> String {
        match self {
            Tree::Null => "null".into(),
            Tree::Bool => "boolean".into(),
            Tree::Number => "number".into(),
            Tree::Str(s) => format!("{} string", encoding(s)),
            Tree::Arr(_) => "array".into(),
            Tree::Obj(_) => "object".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree::Bool)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
                Ok(Tree::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
                Ok(Tree::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree::Number)
            }
            fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
                Ok(Tree::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Tree::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry::<String, Tree>()? {
                    entries.push(entry);
                }
                Ok(Tree::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The encoding class of a string value: what a receiver's parser would care about.
pub fn encoding(s: &str) -> &'static str {
    let is_hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() == 5 && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| is_hex(p, *n)) {
        return "uuid";
    }
    let date = |d: &str| {
        d.len() == 10
            && all_digits(&d[..4])
            && &d[4..5] == "-"
            && all_digits(&d[5..7])
            && &d[7..8] == "-"
            && all_digits(&d[8..10])
    };
    if s.is_ascii() && s.len() >= 10 && date(&s[..10]) {
        let rest = &s[10..];
        if rest.is_empty() {
            return "date";
        }
        if rest == "T12:00:00Z" {
            return "date-at-noon";
        }
        if let Some(frac) = rest.strip_suffix('Z').and_then(|r| r.get(9..)) {
            if rest.len() > 10 && frac.starts_with('.') && all_digits(&frac[1..]) {
                return match frac.len() - 1 {
                    3 => "timestamp-ms",
                    7 => "timestamp-7-digits",
                    _ => "timestamp-other",
                };
            }
        }
    }
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let mut num = unsigned.splitn(2, '.');
    if num.next().is_some_and(all_digits) && num.next().is_none_or(all_digits) {
        return "decimal";
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        return "url";
    }
    "text"
}

/// Differences in shape between `expected` and `actual`, as readable lines such as
/// `$.Data.Attributes.Budget: expected number, got decimal string`. Values are ignored;
/// arrays are compared element by element up to the shorter length (their lengths are data).
/// Keys present in both objects must appear in the same relative order; a key that breaks
/// the order is reported as `out of order`.
pub fn shape_diff(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    walk("$", expected, actual, &mut out);
    out
}

fn walk(path: &str, e: &Tree, a: &Tree, out: &mut Vec<String>) {
    match (e, a) {
        (Tree::Arr(es), Tree::Arr(actual)) => {
            for (i, (e, a)) in es.iter().zip(actual).enumerate() {
                walk(&format!("{path}[{i}]"), e, a, out);
            }
        }
        (Tree::Obj(es), Tree::Obj(actual)) => {
            for (k, ev) in es {
                match actual.iter().find(|(ak, _)| ak == k) {
                    Some((_, av)) => walk(&format!("{path}.{k}"), ev, av, out),
                    None => out.push(format!("{path}.{k}: missing")),
                }
            }
            for (k, _) in actual {
                if !es.iter().any(|(ek, _)| ek == k) {
                    out.push(format!("{path}.{k}: unexpected"));
                }
            }
            let common_e: Vec<&str> = es
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| actual.iter().any(|(a, _)| a == k))
                .collect();
            let common_a: Vec<&str> = actual
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| common_e.contains(k))
                .collect();
            let keep = lcs(&common_e, &common_a);
            for k in common_a.iter().filter(|k| !keep.contains(k)) {
                out.push(format!("{path}.{k}: out of order"));
            }
        }
        _ => {
            let (et, at) = (e.type_name(), a.type_name());
            if et != at {
                out.push(format!("{path}: expected {et}, got {at}"));
            }
        }
    }
}

/// Longest common subsequence of two key lists (small: at most a few dozen keys).
fn lcs<'a>(x: &[&'a str], y: &[&'a str]) -> Vec<&'a str> {
    let mut t = vec![vec![0usize; y.len() + 1]; x.len() + 1];
    for i in (0..x.len()).rev() {
        for j in (0..y.len()).rev() {
            t[i][j] = if x[i] == y[j] {
                t[i + 1][j + 1] + 1
            } else {
                t[i + 1][j].max(t[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < x.len() && j < y.len() {
        if x[i] == y[j] {
            out.push(x[i]);
            (i, j) = (i + 1, j + 1);
        } else if t[i + 1][j] >= t[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[test]
fn shape_diff_reports_types_keys_encodings_and_order() {
    let e = Tree::parse(r#"{"a":1,"b":"2022-02-14T12:00:00Z","c":[{"x":null}],"d":"x","e":true}"#);
    let a = Tree::parse(r#"{"b":"2022-02-14","a":"1","c":[{"x":null,"y":1}],"e":true}"#);
    assert_eq!(
        shape_diff(&e, &a),
        vec![
            "$.a: expected number, got decimal string",
            "$.b: expected date-at-noon string, got date string",
            "$.c[0].y: unexpected",
            "$.d: missing",
            "$.a: out of order",
        ]
    );
    assert!(shape_diff(&e, &e).is_empty());
    assert_eq!(encoding("2022-02-14T08:20:46.4767404Z"), "timestamp-7-digits");
    assert_eq!(encoding("2023-01-31T16:21:57.615Z"), "timestamp-ms");
    assert_eq!(encoding("6879a8fe-59e7-49c5-af91-fd9c3b4bfad8"), "uuid");
    assert_eq!(encoding("23.000"), "decimal");
    assert_eq!(encoding("https://x/story/show/1"), "url");
    assert_eq!(encoding("On track"), "text");
}
