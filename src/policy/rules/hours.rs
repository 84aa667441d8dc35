//! Hour windows for rules: `"Mon-Fri 08:00-18:00"`, in UTC.
//!
//! Grammar: `window ("," window)*`, `window = [days " "] HH:MM "-" HH:MM`,
//! `days = day | day "-" day` with `day` one of Mon Tue Wed Thu Fri Sat Sun (any case, or the
//! full English name). No days means every day. A day range may wrap (`Fri-Mon`). An end
//! before the start wraps past midnight: the window starts on the named day and ends the
//! next morning (`Fri 22:00-02:00` covers Friday 22:00 to Saturday 02:00). `24:00` is
//! allowed as an end. A start equal to the end is an error (empty or ambiguous).
//!
//! Invariant: time is computed from `SystemTime` by integer arithmetic on the UNIX epoch
//! (1970-01-01 was a Thursday); no time-zone database is involved.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One weekly window, minutes since midnight UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Monday = 0 … Sunday = 6: the days a window starts on.
    days: [bool; 7],
    start: u16,
    end: u16,
}

impl Window {
    fn contains(&self, weekday: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.days[weekday] && self.start <= minute && minute < self.end
        } else {
            (self.days[weekday] && minute >= self.start)
                || (self.days[(weekday + 6) % 7] && minute < self.end)
        }
    }
}

/// Parses every window of `spec` (comma-separated).
pub fn parse(spec: &str) -> Result<Vec<Window>, String> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        out.push(parse_window(part.trim()).map_err(|e| format!("window {:?}: {e}", part.trim()))?);
    }
    Ok(out)
}

fn parse_window(w: &str) -> Result<Window, String> {
    let fields: Vec<&str> = w.split_whitespace().collect();
    let (days, times) = match fields.as_slice() {
        [t] => ([true; 7], *t),
        [d, t] => (parse_days(d)?, *t),
        _ => return Err("expected \"[Mon-Fri] HH:MM-HH:MM\"".into()),
    };
    let (s, e) = times
        .split_once('-')
        .ok_or("expected a time range HH:MM-HH:MM")?;
    let start = parse_time(s, false)?;
    let end = parse_time(e, true)?;
    if start == end {
        return Err("start and end are equal".into());
    }
    Ok(Window { days, start, end })
}

fn day(s: &str) -> Result<usize, String> {
    let l = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == l)
        .or_else(|| FULL.iter().position(|d| *d == l))
        .ok_or_else(|| format!("{s:?} is not a day (Mon … Sun)"))
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    match s.split_once('-') {
        None => days[day(s)?] = true,
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            let mut d = a;
            loop {
                days[d] = true;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
    }
    Ok(days)
}

fn parse_time(s: &str, is_end: bool) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time HH:MM");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) if is_end => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// (weekday Monday = 0, minute of the day) in UTC.
pub fn utc_weekday_minute(now: SystemTime) -> (usize, u16) {
    let secs: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        // Before 1970: round towards negative infinity.
        Err(e) => {
            let d = e.duration();
            -i128::from(d.as_secs()) - i128::from(d.subsec_nanos() > 0)
        }
    };
    let days = secs.div_euclid(86_400);
    let minute = (secs.rem_euclid(86_400) / 60) as u16;
    // 1970-01-01 was a Thursday (index 3).
    let weekday = (days + 3).rem_euclid(7) as usize;
    (weekday, minute)
}

/// Whether `now` falls in any of the windows.
pub fn any_contains(windows: &[Window], now: SystemTime) -> bool {
    let (weekday, minute) = utc_weekday_minute(now);
    windows.iter().any(|w| w.contains(weekday, minute))
}
