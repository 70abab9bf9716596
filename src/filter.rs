//! The LoopBack filter language (the subset the README's "Login activity" lists), turned
//! into parameterised SQL over a fixed whitelist of fields.
//!
//! A filter is JSON: `{"where": …, "order": …, "limit": n, "skip": n,
//! "offset": n, "fields": …}`. `where` takes `field: value` (equality),
//! `field: {op: value}` with eq, neq, gt, gte, lt, lte, between, inq, nin
//! and like, and `and`/`or` lists of further `where` objects. It arrives as
//! a JSON string or as a deep object in the query string
//! (`filter[where][actor]=…`, see `from_deep_object`).
//!
//! Rules that keep this safe to expose:
//! * SQL text comes only from the whitelist (`Field::column`) and from this
//!   file; every value the caller sends is a bound parameter. A field or
//!   operator outside the whitelist is refused, never passed through.
//! * Everything is bounded: nesting depth, terms, list lengths, pattern
//!   lengths, `limit`. A refusal is `Error::BadRequest` naming the part at
//!   fault (`filter.where.loginTime.gt: …`), so a caller can fix it.
//!
//! The owner of a table (audit.rs for login_activity; the admin audit for
//! its own) passes its `Table` and writes the rest of the statement.

pub use rusqlite::types::Value as Sql;
use serde_json::{Map, Value};

use crate::error::Error;

/// What a field holds, which decides how values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, compared as given; `like` allowed.
    Text,
    /// A time: ISO 8601 in filters, unix seconds in the table.
    Time,
}

/// One field a caller may name.
#[derive(Debug)]
pub struct Field {
    /// The name in the API (camelCase).
    pub name: &'static str,
    /// The column it reads (SQL text: only ever from this whitelist).
    pub column: &'static str,
    pub kind: Kind,
}

/// A table as the filter language sees it.
#[derive(Debug)]
pub struct Table {
    pub fields: &'static [Field],
    /// The order when the filter gives none, e.g. `login_time DESC`.
    pub default_order: &'static str,
    /// Appended to every order so that pages are stable (`rowid`).
    pub tiebreak: &'static str,
    /// Fields answered only when a filter's `fields` names them: ours,
    /// beyond the original's model, whose generated clients refuse
    /// properties they do not know. They can always be filtered on.
    pub on_request: &'static [&'static str],
}

impl Table {
    fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields answered when a filter names none.
    pub fn default_fields(&self) -> Vec<&'static str> {
        self.fields
            .iter()
            .map(|f| f.name)
            .filter(|n| !self.on_request.contains(n))
            .collect()
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
        names.join(", ")
    }
}

/// Page size when the filter gives none.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page.
pub const MAX_LIMIT: i64 = 1000;
/// The longest `inq`/`nin` list.
pub const MAX_LIST: usize = 1000;
/// How deep `and`/`or` may nest.
pub const MAX_DEPTH: usize = 8;
/// Conditions in one `where`, all levels together.
const MAX_TERMS: usize = 100;
/// Values bound in one `where` (SQLite allows 32,766).
const MAX_VALUES: usize = 4000;
/// The longest text value or `like` pattern.
const MAX_TEXT: usize = 512;
/// The deepest key of a deep-object query (`filter[where][or][0][a][inq][0]`).
const MAX_KEY_DEPTH: usize = 16;

/// A filter translated: SQL fragments and the values they bind.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// A boolean SQL expression (`1` when there is no `where`).
    pub where_sql: String,
    /// The values of `where_sql`'s `?` placeholders, in order.
    pub params: Vec<Sql>,
    /// An ORDER BY list, tiebreak included.
    pub order_sql: String,
    pub limit: i64,
    pub offset: i64,
    /// The fields to return, in whitelist order (all when not asked).
    pub fields: Vec<&'static str>,
}

/// A refusal naming `part`.
fn bad(part: &str, why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("{part}: {why}"))
}

