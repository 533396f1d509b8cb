//! The time a collection judges expiry (TTL) by, and the expiry rules themselves.
//!
//! **Semantics.** An expiry is an absolute instant in UTC with millisecond precision, held as
//! milliseconds since the Unix epoch (`i64`). A point is *expired* once `now >= expires_at`,
//! `now` being the collection's [`Clock`]; from that instant no read returns it, no filter
//! matches it and no count includes it, exactly as if it had been deleted, and the next flush
//! or merge that rewrites its segment drops it from disk. A point gets its expiry at upsert:
//! its own (`PointInput::expires_at`), else the collection's default ([`TtlSpec`]: the instant
//! in a payload datetime field plus a duration), else none. The own expiry wins. Expiry is
//! fixed when the point is written (a later change of the clock or of nothing else moves it),
//! and stored with the point in the WAL and in segments, so it survives restarts and
//! snapshots. A clock set back after a flush or merge dropped expired points does not bring
//! them back.
//!
//! The clock is injectable ([`Collection::set_clock`](crate::Collection::set_clock)) so tests
//! can move time; production uses [`SystemClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sextant_core::filter::payload_values;
use sextant_storage::schema::TtlSpec;

/// A source of the current time, in milliseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }
}

/// Now by the system clock, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock that moves only when told (tests, simulations). Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(ms)))
    }

    /// Sets the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The expiry a point gets at upsert: its own when given, else the collection default's
/// (the first RFC 3339 instant at the default's field, plus its duration), else none.
pub(crate) fn effective_expiry(
    own: Option<i64>,
    ttl: Option<&TtlSpec>,
    payload: &Value,
) -> Option<i64> {
    if own.is_some() {
        return own;
    }
    let ttl = ttl?;
    let start_us = payload_values(payload, &ttl.field)
        .into_iter()
        .find_map(|v| v.as_str().and_then(sextant_core::parse_rfc3339))?;
    let secs = i64::try_from(ttl.seconds).unwrap_or(i64::MAX);
    Some(
        start_us
            .div_euclid(1000)
            .saturating_add(secs.saturating_mul(1000)),
    )
}

/// Parses an expiry given as RFC 3339 text into milliseconds since the Unix epoch (sub-
/// millisecond digits are truncated towards the past).
pub fn parse_expiry(text: &str) -> Option<i64> {
    sextant_core::parse_rfc3339(text).map(|us| us.div_euclid(1000))
}

/// An expiry as RFC 3339 text (UTC, milliseconds when they are not zero).
pub fn format_expiry(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let s = sextant_core::format_rfc3339(secs);
    if frac == 0 {
        s
    } else {
        format!("{}.{frac:03}Z", s.trim_end_matches('Z'))
    }
}

/// Parses a duration written as a whole number and a unit — `45s`, `90m`, `12h`, `30d` —
/// into milliseconds. `None` for anything else (no unit, a fraction, zero, a sign, overflow).
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let per: i64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    if n == 0 {
        return None;
    }
    n.checked_mul(per)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn own_expiry_wins_over_the_default() {
        let ttl = TtlSpec {
            field: "created".into(),
            seconds: 60,
        };
        let p = json!({"created": "1970-01-01T00:00:10Z"});
        assert_eq!(effective_expiry(None, Some(&ttl), &p), Some(70_000));
        assert_eq!(effective_expiry(Some(5), Some(&ttl), &p), Some(5));
        assert_eq!(effective_expiry(None, None, &p), None);
        assert_eq!(
            effective_expiry(None, Some(&ttl), &json!({"created": 3})),
            None
        );
        assert_eq!(effective_expiry(None, Some(&ttl), &json!({})), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("45s"), Some(45_000));
        assert_eq!(parse_duration_ms("90m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("12h"), Some(43_200_000));
        assert_eq!(parse_duration_ms("30d"), Some(2_592_000_000));
        for bad in [
            "",
            "d",
            "30",
            "-3d",
            "+3d",
            "1.5h",
            "0d",
            "3w",
            "3 d",
            "99999999999999999d",
        ] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_text_round_trips() {
        for ms in [0, 1_500, 1_700_000_000_123, -1] {
            assert_eq!(parse_expiry(&format_expiry(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_expiry(1_000), "1970-01-01T00:00:01Z");
    }
}
