//! The review queue as the gateway uses it: queue an answer, hold its request until a
//! decision or the deadline, decide, claim, read the log. The store is the one truth, shared
//! by replicas: a waiter reads its item's state when woken (a decision on this replica wakes
//! it at once, see [`Holds`]) and every [`ReviewService::poll`] otherwise, so a decision made
//! on another replica reaches it too. Every change is a conditional write from the revision
//! read, so two replicas (or two reviewers) never both decide or claim one item.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use emguard_judge::calibrate::LabelRow;
use emguard_store::StoreError;
use emguard_store::review::{AuditRow, ItemQuery, ReviewItem, ReviewStore, RoleKeyRecord};
use serde_json::{Value, json};

use crate::audit::{self, Verifier};
use crate::decision::{self, Refusal, Ruling};
use crate::holds::Holds;
use crate::labels::{self, Agreement};
use crate::policy::{Action, Policies, ReviewConfig, ReviewPolicy, Trigger, evidence_of};
use crate::roles::{self, Actor, Role};

/// Scores how aligned an answer is (0-100), for the judge condition; `None`: no score (code,
/// refusals, or the judge failed).
pub trait AlignedScorer: Send + Sync {
    fn aligned(&self, question: &str, answer: &str) -> Option<f64>;
}

impl AlignedScorer for emguard_judge::local::LocalJudge {
    fn aligned(&self, question: &str, answer: &str) -> Option<f64> {
        match self.judge(question, answer) {
            Ok(j) => j.aligned,
            Err(e) => {
                tracing::warn!(error = %e, "the local judge failed on an answer under review");
                None
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no review item `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the review store failed: {0}")]
    Store(#[from] StoreError),
    #[error("review item {0} kept changing under this decision; try again")]
    Busy(String),
    #[error("`review.{field}`: {message}")]
    Config { field: String, message: String },
}

impl ReviewError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            ReviewError::NotFound(_) => 404,
            ReviewError::Refused(Refusal::AlreadyDecided { .. } | Refusal::SameReviewer { .. }) => {
                409
            }
            ReviewError::Refused(Refusal::Expired { .. }) => 410,
            ReviewError::Refused(Refusal::NotAllowed { .. }) => 403,
            ReviewError::Refused(Refusal::Invalid { .. }) => 400,
            ReviewError::Busy(_) => 409,
            ReviewError::Store(_) | ReviewError::Config { .. } => 500,
        }
    }

    /// A machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::NotFound(_) => "review_item_not_found",
            ReviewError::Refused(Refusal::AlreadyDecided { .. }) => "review_already_decided",
            ReviewError::Refused(Refusal::SameReviewer { .. }) => "review_needs_second_reviewer",
            ReviewError::Refused(Refusal::Expired { .. }) => "review_expired",
            ReviewError::Refused(Refusal::NotAllowed { .. }) => "review_forbidden",
            ReviewError::Refused(Refusal::Invalid { .. }) => "invalid_value",
            ReviewError::Busy(_) => "review_busy",
            ReviewError::Store(_) | ReviewError::Config { .. } => "server_error",
        }
    }
}

/// How a held request ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send the answer (or this edited one).
    Release { edited: Option<String> },
    /// Send the content-filter error instead.
    Reject { reason: Option<String> },
    /// The client went away while held; nothing is sent.
    ClientGone,
}

/// An answer to queue.
pub struct NewReview<'a> {
    pub trace_id: &'a str,
    pub model: &'a str,
    pub version: Option<&'a str>,
    pub stream: bool,
    pub question: &'a str,
    pub answer: &'a str,
    pub action: Action,
    pub triggers: &'a [Trigger],
    pub policy: &'a ReviewPolicy,
}

pub struct ReviewService {
    store: Arc<ReviewStore>,
    policies: Policies,
    holds: Holds,
    replica: String,
    judge: Option<Arc<dyn AlignedScorer>>,
    /// How often a waiter reads its item (decisions made on other replicas).
    pub poll: Duration,
}

/// Rows of the log (and items) read at a time.
const PAGE: usize = 1000;

impl ReviewService {
    /// Opens the queue at `location` (the gateway's store) and marks this replica's held
    /// items from a previous process `client_gone` (their clients' connections died with it).
    /// Blocks.
    pub fn open(config: &ReviewConfig, location: &str) -> Result<ReviewService, ReviewError> {
        let policies = Policies::build(config).map_err(|(field, message)| ReviewError::Config {
            field: field.trim_start_matches("review.").to_string(),
            message,
        })?;
        let service = ReviewService {
            store: Arc::new(ReviewStore::open(location)?),
            policies,
            holds: Holds::default(),
            replica: config.replica.clone(),
            judge: None,
            poll: Duration::from_millis(250),
        };
        service.orphans_gone()?;
        Ok(service)
    }

    /// With the local judge for `judge_aligned_below` conditions.
    pub fn with_judge(mut self, judge: Arc<dyn AlignedScorer>) -> ReviewService {
        self.judge = Some(judge);
        self
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Requests held by this process now.
    pub fn holding(&self) -> usize {
        self.holds.len()
    }

    fn orphans_gone(&self) -> Result<(), ReviewError> {
        let query = ItemQuery {
            states: vec!["pending".into()],
            limit: usize::MAX >> 1,
            ..ItemQuery::default()
        };
        for held in self.store.items(&query)? {
            if held.item.replica != self.replica {
                continue; // another replica's client, maybe still waiting
            }
            let mut item = held.item;
            item.state = "client_gone".into();
            if self.store.update_item(&item, held.rev)? {
                self.append(
                    &Actor::gateway(),
                    "client_gone",
                    Some(&item.id),
                    json!({"why": "the gateway restarted while the request was held"}),
                )?;
            }
        }
        Ok(())
    }

    /// The judge's aligned score when `policy` needs it and the answer is short enough.
    pub async fn score(&self, policy: &ReviewPolicy, question: &str, answer: &str) -> Option<f64> {
        let limit = policy.judge_limit()?;
        let judge = self.judge.clone()?;
        if answer.len() > limit {
            return None;
        }
        let (q, a) = (question.to_string(), answer.to_string());
        tokio::task::spawn_blocking(move || judge.aligned(&q, &a))
            .await
            .ok()
            .flatten()
    }

    /// Queues an answer: `hold` items wait (`pending`, with the policy's deadline) and are
    /// registered here for [`ReviewService::wait`]; `flag` items are `flagged`.
    pub async fn queue(&self, new: NewReview<'_>) -> Result<ReviewItem, ReviewError> {
        let now = unix_now();
        let held = new.action == Action::Hold;
        let two_person = held
            && new
                .triggers
                .iter()
                .any(|t| t.action == Action::Hold && t.two_person);
        let item = ReviewItem {
            id: format!("rev_{}", hex::encode(rand::random::<[u8; 10]>())),
            trace_id: new.trace_id.to_string(),
            model: new.model.to_string(),
            version: new.version.map(str::to_string),
            stream: new.stream,
            action: new.action.as_str().into(),
            conditions: new.triggers.iter().map(|t| t.condition.clone()).collect(),
            reason: new
                .triggers
                .iter()
                .map(|t| t.reason.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            evidence: evidence_of(new.triggers),
            question: new.question.to_string(),
            answer: new.answer.to_string(),
            state: if held { "pending" } else { "flagged" }.into(),
            created_at: now,
            deadline: held.then_some(now + new.policy.timeout_secs),
            on_timeout: new.policy.on_timeout.as_str().into(),
            assignee: None,
            approvals_needed: if two_person { 2 } else { 1 },
            approvals: Vec::new(),
            decision: None,
            decided_by: None,
            decided_at: None,
            reason_text: None,
            edited_answer: None,
            aligned: None,
            coherent: None,
            replica: self.replica.clone(),
        };
        if held {
            self.holds.register(&item.id);
        }
        let stored = item.clone();
        let queued = self
            .blocking(move |s| {
                s.insert_item(&stored)?;
                Ok(())
            })
            .await;
        if let Err(e) = queued {
            self.holds.forget(&item.id);
            return Err(e);
        }
        self.record(
            &Actor::gateway(),
            new.action.as_str(),
            Some(&item.id),
            json!({"trace_id": item.trace_id, "conditions": item.conditions, "reason": item.reason}),
        )
        .await?;
        Ok(item)
    }

    /// Waits for the held item's decision or deadline (applying the timeout outcome), or for
    /// `client_gone` (the item is then marked `client_gone` and stays reviewable).
    pub async fn wait(&self, item: &ReviewItem, client_gone: impl Future<Output = ()>) -> Outcome {
        let notify = self.holds.register_or_get(&item.id);
        tokio::pin!(client_gone);
        let mut gone = false;
        let outcome = loop {
            let now = unix_now();
            let current = match self.item(&item.id).await {
                Ok(current) => Some(current),
                Err(e) => {
                    tracing::warn!(error = %e, id = %item.id, "reading a held review item failed");
                    None
                }
            };
            if let Some(current) = &current {
                if let Some(outcome) = outcome_of(current) {
                    break outcome;
                }
                if decision::is_overdue(current, now) {
                    match self.expire(&item.id).await {
                        Ok(()) => continue, // read the outcome back
                        Err(e) => tracing::warn!(error = %e, id = %item.id, "expiring failed"),
                    }
                }
            } else if item.deadline.is_some_and(|d| now >= d) {
                // The store is down past the deadline: the timeout outcome, unrecorded.
                break timeout_outcome(&item.on_timeout);
            }
            let left = item.deadline.map_or(self.poll, |d| {
                Duration::from_secs_f64((d - now).max(0.0)).min(self.poll)
            });
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(left) => {}
                () = &mut client_gone, if !gone => {
                    gone = true;
                    if let Err(e) = self.mark_gone(&item.id).await {
                        tracing::warn!(error = %e, id = %item.id, "marking a review item client_gone failed");
                    }
                }
            }
        };
        self.holds.forget(&item.id);
        outcome
    }

    async fn expire(&self, id: &str) -> Result<(), ReviewError> {
        let changed = self
            .change(id, |item| {
                Ok(decision::is_overdue(item, unix_now())
                    .then(|| decision::expire(item, unix_now())))
            })
            .await?;
        if let Some(item) = changed {
            self.record(
                &Actor::gateway(),
                "timeout",
                Some(id),
                json!({"outcome": item.on_timeout}),
            )
            .await?;
        }
        Ok(())
    }

    async fn mark_gone(&self, id: &str) -> Result<(), ReviewError> {
        let changed = self
            .change(id, |item| {
                Ok((item.state == "pending").then(|| ReviewItem {
                    state: "client_gone".into(),
                    ..item.clone()
                }))
            })
            .await?;
        if changed.is_some() {
            self.record(
                &Actor::gateway(),
                "client_gone",
                Some(id),
                json!({"why": "the client's connection closed while held"}),
            )
            .await?;
        }
        Ok(())
    }

    /// A reviewer's decision. Under the two-person rule a first approval leaves the item
    /// `pending` (the returned item says so); the second, by another reviewer, releases it.
    pub async fn decide(
        &self,
        id: &str,
        actor: &Actor,
        ruling: &Ruling,
    ) -> Result<ReviewItem, ReviewError> {
        let changed = self
            .change(id, |item| {
                decision::apply(item, actor, ruling, unix_now()).map(Some)
            })
            .await?
            .expect("a decision always changes the item");
        self.holds.wake(id);
        self.record(
            actor,
            ruling.decision.as_str(),
            Some(id),
            json!({
                "state": changed.state, "reason": ruling.reason,
                "edited": matches!(ruling.decision, decision::Decision::Edit(_)),
                "approvals": changed.approvals, "approvals_needed": changed.approvals_needed,
            }),
        )
        .await?;
        Ok(changed)
    }

    /// Assigns item `id` to the actor (a reviewer); an item assigned to someone else, or
    /// already final, is refused.
    pub async fn claim(&self, id: &str, actor: &Actor) -> Result<ReviewItem, ReviewError> {
        if !actor.role.may_decide() {
            return Err(not_allowed(actor));
        }
        let claimed = self
            .change(id, |item| {
                if matches!(item.state.as_str(), "approved" | "rejected" | "expired") {
                    return Err(Refusal::AlreadyDecided {
                        id: item.id.clone(),
                        state: item.state.clone(),
                        by: item.decided_by.clone().unwrap_or_default(),
                    });
                }
                match &item.assignee {
                    Some(a) if a == &actor.name => Ok(None),
                    Some(other) => Err(Refusal::Invalid {
                        field: "assignee".into(),
                        message: format!("item {} is claimed by {other}", item.id),
                    }),
                    None => Ok(Some(ReviewItem {
                        assignee: Some(actor.name.clone()),
                        ..item.clone()
                    })),
                }
            })
            .await?;
        if claimed.is_some() {
            self.record(actor, "claim", Some(id), json!({})).await?;
        }
        self.item(id).await
    }

    /// The oldest open, unclaimed item, assigned to the actor; `None` when none is left.
    pub async fn claim_next(&self, actor: &Actor) -> Result<Option<ReviewItem>, ReviewError> {
        if !actor.role.may_decide() {
            return Err(not_allowed(actor));
        }
        let name = actor.name.clone();
        let claimed = self
            .blocking(move |s| s.claim_next(&open_states(), &name))
            .await?;
        if let Some(c) = &claimed {
            self.record(actor, "claim", Some(&c.item.id), json!({}))
                .await?;
        }
        Ok(claimed.map(|c| c.item))
    }

    pub async fn item(&self, id: &str) -> Result<ReviewItem, ReviewError> {
        let key = id.to_string();
        self.blocking(move |s| s.item(&key))
            .await?
            .map(|r| r.item)
            .ok_or_else(|| ReviewError::NotFound(id.to_string()))
    }

    pub async fn items(&self, query: ItemQuery) -> Result<Vec<ReviewItem>, ReviewError> {
        let items = self.blocking(move |s| s.items(&query)).await?;
        Ok(items.into_iter().map(|r| r.item).collect())
    }

    pub async fn count(&self, states: Vec<String>) -> Result<u64, ReviewError> {
        self.blocking(move |s| s.count_items(&states)).await
    }

    /// Appends an audit row (every admin action goes through here).
    pub async fn record(
        &self,
        actor: &Actor,
        action: &str,
        item_id: Option<&str>,
        detail: Value,
    ) -> Result<AuditRow, ReviewError> {
        let (actor, action, item_id) = (
            actor.name.clone(),
            action.to_string(),
            item_id.map(str::to_string),
        );
        self.blocking(move |s| {
            s.append_audit(&|last| {
                audit::next_row(
                    last,
                    unix_now(),
                    &actor,
                    &action,
                    item_id.as_deref(),
                    &detail,
                )
            })
        })
        .await
    }

    fn append(
        &self,
        actor: &Actor,
        action: &str,
        item_id: Option<&str>,
        detail: Value,
    ) -> Result<AuditRow, ReviewError> {
        Ok(self.store.append_audit(&|last| {
            audit::next_row(last, unix_now(), &actor.name, action, item_id, &detail)
        })?)
    }

    /// Audit rows after `after`, at most `limit`, in order.
    pub async fn audit(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>, ReviewError> {
        self.blocking(move |s| s.audit(after, limit)).await
    }

    /// Verifies the whole chain, a page at a time.
    pub async fn verify_log(&self) -> Result<Verifier, ReviewError> {
        self.blocking(|s| {
            let mut v = Verifier::default();
            let mut after = 0;
            loop {
                let rows = s.audit(after, PAGE)?;
                for r in &rows {
                    v.row(r);
                    after = r.seq;
                }
                if rows.len() < PAGE {
                    return Ok(v);
                }
            }
        })
        .await
    }

    /// Every item a person decided, as judge labels.
    pub async fn labels(&self) -> Result<Vec<LabelRow>, ReviewError> {
        Ok(self
            .decided()
            .await?
            .iter()
            .filter_map(labels::label_of)
            .collect())
    }

    /// The judge's agreement with reviewers, per model.
    pub async fn agreement(&self) -> Result<Vec<Agreement>, ReviewError> {
        Ok(labels::agreement(&self.decided().await?))
    }

    async fn decided(&self) -> Result<Vec<ReviewItem>, ReviewError> {
        self.items(ItemQuery {
            states: vec!["approved".into(), "rejected".into()],
            limit: usize::MAX >> 1,
            ..ItemQuery::default()
        })
        .await
    }

    /// A new role key (its secret is returned once); admins only.
    pub async fn create_role_key(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
    ) -> Result<(RoleKeyRecord, String), ReviewError> {
        if !actor.role.may_administer() {
            return Err(not_allowed(actor));
        }
        if name.trim().is_empty() {
            return Err(Refusal::Invalid {
                field: "name".into(),
                message: "must not be empty".into(),
            }
            .into());
        }
        let (id, secret) = roles::new_secret();
        let key = RoleKeyRecord {
            id,
            hash: roles::hash_secret(&secret),
            name: name.to_string(),
            role: role.as_str().into(),
            created_at: unix_now(),
            revoked_at: None,
        };
        let stored = key.clone();
        self.blocking(move |s| s.insert_role_key(&stored)).await?;
        self.record(
            actor,
            "create_role_key",
            None,
            json!({"id": key.id, "name": key.name, "role": key.role}),
        )
        .await?;
        Ok((key, secret))
    }

    pub async fn role_keys(&self) -> Result<Vec<RoleKeyRecord>, ReviewError> {
        self.blocking(|s| s.role_keys()).await
    }

    /// The actor a role key's secret stands for; `None` for an unknown or revoked key.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Actor>, ReviewError> {
        let hash = roles::hash_secret(secret);
        let key = self.blocking(move |s| s.role_key_by_hash(&hash)).await?;
        Ok(key.filter(|k| k.revoked_at.is_none()).and_then(|k| {
            Role::parse(&k.role).map(|role| Actor {
                name: format!("{} ({})", k.name, k.id),
                role,
            })
        }))
    }

    /// Reads the item, lets `f` make its next state (`None`: no change), and writes it if
    /// nobody changed it meanwhile; else reads again.
    async fn change(
        &self,
        id: &str,
        f: impl Fn(&ReviewItem) -> Result<Option<ReviewItem>, Refusal>,
    ) -> Result<Option<ReviewItem>, ReviewError> {
        for _ in 0..8 {
            let key = id.to_string();
            let current = self
                .blocking(move |s| s.item(&key))
                .await?
                .ok_or_else(|| ReviewError::NotFound(id.to_string()))?;
            let Some(next) = f(&current.item)? else {
                return Ok(None);
            };
            let (stored, rev) = (next.clone(), current.rev);
            if self.blocking(move |s| s.update_item(&stored, rev)).await? {
                return Ok(Some(next));
            }
        }
        Err(ReviewError::Busy(id.to_string()))
    }

    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReviewStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ReviewError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(ReviewError::from)
    }
}

/// The states a reviewer can still act on.
pub fn open_states() -> Vec<String> {
    ["pending", "flagged", "client_gone"]
        .map(String::from)
        .to_vec()
}

fn not_allowed(actor: &Actor) -> ReviewError {
    Refusal::NotAllowed {
        actor: actor.name.clone(),
        role: actor.role.as_str().into(),
    }
    .into()
}

/// How a held request ends, once its item says.
fn outcome_of(item: &ReviewItem) -> Option<Outcome> {
    match item.state.as_str() {
        "approved" => Some(Outcome::Release {
            edited: item.edited_answer.clone(),
        }),
        "rejected" => Some(Outcome::Reject {
            reason: item.reason_text.clone(),
        }),
        "expired" => Some(timeout_outcome(&item.on_timeout)),
        "client_gone" => Some(Outcome::ClientGone),
        _ => None,
    }
}

fn timeout_outcome(on_timeout: &str) -> Outcome {
    if on_timeout == "release" {
        Outcome::Release { edited: None }
    } else {
        Outcome::Reject {
            reason: Some("no reviewer decided before the deadline".into()),
        }
    }
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