/// A name the caller sent, quoted and cut short for an error message.
fn quoted(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    format!("{short:?}")
}

/// Reads a filter sent as a JSON string (`part` names the parameter).
pub fn parse_json(part: &str, text: &str) -> Result<Value, Error> {
    // serde_json refuses nesting past 128 levels by itself.
    serde_json::from_str(text).map_err(|e| bad(part, format!("malformed JSON ({e})")))
}

/// Builds the JSON value of a deep-object query parameter from the query
/// pairs whose key starts with `prefix[` (`filter[where][actor]=x`,
/// `filter[limit]=5`, `filter[where][actor][inq][0]=a`; a repeated key or
/// `[]` makes a list). None when no key has the prefix. Values stay
/// strings; `filter` reads numbers and booleans from strings too.
pub fn from_deep_object(prefix: &str, pairs: &[(String, String)]) -> Result<Option<Value>, Error> {
    let mut root = Value::Object(Map::new());
    let mut any = false;
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        if !rest.starts_with('[') {
            continue;
        }
        any = true;
        let mut path = Vec::new();
        let mut s = rest;
        while let Some(r) = s.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad(key, "a [ without its ]"))?;
            path.push(&r[..end]);
            s = &r[end + 1..];
        }
        if !s.is_empty() || path.len() > MAX_KEY_DEPTH {
            return Err(bad(key, "not a filter key (name[a][b]…, at most 16 deep)"));
        }
        insert(&mut root, &path, value, key)?;
    }
    Ok(any.then(|| lists(root)))
}

fn insert(node: &mut Value, path: &[&str], value: &str, key: &str) -> Result<(), Error> {
    let Some((first, rest)) = path.split_first() else {
        // A key given twice becomes a list of its values.
        match node {
            Value::Array(a) => a.push(Value::String(value.into())),
            Value::Object(m) if m.is_empty() => *node = Value::String(value.into()),
            Value::String(s) => {
                *node = Value::Array(vec![Value::String(std::mem::take(s)), value.into()])
            }
            _ => return Err(bad(key, "given both as a value and as an object")),
        }
        return Ok(());
    };
    if first.is_empty() {
        // `a[]=x`: append to a list.
        if let Value::Object(m) = node {
            if m.is_empty() {
                *node = Value::Array(Vec::new());
            }
        }
        if let Value::String(s) = node {
            *node = Value::Array(vec![Value::String(std::mem::take(s))]);
        }
        return match node {
            Value::Array(a) if rest.is_empty() => {
                a.push(Value::String(value.into()));
                Ok(())
            }
            _ => Err(bad(key, "[] must come last, after a list")),
        };
    }
    let Value::Object(m) = node else {
        return Err(bad(key, "given both as a value and as an object"));
    };
    let child = m
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    insert(child, rest, value, key)
}

/// Objects whose keys are all indexes (`[0]`, `[1]`) become lists, in
/// index order.
fn lists(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let numbered =
                !m.is_empty() && m.keys().all(|k| k.len() <= 6 && k.parse::<u32>().is_ok());
            if numbered {
                let mut items: Vec<(u32, Value)> = m
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), lists(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, lists(v))).collect())
            }
        }
        other => other,
    }
}

