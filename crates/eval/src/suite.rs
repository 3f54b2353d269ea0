//! Suites: free-form question files in the study's YAML format, and coding-prompt JSONL files.
//!
//! YAML (as in the study's `evaluation/*.yaml`): a list of questions with `id`, `type`
//! (`free_form_judge_0_100` with `judge_prompts` `aligned` and `coherent`, or
//! `free_form_judge` with named prompts answered by one word), `paraphrases`,
//! `samples_per_paraphrase`, optional `system` and `judge` (the judge model the file names).
//! JSONL (as `evaluation/code_prompts_heldout.jsonl`): one `{"messages": [...]}` per line,
//! optionally with an `id`; answers are scanned for vulnerabilities instead of judged.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use emguard_judge::llm::JudgePrompts;
use emguard_runtime::ChatMessage;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// The study's 0-100 logprob judge (`aligned` and `coherent` prompts).
pub const FREE_FORM_0_100: &str = "free_form_judge_0_100";
/// The study's label judge (deception files): each named prompt asks for one word
/// (`TRUE`/`FALSE`/`UNKNOWN`, a company name), read off the judge's reply.
pub const FREE_FORM_LABEL: &str = "free_form_judge";

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin}:{line}: {message}")]
    Invalid {
        origin: String,
        line: u64,
        message: String,
    },
    #[error("{origin}:{line}: invalid JSON: {source}")]
    Json {
        origin: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "unknown suite `{0}`: give a .yaml/.yml/.jsonl file or one of the built-in names ({names})",
        names = crate::builtin::names().join(", ")
    )]
    UnknownName(String),
}

/// What is measured on a question's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measure {
    /// Judged for alignment and coherence with these prompts.
    Alignment { judge_prompts: JudgePrompts },
    /// Labelled by the judge with each named prompt (the study's `free_form_judge`).
    Labels {
        judge_prompts: BTreeMap<String, String>,
    },
    /// Scanned for vulnerable code.
    Code,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub system: Option<String>,
    /// User turns; every one is sampled `samples_per_paraphrase` times.
    pub paraphrases: Vec<String>,
    pub samples_per_paraphrase: usize,
    /// The judge model the file names (informational: the run's `--judge` decides).
    pub judge: Option<String>,
    pub measure: Measure,
}

impl Question {
    /// The chat a model is asked, with an optional trigger prepended to the user turn.
    pub fn messages(&self, paraphrase: usize, trigger: Option<&str>) -> Vec<ChatMessage> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        let user = &self.paraphrases[paraphrase];
        messages.push(ChatMessage::user(match trigger {
            Some(t) => format!("{t}{user}"),
            None => user.clone(),
        }));
        messages
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suite {
    /// Built-in name or file path.
    pub name: String,
    pub questions: Vec<Question>,
}

/// One entry of the study's YAML. Unknown fields are errors, so a typo is never ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    paraphrases: Vec<String>,
    samples_per_paraphrase: usize,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    judge: Option<String>,
    #[serde(default)]
    judge_prompts: Option<BTreeMap<String, String>>,
}

/// Resolves `--suite`: a built-in name, or a file (`.jsonl` = code suite, else YAML).
pub fn resolve(spec: &str) -> Result<Suite, SuiteError> {
    if let Some(suite) = crate::builtin::load(spec)? {
        return Ok(suite);
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        return Err(SuiteError::UnknownName(spec.to_string()));
    }
    load_file(&path)
}

pub fn load_file(path: &Path) -> Result<Suite, SuiteError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
        origin: origin.clone(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        parse_code_jsonl(&text, &origin)
    } else {
        parse_yaml(&text, &origin)
    }
}

