//! A red-team run's configuration (stored with the run, so a resume needs nothing else) and
//! its expansion into variants (probe × question × trigger) and slots (variant × attempt).

use emguard_eval::plan::{ModelSpec, short_hash};
use emguard_judge::llm::JudgePrompts;
use emguard_runtime::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::probe::{Family, MAX_REPEATS, Scoring};

/// Store sequence numbers per slot: round `r` of slot `s` is item `s * ROUNDS_PER_SLOT + r`.
pub const ROUNDS_PER_SLOT: i64 = MAX_REPEATS as i64 + 14;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
    /// New tokens of the attacker's rewrites and translations.
    pub attacker_max_tokens: usize,
    /// Overrides every family's `attempts`.
    pub attempts: Option<usize>,
    /// Overrides every attack family's `rounds` (the attempts an attack may spend per prompt).
    pub budget: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The target: a `--model` spec as eval reads it.
    pub model: String,
    /// What answers for it (eval's `answer_source`, and the pinned version): part of every
    /// answer's key.
    pub source: String,
    /// The gateway model version every request of the target is pinned to (the
    /// `x-emguard-version` header); `None`: the version the gateway routes the key to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The judge spec as eval reads it.
    pub judge: String,
    /// The attacker's model spec (refine loops, `paraphrase`, `translate:`).
    pub attacker: String,
    pub attacker_source: String,
    pub settings: Settings,
    /// Judge prompts of families that give none (eval's built-in suite's).
    pub default_judge_prompts: JudgePrompts,
    pub families: Vec<Family>,
}

/// One chat to put to the model: a probe with its question and trigger filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub family: usize,
    pub probe: usize,
    pub question: Option<usize>,
    pub trigger: Option<usize>,
    /// `family/probe[/question][+trigger N]`.
    pub label: String,
}

/// A variant's `attempt`-th answer (and, in an attack, the rounds that refine it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    pub variant: usize,
    pub attempt: usize,
}

impl Slot {
    pub fn seq(&self, round: usize) -> i64 {
        self.index as i64 * ROUNDS_PER_SLOT + round as i64
    }
}

/// What a stored item is (its `spec`), enough to read a transcript back without the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub variant: usize,
    pub label: String,
    pub attempt: usize,
    pub round: usize,
    /// The chat whose last answer is scored (earlier answers included).
    pub messages: Vec<ChatMessage>,
    /// What the judge is told the model was asked.
    pub judge_question: String,
}

impl RunConfig {
    pub fn rounds(&self, family: &Family) -> usize {
        match family.attack {
            Some(a) => self.settings.budget.unwrap_or(a.rounds).max(1),
            None => 1,
        }
    }

    pub fn attempts(&self, family: &Family) -> usize {
        self.settings.attempts.unwrap_or(family.attempts).max(1)
    }

    pub fn judge_prompts<'a>(&'a self, family: &'a Family) -> &'a JudgePrompts {
        family
            .judge_prompts
            .as_ref()
            .unwrap_or(&self.default_judge_prompts)
    }

    pub fn scoring(&self, variant: &Variant) -> Scoring {
        self.families[variant.family].scoring
    }

    /// Every variant, in file order: probe, then question, then no trigger and each trigger.
    pub fn variants(&self) -> Vec<Variant> {
        let mut out = Vec::new();
        for (f, family) in self.families.iter().enumerate() {
            for (p, probe) in family.probes.iter().enumerate() {
                let questions: Vec<Option<usize>> = if probe.uses_question() {
                    (0..family.questions.len()).map(Some).collect()
                } else {
                    vec![None]
                };
                for question in questions {
                    let triggers = std::iter::once(None).chain((0..probe.triggers.len()).map(Some));
                    for trigger in triggers {
                        let mut label = format!("{}/{}", family.id, probe.id);
                        if let Some(q) = question {
                            label += &format!("/{}", family.questions[q].id);
                        }
                        if let Some(t) = trigger {
                            label += &format!("+trigger{}", t + 1);
                        }
                        out.push(Variant {
                            family: f,
                            probe: p,
                            question,
                            trigger,
                            label,
                        });
                    }
                }
            }
        }
        out
    }

    pub fn slots(&self, variants: &[Variant]) -> Vec<Slot> {
        let mut out = Vec::new();
        for (v, variant) in variants.iter().enumerate() {
            for attempt in 0..self.attempts(&self.families[variant.family]) {
                out.push(Slot {
                    index: out.len(),
                    variant: v,
                    attempt,
                });
            }
        }
        out
    }

    /// Key of the target's answer to `messages` (eval's key format, so an eval run and a red
    /// team run asking the same thing share the stored answer).
    pub fn answer_key(&self, messages: &[ChatMessage], attempt: usize) -> String {
        sample_key(
            &self.model,
            &self.source,
            messages,
            &self.settings,
            self.settings.max_tokens,
            attempt,
        )
    }

    /// Key of the attacker's reply to `messages`, `call` numbering its calls for one slot.
    pub fn attacker_key(&self, messages: &[ChatMessage], call: usize) -> String {
        sample_key(
            &self.attacker,
            &self.attacker_source,
            messages,
            &self.settings,
            self.settings.attacker_max_tokens,
            call,
        )
    }
}

fn sample_key(
    model: &str,
    source: &str,
    messages: &[ChatMessage],
    s: &Settings,
    max_tokens: usize,
    index: usize,
) -> String {
    let mut key = serde_json::json!({
        "model": ModelSpec::parse(model).identity(),
        "messages": messages,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": max_tokens,
        "seed": s.seed,
        "sample_index": index,
    });
    if !source.is_empty() {
        key["source"] = source.into();
    }
    short_hash(&key)
}
