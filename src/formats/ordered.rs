//! An insertion-ordered JSON tree for payload bodies.
//!
//! Herald builds `serde_json` without `preserve_order`, so a `serde_json::Value` object
//! serialises its keys sorted. Vendor payloads have a fixed key order (PPM's `WebhookId`,
//! `MessageId`, `Data`; Tracker's `kind` first) and receivers written against the vendor's
//! examples sometimes depend on it, so bodies are built from [`Node`] / [`Obj`], which
//! serialise keys exactly in the order they were inserted. Leaves that come straight from a
//! snapshot stay `serde_json::Value` inside [`Node::Json`].

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// One JSON value whose objects keep insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A plain JSON value (scalars, or pass-through data whose key order does not matter).
    Json(Value),
    /// An array of ordered nodes.
    Arr(Vec<Node>),
    /// An ordered object.
    Obj(Obj),
}

impl Node {
    /// JSON `null`, the "unset" of every format.
    pub const NULL: Node = Node::Json(Value::Null);

    /// A JSON string.
    pub fn str(s: impl Into<String>) -> Self {
        Node::Json(Value::String(s.into()))
    }

    /// A JSON integer.
    pub fn int(i: i64) -> Self {
        Node::Json(Value::from(i))
    }

    /// A JSON boolean.
    pub fn bool(b: bool) -> Self {
        Node::Json(Value::Bool(b))
    }

    /// The JSON value this node holds, if it is a plain value (used by tests and checks).
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Node::Json(v) => Some(v),
            _ => None,
        }
    }
}

impl From<Value> for Node {
    fn from(v: Value) -> Self {
        Node::Json(v)
    }
}

impl From<Obj> for Node {
    fn from(o: Obj) -> Self {
        Node::Obj(o)
    }
}

impl From<Vec<Node>> for Node {
    fn from(a: Vec<Node>) -> Self {
        Node::Arr(a)
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Self {
        Node::str(s)
    }
}

impl From<String> for Node {
    fn from(s: String) -> Self {
        Node::str(s)
    }
}

impl From<i64> for Node {
    fn from(i: i64) -> Self {
        Node::int(i)
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Self {
        Node::bool(b)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Json(v) => v.serialize(s),
            Node::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Obj(o) => o.serialize(s),
        }
    }
}

/// A JSON object that keeps insertion order and never holds a key twice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj(Vec<(String, Node)>);

impl Obj {
    /// An empty object.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Builder form of [`Obj::insert`], for literal-looking construction.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Node>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key`: replaces the value in place when the key exists (keeping its position),
    /// appends otherwise. Duplicate keys would make the body ambiguous JSON.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Node>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Obj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_serialise_in_insertion_order_and_replace_in_place() {
        let mut o = Obj::new().with("b", 1).with("a", Node::Arr(vec![Node::NULL]));
        o.insert("b", "x");
        o.insert("c", Obj::new().with("z", true).with("y", false));
        let s = serde_json::to_string(&o).unwrap();
        assert_eq!(s, r#"{"b":"x","a":[null],"c":{"z":true,"y":false}}"#);
        assert_eq!(o.len(), 3);
        assert!(o.contains_key("a") && !o.is_empty());
        assert_eq!(o.get("b"), Some(&Node::str("x")));
    }
}
