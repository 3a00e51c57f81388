//! Times in the API: RFC 3339 in and out, microseconds since the Unix epoch inside.

/// `us` (µs since the Unix epoch) as RFC 3339 in UTC.
pub fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map(|t| t.to_string()).unwrap_or_else(|_| format!("@{us}us"))
}

/// Parses an RFC 3339 time into µs since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let t: jiff::Timestamp = s.parse().map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    Ok(t.as_microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let us = parse_rfc3339("2026-11-26T02:30:00.5Z").unwrap();
        assert_eq!(rfc3339(us), "2026-11-26T02:30:00.5Z");
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
