//! The review policy, as data in the gateway's config (`review:`): named conditions, each
//! with its action, per model and per key's filter policy.
//!
//! ```yaml
//! review:
//!   default:
//!     timeout_secs: 300
//!     on_timeout: reject
//!     conditions:
//!       - name: risky-tools
//!         when: {tool_call: {names: ["delete_*", "transfer_funds"]}}
//!         action: hold
//!         two_person: true
//!       - when: {code_severity: high}
//!         action: hold
//!       - when: {sample: 0.01}
//!         action: flag
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::conditions::{Condition, When};

/// The `review:` section of the gateway's config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// This gateway's name among replicas sharing one store: at start-up, held items of this
    /// name whose client was lost with the previous process are marked `client_gone`.
    #[serde(default = "default_replica")]
    pub replica: String,
    /// The policy of models and keys that name none.
    #[serde(default)]
    pub default: Option<PolicyConfig>,
    /// A model's policy (by model id), replacing the default.
    #[serde(default)]
    pub models: BTreeMap<String, PolicyConfig>,
    /// The policy of keys with this filter policy (by its name), replacing the model's.
    #[serde(default)]
    pub filter_policies: BTreeMap<String, PolicyConfig>,
}

fn default_replica() -> String {
    "default".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// How long a held client waits for a decision.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// What happens at the timeout: `reject` (default) or `release`.
    #[serde(default)]
    pub on_timeout: TimeoutOutcome,
    pub conditions: Vec<ConditionConfig>,
}

fn default_timeout_secs() -> f64 {
    300.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutOutcome {
    #[default]
    Reject,
    Release,
}

impl TimeoutOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutOutcome::Reject => "reject",
            TimeoutOutcome::Release => "release",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// Shown in the queue and the audit log (default: the condition's kind).
    #[serde(default)]
    pub name: Option<String>,
    pub when: When,
    pub action: Action,
    /// A release needs the approval of two different reviewers.
    #[serde(default)]
    pub two_person: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The client waits for a reviewer's decision (or the timeout).
    Hold,
    /// Released at once, queued for review after the fact.
    Flag,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Hold => "hold",
            Action::Flag => "flag",
        }
    }
}

/// One output filter's findings on the answer (the gateway's verdicts, by filter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterFindings {
    /// `code` or `text`.
    pub filter: String,
    pub findings: Vec<String>,
}

/// A tool call of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

/// What the conditions look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerFacts<'a> {
    pub question: &'a str,
    pub answer: &'a str,
    pub findings: &'a [FilterFindings],
    pub tool_calls: &'a [ToolCall],
    /// The local judge's aligned score, when it was run.
    pub aligned: Option<f64>,
    /// The request's random draw in `0..1` (for the sample condition).
    pub draw: f64,
}

/// One condition that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub condition: String,
    pub action: Action,
    pub two_person: bool,
    pub reason: String,
    pub evidence: Value,
}

/// What the policy says about one answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Pass,
    Flag(Vec<Trigger>),
    Hold(Vec<Trigger>),
}

impl Check {
    fn of(triggers: Vec<Trigger>) -> Check {
        if triggers.is_empty() {
            Check::Pass
        } else if triggers.iter().any(|t| t.action == Action::Hold) {
            Check::Hold(triggers)
        } else {
            Check::Flag(triggers)
        }
    }
}

#[derive(Debug)]
struct Rule {
    name: String,
    action: Action,
    two_person: bool,
    condition: Box<dyn Condition>,
}

/// A policy ready to check answers.
#[derive(Debug)]
pub struct ReviewPolicy {
    pub timeout_secs: f64,
    pub on_timeout: TimeoutOutcome,
    rules: Vec<Rule>,
}

