//! Statement shapes: placeholder lists for multi-row statements (`VALUES (…), (…)`), built
//! once per shape and in the style each backend binds fastest, and statements held back
//! ([`Deferred`]) to be sent in front of a later batch.

/// `($s, $s+1, …), (…)`: `rows` groups of `cols` numbered placeholders.
///
/// Built once per shape and shared: the hot paths (fan-out inserts, outcome batches) ask
/// for the same few shapes thousands of times a second, and formatting hundreds of
/// placeholders each time showed up in profiles. Shapes are bounded by the callers' chunk
/// sizes (at most 200 rows), so the cache stays small.
pub(crate) fn value_rows(rows: usize, cols: usize, start: usize) -> std::sync::Arc<str> {
    shape(rows, cols, Some(start))
}

/// `value_rows(rows, cols, 1)` for a statement whose first parameters these are, in the
/// placeholder style cheapest for `DB`: anonymous `?` on SQLite, `$n` elsewhere.
///
/// Why: sqlx binds each SQLite parameter by asking SQLite for its name, and SQLite finds a
/// name by walking the statement's list of named parameters, so binding n `$n` parameters
/// costs O(n²). A 40-row outcome batch has ~500 of them; that walk was 6 % of Herald's
/// CPU in the fan-out bench. Anonymous parameters have no names to walk and bind in order
/// (numbered ones may still follow them: `$k` after k-1 anonymous ones is parameter k).
pub(crate) fn leading_value_rows<DB: sqlx::Database>(rows: usize, cols: usize) -> std::sync::Arc<str> {
    if DB::NAME == "SQLite" {
        shape(rows, cols, None)
    } else {
        value_rows(rows, cols, 1)
    }
}

/// Builds (once) and shares one placeholder shape; `start: None` means anonymous `?`.
fn shape(rows: usize, cols: usize, start: Option<usize>) -> std::sync::Arc<str> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    type Shapes = Mutex<HashMap<(usize, usize, Option<usize>), Arc<str>>>;
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Shapes::default);
    let mut shapes = shapes.lock().unwrap_or_else(PoisonError::into_inner);
    let text = shapes.entry((rows, cols, start)).or_insert_with(|| {
        let mut out = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            out.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..cols {
                if c > 0 {
                    out.push_str(", ");
                }
                match start {
                    Some(start) => {
                        out.push('$');
                        out.push_str(&(start + r * cols + c).to_string());
                    }
                    None => out.push('?'),
                }
            }
            out.push(')');
        }
        out.into()
    });
    Arc::clone(text)
}

/// `items` in chunks of at most `max` whose lengths are powers of two, largest first
/// (100 items, `max` 128: 64, 32 and 4).
///
/// Why: every chunk length is a statement of its own (`VALUES` with that many rows), and
/// a connection keeps a bounded number of statements prepared. The recorder's batches
/// come in every size up to a thousand; cut at a fixed `max`, each remainder length was
/// one more statement, enough of them to push the change path's statements out of
/// SQLite's statement cache, to be parsed again. Powers of two (and `max`) bound the
/// lengths to ⌊log₂(`max`)⌋ + 2 shapes at most, one fewer when `max` is a power of two,
/// at the price of a few statements per batch instead of one.
pub(crate) fn power_of_two_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::{leading_value_rows, numbered, power_of_two_chunks, value_rows};

    #[test]
    fn numbered_turns_anonymous_placeholders_into_numbered_ones() {
        assert_eq!(
            numbered("UPDATE t SET a = ?, b = ? WHERE id = ?", 7),
            "UPDATE t SET a = $7, b = $8 WHERE id = $9"
        );
        assert_eq!(numbered("SELECT 1", 3), "SELECT 1");
    }

    #[test]
    fn value_rows_numbers_placeholders_row_by_row() {
        assert_eq!(&*value_rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(&*value_rows(1, 2, 5), "($5, $6)");
        assert_eq!(&*value_rows(0, 2, 1), "");
        // Asked again, the same shape comes from the cache.
        assert!(std::sync::Arc::ptr_eq(&value_rows(2, 3, 1), &value_rows(2, 3, 1)));
        assert_eq!(&*leading_value_rows::<sqlx::Sqlite>(2, 2), "(?, ?), (?, ?)");
        assert_eq!(&*leading_value_rows::<sqlx::Postgres>(2, 2), "($1, $2), ($3, $4)");
    }

    fn lengths(n: usize, max: usize) -> Vec<usize> {
        let items: Vec<usize> = (0..n).collect();
        let chunks: Vec<&[usize]> = power_of_two_chunks(&items, max).collect();
        // Every item once, in order.
        assert_eq!(chunks.concat(), items, "{n} items, max {max}");
        chunks.iter().map(|c| c.len()).collect()
    }

    #[test]
    fn power_of_two_chunks_cut_largest_first_and_cover_every_item() {
        assert_eq!(lengths(0, 128), Vec::<usize>::new());
        assert_eq!(lengths(1, 128), [1]);
        assert_eq!(lengths(100, 128), [64, 32, 4]);
        assert_eq!(lengths(128, 128), [128]);
        assert_eq!(lengths(300, 128), [128, 128, 32, 8, 4]);
        // A `max` that is not a power of two is still the longest chunk.
        assert_eq!(lengths(250, 200), [200, 32, 16, 2]);
        // Every length a batch of up to 1,024 is cut into is one of eight shapes.
        let shapes: std::collections::BTreeSet<usize> = (1..=1024).flat_map(|n| lengths(n, 128)).collect();
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128]
        );
    }
}

