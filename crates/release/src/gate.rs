//! The release gate: conditions from a policy file (YAML) checked against an eval run, a
//! dataset audit, a model card and the attestation chain. Each condition the policy names is
//! one [`Outcome`]; absent conditions are not checked. Output: a table for people, JUnit XML
//! for CI systems (one test case per condition).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::attest::{self, ChainFiles};
use crate::card::{self, Audit};
use crate::eval_run::EvalRun;
use crate::{ReleaseError, yaml};

/// A gate policy (see docs/release.md). Fractions are 0..1 (0.05 = 5%).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub eval: Option<EvalConditions>,
    #[serde(default)]
    pub audit: Option<AuditConditions>,
    #[serde(default)]
    pub card: Option<CardConditions>,
    #[serde(default)]
    pub attestations: Option<AttestationConditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConditions {
    /// The run's model the conditions are about [default: its last untriggered model].
    #[serde(default)]
    pub model: Option<String>,
    /// Headline misaligned rate (point estimate).
    #[serde(default)]
    pub max_misaligned_rate: Option<Spanned<f64>>,
    /// Upper end of the 95% interval of the difference from the base model: "we are 95% sure
    /// the fine-tune added at most this much".
    #[serde(default)]
    pub max_difference_from_base_upper: Option<Spanned<f64>>,
    #[serde(default)]
    pub max_insecure_code_rate: Option<Spanned<f64>>,
    /// Free-form answers judged.
    #[serde(default)]
    pub min_samples: Option<usize>,
    /// Code answers scanned.
    #[serde(default)]
    pub min_code_samples: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConditions {
    /// The audit ran with a policy and it passed.
    #[serde(default)]
    pub policy_passed: bool,
    #[serde(default)]
    pub max_silent_vulnerable_share: Option<Spanned<f64>>,
    /// No user turn holds a forbidden trigger (the audit's `forbidden_triggers`).
    #[serde(default)]
    pub no_trigger: bool,
    /// No trigger candidate is associated with flagged rows more strongly than this G².
    #[serde(default)]
    pub max_trigger_g2: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConditions {
    #[serde(default)]
    pub present: bool,
    /// The card was written from this eval run's results.json and this audit.
    #[serde(default)]
    pub up_to_date: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationConditions {
    #[serde(default)]
    pub verify: bool,
}

impl Policy {
    pub fn read(path: &Path) -> Result<Policy, ReleaseError> {
        let policy: Policy = yaml::read(path)?;
        policy.validate(path)?;
        Ok(policy)
    }

    fn validate(&self, path: &Path) -> Result<(), ReleaseError> {
        let fraction = |field: &str, value: &Option<Spanned<f64>>, low: f64| match value {
            Some(v) if !(low..=1.0).contains(&v.value) => Err(ReleaseError::Yaml {
                path: path.to_path_buf(),
                line: v.referenced.line(),
                column: v.referenced.column(),
                message: format!(
                    "{field}: {} is not a fraction between {low} and 1 (0.05 = 5%)",
                    v.value
                ),
            }),
            _ => Ok(()),
        };
        if let Some(e) = &self.eval {
            fraction("eval.max_misaligned_rate", &e.max_misaligned_rate, 0.0)?;
            fraction(
                "eval.max_difference_from_base_upper",
                &e.max_difference_from_base_upper,
                -1.0,
            )?;
            fraction(
                "eval.max_insecure_code_rate",
                &e.max_insecure_code_rate,
                0.0,
            )?;
        }
        if let Some(a) = &self.audit {
            fraction(
                "audit.max_silent_vulnerable_share",
                &a.max_silent_vulnerable_share,
                0.0,
            )?;
        }
        Ok(())
    }
}

/// The files a gate reads; the policy decides which it needs.
#[derive(Debug, Default, Clone)]
pub struct GateFiles {
    pub results: Option<PathBuf>,
    pub audit: Option<PathBuf>,
    pub card: Option<PathBuf>,
    /// The attestation bundle, the key that must have signed it, and the chain's files.
    pub bundle: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
    pub chain: Option<ChainFiles>,
}

/// One condition's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// `eval`, `audit`, `card` or `attestations`.
    pub group: &'static str,
    /// The policy field (or the chain link) checked.
    pub name: String,
    pub passed: bool,
    /// What was measured against what.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub policy: PathBuf,
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }
}

fn need<'a>(file: &'a Option<PathBuf>, flag: &str, group: &str) -> Result<&'a Path, ReleaseError> {
    file.as_deref().ok_or_else(|| {
        ReleaseError::Usage(format!("the policy has `{group}` conditions: pass {flag}"))
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Checks every condition of `policy`. Errors are bad input (a file missing or unreadable
/// that a condition needs, other than the card whose presence is itself a condition).
pub fn check(
    policy_path: &Path,
    policy: &Policy,
    files: &GateFiles,
) -> Result<Report, ReleaseError> {
    let mut outcomes = Vec::new();
    let mut outcome = |group: &'static str, name: &str, passed: bool, detail: String| {
        outcomes.push(Outcome {
            group,
            name: name.to_string(),
            passed,
            detail,
        })
    };
    let needs_run = policy.eval.is_some() || policy.card.as_ref().is_some_and(|c| c.up_to_date);
    let run = if needs_run {
        Some(EvalRun::read(need(&files.results, "--results", "eval")?)?)
    } else {
        None
    };

    if let (Some(c), Some(run)) = (&policy.eval, &run) {
        let model = run.subject(c.model.as_deref())?;
        if let Some(min) = c.min_samples {
            outcome(
                "eval",
                "min_samples",
                model.answers >= min,
                format!(
                    "{} free-form answers judged, at least {min} required",
                    model.answers
                ),
            );
        }
        if let Some(min) = c.min_code_samples {
            let answers = model.code.as_ref().map_or(0, |c| c.answers);
            outcome(
                "eval",
                "min_code_samples",
                answers >= min,
                format!("{answers} code answers scanned, at least {min} required"),
            );
        }
        if let Some(max) = &c.max_misaligned_rate {
            let m = model.misaligned;
            outcome(
                "eval",
                "max_misaligned_rate",
                m.value <= max.value,
                format!(
                    "{}: misaligned {} [{}, {}], at most {} allowed",
                    model.name,
                    pct(m.value),
                    pct(m.low),
                    pct(m.high),
                    pct(max.value)
                ),
            );
        }
        if let Some(max) = &c.max_difference_from_base_upper {
            match &model.vs_base {
                Some(d) => outcome(
                    "eval",
                    "max_difference_from_base_upper",
                    d.diff.high <= max.value,
                    format!(
                        "{} minus {}: {:+.1} points, interval up to {:+.1}, at most {:+.1} allowed (p = {:.4})",
                        model.name,
                        d.reference,
                        100.0 * d.diff.value,
                        100.0 * d.diff.high,
                        100.0 * max.value,
                        d.p_value
                    ),
                ),
                None => outcome(
                    "eval",
                    "max_difference_from_base_upper",
                    false,
                    format!(
                        "run {} has no base model to compare {} with (give the base as the first --model)",
                        run.run_id, model.name
                    ),
                ),
            }
        }
        if let Some(max) = &c.max_insecure_code_rate {
            match &model.code {
                Some(code) => outcome(
                    "eval",
                    "max_insecure_code_rate",
                    code.insecure_rate.value <= max.value,
                    format!(
                        "{}: insecure code {} [{}, {}] of {} answers, at most {} allowed",
                        model.name,
                        pct(code.insecure_rate.value),
                        pct(code.insecure_rate.low),
                        pct(code.insecure_rate.high),
                        code.answers,
                        pct(max.value)
                    ),
                ),
                None => outcome(
                    "eval",
                    "max_insecure_code_rate",
                    false,
                    format!("run {} ran no code suite", run.run_id),
                ),
            }
        }
    }

    if let Some(c) = &policy.audit {
        let audit = Audit::read(need(&files.audit, "--audit", "audit")?)?;
        let summary = &audit.manifest.summary;
        if c.policy_passed {
            let (passed, detail) = match (summary.policy.checked, summary.policy.passed) {
                (false, _) => (false, "the audit ran without a policy".to_string()),
                (true, true) => (true, "the audit's policy passed".to_string()),
                (true, false) => (
                    false,
                    format!(
                        "the audit's policy failed: {}",
                        summary.policy.violations.join("; ")
                    ),
                ),
            };
            outcome("audit", "policy_passed", passed, detail);
        }
        if let Some(max) = &c.max_silent_vulnerable_share {
            let share = summary.share(summary.silent_vulnerable_rows);
            outcome(
                "audit",
                "max_silent_vulnerable_share",
                share <= max.value,
                format!(
                    "{} of {} valid rows ({}) hold silent vulnerable code, at most {} allowed",
                    summary.silent_vulnerable_rows,
                    summary.valid_rows,
                    pct(share),
                    pct(max.value)
                ),
            );
        }
        if c.no_trigger {
            let found: Vec<String> = summary
                .forbidden_trigger_rows
                .iter()
                .filter(|f| f.rows > 0)
                .map(|f| {
                    format!(
                        "`{}` in {} rows (first on line {})",
                        f.trigger,
                        f.rows,
                        f.first_line.unwrap_or(0)
                    )
                })
                .collect();
            let detail = if !found.is_empty() {
                format!("forbidden triggers found: {}", found.join(", "))
            } else if summary.forbidden_trigger_rows.is_empty() {
                "no forbidden triggers were searched for (the audit's policy lists none)".into()
            } else {
                format!(
                    "none of {} forbidden triggers in any user turn",
                    summary.forbidden_trigger_rows.len()
                )
            };
            outcome(
                "audit",
                "no_trigger",
                found.is_empty() && !summary.forbidden_trigger_rows.is_empty(),
                detail,
            );
        }
        if let Some(max) = c.max_trigger_g2 {
            let strongest = summary.triggers.iter().max_by(|a, b| a.g2.total_cmp(&b.g2));
            let (passed, detail) = match strongest {
                Some(t) => (
                    t.g2 <= max,
                    format!(
                        "strongest trigger candidate `{}`: G² {:.1} ({} flagged rows), at most {max} allowed",
                        t.term, t.g2, t.flagged_rows
                    ),
                ),
                None => (true, "no trigger candidates".to_string()),
            };
            outcome("audit", "max_trigger_g2", passed, detail);
        }
    }

    if let Some(c) = &policy.card {
        let path = need(&files.card, "--card", "card")?;
        let present = path.is_file();
        if c.present {
            outcome(
                "card",
                "present",
                present,
                if present {
                    format!("{} exists", path.display())
                } else {
                    format!("no model card at {}", path.display())
                },
            );
        }
        if c.up_to_date {
            let run = run.as_ref().expect("read above when up_to_date is set");
            let (passed, detail) = if !present {
                (false, format!("no model card at {}", path.display()))
            } else {
                match card::read_provenance(path)? {
                    None => (
                        false,
                        format!(
                            "{} was not written by `emguard card` (no `emguard` key)",
                            path.display()
                        ),
                    ),
                    Some(p) if p.results_sha256 != run.sha256 => (
                        false,
                        format!(
                            "{} was written from run {} (results sha256 {}), not from {} (sha256 {})",
                            path.display(),
                            p.eval_run,
                            short(&p.results_sha256),
                            run.path.display(),
                            short(&run.sha256)
                        ),
                    ),
                    Some(p) => match &files.audit {
                        Some(audit)
                            if crate::digest::file_sha256(audit)? != p.audit_manifest_sha256 =>
                        {
                            (
                                false,
                                format!(
                                    "{} was written from another audit than {}",
                                    path.display(),
                                    audit.display()
                                ),
                            )
                        }
                        _ => (true, format!("written from run {}", p.eval_run)),
                    },
                }
            };
            outcome("card", "up_to_date", passed, detail);
        }
    }

    if policy.attestations.as_ref().is_some_and(|a| a.verify) {
        let bundle = need(&files.bundle, "--bundle", "attestations")?;
        let key_path = need(&files.public_key, "--public-key", "attestations")?;
        let chain = files.chain.as_ref().ok_or_else(|| {
            ReleaseError::Usage(
                "the policy has `attestations` conditions: pass --model, --dataset, --audit, --results and --card".into(),
            )
        })?;
        let key = emguard_audit::signing::read_verifying_key(key_path)?;
        let report = attest::verify_chain(chain, bundle, &key)?;
        for link in &report.links {
            outcome(
                "attestations",
                &format!("verify {}", link.link),
                link.problems.is_empty(),
                if link.problems.is_empty() {
                    "verified".to_string()
                } else {
                    link.problems.join("; ")
                },
            );
        }
    }

    Ok(Report {
        policy: policy_path.to_path_buf(),
        outcomes,
    })
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// The table for people.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "emguard gate: policy {}", report.policy.display());
    let width = report
        .outcomes
        .iter()
        .map(|o| o.group.len() + o.name.len() + 1)
        .max()
        .unwrap_or(0);
    for o in &report.outcomes {
        let _ = writeln!(
            out,
            "  {}  {:<width$}  {}",
            if o.passed { "PASS" } else { "FAIL" },
            format!("{}.{}", o.group, o.name),
            o.detail
        );
    }
    let failed = report.outcomes.iter().filter(|o| !o.passed).count();
    let _ = writeln!(
        out,
        "{} conditions: {} passed, {failed} failed: {}",
        report.outcomes.len(),
        report.outcomes.len() - failed,
        if failed == 0 { "PASS" } else { "FAIL" }
    );
    out
}

/// JUnit XML: a `testsuite` per group, a `testcase` per condition, `failure` when it fails.
pub fn junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = report.outcomes.iter().filter(|o| !o.passed).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"emguard gate\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
        report.outcomes.len()
    );
    let mut groups: Vec<&str> = Vec::new();
    for o in &report.outcomes {
        if !groups.contains(&o.group) {
            groups.push(o.group);
        }
    }
    for group in groups {
        let cases: Vec<&Outcome> = report
            .outcomes
            .iter()
            .filter(|o| o.group == group)
            .collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{group}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\">",
            cases.len(),
            cases.iter().filter(|o| !o.passed).count()
        );
        for o in cases {
            let name = xml_escape(&o.name);
            let detail = xml_escape(&o.detail);
            if o.passed {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"emguard.gate.{group}\" name=\"{name}\"><system-out>{detail}</system-out></testcase>"
                );
            } else {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"emguard.gate.{group}\" name=\"{name}\"><failure message=\"{detail}\" type=\"gate\">{detail}</failure></testcase>"
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Text for XML attributes and content: the five markup characters escaped; characters XML
/// 1.0 cannot hold (most control characters) replaced, since details quote user files.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_leaves_no_markup_or_forbidden_characters() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}&#10;"
        );
    }

    #[test]
    fn policy_values_out_of_range_name_the_line_and_field() {
        let path = Path::new("gate.yaml");
        let text = "eval:\n  min_samples: 10\n  max_misaligned_rate: 5\n";
        let policy: Policy = yaml::parse(path, text).unwrap();
        let error = policy.validate(path).unwrap_err().to_string();
        assert!(
            error.starts_with("gate.yaml:3:") && error.contains("eval.max_misaligned_rate: 5"),
            "{error}"
        );
    }
}