impl ReviewPolicy {
    /// The policy, or `(field, message)` naming what is wrong (`conditions[1].when`).
    pub fn build(config: &PolicyConfig) -> Result<ReviewPolicy, (String, String)> {
        if !(config.timeout_secs > 0.0 && config.timeout_secs.is_finite()) {
            return Err(("timeout_secs".into(), "must be a positive number".into()));
        }
        let mut rules = Vec::new();
        for (i, c) in config.conditions.iter().enumerate() {
            let condition = c
                .when
                .build()
                .map_err(|m| (format!("conditions[{i}].when.{}", c.when.kind()), m))?;
            if c.two_person && c.action == Action::Flag {
                return Err((
                    format!("conditions[{i}].two_person"),
                    "applies to held answers only (`action: hold`)".into(),
                ));
            }
            rules.push(Rule {
                name: c.name.clone().unwrap_or_else(|| c.when.kind().to_string()),
                action: c.action,
                two_person: c.two_person,
                condition,
            });
        }
        Ok(ReviewPolicy {
            timeout_secs: config.timeout_secs,
            on_timeout: config.on_timeout,
            rules,
        })
    }

    /// Every condition on the whole answer.
    pub fn check(&self, facts: &AnswerFacts<'_>) -> Check {
        Check::of(self.fire(facts, |_| true))
    }

    /// The conditions that can be judged as a stream passes, with `hold` action: whether the
    /// part just filtered must be held.
    pub fn check_part(&self, facts: &AnswerFacts<'_>) -> Check {
        Check::of(self.fire(facts, |r| {
            r.action == Action::Hold && r.condition.works_on_parts()
        }))
    }

    /// The conditions left for the end of a stream that was sent as it passed: the flags
    /// (a `hold` that reads the whole answer makes the stream buffered, see
    /// [`ReviewPolicy::holds_whole_answer`], and such a stream is checked whole instead).
    pub fn check_stream_end(&self, facts: &AnswerFacts<'_>) -> Check {
        Check::of(self.fire(facts, |r| r.action == Action::Flag))
    }

    /// Whether a `hold` condition reads the whole answer (the text filter's harm score, the
    /// local judge): a stream must then be kept back whole until it is complete and checked,
    /// since what was sent cannot be held.
    pub fn holds_whole_answer(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == Action::Hold && !r.condition.works_on_parts())
    }

    /// Whether a held condition reads code findings (streams then hold code regions until
    /// judged).
    pub fn holds_code(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == Action::Hold && r.condition.reads_code())
    }

    /// The longest answer the local judge must score for this policy, if any condition needs it.
    pub fn judge_limit(&self) -> Option<usize> {
        self.rules
            .iter()
            .filter_map(|r| r.condition.needs_judge())
            .max()
    }

    fn fire(&self, facts: &AnswerFacts<'_>, which: impl Fn(&Rule) -> bool) -> Vec<Trigger> {
        self.rules
            .iter()
            .filter(|r| which(r))
            .filter_map(|r| {
                r.condition.check(facts).map(|fired| Trigger {
                    condition: r.name.clone(),
                    action: r.action,
                    two_person: r.two_person,
                    reason: fired.reason,
                    evidence: fired.evidence,
                })
            })
            .collect()
    }
}

/// The evidence of several triggers as one object (by condition name).
pub fn evidence_of(triggers: &[Trigger]) -> Value {
    let map: serde_json::Map<String, Value> = triggers
        .iter()
        .map(|t| {
            (
                t.condition.clone(),
                json!({"reason": t.reason, "evidence": t.evidence}),
            )
        })
        .collect();
    Value::Object(map)
}

/// The policies of one gateway, chosen per request.
#[derive(Debug, Default)]
pub struct Policies {
    default: Option<std::sync::Arc<ReviewPolicy>>,
    models: BTreeMap<String, std::sync::Arc<ReviewPolicy>>,
    filter_policies: BTreeMap<String, std::sync::Arc<ReviewPolicy>>,
}

