//! Human review's place in the gateway: opening the queue (with the local judge when a
//! policy needs it). The policy, queue and waiting live in the review crate; the chat route's
//! hooks are in `routes/chat/review.rs`, the admin API in `routes/review.rs`.

use std::sync::Arc;

use emguard_review::{ReviewConfig, ReviewService};

use crate::build::BuildError;

pub(crate) async fn open(
    config: &ReviewConfig,
    location: &str,
) -> Result<Arc<ReviewService>, BuildError> {
    let (config, location) = (config.clone(), location.to_string());
    tokio::task::spawn_blocking(move || {
        let service = ReviewService::open(&config, &location)
            .map_err(|e| BuildError::Review(e.to_string()))?;
        if !service.policies().needs_judge() {
            return Ok(Arc::new(service));
        }
        let judge = emguard_judge::local::LocalJudge::load().map_err(|e| {
            BuildError::Review(format!(
                "a `judge_aligned_below` condition needs the local judge: {e}"
            ))
        })?;
        Ok(Arc::new(service.with_judge(Arc::new(judge))))
    })
    .await
    .expect("opening the review queue does not panic")
}
