//! How a reviewer's decision changes an item, as a pure function of the item, the decision
//! and the time: what may be decided when, the two-person rule, the errors a reviewer sees.
//!
//! States: `pending` (held: a client waits), `flagged` (released, to review after the fact),
//! `client_gone` (held, but the client's connection was lost: still reviewable, nothing is
//! delivered), then `approved`, `rejected` or `expired` (the timeout's outcome applied).

use emguard_store::review::ReviewItem;

use crate::roles::Actor;

/// What a reviewer decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Approve,
    /// Approve with this answer instead of the model's.
    Edit(String),
    Reject,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Edit(_) => "edit",
            Decision::Reject => "reject",
        }
    }
}

/// A decision with the reviewer's reason and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Ruling {
    pub decision: Decision,
    pub reason: Option<String>,
    /// 0-100, for judge calibration (defaults by decision, see [`crate::labels`]).
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
}

/// Why a decision cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("review item {id} was already {state} (by {by}); a decision is final")]
    AlreadyDecided {
        id: String,
        state: String,
        by: String,
    },
    #[error(
        "review item {id} expired at its deadline ({deadline:.0}, unix seconds) and its timeout outcome ({outcome}) was applied; it can no longer be decided"
    )]
    Expired {
        id: String,
        deadline: f64,
        outcome: String,
    },
    #[error(
        "review item {id} needs a second, different reviewer under the two-person rule: {by} approved it already"
    )]
    SameReviewer { id: String, by: String },
    #[error("{actor} has the role `{role}`, which may not decide review items")]
    NotAllowed { actor: String, role: String },
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
}

/// Whether a held item's deadline passed at `now` without a decision.
pub fn is_overdue(item: &ReviewItem, now: f64) -> bool {
    item.state == "pending" && item.deadline.is_some_and(|d| now >= d)
}

/// The item after `ruling` by `actor` at `now`, or why not.
pub fn apply(
    item: &ReviewItem,
    actor: &Actor,
    ruling: &Ruling,
    now: f64,
) -> Result<ReviewItem, Refusal> {
    if !actor.role.may_decide() {
        return Err(Refusal::NotAllowed {
            actor: actor.name.clone(),
            role: actor.role.as_str().into(),
        });
    }
    for (field, value) in [("aligned", ruling.aligned), ("coherent", ruling.coherent)] {
        if let Some(v) = value
            && !(0.0..=100.0).contains(&v)
        {
            return Err(Refusal::Invalid {
                field: field.into(),
                message: format!("{v} is outside 0..=100"),
            });
        }
    }
    match item.state.as_str() {
        "approved" | "rejected" => {
            return Err(Refusal::AlreadyDecided {
                id: item.id.clone(),
                state: item.state.clone(),
                by: item.decided_by.clone().unwrap_or_default(),
            });
        }
        "expired" => return Err(expired(item)),
        _ if is_overdue(item, now) => return Err(expired(item)),
        _ => {}
    }
    let mut next = item.clone();
    next.reason_text = ruling.reason.clone().or(next.reason_text);
    next.aligned = ruling.aligned.or(next.aligned);
    next.coherent = ruling.coherent.or(next.coherent);
    match &ruling.decision {
        Decision::Reject => {
            next.state = "rejected".into();
            finish(&mut next, actor, ruling, now);
        }
        Decision::Approve | Decision::Edit(_) => {
            if next.approvals.contains(&actor.name) {
                return Err(Refusal::SameReviewer {
                    id: item.id.clone(),
                    by: actor.name.clone(),
                });
            }
            next.approvals.push(actor.name.clone());
            if let Decision::Edit(answer) = &ruling.decision {
                next.edited_answer = Some(answer.clone());
            }
            if next.approvals.len() as u32 >= next.approvals_needed.max(1) {
                next.state = "approved".into();
                finish(&mut next, actor, ruling, now);
            }
        }
    }
    Ok(next)
}

fn finish(next: &mut ReviewItem, actor: &Actor, ruling: &Ruling, now: f64) {
    next.decision = Some(
        match (&ruling.decision, &next.edited_answer) {
            (Decision::Reject, _) => "reject",
            (_, Some(_)) => "edit",
            _ => "approve",
        }
        .into(),
    );
    next.decided_by = Some(actor.name.clone());
    next.decided_at = Some(now);
}

fn expired(item: &ReviewItem) -> Refusal {
    Refusal::Expired {
        id: item.id.clone(),
        deadline: item.deadline.unwrap_or_default(),
        outcome: item.on_timeout.clone(),
    }
}

/// The item after its deadline passed: its timeout outcome applied.
pub fn expire(item: &ReviewItem, now: f64) -> ReviewItem {
    let mut next = item.clone();
    next.state = "expired".into();
    next.decision = Some(format!("timeout_{}", item.on_timeout));
    next.decided_by = Some("gateway".into());
    next.decided_at = Some(now);
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Role;

    fn item(needed: u32) -> ReviewItem {
        ReviewItem {
            id: "rev_1".into(),
            trace_id: "chatcmpl-1".into(),
            model: "m".into(),
            version: None,
            stream: false,
            action: "hold".into(),
            conditions: vec![],
            reason: String::new(),
            evidence: serde_json::Value::Null,
            question: "q".into(),
            answer: "a".into(),
            state: "pending".into(),
            created_at: 0.0,
            deadline: Some(100.0),
            on_timeout: "reject".into(),
            assignee: None,
            approvals_needed: needed,
            approvals: vec![],
            decision: None,
            decided_by: None,
            decided_at: None,
            reason_text: None,
            edited_answer: None,
            aligned: None,
            coherent: None,
            replica: "default".into(),
        }
    }

    fn reviewer(name: &str) -> Actor {
        Actor {
            name: name.into(),
            role: Role::Reviewer,
        }
    }

    fn ruling(decision: Decision) -> Ruling {
        Ruling {
            decision,
            reason: None,
            aligned: None,
            coherent: None,
        }
    }

    #[test]
    fn two_person_rule_needs_two_different_reviewers() {
        let one = apply(
            &item(2),
            &reviewer("alice"),
            &ruling(Decision::Approve),
            1.0,
        )
        .unwrap();
        assert_eq!(one.state, "pending");
        let again = apply(&one, &reviewer("alice"), &ruling(Decision::Approve), 2.0);
        assert!(matches!(again, Err(Refusal::SameReviewer { .. })));
        let two = apply(&one, &reviewer("bob"), &ruling(Decision::Approve), 2.0).unwrap();
        assert_eq!(two.state, "approved");
        assert_eq!(two.decided_by.as_deref(), Some("bob"));
    }

    #[test]
    fn final_and_expired_items_refuse_decisions() {
        let done = apply(&item(1), &reviewer("a"), &ruling(Decision::Reject), 1.0).unwrap();
        let e = apply(&done, &reviewer("b"), &ruling(Decision::Approve), 2.0).unwrap_err();
        assert!(e.to_string().contains("already rejected (by a)"), "{e}");
        let e = apply(&item(1), &reviewer("a"), &ruling(Decision::Approve), 100.0).unwrap_err();
        assert!(matches!(e, Refusal::Expired { .. }), "{e}");
        let viewer = Actor {
            name: "v".into(),
            role: Role::Viewer,
        };
        let e = apply(&item(1), &viewer, &ruling(Decision::Approve), 1.0).unwrap_err();
        assert!(matches!(e, Refusal::NotAllowed { .. }));
    }
}