/// Translates a whole filter (`part` names it in errors, e.g. `filter`).
/// `Value::Null` is the empty filter.
pub fn filter(table: &Table, v: &Value, part: &str) -> Result<Query, Error> {
    let empty = Map::new();
    let obj = match v {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(bad(part, "must be a JSON object")),
    };
    for k in obj.keys() {
        if !["where", "order", "limit", "skip", "offset", "fields"].contains(&k.as_str()) {
            return Err(bad(
                part,
                format!(
                    "unknown key {}; known: where, order, limit, skip, offset, fields",
                    quoted(k)
                ),
            ));
        }
    }
    let (where_sql, params) = match obj.get("where") {
        None | Some(Value::Null) => ("1".to_string(), Vec::new()),
        Some(w) => where_clause(table, w, &format!("{part}.where"))?,
    };
    let limit = match obj.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(l) => {
            let n = integer(l, &format!("{part}.limit"))?;
            if !(1..=MAX_LIMIT).contains(&n) {
                return Err(bad(
                    &format!("{part}.limit"),
                    format!("must be 1 to {MAX_LIMIT}"),
                ));
            }
            n
        }
    };
    let mut offset = 0;
    for k in ["skip", "offset"] {
        if let Some(o) = obj.get(k).filter(|o| !o.is_null()) {
            let n = integer(o, &format!("{part}.{k}"))?;
            if n < 0 {
                return Err(bad(&format!("{part}.{k}"), "must not be negative"));
            }
            offset = n;
        }
    }
    Ok(Query {
        where_sql,
        params,
        order_sql: order(table, obj.get("order"), &format!("{part}.order"))?,
        limit,
        offset,
        fields: fields(table, obj.get("fields"), &format!("{part}.fields"))?,
    })
}

/// A non-negative integer, from a number or a string of digits (deep
/// objects send strings).
fn integer(v: &Value, part: &str) -> Result<i64, Error> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| bad(part, "must be an integer"))
}

fn order(table: &Table, v: Option<&Value>, part: &str) -> Result<String, Error> {
    let mut terms: Vec<String> = Vec::new();
    let mut items: Vec<&str> = Vec::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => items.extend(s.split(',')),
        Some(Value::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or_else(|| bad(&format!("{part}[{i}]"), "must be a string"))?;
                items.extend(s.split(','));
            }
        }
        Some(_) => return Err(bad(part, "must be a string or a list of strings")),
    }
    if items.len() > 8 {
        return Err(bad(part, "at most 8 terms"));
    }
    let mut last = "ASC";
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let mut words = item.split_whitespace();
        let name = words.next().unwrap_or_default();
        let dir = match words.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => "ASC",
            Some("DESC") => "DESC",
            Some(_) => return Err(bad(part, format!("{}: ASC or DESC", quoted(item)))),
        };
        if words.next().is_some() {
            return Err(bad(part, format!("{}: \"field ASC|DESC\"", quoted(item))));
        }
        let f = table.field(name).ok_or_else(|| {
            bad(
                part,
                format!("unknown field {}; known: {}", quoted(name), table.known()),
            )
        })?;
        terms.push(format!("{} {dir}", f.column));
        last = dir;
    }
    if terms.is_empty() {
        return Ok(format!("{}, {} DESC", table.default_order, table.tiebreak));
    }
    // The tiebreak follows the last term's direction, so that an index on
    // (column) (whose entries end in rowid) serves the whole order.
    terms.push(format!("{} {last}", table.tiebreak));
    Ok(terms.join(", "))
}

fn fields(table: &Table, v: Option<&Value>, part: &str) -> Result<Vec<&'static str>, Error> {
    let all = || table.fields.iter().map(|f| f.name).collect::<Vec<_>>();
    let check = |name: &str| {
        table.field(name).map(|f| f.name).ok_or_else(|| {
            bad(
                part,
                format!("unknown field {}; known: {}", quoted(name), table.known()),
            )
        })
    };
    match v {
        None | Some(Value::Null) => Ok(table.default_fields()),
        Some(Value::Array(a)) => {
            let mut want = Vec::new();
            for item in a {
                let name = item
                    .as_str()
                    .ok_or_else(|| bad(part, "a list of field names"))?;
                want.push(check(name)?);
            }
            Ok(all().into_iter().filter(|n| want.contains(n)).collect())
        }
        // {"id": true, "actor": true} names those; {"deviceInfo": false}
        // names all but those (LoopBack's two forms).
        Some(Value::Object(m)) => {
            let mut on = Vec::new();
            let mut off = Vec::new();
            for (k, flag) in m {
                let name = check(k)?;
                match flag {
                    Value::Bool(true) => on.push(name),
                    Value::Bool(false) => off.push(name),
                    Value::String(s) if s == "true" => on.push(name),
                    Value::String(s) if s == "false" => off.push(name),
                    _ => return Err(bad(&format!("{part}.{k}"), "must be true or false")),
                }
            }
            let from = if on.is_empty() {
                table.default_fields()
            } else {
                all()
            };
            Ok(from
                .into_iter()
                .filter(|n| {
                    if on.is_empty() {
                        !off.contains(n)
                    } else {
                        on.contains(n)
                    }
                })
                .collect())
        }
        Some(Value::String(s)) => {
            let want: Vec<&str> = s.split(',').map(str::trim).collect();
            for w in &want {
                check(w)?;
            }
            Ok(all().into_iter().filter(|n| want.contains(n)).collect())
        }
        Some(_) => Err(bad(part, "a list of field names or {field: true}")),
    }
}

