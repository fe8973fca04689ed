//! The fields that tell a client where it stands (Kong's names): per window
//! `X-RateLimit-Limit-<Window>` and `X-RateLimit-Remaining-<Window>`; for the window closest to its
//! limit (the longer one on a tie) `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, whose
//! seconds are also a refusal's `Retry-After`.

use http::{HeaderName, HeaderValue};
use shared::plugins::rate_limiting::Period;
use smallvec::SmallVec;

use super::windows::Window;

/// One configured limit, with its value as a field value made once.
#[derive(Debug, Clone)]
pub struct Limit {
    pub period: Period,
    pub max: u64,
    pub shown: HeaderValue,
}

impl Limit {
    pub fn new(period: Period, max: u64) -> Limit {
        Limit {
            period,
            max,
            shown: number(max),
        }
    }
}

/// The fields of one answer.
pub struct Fields {
    pub answer: SmallVec<[(HeaderName, HeaderValue); 8]>,
    /// `RateLimit-Reset`'s value, for `Retry-After`.
    pub reset: HeaderValue,
}

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn window_names(period: Period) -> (HeaderName, HeaderName) {
    let (limit, remaining) = match period {
        Period::Second => ("x-ratelimit-limit-second", "x-ratelimit-remaining-second"),
        Period::Minute => ("x-ratelimit-limit-minute", "x-ratelimit-remaining-minute"),
        Period::Hour => ("x-ratelimit-limit-hour", "x-ratelimit-remaining-hour"),
        Period::Day => ("x-ratelimit-limit-day", "x-ratelimit-remaining-day"),
        Period::Month => ("x-ratelimit-limit-month", "x-ratelimit-remaining-month"),
        Period::Year => ("x-ratelimit-limit-year", "x-ratelimit-remaining-year"),
    };
    (
        HeaderName::from_static(limit),
        HeaderName::from_static(remaining),
    )
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n)).expect("digits are a valid field value")
}

/// The fields for a request whose counts (this request included) are `counts`; `exceeded` is the first
/// limit it went over, if any (then it is not counted, and the other windows keep their room).
pub fn fields(
    limits: &[Limit],
    windows: &[(Period, Window)],
    counts: &[u64],
    exceeded: Option<usize>,
    now_ms: i64,
) -> Fields {
    let mut answer = SmallVec::new();
    // (remaining, window length, limit, reset seconds) of the window closest to its limit.
    let mut closest: Option<(u64, i64, &HeaderValue, i64)> = None;
    for ((limit, (_, w)), count) in limits.iter().zip(windows).zip(counts) {
        let remaining = match exceeded {
            None => limit.max.saturating_sub(*count),
            Some(_) if *count > limit.max => 0,
            Some(_) => limit.max.saturating_sub(count.saturating_sub(1)),
        };
        let (limit_name, remaining_name) = window_names(limit.period);
        answer.push((limit_name, limit.shown.clone()));
        answer.push((remaining_name, number(remaining)));
        let length = w.end_ms - w.start_ms;
        let closer = match closest {
            None => true,
            Some((r, len, _, _)) => remaining < r || (remaining == r && length > len),
        };
        if closer {
            closest = Some((remaining, length, &limit.shown, w.reset_secs(now_ms)));
        }
    }
    let zero = HeaderValue::from_static("0");
    let (remaining, _, limit, reset) = closest.unwrap_or((0, 0, &zero, 1));
    let reset = number(reset as u64);
    answer.push((LIMIT.clone(), limit.clone()));
    answer.push((REMAINING.clone(), number(remaining)));
    answer.push((RESET.clone(), reset.clone()));
    Fields { answer, reset }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::rate_limiting::windows::window;

    fn get<'a>(f: &'a Fields, name: &str) -> &'a str {
        f.answer
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn the_window_closest_to_its_limit_is_summarised() {
        let now = 1_700_000_010_500; // 30.5 s into a minute
        let limits = [
            Limit::new(Period::Second, 10),
            Limit::new(Period::Minute, 20),
        ];
        let windows = [
            (Period::Second, window(Period::Second, now)),
            (Period::Minute, window(Period::Minute, now)),
        ];
        let f = fields(&limits, &windows, &[3, 18], None, now);
        assert_eq!(get(&f, "x-ratelimit-remaining-second"), "7");
        assert_eq!(get(&f, "x-ratelimit-remaining-minute"), "2");
        assert_eq!(get(&f, "ratelimit-limit"), "20");
        assert_eq!(get(&f, "ratelimit-remaining"), "2");
        assert_eq!(get(&f, "ratelimit-reset"), "30");
    }

    #[test]
    fn a_refused_request_leaves_the_other_windows_their_room() {
        let now = 1_700_000_000_250;
        let limits = [Limit::new(Period::Second, 2), Limit::new(Period::Hour, 100)];
        let windows = [
            (Period::Second, window(Period::Second, now)),
            (Period::Hour, window(Period::Hour, now)),
        ];
        let f = fields(&limits, &windows, &[3, 51], Some(0), now);
        assert_eq!(get(&f, "x-ratelimit-remaining-second"), "0");
        assert_eq!(get(&f, "x-ratelimit-remaining-hour"), "50");
        assert_eq!(get(&f, "ratelimit-remaining"), "0");
        assert_eq!(f.reset, "1");
    }
}
