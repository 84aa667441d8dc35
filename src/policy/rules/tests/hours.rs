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

#[test]
fn office_hours() {
    let w = parse("Mon-Fri 08:00-18:00").unwrap_or_default();
    assert!(any_contains(&w, at(0, 8, 0)));
    assert!(any_contains(&w, at(4, 17, 59)));
    assert!(!any_contains(&w, at(4, 18, 0)));
    assert!(!any_contains(&w, at(5, 12, 0)));
    assert!(!any_contains(&w, at(0, 7, 59)));
}

#[test]
fn wrapping_windows() {
    let w = parse("Fri 22:00-02:00").unwrap_or_default();
    assert!(any_contains(&w, at(4, 23, 0)));
    assert!(any_contains(&w, at(5, 1, 59)));
    assert!(!any_contains(&w, at(5, 2, 0)));
    assert!(!any_contains(&w, at(3, 23, 0)));
    assert!(!any_contains(&w, at(4, 1, 0)));
    let w = parse("Sat-Mon 00:00-24:00").unwrap_or_default();
    assert!(any_contains(&w, at(6, 12, 0)) && any_contains(&w, at(0, 23, 59)));
    assert!(!any_contains(&w, at(1, 0, 0)));
    let w = parse("Sun 23:00-01:00").unwrap_or_default();
    assert!(any_contains(&w, at(0, 0, 30)), "Sunday night into Monday");
}

#[test]
fn several_windows_and_every_day() {
    let w = parse("Mon 09:00-10:00, Wed 14:00-15:30, 03:00-04:00").unwrap_or_default();
    assert_eq!(w.len(), 3);
    assert!(any_contains(&w, at(2, 15, 29)));
    assert!(!any_contains(&w, at(1, 9, 30)));
    assert!(any_contains(&w, at(5, 3, 30)));
    let w = parse("monday 09:00-10:00").unwrap_or_default();
    assert!(any_contains(&w, at(0, 9, 0)));
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
