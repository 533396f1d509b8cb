//! The payload filter language: `must` / `should` / `must_not` over conditions on payload keys
//! and point ids, parsed from JSON with errors that name the offending place.
//!
//! ```json
//! {"must": [{"key": "city", "match": {"any": ["Paris", "Lyon"]}},
//!           {"key": "meta.published", "range": {"gte": "2024-01-01T00:00:00Z"}}],
//!  "must_not": [{"is_empty": {"key": "tags"}}]}
//! ```
//!
//! Keys are dotted paths; an array met on the way contributes all its elements, and a condition
//! holds when *any* value found at the key satisfies it (so `tags` matches `"a"` when it is
//! `["a", "b"]`). `except` holds when the key has at least one value and none is in the list.
//! Ranges compare numbers (exactly: integers as integers, see [`Num`]), or RFC 3339 datetimes
//! (compared as instants). Values match by type: the string `"7"` is not the number `7`. An empty filter matches
//! everything; an empty `should` places no constraint.

use serde_json::{Map, Value};

pub use crate::number::Num;

/// A point's external id, as the filter language sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A UUID (parsed from its 8-4-4-4-12 hex form).
    Uuid(u128),
    /// Any other string id.
    Str(String),
}

impl PointId {
    /// Reads an id from JSON: a non-negative integer, a UUID string or another string.
    pub fn from_json(v: &Value) -> Option<PointId> {
        match v {
            Value::Number(n) => n.as_u64().map(PointId::Num),
            Value::String(s) => {
                Some(parse_uuid(s).map_or_else(|| PointId::Str(s.clone()), PointId::Uuid))
            }
            _ => None,
        }
    }
}

impl PointId {
    /// The id as JSON: a number, or a string (UUIDs in hyphenated lower-case form).
    pub fn to_json(&self) -> Value {
        match self {
            PointId::Num(n) => Value::from(*n),
            other => Value::String(other.to_string()),
        }
    }
}

impl std::fmt::Display for PointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => {
                let h = format!("{u:032x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            PointId::Str(s) => f.write_str(s),
        }
    }
}

fn parse_uuid(s: &str) -> Option<u128> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lens != [8, 4, 4, 4, 12]
        || !groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    u128::from_str_radix(&groups.concat(), 16).ok()
}

/// A boolean combination of conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// All must hold.
    pub must: Vec<Condition>,
    /// At least one must hold (when non-empty).
    pub should: Vec<Condition>,
    /// None may hold.
    pub must_not: Vec<Condition>,
}

/// What a `match` condition accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchValue {
    /// Equal to this value.
    Value(Value),
    /// Equal to one of these.
    Any(Vec<Value>),
    /// Present and equal to none of these.
    Except(Vec<Value>),
}

/// A bound of a range: a number, or an instant in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A numeric bound (integers stay exact; see [`Num`]).
    Number(Num),
    /// A datetime bound (microseconds since 1970-01-01T00:00:00Z).
    Instant(i64),
}

/// Bounds of a `range` condition; absent bounds do not constrain.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    /// Strictly greater than.
    pub gt: Option<Bound>,
    /// Greater than or equal.
    pub gte: Option<Bound>,
    /// Strictly less than.
    pub lt: Option<Bound>,
    /// Less than or equal.
    pub lte: Option<Bound>,
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Payload value equality / membership.
    Match {
        /// Dotted key.
        key: String,
        /// Accepted values.
        value: MatchValue,
    },
    /// Numeric or datetime range.
    Range {
        /// Dotted key.
        key: String,
        /// Bounds.
        range: Range,
    },
    /// The key holds `null`.
    IsNull(String),
    /// The key is missing, `null`, or an empty array.
    IsEmpty(String),
    /// The point's id is one of these.
    HasId(Vec<PointId>),
    /// A nested filter.
    Nested(Box<Filter>),
}

/// A filter that cannot be parsed, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter at {path}: {reason}")]
pub struct FilterError {
    /// Where in the filter JSON (`must[1].range.gt`).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        path: path.to_string(),
        reason: reason.into(),
    })
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, FilterError> {
    v.as_object()
        .map_or_else(|| err(path, format!("expected an object, got {v}")), Ok)
}

