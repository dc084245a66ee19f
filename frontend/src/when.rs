//! When a message was sent, said for a reader: "just now" and "N min ago" while recent,
//! then the local clock time (the day line above says which day), with the full date and
//! time for the tooltip. Day lines say "Today", "Yesterday" or the date. The wording is
//! decided by pure functions (tested); the browser's Date and Intl supply the local time
//! zone and date format, so no time-zone tables ship with the page.

use js_sys::{Date, Object, Reflect};
use wasm_bindgen::JsValue;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// "just now" or "N min ago" within the hour (a clock a little ahead counts as just now).
pub fn relative(now_ms: i64, sent_ms: i64) -> Option<String> {
    match now_ms - sent_ms {
        ago if ago < MINUTE_MS => Some("just now".to_owned()),
        ago if ago < 60 * MINUTE_MS => Some(format!("{} min ago", (ago / MINUTE_MS) as u32)),
        _ => None,
    }
}

/// "Today" or "Yesterday" for a local day number relative to today's; None: say the date.
pub fn near_day(today: i64, day: i64) -> Option<&'static str> {
    match today - day {
        0 => Some("Today"),
        1 => Some("Yesterday"),
        _ => None,
    }
}

fn date(ms: i64) -> Date {
    Date::new(&JsValue::from_f64(ms as f64))
}

/// Days since the epoch in the reader's time zone (the offset of that moment, so summer
/// time is counted right).
pub fn local_day(ms: i64) -> i64 {
    let offset_min = date(ms).get_timezone_offset() as i64;
    (ms - offset_min * MINUTE_MS).div_euclid(DAY_MS)
}

/// What a message row shows as its time, at `now_ms`.
pub fn short_time(now_ms: i64, sent_ms: i64) -> String {
    relative(now_ms, sent_ms).unwrap_or_else(|| {
        let d = date(sent_ms);
        format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
    })
}

/// The full local date and time, for the tooltip.
pub fn full_time(sent_ms: i64) -> String {
    date(sent_ms)
        .to_locale_string("default", &JsValue::UNDEFINED)
        .into()
}

/// The words of the "new messages" line (a `fn(now, ms)` like the day line's, so both
/// lines are one kind of element).
pub fn new_messages(_now_ms: i64, _ms: i64) -> String {
    "New messages".to_owned()
}

/// A day line's words for the day `ms` falls in, at `now_ms`.
pub fn day_label(now_ms: i64, ms: i64) -> String {
    if let Some(near) = near_day(local_day(now_ms), local_day(ms)) {
        return near.to_owned();
    }
    let options = Object::new();
    let set = |k: &str, v: &str| Reflect::set(&options, &k.into(), &v.into());
    let _ = set("weekday", "long");
    let _ = set("month", "long");
    let _ = set("day", "numeric");
    if date(now_ms).get_full_year() != date(ms).get_full_year() {
        let _ = set("year", "numeric");
    }
    date(ms).to_locale_date_string("default", &options).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_times_are_relative() {
        let now = 1_000 * DAY_MS;
        assert_eq!(relative(now, now).as_deref(), Some("just now"));
        assert_eq!(relative(now, now + 5_000).as_deref(), Some("just now"));
        assert_eq!(relative(now, now - 59_999).as_deref(), Some("just now"));
        assert_eq!(relative(now, now - 60_000).as_deref(), Some("1 min ago"));
        assert_eq!(
            relative(now, now - 3 * 60_000 - 5).as_deref(),
            Some("3 min ago")
        );
        assert_eq!(
            relative(now, now - 59 * 60_000).as_deref(),
            Some("59 min ago")
        );
        assert_eq!(relative(now, now - 60 * 60_000), None);
    }

    #[test]
    fn days_are_today_yesterday_or_a_date() {
        assert_eq!(near_day(20_000, 20_000), Some("Today"));
        assert_eq!(near_day(20_000, 19_999), Some("Yesterday"));
        assert_eq!(near_day(20_000, 19_998), None);
        assert_eq!(
            near_day(20_000, 20_001),
            None,
            "a clock behind the server's"
        );
    }
}
