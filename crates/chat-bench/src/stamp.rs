//! What a sender writes into each message's text so every subscriber can check it alone:
//! the sender's number, its sequence number in that room, and the send time on the run's
//! monotonic clock, padded with `x` to the requested size.
//!
//! Text, not binary, because the server only accepts printable text; decimal with `.`
//! separators and a `|` end, because it parses in one pass without allocating.
use std::{fmt::Write, time::Instant};

/// The run's monotonic clock, shared by senders and subscribers (one process), so a
/// latency is one subtraction and never suffers wall-clock steps.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Clock(Instant::now())
    }

    pub fn now_ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub seq: u64,
    /// Nanoseconds since the run's `Clock` started.
    pub sent_ns: u64,
}

impl Stamp {
    /// The message text: the stamp, then padding up to `size` bytes (never cut short:
    /// a stamp longer than `size` is sent whole).
    pub fn text(&self, size: usize) -> String {
        let mut text = String::with_capacity(size.max(48));
        let _ = write!(text, "{}.{}.{}|", self.sender, self.seq, self.sent_ns);
        while text.len() < size {
            text.push('x');
        }
        text
    }

    pub fn parse(text: &[u8]) -> Option<Stamp> {
        let (sender, rest) = number(text, b'.')?;
        let (seq, rest) = number(rest, b'.')?;
        let (sent_ns, _) = number(rest, b'|')?;
        Some(Stamp {
            sender: u32::try_from(sender).ok()?,
            seq,
            sent_ns,
        })
    }
}

/// A decimal number of 1 to 19 digits (so it cannot overflow) ended by `end`; the rest
/// after `end`. Runs once per delivery in every subscriber, hence no checked arithmetic.
fn number(text: &[u8], end: u8) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, &b) in text.iter().enumerate().take(20) {
        match b {
            b'0'..=b'9' if i < 19 => n = n * 10 + u64::from(b - b'0'),
            _ if b == end && i > 0 => return Some((n, &text[i + 1..])),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        let stamp = Stamp {
            sender: 3,
            seq: 12_345,
            sent_ns: 9_876_543_210,
        };
        let text = stamp.text(64);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("3.12345.9876543210|xx"));
        assert_eq!(Stamp::parse(text.as_bytes()), Some(stamp));
        assert_eq!(stamp.text(4).len(), "3.12345.9876543210|".len());
    }

    #[test]
    fn foreign_text_is_rejected() {
        for text in [
            "hello",
            "1.2|",
            "1.2.3",
            ".1.2|",
            "1.2.3.4|",
            "1.x.3|",
            "1.2.99999999999999999999|",
        ] {
            assert_eq!(Stamp::parse(text.as_bytes()), None, "{text}");
        }
    }
}
