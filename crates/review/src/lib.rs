//! Human review: risky answers wait for a person before they reach the user.
//!
//! - [`policy`]: which answers go to review, as data (conditions from [`conditions`], each a
//!   small unit that looks at one kind of evidence) with what happens then: `hold` (the
//!   client waits for a decision or a timeout) or `flag` (released, reviewed after the fact).
//! - [`service::ReviewService`]: the queue in the store, decisions (with the two-person rule),
//!   claims, and the waiting of held requests ([`holds`]), across gateway replicas.
//! - [`decision`]: how a decision changes an item, as a pure function.
//! - [`audit`]: the append-only, hash-chained log of every decision and admin action, and
//!   its verification.
//! - [`roles`]: viewer, reviewer and admin keys.
//! - [`sessions`]: console logins and their CSRF tokens, kept in the store.
//! - [`labels`]: reviewed answers as judge labels, and the judge's agreement with reviewers.

pub mod audit;
pub mod conditions;
pub mod decision;
pub mod holds;
pub mod labels;
pub mod policy;
pub mod roles;
pub mod service;
pub mod sessions;

pub use emguard_store::review::{AuditRow, ReviewItem, RoleKeyRecord};
pub use policy::{Action, AnswerFacts, Check, PolicyConfig, ReviewConfig, ReviewPolicy, Trigger};
pub use roles::{Actor, Role};
pub use service::{Outcome, ReviewError, ReviewService};