fn key_of(o: &Map<String, Value>, path: &str) -> Result<String, FilterError> {
    match o.get("key") {
        Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
        Some(other) => err(
            &format!("{path}.key"),
            format!("expected a non-empty string, got {other}"),
        ),
        None => err(path, "missing \"key\""),
    }
}

fn only(o: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), FilterError> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => err(
            path,
            format!(
                "unknown field {k:?} (expected one of {})",
                allowed.join(", ")
            ),
        ),
        None => Ok(()),
    }
}

impl Filter {
    /// Parses a filter from JSON text.
    pub fn from_json_str(s: &str) -> Result<Filter, FilterError> {
        let v: Value =
            serde_json::from_str(s).or_else(|e| err("$", format!("not valid JSON: {e}")))?;
        Filter::from_json(&v)
    }

    /// Parses a filter from a JSON value.
    pub fn from_json(v: &Value) -> Result<Filter, FilterError> {
        Self::parse(v, "$")
    }

    fn parse(v: &Value, path: &str) -> Result<Filter, FilterError> {
        let o = object(v, path)?;
        only(o, &["must", "should", "must_not"], path)?;
        let list = |name: &str| -> Result<Vec<Condition>, FilterError> {
            let p = format!("{path}.{name}");
            match o.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Condition::parse(c, &format!("{p}[{i}]")))
                    .collect(),
                // A single condition is accepted where a list is expected.
                Some(single @ Value::Object(_)) => Ok(vec![Condition::parse(single, &p)?]),
                Some(other) => err(&p, format!("expected a list of conditions, got {other}")),
            }
        };
        Ok(Filter {
            must: list("must")?,
            should: list("should")?,
            must_not: list("must_not")?,
        })
    }

    /// Whether a point with `id` and `payload` matches.
    pub fn matches(&self, id: &PointId, payload: &Value) -> bool {
        self.must.iter().all(|c| c.matches(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, payload)))
            && !self.must_not.iter().any(|c| c.matches(id, payload))
    }
}

