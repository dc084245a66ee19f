//! Reconnect delays: exponential from 0.5 s, capped at 10 s, with jitter so that every tab
//! of a restarted server does not come back in the same instant.

const BASE_MS: f64 = 500.0;
const MAX_MS: f64 = 10_000.0;

/// Delay before reconnect attempt `attempt` (1-based). `random` is in [0, 1); the result
/// lies between half and all of the exponential step ("equal jitter").
pub fn delay_ms(attempt: u32, random: f64) -> u32 {
    let step = (BASE_MS * 2f64.powi(attempt.saturating_sub(1).min(16) as i32)).min(MAX_MS);
    (step / 2.0 + step / 2.0 * random.clamp(0.0, 1.0)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        assert_eq!(delay_ms(1, 0.999_999), 499);
        assert_eq!(delay_ms(2, 0.0), 500);
        assert_eq!(delay_ms(3, 0.0), 1000);
        assert_eq!(delay_ms(30, 0.0), 5000);
        assert!(delay_ms(30, 0.999_999) <= 10_000);
    }
}