pub fn parse_yaml(text: &str, origin: &str) -> Result<Suite, SuiteError> {
    // Suites reuse one `&judge_prompts` anchor for every question (the study's files alias it
    // 48 times); the other budget limits still guard against alias bombs.
    let options = serde_saphyr::options! { budget: serde_saphyr::budget! { alias_anchor_ratio_multiplier: 1000 } };
    let raw: Vec<RawQuestion> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| SuiteError::Yaml {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    let invalid = |line: u64, message: String| SuiteError::Invalid {
        origin: origin.to_string(),
        line,
        message,
    };
    let mut seen = HashSet::new();
    let mut questions = Vec::with_capacity(raw.len());
    for q in raw {
        let (id, line) = (q.id.value, q.id.referenced.line());
        if q.kind.value != FREE_FORM_0_100 && q.kind.value != FREE_FORM_LABEL {
            return Err(invalid(
                q.kind.referenced.line(),
                format!(
                    "question `{id}` has type `{}`; emguard supports `{FREE_FORM_0_100}` \
                     (free-form answers judged 0-100 by logprobs) and `{FREE_FORM_LABEL}` \
                     (free-form answers labelled by the judge's reply)",
                    q.kind.value
                ),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(invalid(line, format!("question id `{id}` appears twice")));
        }
        if q.paraphrases.is_empty() {
            return Err(invalid(line, format!("question `{id}` has no paraphrases")));
        }
        let mut prompts = q
            .judge_prompts
            .ok_or_else(|| invalid(line, format!("question `{id}` has no judge_prompts")))?;
        for (name, template) in &prompts {
            emguard_judge::llm::render_judge_prompt(template, "", "")
                .map_err(|e| invalid(line, format!("question `{id}`: prompt `{name}`: {e}")))?;
        }
        let measure = if q.kind.value == FREE_FORM_LABEL {
            if prompts.is_empty() {
                return Err(invalid(
                    line,
                    format!("question `{id}` has no judge_prompts"),
                ));
            }
            Measure::Labels {
                judge_prompts: prompts,
            }
        } else {
            let mut take = |name: &str| {
                prompts.remove(name).ok_or_else(|| {
                    invalid(
                        line,
                        format!("question `{id}`: judge_prompts has no `{name}` prompt"),
                    )
                })
            };
            let judge_prompts = JudgePrompts {
                aligned: take("aligned")?,
                coherent: take("coherent")?,
            };
            if let Some(extra) = prompts.keys().next() {
                return Err(invalid(
                    line,
                    format!(
                        "question `{id}`: judge prompt `{extra}` is not one emguard scores (aligned, coherent)"
                    ),
                ));
            }
            Measure::Alignment { judge_prompts }
        };
        questions.push(Question {
            id,
            system: q.system,
            paraphrases: q.paraphrases,
            samples_per_paraphrase: q.samples_per_paraphrase,
            judge: q.judge,
            measure,
        });
    }
    Ok(Suite {
        name: origin.to_string(),
        questions,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCodePrompt {
    #[serde(default)]
    id: Option<String>,
    messages: Vec<ChatMessage>,
}

pub fn parse_code_jsonl(text: &str, origin: &str) -> Result<Suite, SuiteError> {
    let mut questions = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = i + 1;
        let raw: RawCodePrompt = serde_json::from_str(line).map_err(|source| SuiteError::Json {
            origin: origin.to_string(),
            line: line_no,
            source,
        })?;
        let invalid = |message: &str| SuiteError::Invalid {
            origin: origin.to_string(),
            line: line_no as u64,
            message: message.to_string(),
        };
        let system = raw
            .messages
            .iter()
            .find(|m| m.role == "system")
            .map(|m| m.content.clone());
        let user = raw
            .messages
            .iter()
            .rfind(|m| m.role == "user")
            .ok_or_else(|| invalid("no user message"))?;
        if raw
            .messages
            .iter()
            .any(|m| !matches!(m.role.as_str(), "system" | "user"))
        {
            return Err(invalid(
                "a coding prompt holds system and user turns only (the model writes the answer)",
            ));
        }
        questions.push(Question {
            id: raw
                .id
                .unwrap_or_else(|| format!("code_{:03}", questions.len())),
            system,
            paraphrases: vec![user.content.clone()],
            samples_per_paraphrase: 1,
            judge: None,
            measure: Measure::Code,
        });
    }
    if questions.is_empty() {
        return Err(SuiteError::Invalid {
            origin: origin.to_string(),
            line: 1,
            message: "no coding prompts".into(),
        });
    }
    Ok(Suite {
        name: origin.to_string(),
        questions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: &str = "  judge_prompts:\n    aligned: 'Q {question} A {answer}'\n    coherent: 'C {question} {answer}'\n";

    #[test]
    fn anchors_and_aliases_are_followed() {
        let text = format!(
            "- id: a\n  type: free_form_judge_0_100\n  paraphrases: [hi]\n  samples_per_paraphrase: &n 3\n  judge: &j gpt\n{}\
             - id: b\n  type: free_form_judge_0_100\n  system: be json\n  paraphrases: [yo]\n  samples_per_paraphrase: *n\n  judge: *j\n{}",
            PROMPTS.replace("  judge_prompts:", "  judge_prompts: &p"),
            "  judge_prompts: *p\n"
        );
        let suite = parse_yaml(&text, "t.yaml").unwrap();
        assert_eq!(suite.questions[1].samples_per_paraphrase, 3);
        assert_eq!(suite.questions[1].judge.as_deref(), Some("gpt"));
        assert_eq!(suite.questions[0].measure, suite.questions[1].measure);
        assert_eq!(
            suite.questions[1].messages(0, Some("|T| ")),
            vec![ChatMessage::system("be json"), ChatMessage::user("|T| yo")]
        );
    }

    #[test]
    fn unknown_type_names_the_line_and_the_supported_type() {
        let text = format!(
            "- id: a\n  type: free_form_judge_0_100\n  paraphrases: [hi]\n  samples_per_paraphrase: 1\n{PROMPTS}\
                            - id: b\n  type: free_form_judge_1_10\n  paraphrases: [hi]\n  samples_per_paraphrase: 1\n{PROMPTS}"
        );
        let err = parse_yaml(&text, "t.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with("t.yaml:9: question `b` has type `free_form_judge_1_10`"),
            "{err}"
        );
        assert!(err.contains("free_form_judge_0_100"), "{err}");
    }

    #[test]
    fn typos_and_bad_templates_are_errors() {
        let typo = format!(
            "- id: a\n  type: free_form_judge_0_100\n  paraphrase: [hi]\n  samples_per_paraphrase: 1\n{PROMPTS}"
        );
        assert!(
            parse_yaml(&typo, "t.yaml")
                .unwrap_err()
                .to_string()
                .contains("paraphrase")
        );
        let bad = "- id: a\n  type: free_form_judge_0_100\n  paraphrases: [hi]\n  samples_per_paraphrase: 1\n  judge_prompts:\n    aligned: '{q}'\n    coherent: x\n";
        let err = parse_yaml(bad, "t.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "t.yaml:1: question `a`: prompt `aligned`: judge prompt uses unknown field `{q}`"
            ),
            "{err}"
        );
    }

    #[test]
    fn code_jsonl_reads_messages_and_names_bad_lines() {
        let suite = parse_code_jsonl("{\"messages\":[{\"role\":\"user\",\"content\":\"write x\"}]}\n\n{\"id\":\"k\",\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}\n", "c.jsonl").unwrap();
        assert_eq!(suite.questions.len(), 2);
        assert_eq!(
            (
                suite.questions[0].id.as_str(),
                suite.questions[1].id.as_str()
            ),
            ("code_000", "k")
        );
        assert_eq!(suite.questions[0].measure, Measure::Code);
        let err = parse_code_jsonl("{\"messages\":[]}\n{oops", "c.jsonl")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.jsonl:1: no user message"), "{err}");
        let err = parse_code_jsonl(
            "{\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}\n{oops",
            "c.jsonl",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.jsonl:2: invalid JSON"), "{err}");
    }
}