impl Condition {
    fn parse(v: &Value, path: &str) -> Result<Condition, FilterError> {
        let o = object(v, path)?;
        if o.contains_key("must") || o.contains_key("should") || o.contains_key("must_not") {
            return Ok(Condition::Nested(Box::new(Filter::parse(v, path)?)));
        }
        if let Some(ids) = o.get("has_id") {
            only(o, &["has_id"], path)?;
            let p = format!("{path}.has_id");
            let Value::Array(ids) = ids else {
                return err(&p, "expected a list of ids");
            };
            return ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    PointId::from_json(id).map_or_else(
                        || {
                            err(
                                &format!("{p}[{i}]"),
                                format!("{id} is not an id (integer ≥ 0 or string)"),
                            )
                        },
                        Ok,
                    )
                })
                .collect::<Result<_, _>>()
                .map(Condition::HasId);
        }
        for (name, make) in [
            ("is_null", Condition::IsNull as fn(String) -> Condition),
            ("is_empty", Condition::IsEmpty),
        ] {
            if let Some(inner) = o.get(name) {
                only(o, &[name], path)?;
                let p = format!("{path}.{name}");
                let inner = object(inner, &p)?;
                only(inner, &["key"], &p)?;
                return Ok(make(key_of(inner, &p)?));
            }
        }
        let key = key_of(o, path)?;
        if let Some(m) = o.get("match") {
            only(o, &["key", "match"], path)?;
            let p = format!("{path}.match");
            let m = object(m, &p)?;
            if m.len() != 1 {
                return err(&p, "expected exactly one of value, any, except");
            }
            let (kind, arg) = m.iter().next().expect("one entry");
            let list = |arg: &Value| match arg {
                Value::Array(items) if items.iter().all(is_scalar) => Ok(items.clone()),
                _ => err(
                    &format!("{p}.{kind}"),
                    "expected a list of strings, numbers or booleans",
                ),
            };
            let value = match kind.as_str() {
                "value" if is_scalar(arg) => MatchValue::Value(arg.clone()),
                "value" => {
                    return err(
                        &format!("{p}.value"),
                        "expected a string, number or boolean",
                    )
                }
                "any" => MatchValue::Any(list(arg)?),
                "except" => MatchValue::Except(list(arg)?),
                other => {
                    return err(
                        &p,
                        format!("unknown match kind {other:?} (value, any, except)"),
                    )
                }
            };
            return Ok(Condition::Match { key, value });
        }
        if let Some(r) = o.get("range") {
            only(o, &["key", "range"], path)?;
            let p = format!("{path}.range");
            let r = object(r, &p)?;
            only(r, &["gt", "gte", "lt", "lte"], &p)?;
            if r.is_empty() {
                return err(&p, "expected at least one of gt, gte, lt, lte");
            }
            let bound = |name: &str| -> Result<Option<Bound>, FilterError> {
                let bp = format!("{p}.{name}");
                match r.get(name) {
                    None => Ok(None),
                    Some(Value::Number(n)) => Ok(Some(Bound::Number(Num::of(n)))),
                    Some(Value::String(s)) => parse_rfc3339(s)
                        .map(|t| Some(Bound::Instant(t)))
                        .map_or_else(
                            || err(&bp, format!("{s:?} is not an RFC 3339 datetime")),
                            Ok,
                        ),
                    Some(other) => err(
                        &bp,
                        format!("expected a number or an RFC 3339 datetime, got {other}"),
                    ),
                }
            };
            let range = Range {
                gt: bound("gt")?,
                gte: bound("gte")?,
                lt: bound("lt")?,
                lte: bound("lte")?,
            };
            return Ok(Condition::Range { key, range });
        }
        err(
            path,
            "expected one of: match, range, is_null, is_empty, has_id, or a nested filter",
        )
    }

    /// Whether the condition holds for a point.
    pub fn matches(&self, id: &PointId, payload: &Value) -> bool {
        match self {
            Condition::Match { key, value } => {
                let found = payload_values(payload, key);
                match value {
                    MatchValue::Value(v) => found.iter().any(|f| json_eq(f, v)),
                    MatchValue::Any(vs) => found.iter().any(|f| vs.iter().any(|v| json_eq(f, v))),
                    MatchValue::Except(vs) => {
                        !found.is_empty() && found.iter().all(|f| !vs.iter().any(|v| json_eq(f, v)))
                    }
                }
            }
            Condition::Range { key, range } => payload_values(payload, key)
                .iter()
                .any(|v| range.contains(v)),
            Condition::IsNull(key) => payload_values(payload, key).iter().any(|v| v.is_null()),
            Condition::IsEmpty(key) => payload_values(payload, key).iter().all(|v| v.is_null()),
            Condition::HasId(ids) => ids.contains(id),
            Condition::Nested(f) => f.matches(id, payload),
        }
    }
}