impl Policies {
    /// Every policy built; errors name the field under `review`.
    pub fn build(config: &ReviewConfig) -> Result<Policies, (String, String)> {
        let one = |at: String, p: &PolicyConfig| {
            ReviewPolicy::build(p)
                .map(std::sync::Arc::new)
                .map_err(|(f, m)| (format!("review.{at}.{f}"), m))
        };
        let mut policies = Policies::default();
        if let Some(p) = &config.default {
            policies.default = Some(one("default".into(), p)?);
        }
        for (id, p) in &config.models {
            policies
                .models
                .insert(id.clone(), one(format!("models.{id}"), p)?);
        }
        for (name, p) in &config.filter_policies {
            policies
                .filter_policies
                .insert(name.clone(), one(format!("filter_policies.{name}"), p)?);
        }
        Ok(policies)
    }

    /// The key's filter policy's review policy, else the model's, else the default.
    pub fn for_request(
        &self,
        model: &str,
        filter_policy: Option<&str>,
    ) -> Option<std::sync::Arc<ReviewPolicy>> {
        filter_policy
            .and_then(|name| self.filter_policies.get(name))
            .or_else(|| self.models.get(model))
            .or(self.default.as_ref())
            .cloned()
    }

    /// Whether any policy needs the local judge.
    pub fn needs_judge(&self) -> bool {
        self.default
            .iter()
            .chain(self.models.values())
            .chain(self.filter_policies.values())
            .any(|p| p.judge_limit().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Result<ReviewPolicy, (String, String)> {
        let config: PolicyConfig = serde_saphyr::from_str(yaml).unwrap();
        ReviewPolicy::build(&config)
    }

    #[test]
    fn hold_wins_over_flag_and_names_the_conditions() {
        let p = policy(
            "conditions:
  - {name: tools, when: {tool_call: {names: [transfer_funds]}}, action: hold, two_person: true}
  - {when: {sample: 1.0}, action: flag}
",
        )
        .unwrap();
        let calls = [ToolCall {
            name: "transfer_funds".into(),
            arguments: "{\"amount\": 5000}".into(),
        }];
        let facts = AnswerFacts {
            tool_calls: &calls,
            draw: 0.5,
            ..AnswerFacts::default()
        };
        let Check::Hold(triggers) = p.check(&facts) else {
            panic!("held")
        };
        assert_eq!(triggers.len(), 2);
        assert_eq!(triggers[0].condition, "tools");
        assert!(triggers[0].two_person);
        assert_eq!(triggers[1].condition, "sample");
        let plain = AnswerFacts {
            draw: 0.5,
            ..AnswerFacts::default()
        };
        assert!(matches!(p.check(&plain), Check::Flag(_)));
        // On a stream's parts only the hold conditions count; the flag waits for the end.
        assert_eq!(p.check_part(&plain), Check::Pass);
        assert!(matches!(p.check_stream_end(&plain), Check::Flag(_)));
        assert!(!p.holds_whole_answer());
    }

    #[test]
    fn a_held_whole_answer_condition_makes_streams_buffered() {
        let held = policy("conditions: [{when: {text_harm_above: 0}, action: hold}]").unwrap();
        assert!(held.holds_whole_answer());
        let judged =
            policy("conditions: [{when: {judge_aligned_below: {below: 30}}, action: hold}]")
                .unwrap();
        assert!(judged.holds_whole_answer());
        let flagged = policy("conditions: [{when: {text_harm_above: 0}, action: flag}]").unwrap();
        assert!(!flagged.holds_whole_answer());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let e = policy("conditions: [{when: {code_severity: severe}, action: hold}]").unwrap_err();
        assert_eq!(e.0, "conditions[0].when.code_severity");
        assert!(e.1.contains("`severe`"), "{}", e.1);
        let e = policy("conditions: [{when: {sample: 2}, action: flag}]").unwrap_err();
        assert_eq!(e.0, "conditions[0].when.sample");
        let e = policy("conditions: [{when: {sample: 0.1}, action: flag, two_person: true}]")
            .unwrap_err();
        assert_eq!(e.0, "conditions[0].two_person");
        let e = policy("timeout_secs: 0\nconditions: []").unwrap_err();
        assert_eq!(e.0, "timeout_secs");
    }
}
