//! The generic cell rate algorithm on one limit, in integer microseconds.
//!
//! A key's state per limit is one number, its theoretical arrival time (TAT): the moment at
//! which everything it has been granted so far would have been paid off at the quota's rate.
//! A grant of `cost` is allowed when `max(TAT, now) + cost - now <= span`, where `span` is the
//! burst expressed as time; then `TAT = max(TAT, now) + cost`. Over any window of length `W`
//! that admits at most `rate × W + burst` units. The Redis script (`gcra.lua`) is the same
//! arithmetic on Redis TIME; keep the two in step.

use std::time::Duration;

const MICROS_PER_MINUTE: u64 = 60_000_000;

/// One per-minute limit turned into GCRA times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lane {
    per_minute: u64,
    /// The time one unit (a request, a token) is worth at the quota's rate, rounded to whole
    /// microseconds (at least 1).
    pub interval_us: u64,
    /// The burst as time: `burst units × interval_us`.
    pub span_us: u64,
}

impl Lane {
    /// The lane for `per_minute` units (> 0) with a burst worth `burst` of the rate, at least
    /// one unit.
    pub fn new(per_minute: u32, burst: Duration) -> Lane {
        debug_assert!(per_minute > 0, "a zero limit has no lane");
        // Integer arithmetic: this runs on every admit.
        let per_minute = u64::from(per_minute);
        let interval_us = ((MICROS_PER_MINUTE + per_minute / 2) / per_minute).max(1);
        let burst_ms = u64::try_from(burst.as_millis()).unwrap_or(u64::MAX);
        let burst_units = per_minute.saturating_mul(burst_ms) / 60_000;
        Lane {
            per_minute,
            interval_us,
            span_us: burst_units.max(1).saturating_mul(interval_us),
        }
    }

    /// The time `units` are worth, rounded once so that large charges stay exact.
    pub fn cost_us(&self, units: u64) -> u64 {
        let exact = u128::from(units) * u128::from(MICROS_PER_MINUTE) / u128::from(self.per_minute);
        u64::try_from(exact).unwrap_or(u64::MAX)
    }

    /// Grants `cost_us` if the burst allows: the new TAT, or the wait in microseconds (≥ 1)
    /// until it would be allowed.
    pub fn take(&self, tat: u64, now: u64, cost_us: u64) -> Result<u64, u64> {
        let new_tat = tat.max(now).saturating_add(cost_us);
        let ahead = new_tat - now;
        if ahead <= self.span_us {
            Ok(new_tat)
        } else {
            Err(ahead - self.span_us)
        }
    }

    /// Whether one more unit fits without taking it: how token budgets refuse a key in debt.
    pub fn room(&self, tat: u64, now: u64) -> Result<(), u64> {
        self.take(tat, now, self.interval_us).map(|_| ())
    }
}

/// Charges `cost_us` after the fact: the TAT may run ahead of the burst, which is debt.
pub(crate) fn charge(tat: u64, now: u64, cost_us: u64) -> u64 {
    tat.max(now).saturating_add(cost_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn burst_is_one_second_of_the_rate_and_at_least_one() {
        let lane = Lane::new(6000, SECOND);
        assert_eq!(lane.interval_us, 10_000);
        assert_eq!(lane.span_us, 100 * 10_000);
        let slow = Lane::new(10, SECOND);
        assert_eq!(slow.interval_us, 6_000_000);
        assert_eq!(slow.span_us, 6_000_000, "burst of one request");
    }

    #[test]
    fn admits_burst_at_once_then_one_per_interval() {
        let lane = Lane::new(6000, SECOND);
        let now = 5_000_000;
        let mut tat = 0;
        for _ in 0..100 {
            tat = lane.take(tat, now, lane.interval_us).expect("within burst");
        }
        let wait = lane.take(tat, now, lane.interval_us).unwrap_err();
        assert_eq!(wait, 10_000, "next cell one interval later");
        assert!(lane.take(tat, now + wait, lane.interval_us).is_ok());
    }

    #[test]
    fn admitted_count_over_a_window_is_rate_times_window_plus_burst() {
        let lane = Lane::new(60_000, SECOND);
        let (mut tat, mut admitted) = (0, 0u64);
        // Attempts every 100 µs over 3 s, ten times faster than the rate of one per ms.
        for now in (1_000_000..=4_000_000).step_by(100) {
            if let Ok(next) = lane.take(tat, now, lane.interval_us) {
                tat = next;
                admitted += 1;
            }
        }
        assert_eq!(admitted, 1000 + 3000);
    }

    #[test]
    fn debt_is_repaid_at_the_rate() {
        let lane = Lane::new(60_000, SECOND); // 1000 tokens/s, budget 1000 tokens
        let now = 1_000_000;
        assert!(lane.room(0, now).is_ok());
        let tat = charge(0, now, lane.cost_us(3000));
        let wait = lane.room(tat, now).unwrap_err();
        assert_eq!(
            wait, 2_001_000,
            "3 s of tokens minus the 1 s budget, plus one token"
        );
        assert!(lane.room(tat, now + wait).is_ok());
        assert!(lane.room(tat, now + wait - 1).is_err());
    }

    #[test]
    fn fractional_intervals_round_once_per_charge() {
        let lane = Lane::new(7, SECOND);
        assert_eq!(lane.cost_us(7), 60_000_000);
    }
}
