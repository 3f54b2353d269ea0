//! The monitor's hold on a breaching version (issue 17): while a version has an unresolved
//! incident and its model's playbook says `hold_for_review: true`, every answer of that
//! version waits in the human-review queue, with a reason naming the incident. The hooks in
//! `review.rs` add this trigger to what the request's own review policy says.

use std::sync::{Arc, OnceLock};

use emguard_review::policy::TimeoutOutcome;
use emguard_review::{Action, Check, PolicyConfig, ReviewPolicy, ReviewService, Trigger};
use serde_json::json;

use super::Accepted;
use crate::state::AppState;

/// The hold trigger for an answer of `version`, if its version is under such an incident.
pub(super) fn trigger(state: &AppState, model: &str, version: Option<&str>) -> Option<Trigger> {
    let (incident, reason) = state.monitor.as_ref()?.review_hold(model, version?)?;
    Some(Trigger {
        condition: "incident".into(),
        action: Action::Hold,
        two_person: false,
        reason,
        evidence: json!({"incident": incident}),
    })
}

/// The review service and the request's policy; an answer held for an incident whose request
/// has no policy of its own gets the queue's plain one (300 s, then rejected).
pub(super) fn review_of<'a>(
    state: &'a AppState,
    accepted: &Accepted,
    incident: Option<&Trigger>,
) -> Option<(&'a Arc<ReviewService>, Arc<ReviewPolicy>)> {
    let service = state.review.as_ref()?;
    let policy = accepted
        .review
        .clone()
        .or_else(|| incident.map(|_| plain_policy()))?;
    Some((service, policy))
}

/// `check` with the incident's hold added: a held answer whatever the policy said.
pub(super) fn with_incident(check: Check, incident: Option<Trigger>) -> Check {
    let Some(hold) = incident else {
        return check;
    };
    let mut triggers = match check {
        Check::Pass => Vec::new(),
        Check::Flag(t) | Check::Hold(t) => t,
    };
    triggers.push(hold);
    Check::Hold(triggers)
}

fn plain_policy() -> Arc<ReviewPolicy> {
    static PLAIN: OnceLock<Arc<ReviewPolicy>> = OnceLock::new();
    Arc::clone(PLAIN.get_or_init(|| {
        let config = PolicyConfig {
            timeout_secs: 300.0,
            on_timeout: TimeoutOutcome::Reject,
            conditions: Vec::new(),
        };
        // A positive timeout and no conditions: nothing to reject.
        Arc::new(ReviewPolicy::build(&config).expect("the plain review policy is valid"))
    }))
}
