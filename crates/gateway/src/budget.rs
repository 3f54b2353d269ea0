//! Per-key token budgets: a key may spend at most so many tokens (prompt + completion) per
//! calendar day or month (UTC). The count lives in the store, per key and day (one atomic
//! upsert per answer; a month sums its days), so replicas sharing a PostgreSQL store share it
//! and a budget changed from daily to monthly keeps what was spent. A key at or over its budget is refused
//! (429 `token_budget_exceeded`, saying when the budget resets) before anything is generated;
//! the request that crosses the line is answered whole and charged in full (its length is
//! known only at its end), so a period's count may end above the budget by one answer.

use std::sync::Arc;

use emguard_store::gateway::{ApiKeyRecord, BudgetPeriod, GatewayStore, TokenBudget};
use serde::Serialize;

use crate::error::ApiError;
use crate::ratelimit::Quota;
use crate::state::{AppState, unix_now_f64};

const DAY: i64 = 86_400;

/// A key's budget and what it has spent of it this period.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetUsage {
    pub key_id: String,
    pub budget: TokenBudget,
    pub used: u64,
    /// The period's start and the next one's (Unix seconds, UTC).
    pub period_start: i64,
    pub resets_at: i64,
}

/// The budget's current period: its start and the next period's start (Unix seconds).
pub fn period_bounds(period: BudgetPeriod, now: f64) -> (i64, i64) {
    let days = (now as i64).div_euclid(DAY);
    match period {
        BudgetPeriod::Day => (days * DAY, (days + 1) * DAY),
        BudgetPeriod::Month => {
            let (year, month, _) = civil_from_days(days);
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            (
                days_from_civil(year, month, 1) * DAY,
                days_from_civil(next_year, next_month, 1) * DAY,
            )
        }
    }
}

/// What the key has spent in its budget's current period (a blocking store read).
pub fn usage(
    store: &GatewayStore,
    key_id: &str,
    budget: TokenBudget,
    now: f64,
) -> Result<BudgetUsage, emguard_store::StoreError> {
    let (period_start, resets_at) = period_bounds(budget.period, now);
    Ok(BudgetUsage {
        key_id: key_id.to_string(),
        budget,
        used: store.key_tokens(key_id, period_start, resets_at)?,
        period_start,
        resets_at,
    })
}

/// Refuses a key whose budget is spent (429 naming the budget and its reset). A store that
/// cannot be read lets the request through (the rate limits still hold) with a warning.
pub async fn admit(state: &AppState, key: Option<&ApiKeyRecord>) -> Result<(), ApiError> {
    let (Some(ring), Some(key)) = (&state.keys, key) else {
        return Ok(());
    };
    let Some(budget) = key.token_budget else {
        return Ok(());
    };
    let store = Arc::clone(ring.store());
    let key_id = key.id.clone();
    let now = unix_now_f64();
    let read = tokio::task::spawn_blocking(move || usage(&store, &key_id, budget, now)).await;
    let spent = match read {
        Ok(Ok(spent)) => spent,
        Ok(Err(e)) => {
            tracing::warn!(key_id = %key.id, error = %e, "reading a key's token budget failed; letting the request through");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(key_id = %key.id, error = %e, "reading a key's token budget panicked");
            return Ok(());
        }
    };
    if spent.used < budget.tokens {
        return Ok(());
    }
    metrics::counter!("emguard_token_budget_refused_total").increment(1);
    let period = match budget.period {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
    };
    let wait = (spent.resets_at as f64 - now).ceil().max(1.0) as u64;
    let mut error = ApiError::rate_limited(
        format!(
            "The API key `{}` has used {} tokens of its token budget of {} per {period}; the budget resets at {} (in {wait} s).",
            key.id,
            spent.used,
            budget.tokens,
            rfc3339(spent.resets_at)
        ),
        wait,
    );
    error.code = Some("token_budget_exceeded");
    Err(error)
}

/// Charges an answer's tokens to the key: its per-minute token limit and its budget.
pub async fn charge(
    state: &AppState,
    key_id: &str,
    quota: &Quota,
    budget: Option<TokenBudget>,
    tokens: u64,
) {
    if let Some(limiter) = &state.limiter {
        limiter.charge_tokens(key_id, quota, tokens).await;
    }
    // Counted per day whatever the period (a month sums its days).
    let (Some(ring), Some(_)) = (&state.keys, budget) else {
        return;
    };
    if tokens == 0 {
        return;
    }
    let store = Arc::clone(ring.store());
    let id = key_id.to_string();
    let (day_start, _) = period_bounds(BudgetPeriod::Day, unix_now_f64());
    let added =
        tokio::task::spawn_blocking(move || store.add_key_tokens(&id, day_start, tokens)).await;
    match added {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(key_id, tokens, error = %e, "charging a key's token budget failed")
        }
        Err(e) => {
            tracing::error!(key_id, tokens, error = %e, "charging a key's token budget panicked")
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(DAY);
    let secs = unix.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01: (year, month 1-12, day 1-31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_calendar_days_and_months() {
        // 2026-12-07T05:41:41Z
        let now = 1_796_622_101.0;
        assert_eq!(rfc3339(now as i64), "2026-12-07T05:41:41Z");
        let (start, next) = period_bounds(BudgetPeriod::Day, now);
        assert_eq!(
            (rfc3339(start), rfc3339(next)),
            ("2026-12-07T00:00:00Z".into(), "2026-12-08T00:00:00Z".into())
        );
        let (start, next) = period_bounds(BudgetPeriod::Month, now);
        assert_eq!(
            (rfc3339(start), rfc3339(next)),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        // A leap February, and the last second of a month.
        let feb = days_from_civil(2028, 2, 29) * DAY + DAY - 1;
        let (start, next) = period_bounds(BudgetPeriod::Month, feb as f64);
        assert_eq!(
            (rfc3339(start), rfc3339(next)),
            ("2028-02-01T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