/// Translates a `where` object alone (GET …/count takes only this).
pub fn where_clause(table: &Table, v: &Value, part: &str) -> Result<(String, Vec<Sql>), Error> {
    let mut w = Where {
        table,
        params: Vec::new(),
        terms: 0,
    };
    let sql = w.object(v, part, 0)?;
    Ok((sql, w.params))
}

struct Where<'t> {
    table: &'t Table,
    params: Vec<Sql>,
    terms: usize,
}

impl Where<'_> {
    fn object(&mut self, v: &Value, part: &str, depth: usize) -> Result<String, Error> {
        let obj = match v {
            Value::Object(m) => m,
            _ => return Err(bad(part, "must be an object")),
        };
        let mut parts = Vec::new();
        for (k, val) in obj {
            let here = format!("{part}.{k}");
            match k.as_str() {
                "and" | "or" => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(bad(
                            part,
                            format!("and/or nested more than {MAX_DEPTH} deep"),
                        ));
                    }
                    let items = match val {
                        Value::Array(a) if !a.is_empty() => a,
                        _ => return Err(bad(&here, "must be a non-empty list of conditions")),
                    };
                    let mut subs = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        subs.push(self.object(item, &format!("{here}[{i}]"), depth + 1)?);
                    }
                    let joiner = if k == "and" { " AND " } else { " OR " };
                    parts.push(format!("({})", subs.join(joiner)));
                }
                name => {
                    let f = self.table.field(name).ok_or_else(|| {
                        bad(
                            part,
                            format!(
                                "unknown field {}; known: {}, and, or",
                                quoted(name),
                                self.table.known()
                            ),
                        )
                    })?;
                    match val {
                        Value::Object(ops) => {
                            if ops.is_empty() {
                                return Err(bad(&here, "an empty condition"));
                            }
                            for (op, arg) in ops {
                                parts.push(self.op(f, op, arg, &here)?);
                            }
                        }
                        other => parts.push(self.op(f, "eq", other, &here)?),
                    }
                }
            }
        }
        if parts.is_empty() {
            return Ok("1".into());
        }
        Ok(format!("({})", parts.join(" AND ")))
    }

    fn op(&mut self, f: &Field, op: &str, arg: &Value, part: &str) -> Result<String, Error> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(bad(part, format!("more than {MAX_TERMS} conditions")));
        }
        let here = format!("{part}.{op}");
        let col = f.column;
        let sql = match op {
            "eq" if arg.is_null() => format!("{col} IS NULL"),
            "neq" if arg.is_null() => format!("{col} IS NOT NULL"),
            "eq" => format!("{col} = {}", self.bind(f, arg, &here)?),
            // Null-safe: rows without a value are not equal to one.
            "neq" => format!("{col} IS NOT {}", self.bind(f, arg, &here)?),
            "gt" => format!("{col} > {}", self.bind(f, arg, &here)?),
            "gte" => format!("{col} >= {}", self.bind(f, arg, &here)?),
            "lt" => format!("{col} < {}", self.bind(f, arg, &here)?),
            "lte" => format!("{col} <= {}", self.bind(f, arg, &here)?),
            "between" => match arg {
                Value::Array(a) if a.len() == 2 => {
                    let lo = self.bind(f, &a[0], &format!("{here}[0]"))?;
                    let hi = self.bind(f, &a[1], &format!("{here}[1]"))?;
                    format!("{col} BETWEEN {lo} AND {hi}")
                }
                _ => return Err(bad(&here, "must be a list of two values")),
            },
            "inq" | "nin" => {
                let items: Vec<&Value> = match arg {
                    Value::Array(a) => a.iter().collect(),
                    // A deep object with one value sends a string.
                    Value::String(_) => vec![arg],
                    _ => return Err(bad(&here, "must be a list")),
                };
                if items.len() > MAX_LIST {
                    return Err(bad(&here, format!("more than {MAX_LIST} values")));
                }
                if items.is_empty() {
                    return Ok(if op == "inq" { "0" } else { "1" }.into());
                }
                let mut marks = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    marks.push(self.bind(f, item, &format!("{here}[{i}]"))?);
                }
                if op == "inq" {
                    format!("{col} IN ({})", marks.join(", "))
                } else {
                    format!("({col} IS NULL OR {col} NOT IN ({}))", marks.join(", "))
                }
            }
            "like" => {
                if f.kind != Kind::Text {
                    return Err(bad(&here, "like applies to text fields"));
                }
                // SQLite's LIKE: % and _ wildcards, case-insensitive for ASCII.
                format!("{col} LIKE {}", self.bind(f, arg, &here)?)
            }
            other => {
                return Err(bad(
                    part,
                    format!(
                        "unknown operator {}; known: eq, neq, gt, gte, lt, lte, between, inq, nin, like",
                        quoted(other)
                    ),
                ))
            }
        };
        Ok(sql)
    }

    /// Binds one value of field `f`; returns its placeholder.
    fn bind(&mut self, f: &Field, v: &Value, part: &str) -> Result<&'static str, Error> {
        if self.params.len() >= MAX_VALUES {
            return Err(bad(part, format!("more than {MAX_VALUES} values in all")));
        }
        let value = match (f.kind, v) {
            (_, Value::Null) => return Err(bad(part, "null only works with eq and neq")),
            (Kind::Text, Value::String(s)) if s.chars().count() <= MAX_TEXT => Sql::Text(s.clone()),
            (Kind::Text, Value::String(_)) => {
                return Err(bad(part, format!("longer than {MAX_TEXT} characters")))
            }
            (Kind::Text, _) => return Err(bad(part, "must be a string")),
            (Kind::Time, Value::String(s)) => Sql::Integer(
                parse_time(s)
                    .ok_or_else(|| bad(part, format!("{} is not an ISO 8601 date", quoted(s))))?,
            ),
            (Kind::Time, _) => return Err(bad(part, "must be an ISO 8601 date string")),
        };
        self.params.push(value);
        Ok("?")
    }
}

