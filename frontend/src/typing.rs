//! "NAME is typing..." in both directions, as pure state so the timing rules are unit
//! tested. Others: each TypingEvent shows its sender until `expires_ms` pass or a message
//! from them arrives. Me: Typing calls are spaced out to stay well under the server's
//! per-session rate limit (1/s), while still arriving before the others' indicator expires.

/// Least time between two Typing calls from this page.
pub const SEND_EVERY_MS: f64 = 2_500.0;

/// Who else is typing in the room, each until a deadline (ms since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Typists(Vec<(String, f64)>);

impl Typists {
    /// `name` typed: show them until `now + expires_ms` (a later event extends it).
    pub fn typing(&mut self, name: String, expires_ms: u32, now: f64) {
        let until = now + f64::from(expires_ms);
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = until,
            None => self.0.push((name, until)),
        }
    }

    /// A message from `name` arrived: what they typed is no longer "being typed".
    /// Returns whether they were shown.
    pub fn spoke(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| n != name);
        self.0.len() != before
    }

    /// Forgets the expired; returns whether anything changed.
    pub fn expire(&mut self, now: f64) -> bool {
        let before = self.0.len();
        self.0.retain(|(_, until)| *until > now);
        self.0.len() != before
    }

    /// The line under the messages, or None when nobody (but `me`) is typing.
    pub fn line(&self, me: &str) -> Option<String> {
        let names: Vec<&str> = self
            .0
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| *n != me)
            .collect();
        match names.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing\u{2026}")),
            [a, b] => Some(format!("{a} and {b} are typing\u{2026}")),
            many => Some(format!("{} people are typing\u{2026}", many.len())),
        }
    }
}

/// When this page last told the server the person is typing.
#[derive(Clone, Copy, Debug, Default)]
pub struct TypingThrottle {
    last_sent: Option<f64>,
}

impl TypingThrottle {
    /// Whether a keystroke at `now` should send Typing; if so, it counts as sent.
    pub fn should_send(&mut self, now: f64) -> bool {
        match self.last_sent {
            Some(last) if now - last < SEND_EVERY_MS => false,
            _ => {
                self.last_sent = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_until_expiry_or_message() {
        let mut t = Typists::default();
        t.typing("ann".into(), 3000, 1000.0);
        t.typing("bob".into(), 3000, 2000.0);
        assert_eq!(
            t.line("me").as_deref(),
            Some("ann and bob are typing\u{2026}")
        );
        assert!(t.expire(4000.0));
        assert_eq!(t.line("me").as_deref(), Some("bob is typing\u{2026}"));
        assert!(t.spoke("bob"));
        assert!(!t.spoke("bob"));
        assert_eq!(t.line("me"), None);
        assert!(!t.expire(10_000.0));
    }

    #[test]
    fn a_new_event_extends_and_me_is_never_shown() {
        let mut t = Typists::default();
        t.typing("ann".into(), 3000, 0.0);
        t.typing("ann".into(), 3000, 2500.0);
        assert!(!t.expire(4000.0), "extended to 5500");
        t.typing("me".into(), 3000, 0.0);
        assert_eq!(t.line("me").as_deref(), Some("ann is typing\u{2026}"));
        t.typing("cy".into(), 3000, 0.0);
        t.typing("dee".into(), 3000, 0.0);
        assert_eq!(t.line("me").as_deref(), Some("3 people are typing\u{2026}"));
    }

    #[test]
    fn throttle_spaces_calls_under_the_rate_limit() {
        let mut th = TypingThrottle::default();
        assert!(th.should_send(0.0));
        assert!(!th.should_send(100.0));
        assert!(!th.should_send(2_499.0));
        assert!(th.should_send(2_500.0));
        assert!(!th.should_send(3_000.0));
    }
}
