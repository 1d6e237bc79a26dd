//! Every date and time the service writes, formatted in one place with `jiff`: log lines in
//! UTC, event file names and `show_node`'s last event in the router's local time (as the
//! original's did), and the UTC stamps request signing needs.

use std::time::SystemTime;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// `%Y-%m-%d_%H:%M:%S`: the time part of an event log's name (`node_1_<this>_peerFail`).
pub const EVENT_FILE: &str = "%Y-%m-%d_%H:%M:%S";
/// `%Y-%m-%d %H:%M:%S`: when an event started, inside its log and in `show_node`.
pub const EVENT_TIME: &str = "%Y-%m-%d %H:%M:%S";
/// `2026-11-24T19:19:00.123Z`: a `csr_ha.log` line.
pub const LOG_LINE: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";
/// `20150830T123600Z`: AWS SigV4's `X-Amz-Date`.
pub const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";

fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whole seconds from the epoch to `t` (0 before it), for ages kept in records.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `t` in the machine's time zone (`TZ`, else `/etc/localtime`, else UTC).
pub fn local(t: SystemTime, format: &str) -> String {
    timestamp(t)
        .to_zoned(TimeZone::system())
        .strftime(format)
        .to_string()
}

/// `t` in UTC.
pub fn utc(t: SystemTime, format: &str) -> String {
    timestamp(t)
        .to_zoned(TimeZone::UTC)
        .strftime(format)
        .to_string()
}

/// Parses an RFC 3339 UTC time such as `2026-11-24T20:00:00Z` (the AWS metadata service's
/// credential `Expiration`), with or without fractional seconds.
pub fn parse_utc(text: &str) -> Option<SystemTime> {
    text.trim().parse::<Timestamp>().ok().map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn log_lines_are_utc_iso8601_with_millis() {
        assert_eq!(utc(UNIX_EPOCH, LOG_LINE), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(utc(t, LOG_LINE), "2023-11-14T22:13:20.123Z");
        // A leap day and the last second of a year.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(t, LOG_LINE), "2000-02-29T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(utc(t, LOG_LINE), "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn utc_times_parse_and_round_trip() {
        let t = parse_utc("2015-08-30T12:36:00Z").expect("valid date");
        assert_eq!(utc(t, AMZ_DATE), "20150830T123600Z");
        assert_eq!(
            parse_utc("2024-02-29T23:59:59.123Z").map(|t| utc(t, AMZ_DATE)),
            Some("20240229T235959Z".into())
        );
        assert_eq!(parse_utc("yesterday"), None);
        assert_eq!(parse_utc("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn event_file_times_have_the_original_shape() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let stamp = local(t, EVENT_FILE);
        assert_eq!(stamp.len(), "2023-11-14_22:13:20".len(), "{stamp}");
        assert!(stamp.starts_with("2023-11-1"), "{stamp}");
        assert_eq!(&stamp[10..11], "_");
        assert_eq!(utc(t, EVENT_TIME), "2023-11-14 22:13:20");
    }
}