/// Parses an ISO 8601 date (`2025-03-01`, midnight UTC) or date-time
/// (`2025-03-01T12:30`, `…:45`, `…:45.123`, then `Z`, `+02:00`, `+0200` or
/// nothing for UTC; a space may stand for the `T`) into unix seconds.
/// Fractions of a second are dropped. None when it is not one.
pub fn parse_time(s: &str) -> Option<i64> {
    parse_time_parts(s).map(|(t, _)| t)
}

/// As `parse_time`; the flag is true for a date without a time.
pub fn parse_time_parts(s: &str) -> Option<(i64, bool)> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if b.len() == 10 {
        return Some((days * 86_400, true));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hh, mm) = (num(11, 2)?, num(14, 2)?);
    if b.get(13) != Some(&b':') {
        return None;
    }
    let mut i = 16;
    let mut ss = 0;
    if b.get(i) == Some(&b':') {
        ss = num(i + 1, 2)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start || i - start > 9 {
                return None;
            }
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let offset = match &b[i..] {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] => {
            let rest = &b[i + 1..];
            let (oh, om) = match rest.len() {
                5 if rest[2] == b':' => (num(i + 1, 2)?, num(i + 4, 2)?),
                4 => (num(i + 1, 2)?, num(i + 3, 2)?),
                2 => (num(i + 1, 2)?, 0),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss - offset, false))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's
/// `days_from_civil`, the inverse of clock.rs's `civil_from_days`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static FIELDS: [Field; 4] = [
        Field {
            name: "id",
            column: "id",
            kind: Kind::Text,
        },
        Field {
            name: "actor",
            column: "actor",
            kind: Kind::Text,
        },
        Field {
            name: "loginTime",
            column: "login_time",
            kind: Kind::Time,
        },
        Field {
            name: "loginType",
            column: "login_type",
            kind: Kind::Text,
        },
    ];
    static T: Table = Table {
        fields: &FIELDS,
        default_order: "login_time DESC",
        tiebreak: "rowid",
        on_request: &[],
    };

    fn refusal(v: Value) -> String {
        match filter(&T, &v, "filter") {
            Err(Error::BadRequest(m)) => m,
            other => panic!("not refused: {other:?}"),
        }
    }

    /// Runs a filter against a small table and returns the ids it finds.
    fn run(v: Value) -> Vec<String> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id TEXT, actor TEXT, login_time INTEGER, login_type TEXT);
             INSERT INTO t VALUES ('a', 'ann', 100, 'ACCESS'), ('b', 'bob', 200, 'FAILED'),
                                  ('c', NULL, 300, 'FAILED'), ('d', 'Ann', 400, 'LOGOUT');",
        )
        .unwrap();
        let q = filter(&T, &v, "filter").unwrap();
        let sql = format!(
            "SELECT id FROM t WHERE {} ORDER BY {} LIMIT {} OFFSET {}",
            q.where_sql, q.order_sql, q.limit, q.offset
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(q.params), |r| r.get(0))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn every_operator_selects_what_loopback_would() {
        assert_eq!(run(json!({"where": {"actor": "bob"}})), ["b"]);
        assert_eq!(run(json!({"where": {"actor": {"eq": null}}})), ["c"]);
        assert_eq!(
            run(json!({"where": {"actor": {"neq": "bob"}}})),
            ["d", "c", "a"]
        );
        assert_eq!(
            run(json!({"where": {"loginTime": {"gt": "1970-01-01T00:03:20Z"}}})),
            ["d", "c"]
        );
        assert_eq!(
            run(json!({"where": {"loginTime": {"gte": "1970-01-01T00:03:20Z"}}})),
            ["d", "c", "b"]
        );
        assert_eq!(
            run(json!({"where": {"loginTime": {"lt": "1970-01-01T00:03:20Z"}}})),
            ["a"]
        );
        assert_eq!(
            run(json!({"where": {"loginTime": {"lte": "1970-01-01T00:03:20Z"}}})),
            ["b", "a"]
        );
        assert_eq!(
            run(
                json!({"where": {"loginTime": {"between": ["1970-01-01T00:01:40Z", "1970-01-01T00:05:00Z"]}}})
            ),
            ["c", "b", "a"]
        );
        assert_eq!(
            run(json!({"where": {"actor": {"inq": ["ann", "bob"]}}})),
            ["b", "a"]
        );
        assert_eq!(
            run(json!({"where": {"actor": {"nin": ["ann", "bob"]}}})),
            ["d", "c"]
        );
        assert_eq!(
            run(json!({"where": {"actor": {"like": "an%"}}})),
            ["d", "a"]
        );
        assert_eq!(run(json!({"where": {"actor": {"like": "_o_"}}})), ["b"]);
        assert_eq!(
            run(
                json!({"where": {"or": [{"actor": "bob"}, {"and": [{"loginType": "FAILED"}, {"actor": null}]}]}})
            ),
            ["c", "b"]
        );
        assert_eq!(
            run(json!({"where": {"actor": {"inq": []}}})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn order_limit_skip_and_fields_shape_the_page() {
        assert_eq!(
            run(json!({"order": "loginTime ASC", "limit": 2})),
            ["a", "b"]
        );
        assert_eq!(
            run(json!({"order": ["loginType DESC", "loginTime"], "skip": 1, "limit": "2"})),
            ["b", "c"]
        );
        assert_eq!(run(json!({"order": "loginTime desc", "offset": 3})), ["a"]);
        let q = filter(&T, &json!({"fields": ["loginTime", "id"]}), "filter").unwrap();
        assert_eq!(q.fields, ["id", "loginTime"]);
        let q = filter(&T, &json!({"fields": {"actor": false}}), "filter").unwrap();
        assert_eq!(q.fields, ["id", "loginTime", "loginType"]);
        let q = filter(&T, &Value::Null, "filter").unwrap();
        assert_eq!((q.limit, q.offset, q.fields.len()), (DEFAULT_LIMIT, 0, 4));
    }

    #[test]
    fn refusals_name_the_part_at_fault() {
        assert!(refusal(json!({"where": {"password": "x"}}))
            .starts_with("filter.where: unknown field \"password\""));
        assert!(refusal(json!({"where": {"actor": {"regexp": "x"}}}))
            .contains("filter.where.actor: unknown operator \"regexp\""));
        assert!(
            refusal(json!({"where": {"loginTime": {"gt": "yesterday"}}}))
                .starts_with("filter.where.loginTime.gt:")
        );
        assert!(
            refusal(json!({"where": {"loginTime": {"gt": "2025-02-30"}}})).contains("ISO 8601")
        );
        assert!(refusal(json!({"limit": 1001})).starts_with("filter.limit"));
        assert!(refusal(json!({"limit": 0})).starts_with("filter.limit"));
        assert!(refusal(json!({"skip": -1})).starts_with("filter.skip"));
        assert!(refusal(json!({"order": "actor sideways"})).starts_with("filter.order"));
        assert!(refusal(json!({"order": "nope"})).starts_with("filter.order: unknown field"));
        assert!(refusal(json!({"fields": ["secret"]})).starts_with("filter.fields"));
        assert!(refusal(json!({"include": "x"})).starts_with("filter: unknown key \"include\""));
        assert!(refusal(json!({"where": {"actor": {"between": ["a"]}}}))
            .starts_with("filter.where.actor.between"));
        assert!(refusal(json!({"where": {"actor": 5}}))
            .starts_with("filter.where.actor.eq: must be a string"));
        assert!(refusal(json!({"where": {"loginTime": {"like": "19%"}}})).contains("text fields"));
        assert!(refusal(json!({"where": {"or": []}})).starts_with("filter.where.or"));
        assert!(refusal(json!([1])).starts_with("filter: must be a JSON object"));
        match parse_json("filter", "{\"where\":") {
            Err(Error::BadRequest(m)) => assert!(m.starts_with("filter: malformed JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hostile_filters_are_bounded() {
        // Deep nesting: refused at MAX_DEPTH, long before any stack limit.
        let mut w = json!({"actor": "x"});
        for _ in 0..50 {
            w = json!({"or": [w]});
        }
        assert!(refusal(json!({"where": w})).contains("nested more than 8 deep"));
        // A list over 1,000 values.
        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert!(refusal(json!({"where": {"actor": {"inq": many}}}))
            .starts_with("filter.where.actor.inq: more than 1000"));
        // Exactly 1,000 is fine.
        let ok: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert!(filter(&T, &json!({"where": {"actor": {"inq": ok}}}), "filter").is_ok());
        // Too many conditions side by side.
        let wide: Vec<Value> = (0..200).map(|i| json!({"actor": i.to_string()})).collect();
        assert!(refusal(json!({"where": {"or": wide}})).contains("more than 100 conditions"));
        // Huge strings.
        assert!(refusal(json!({"where": {"actor": "x".repeat(10_000)}})).contains("longer than"));
        // JSON nested past serde_json's own limit is malformed, not a crash.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_json("filter", &deep).is_err());
    }

    #[test]
    fn injection_in_names_is_refused_and_in_values_is_bound() {
        let evil = "actor = actor OR 1=1; DROP TABLE t; --";
        let m = refusal(json!({"where": {evil: "x"}}));
        assert!(m.contains("unknown field"), "{m}");
        let m = refusal(json!({"order": "loginTime; DROP TABLE t"}));
        assert!(m.starts_with("filter.order"), "{m}");
        let m = refusal(json!({"order": "login_time--"}));
        assert!(m.contains("unknown field"), "{m}");
        let m = refusal(json!({"where": {"actor": {"eq) OR (1": "x"}}}));
        assert!(m.contains("unknown operator"), "{m}");
        // A value is a parameter: it matches nothing, and the SQL text
        // never contains it.
        let q = filter(&T, &json!({"where": {"actor": "' OR '1'='1"}}), "filter").unwrap();
        assert!(!q.where_sql.contains('\''));
        assert_eq!(
            run(json!({"where": {"actor": "' OR '1'='1"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            run(json!({"where": {"actor": {"like": "%' OR 1=1 --"}}})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deep_object_queries_become_the_same_filter() {
        let pairs: Vec<(String, String)> = [
            ("filter[where][actor][inq][0]", "ann"),
            ("filter[where][actor][inq][1]", "bob"),
            ("filter[where][loginTime][gt]", "1970-01-01T00:00:00Z"),
            ("filter[limit]", "5"),
            ("filter[order]", "loginTime ASC"),
            ("filter[fields][id]", "true"),
            ("other", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = from_deep_object("filter", &pairs).unwrap().unwrap();
        assert_eq!(
            v,
            json!({"where": {"actor": {"inq": ["ann", "bob"]}, "loginTime": {"gt": "1970-01-01T00:00:00Z"}},
                   "limit": "5", "order": "loginTime ASC", "fields": {"id": "true"}})
        );
        assert_eq!(run(v), ["a", "b"]);
        // Repeated keys and [] make lists too.
        let pairs: Vec<(String, String)> = [
            ("where[actor][nin]", "ann"),
            ("where[actor][nin]", "bob"),
            ("where[or][0][loginType]", "LOGOUT"),
            ("where[or][1][loginType][inq][]", "ACCESS"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let v = from_deep_object("where", &pairs).unwrap().unwrap();
        assert_eq!(
            v,
            json!({"actor": {"nin": ["ann", "bob"]}, "or": [{"loginType": "LOGOUT"}, {"loginType": {"inq": ["ACCESS"]}}]})
        );
        assert_eq!(from_deep_object("filter", &[]).unwrap(), None);
        let clash = [
            ("filter[where][actor]".to_string(), "a".to_string()),
            ("filter[where][actor][eq]".to_string(), "b".to_string()),
        ];
        assert!(from_deep_object("filter", &clash).is_err());
        let deep = [(format!("filter{}", "[a]".repeat(40)), "x".to_string())];
        assert!(from_deep_object("filter", &deep).is_err());
    }

    #[test]
    fn iso_dates_and_times_parse_to_unix_seconds() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(parse_time_parts("2000-02-29"), Some((951_782_400, true)));
        assert_eq!(parse_time("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18T11:06:40.123Z"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18T13:06:40+02:00"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18T10:06:40-0100"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18 11:06:40"), Some(1_795_000_000));
        assert_eq!(parse_time("2026-11-18T11:06"), Some(1_795_000_000 - 40));
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-29",
            "2026-11-18T24:00",
            "2026-11-18T11:06:40Q",
            "18/11/2026",
            "2026-11-18T11:06:40+99:00",
            "２０２６-11-18",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
