//! The window a limit counts in: windows start at calendar boundaries in UTC (a minute at :00, a month
//! on its first day), so every node agrees on them without talking to each other.

use shared::plugins::rate_limiting::Period;

/// One window of a period: `[start_ms, end_ms)` in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    /// Whole seconds until the window ends, at least 1 (`RateLimit-Reset`, `Retry-After`).
    pub fn reset_secs(&self, now_ms: i64) -> i64 {
        ((self.end_ms - now_ms + 999) / 1000).max(1)
    }
}

const SECOND: i64 = 1000;
const DAY: i64 = 86_400 * SECOND;

/// The window of `period` that holds the instant `now_ms`.
pub fn window(period: Period, now_ms: i64) -> Window {
    let fixed = |len: i64| {
        let start = now_ms - now_ms.rem_euclid(len);
        Window {
            start_ms: start,
            end_ms: start + len,
        }
    };
    match period {
        Period::Second => fixed(SECOND),
        Period::Minute => fixed(60 * SECOND),
        Period::Hour => fixed(3600 * SECOND),
        Period::Day => fixed(DAY),
        Period::Month | Period::Year => {
            let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY));
            let (start, end) = match period {
                Period::Month => {
                    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                    (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
                }
                _ => (days_from_civil(y, 1, 1), days_from_civil(y + 1, 1, 1)),
            };
            Window {
                start_ms: start * DAY,
                end_ms: end * DAY,
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29T23:59:59.500Z, a leap day's last second.
    const LEAP_END: i64 = 1_709_251_199_500;

    #[test]
    fn fixed_windows_start_on_their_boundary() {
        let w = window(Period::Minute, LEAP_END);
        assert_eq!(
            (w.start_ms, w.end_ms),
            (1_709_251_140_000, 1_709_251_200_000)
        );
        assert_eq!(w.reset_secs(LEAP_END), 1);
        let s = window(Period::Second, LEAP_END);
        assert_eq!(
            (s.start_ms, s.end_ms),
            (1_709_251_199_000, 1_709_251_200_000)
        );
        let next = window(Period::Second, s.end_ms);
        assert_eq!(
            next.start_ms, s.end_ms,
            "the next window starts where one ends"
        );
        let d = window(Period::Day, LEAP_END);
        assert_eq!(d.end_ms - d.start_ms, DAY);
    }

    #[test]
    fn months_and_years_follow_the_calendar() {
        let m = window(Period::Month, LEAP_END);
        // February 2024 has 29 days.
        assert_eq!(m.start_ms, 1_706_745_600_000); // 2024-02-01
        assert_eq!(m.end_ms, 1_709_251_200_000); // 2024-03-01
        let march = window(Period::Month, m.end_ms);
        assert_eq!(march.end_ms - march.start_ms, 31 * DAY);
        let y = window(Period::Year, LEAP_END);
        assert_eq!(y.start_ms, 1_704_067_200_000); // 2024-01-01
        assert_eq!(y.end_ms - y.start_ms, 366 * DAY);
        let dec = window(Period::Month, 1_735_689_599_000); // 2024-12-31T23:59:59Z
        assert_eq!(dec.end_ms, 1_735_689_600_000); // 2025-01-01
    }

    #[test]
    fn day_counts_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