/// One owned value of a statement: a change's statements are written once with their
/// values as a list (`change_path.rs`), and bound by whichever driver runs them (sqlx, or
/// rusqlite on SQLite's writer); also the values of a statement held back ([`Deferred`]).
#[derive(Debug, Clone)]
pub(crate) enum SqlArg {
    /// An integer column.
    Int(Option<i64>),
    /// A real column.
    Real(Option<f64>),
    /// A text column.
    Text(Option<String>),
}

impl rusqlite::ToSql for SqlArg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            SqlArg::Int(v) => v.to_sql(),
            SqlArg::Real(v) => v.to_sql(),
            SqlArg::Text(v) => v.to_sql(),
        }
    }
}

/// One value of a hot statement's row (a delivery, a shared body, an event), borrowed
/// where it can be: the row's columns are listed once and bound by either driver.
#[derive(Debug)]
pub(crate) enum Val<'a> {
    /// An integer column.
    Int(Option<i64>),
    /// A text column borrowed from the row.
    Text(Option<&'a str>),
    /// A text column made for the statement (an id's text).
    Owned(String),
    /// A boolean column.
    Bool(bool),
    /// A binary column.
    Bytes(Option<&'a [u8]>),
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::Int(v) => v.to_sql(),
            Val::Text(v) => v.to_sql(),
            Val::Owned(v) => v.to_sql(),
            Val::Bool(v) => v.to_sql(),
            Val::Bytes(v) => v.to_sql(),
        }
    }
}

/// Binds `vals` to an sqlx query, in order.
pub(crate) fn bind_vals<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    vals: impl IntoIterator<Item = Val<'q>>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in vals {
        q = match v {
            Val::Int(v) => q.bind(v),
            Val::Text(v) => q.bind(v),
            Val::Owned(v) => q.bind(v),
            Val::Bool(v) => q.bind(v),
            Val::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Binds `vals` to an sqlx query by reference, in order.
pub(crate) fn bind_val_refs<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    vals: &'q [Val<'q>],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for v in vals {
        q = match v {
            Val::Int(v) => q.bind(*v),
            Val::Text(v) => q.bind(*v),
            Val::Owned(v) => q.bind(v.as_str()),
            Val::Bool(v) => q.bind(*v),
            Val::Bytes(v) => q.bind(*v),
        };
    }
    q
}

/// An entity's write (anonymous `?` placeholders) and its values, held back until the
/// change's event is written: on SQLite's writer it needs no read-back, on PostgreSQL's
/// optimistic path it joins the one statement, which numbers the placeholders where it
/// places it ([`numbered`]).
#[derive(Debug, Clone)]
pub(crate) struct Deferred {
    /// The statement.
    pub sql: String,
    /// Its values, in placeholder order.
    pub args: Vec<SqlArg>,
}

/// `sql` with its anonymous `?` placeholders numbered `$start`, `$start+1`, … (for a
/// [`Deferred`] statement placed after other parameters in a PostgreSQL statement). Only
/// for Herald's own statements, which have no `?` inside literals.
pub(crate) fn numbered(sql: &str, start: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = start;
    for part in sql.split_inclusive('?') {
        match part.strip_suffix('?') {
            Some(head) => {
                out.push_str(head);
                out.push('$');
                out.push_str(&n.to_string());
                n += 1;
            }
            None => out.push_str(part),
        }
    }
    out
}