impl Range {
    fn contains(&self, v: &Value) -> bool {
        let check = |b: Option<Bound>, ok: fn(std::cmp::Ordering) -> bool| -> bool {
            let Some(b) = b else { return true };
            let ord = match (b, v) {
                (Bound::Number(b), Value::Number(n)) => Some(Num::of(n).cmp(&b)),
                (Bound::Instant(b), Value::String(s)) => parse_rfc3339(s).map(|t| t.cmp(&b)),
                _ => None,
            };
            ord.is_some_and(ok)
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        check(self.gt, |o| o == Greater)
            && check(self.gte, |o| o != Less)
            && check(self.lt, |o| o == Less)
            && check(self.lte, |o| o == Less || o == Equal)
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Numbers compare by exact value (`1` equals `1.0`, integers above 2^53 stay distinct);
/// everything else structurally (so `"7"` is not `7`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Num::of(x) == Num::of(y),
        _ => a == b,
    }
}

/// Every value at dotted `key`, arrays flattened (on the way and at the end): the values a
/// condition on `key` is tested against. Payload indexes use it to stay exactly in step.
pub fn payload_values<'a>(payload: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut current = vec![payload];
    for part in key.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v {
                Value::Object(o) => next.extend(o.get(part)),
                Value::Array(items) => next.extend(items.iter().filter_map(|i| i.get(part))),
                _ => {}
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        })
        .collect()
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (the inverse of
/// [`parse_rfc3339`] at whole seconds).
pub fn format_rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (also a date alone, as midnight UTC) into
/// microseconds since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&month) {
        return None;
    }
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if b.len() == 10 {
        return Some(days * 86_400_000_000);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if end == start {
            return None;
        }
        let frac = &s[start..end.min(start + 6)];
        micros = frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32);
        at = end;
    }
    let offset = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let off = num(at + 1..at + 3)? * 3600 + num(at + 4..at + 6)? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(v: Value) -> Filter {
        Filter::from_json(&v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn point() -> Value {
        json!({
            "city": "Paris", "stars": 4, "price": 12.5, "open": true, "note": null, "tags": ["a", "b"],
            "empty": [], "meta": {"published": "2024-03-01T10:00:00+01:00", "authors": [{"name": "x"}, {"name": "y"}]}
        })
    }

    #[test]
    fn match_value_any_except_with_arrays_and_nested_keys() {
        let id = PointId::Num(7);
        let p = point();
        let yes = [
            json!({"must": [{"key": "city", "match": {"value": "Paris"}}]}),
            json!({"must": [{"key": "stars", "match": {"value": 4.0}}]}),
            json!({"must": [{"key": "tags", "match": {"value": "b"}}]}),
            json!({"must": [{"key": "meta.authors.name", "match": {"any": ["y", "z"]}}]}),
            json!({"must": [{"key": "city", "match": {"except": ["Lyon"]}}]}),
            json!({"must": [{"key": "open", "match": {"value": true}}]}),
            json!({"should": [{"key": "city", "match": {"value": "Lyon"}}, {"has_id": [7, 8]}]}),
            json!({"must_not": [{"key": "tags", "match": {"value": "c"}}]}),
            json!({}),
        ];
        for v in yes {
            assert!(f(v.clone()).matches(&id, &p), "{v}");
        }
        let no = [
            json!({"must": [{"key": "city", "match": {"value": "paris"}}]}),
            json!({"must": [{"key": "tags", "match": {"except": ["a"]}}]}),
            json!({"must": [{"key": "missing", "match": {"except": ["a"]}}]}),
            json!({"should": [{"key": "city", "match": {"value": "Lyon"}}, {"has_id": [8]}]}),
            json!({"must_not": [{"key": "meta.authors.name", "match": {"value": "x"}}]}),
        ];
        for v in no {
            assert!(!f(v.clone()).matches(&id, &p), "{v}");
        }
    }

    #[test]
    fn ranges_on_numbers_and_datetimes() {
        let (id, p) = (PointId::Num(1), point());
        assert!(
            f(json!({"must": [{"key": "price", "range": {"gt": 12, "lte": 12.5}}]}))
                .matches(&id, &p)
        );
        assert!(!f(json!({"must": [{"key": "price", "range": {"lt": 12.5}}]})).matches(&id, &p));
        // 10:00+01:00 is 09:00Z.
        let at =
            |op: &str, t: &str| f(json!({"must": [{"key": "meta.published", "range": {op: t}}]}));
        assert!(at("gte", "2024-03-01T09:00:00Z").matches(&id, &p));
        assert!(!at("gt", "2024-03-01T09:00:00Z").matches(&id, &p));
        assert!(at("lt", "2024-03-01T09:00:00.000001Z").matches(&id, &p));
        assert!(at("gt", "2024-02-29").matches(&id, &p));
        // A number bound never matches a string value, and vice versa.
        assert!(!f(json!({"must": [{"key": "city", "range": {"gt": 0}}]})).matches(&id, &p));
    }

    #[test]
    fn integers_compare_exactly_and_types_do_not_mix() {
        // Regression: numbers compared as f64, so 2^53 + 1 matched 2^53.
        let id = PointId::Num(1);
        let p = json!({"t": 9_007_199_254_740_993_u64, "s": "007", "n": 7});
        let m = |v: Value| f(json!({"must": [{"key": "t", "match": {"value": v}}]}));
        assert!(m(json!(9_007_199_254_740_993_u64)).matches(&id, &p));
        assert!(!m(json!(9_007_199_254_740_992_u64)).matches(&id, &p));
        let r = |op: &str, v: Value| f(json!({"must": [{"key": "t", "range": {op: v}}]}));
        assert!(!r("gt", json!(9_007_199_254_740_993_u64)).matches(&id, &p));
        assert!(r("gt", json!(9_007_199_254_740_992_u64)).matches(&id, &p));
        assert!(r("lte", json!(9_007_199_254_740_993_u64)).matches(&id, &p));
        assert!(!r("lt", json!(9_007_199_254_740_993_u64)).matches(&id, &p));
        let key = |k: &str, v: Value| f(json!({"must": [{"key": k, "match": {"value": v}}]}));
        assert!(!key("s", json!(7)).matches(&id, &p), "\"007\" is not 7");
        assert!(!key("n", json!("7")).matches(&id, &p), "7 is not \"7\"");
        assert!(key("n", json!(7.0)).matches(&id, &p), "7 equals 7.0");
    }

    #[test]
    fn null_and_empty() {
        let (id, p) = (PointId::Num(1), point());
        let cond = |c: Value| f(json!({"must": [c]})).matches(&id, &p);
        assert!(cond(json!({"is_null": {"key": "note"}})));
        assert!(!cond(json!({"is_null": {"key": "missing"}})));
        assert!(cond(json!({"is_empty": {"key": "missing"}})));
        assert!(cond(json!({"is_empty": {"key": "empty"}})));
        assert!(cond(json!({"is_empty": {"key": "note"}})));
        assert!(!cond(json!({"is_empty": {"key": "tags"}})));
    }

    #[test]
    fn nested_filters_and_id_kinds() {
        let p = point();
        let nested = f(
            json!({"must": [{"should": [{"has_id": ["doc-1"]}, {"has_id": ["0f8fad5b-d9cb-469f-a165-70867728950e"]}]}]}),
        );
        assert!(nested.matches(&PointId::Str("doc-1".into()), &p));
        assert!(nested.matches(
            &PointId::from_json(&json!("0F8FAD5B-D9CB-469F-A165-70867728950E")).unwrap(),
            &p
        ));
        assert!(!nested.matches(&PointId::Num(1), &p));
    }

    #[test]
    fn malformed_filters_name_the_place() {
        let cases = [
            ("{\"must\": [", "$", "not valid JSON"),
            ("[]", "$", "expected an object"),
            ("{\"mustnt\": []}", "$", "unknown field \"mustnt\""),
            (
                "{\"must\": [{\"key\": \"a\"}]}",
                "$.must[0]",
                "expected one of: match, range",
            ),
            (
                "{\"must\": [{\"key\": \"a\", \"match\": {\"value\": [1]}}]}",
                "$.must[0].match.value",
                "string, number or boolean",
            ),
            (
                "{\"must\": [{\"key\": \"a\", \"match\": {\"like\": 1}}]}",
                "$.must[0].match",
                "unknown match kind",
            ),
            (
                "{\"must\": [{\"key\": \"a\", \"range\": {\"gt\": \"yesterday\"}}]}",
                "$.must[0].range.gt",
                "RFC 3339",
            ),
            (
                "{\"must\": [{\"key\": \"a\", \"range\": {}}]}",
                "$.must[0].range",
                "at least one",
            ),
            (
                "{\"should\": [{\"has_id\": [-1]}]}",
                "$.should[0].has_id[0]",
                "not an id",
            ),
            (
                "{\"must_not\": [{\"is_null\": {\"key\": 3}}]}",
                "$.must_not[0].is_null.key",
                "non-empty string",
            ),
            ("{\"must\": 5}", "$.must", "list of conditions"),
        ];
        for (src, path, needle) in cases {
            let e = Filter::from_json_str(src).unwrap_err();
            assert_eq!(e.path, path, "{src}: {e}");
            assert!(e.to_string().contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), Some(-500_000));
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:00+01:00"),
            parse_rfc3339("2024-01-01T00:00:00Z")
        );
        for bad in [
            "2024-02-30",
            "2023-02-29T00:00:00Z",
            "2024-13-01",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-1-01",
            "today",
            "2024-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2024-02-29T12:00:00Z").is_some());
    }

    #[test]
    fn rfc3339_format_round_trips() {
        for secs in [0i64, 951_782_400, 1_700_000_000, 4_102_444_799, -86_400] {
            let s = format_rfc3339(secs);
            assert_eq!(parse_rfc3339(&s), Some(secs * 1_000_000), "{s}");
        }
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
