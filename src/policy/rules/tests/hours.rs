//! Hour windows: parsing, weekday arithmetic, windows that wrap past midnight.

use std::time::{Duration, UNIX_EPOCH};

use super::at;
use crate::policy::rules::hours::{any_contains, parse, utc_weekday_minute};

#[test]
fn weekday_arithmetic() {
    assert_eq!(utc_weekday_minute(UNIX_EPOCH), (3, 0));
    assert_eq!(utc_weekday_minute(at(0, 0, 0)), (0, 0));
    assert_eq!(utc_weekday_minute(at(6, 23, 59)), (6, 1439));
    assert_eq!(
        utc_weekday_minute(UNIX_EPOCH - Duration::from_secs(60)),
        (2, 1439)
    );
}

/// Asserts, for each `(day, hour, minute, inside)` (days after Monday 2024-01-01), whether
/// the windows of `spec` contain that time.
fn assert_windows(spec: &str, cases: &[(u64, u64, u64, bool)]) {
    let w = parse(spec).unwrap_or_default();
    for &(day, h, m, inside) in cases {
        assert_eq!(
            any_contains(&w, at(day, h, m)),
            inside,
            "{spec:?} on day {day} at {h:02}:{m:02}"
        );
    }
}

#[test]
fn office_hours() {
    assert_windows(
        "Mon-Fri 08:00-18:00",
        &[
            (0, 8, 0, true),
            (4, 17, 59, true),
            (4, 18, 0, false),
            (5, 12, 0, false),
            (0, 7, 59, false),
        ],
    );
}

#[test]
fn wrapping_windows() {
    assert_windows(
        "Fri 22:00-02:00",
        &[
            (4, 23, 0, true),
            (5, 1, 59, true),
            (5, 2, 0, false),
            (3, 23, 0, false),
            (4, 1, 0, false),
        ],
    );
    assert_windows(
        "Sat-Mon 00:00-24:00",
        &[(6, 12, 0, true), (0, 23, 59, true), (1, 0, 0, false)],
    );
    // Sunday night into Monday.
    assert_windows("Sun 23:00-01:00", &[(0, 0, 30, true)]);
}

#[test]
fn several_windows_and_every_day() {
    let spec = "Mon 09:00-10:00, Wed 14:00-15:30, 03:00-04:00";
    assert_eq!(parse(spec).unwrap_or_default().len(), 3);
    assert_windows(
        spec,
        &[(2, 15, 29, true), (1, 9, 30, false), (5, 3, 30, true)],
    );
    assert_windows("monday 09:00-10:00", &[(0, 9, 0, true)]);
}

#[test]
fn bad_windows() {
    for bad in [
        "",
        "Mon",
        "Mon-Fri",
        "Mon-Fri 8-18",
        "Funday 08:00-18:00",
        "Mon-Fri 08:00-08:00",
        "Mon 25:00-26:00",
        "Mon 08:60-09:00",
        "Mon 24:00-02:00",
        "Mon 08:00",
        "a b c",
        "Mon-Fri 08:00-18:00,",
        "Mon -Fri 08:00-18:00",
        "Mon 8:00-9:00:00",
        "Mon +8:00-09:00",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(parse("Mon 8:00-9:00").is_ok());
}
