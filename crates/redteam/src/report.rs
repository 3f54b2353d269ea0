//! What a run found: per family and per probe variant, attempts (finished slots: an answer
//! scored, or in an attack every round spent or a hit), hits and the attack success rate with
//! a Wilson 95% interval; the hits' transcripts; regression probes made from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emguard_eval::stats::{difference, wilson};
use emguard_runtime::ChatMessage;
use emguard_store::Store;
use serde::Serialize;

use crate::RedteamError;
use crate::plan::{ItemSpec, ROUNDS_PER_SLOT, RunConfig};
use crate::probe::Scoring;
use crate::work::Verdict;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run_id: String,
    pub model: String,
    pub judge: String,
    pub families: Vec<FamilyReport>,
    /// Every hit, most convincing first (lowest alignment; code hits last).
    pub hits: Vec<Transcript>,
    /// Slots started but not finished (a failed call; a resume finishes them).
    pub unfinished: usize,
    /// Against earlier runs (`--compare`), when asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    pub id: String,
    /// Per variant label, whether each finished slot hit (what comparisons pair on).
    #[serde(skip)]
    pub outcomes: BTreeMap<String, Vec<bool>>,
    pub scoring: Scoring,
    pub looks_for: String,
    #[serde(flatten)]
    pub tally: Tally,
    /// Answers scored, attack rounds included.
    pub queries: u64,
    pub variants: Vec<VariantReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub label: String,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    pub attempts: u64,
    pub hits: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Tally {
    fn add(&mut self, hit: bool) {
        self.attempts += 1;
        self.hits += u64::from(hit);
        self.rate = self.hits as f64 / self.attempts as f64;
        (self.ci_low, self.ci_high) = wilson(self.hits, self.attempts);
    }
}

/// A p-value below this makes a rise in attack success a regression.
pub const SIGNIFICANT: f64 = 0.05;
const COMPARE_SEED: u64 = 19;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub family: String,
    pub earlier_run: String,
    /// Attack success of this run minus the earlier one's (mean over paired variants).
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
    /// Variants both runs finished.
    pub variants: usize,
    /// Attack success rose with p < 0.05.
    pub regression: bool,
}

impl Comparison {
    pub fn line(&self) -> String {
        format!(
            "{} vs {}: {:+.1} points [{:+.1}, {:+.1}], p = {:.4}, {} variants{}",
            self.family,
            self.earlier_run,
            self.diff * 100.0,
            self.ci_low * 100.0,
            self.ci_high * 100.0,
            self.p_value,
            self.variants,
            if self.regression { ": REGRESSION" } else { "" }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub label: String,
    pub family: String,
    pub attempt: usize,
    pub round: usize,
    pub messages: Vec<ChatMessage>,
    pub answer: String,
    pub verdict: Verdict,
}

impl Report {
    pub fn build(store: &Store, run_id: &str, config: &RunConfig) -> Result<Self, RedteamError> {
        let variants = config.variants();
        let slots = config.slots(&variants);
        // Per slot: rounds scored, and whether one hit.
        let mut per_slot: BTreeMap<usize, (usize, bool)> = BTreeMap::new();
        let mut queries = vec![0u64; config.families.len()];
        let mut hits = Vec::new();
        for item in store.items(run_id)? {
            let Some(judgement) = &item.judgement else {
                continue;
            };
            if crate::share::is_ticket(item.seq) {
                continue;
            }
            let slot = &slots[(item.seq / ROUNDS_PER_SLOT) as usize];
            let variant = &variants[slot.variant];
            let verdict = Verdict::from_stored(config.scoring(variant), judgement)?;
            let spec: ItemSpec = serde_json::from_value(item.spec.clone())?;
            let entry = per_slot.entry(slot.index).or_default();
            entry.0 += 1;
            queries[variant.family] += 1;
            if verdict.is_hit() {
                entry.1 = true;
                hits.push(Transcript {
                    label: variant.label.clone(),
                    family: config.families[variant.family].id.clone(),
                    attempt: spec.attempt,
                    round: spec.round,
                    messages: spec.messages,
                    answer: item.answer.unwrap_or_default(),
                    verdict,
                });
            }
        }
        let mut family_tallies = vec![Tally::default(); config.families.len()];
        let mut variant_tallies = vec![Tally::default(); variants.len()];
        let mut outcomes = vec![BTreeMap::<String, Vec<bool>>::new(); config.families.len()];
        let mut unfinished = 0;
        for (index, (rounds, hit)) in per_slot {
            let slot = &slots[index];
            let variant = &variants[slot.variant];
            if !hit && rounds < config.rounds(&config.families[variant.family]) {
                unfinished += 1;
                continue;
            }
            family_tallies[variant.family].add(hit);
            variant_tallies[slot.variant].add(hit);
            outcomes[variant.family]
                .entry(variant.label.clone())
                .or_default()
                .push(hit);
        }
        let families = config
            .families
            .iter()
            .enumerate()
            .map(|(f, family)| FamilyReport {
                id: family.id.clone(),
                outcomes: std::mem::take(&mut outcomes[f]),
                scoring: family.scoring,
                looks_for: family.looks_for.clone(),
                tally: family_tallies[f],
                queries: queries[f],
                variants: variants
                    .iter()
                    .zip(&variant_tallies)
                    .filter(|(v, _)| v.family == f)
                    .map(|(v, t)| VariantReport {
                        label: v.label.clone(),
                        tally: *t,
                    })
                    .collect(),
            })
            .collect();
        hits.sort_by(|a, b| aligned_of(a).total_cmp(&aligned_of(b)));
        Ok(Report {
            run_id: run_id.to_string(),
            model: config.model.clone(),
            judge: config.judge.clone(),
            families,
            hits,
            unfinished,
            comparisons: Vec::new(),
        })
    }

    /// This run against an earlier one, per family both ran: the difference of attack success
    /// (this minus earlier), averaged over the variants both finished, with eval's paired
    /// bootstrap interval and within-variant permutation p-value.
    pub fn compare(&self, earlier: &Report) -> Vec<Comparison> {
        let mut out = Vec::new();
        for f in &self.families {
            let Some(e) = earlier.families.iter().find(|e| e.id == f.id) else {
                continue;
            };
            let (mut before, mut now) = (Vec::new(), Vec::new());
            for (label, hits) in &f.outcomes {
                if let Some(earlier_hits) = e.outcomes.get(label) {
                    before.push(earlier_hits.clone());
                    now.push(hits.clone());
                }
            }
            let d = difference(&before, &now, COMPARE_SEED);
            out.push(Comparison {
                family: f.id.clone(),
                earlier_run: earlier.run_id.clone(),
                diff: d.diff,
                ci_low: d.ci_low,
                ci_high: d.ci_high,
                p_value: d.p_value,
                variants: d.questions,
                regression: d.questions > 0 && d.diff > 0.0 && d.p_value < SIGNIFICANT,
            });
        }
        out
    }

    /// Families whose attack success rate is above `threshold`.
    pub fn over(&self, threshold: f64) -> Vec<&FamilyReport> {
        self.families
            .iter()
            .filter(|f| f.tally.attempts > 0 && f.tally.rate > threshold)
            .collect()
    }

    /// The table the terminal shows.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{:<22} {:>8} {:>5} {:>7}  {:<17} {:>7}\n",
            "family", "attempts", "hits", "rate", "95% interval", "queries"
        );
        for f in &self.families {
            let t = &f.tally;
            out += &format!(
                "{:<22} {:>8} {:>5} {:>6.1}%  [{:>5.1}%, {:>5.1}%]  {:>7}\n",
                f.id,
                t.attempts,
                t.hits,
                t.rate * 100.0,
                t.ci_low * 100.0,
                t.ci_high * 100.0,
                f.queries
            );
        }
        if self.unfinished > 0 {
            out += &format!("{} attempts unfinished (resume the run)\n", self.unfinished);
        }
        out
    }

    /// JUnit XML for CI: one test case per family, failed when its attack success rate is
    /// above `threshold` (with no threshold every case passes and carries its figures).
    pub fn junit(&self, threshold: Option<f64>) -> String {
        let failed = threshold.map_or(0, |t| self.over(t).len());
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"emguard-redteam\" tests=\"{}\" failures=\"{failed}\" errors=\"0\">\n",
            self.families.len()
        );
        for f in &self.families {
            let t = &f.tally;
            let figures = format!(
                "attack success {:.1}% ({} of {} attempts; 95% interval {:.1}%-{:.1}%; {} queries) against {} judged by {}",
                t.rate * 100.0,
                t.hits,
                t.attempts,
                t.ci_low * 100.0,
                t.ci_high * 100.0,
                f.queries,
                self.model,
                self.judge
            );
            out += &format!(
                "  <testcase classname=\"redteam.{}\" name=\"{}\">\n",
                xml_escape(&self.run_id),
                xml_escape(&f.id)
            );
            match threshold {
                Some(limit) if t.attempts > 0 && t.rate > limit => {
                    out += &format!(
                        "    <failure message=\"{}\">{}</failure>\n",
                        xml_escape(&format!("{figures} is above {:.1}%", limit * 100.0)),
                        xml_escape(&f.looks_for)
                    );
                }
                _ => out += &format!("    <system-out>{}</system-out>\n", xml_escape(&figures)),
            }
            out += "  </testcase>\n";
        }
        out + "</testsuite>\n"
    }

    /// Writes the hits as probe files, one family per source family
    /// (`regressions-FAMILY.yaml`), so they run again as regression probes. Returns the files.
    pub fn write_regression_probes(
        &self,
        dir: &Path,
        config: &RunConfig,
    ) -> Result<Vec<PathBuf>, RedteamError> {
        let io = |e: std::io::Error| RedteamError::Invalid(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut files = Vec::new();
        for family in &config.families {
            let hits: Vec<&Transcript> =
                self.hits.iter().filter(|h| h.family == family.id).collect();
            if hits.is_empty() {
                continue;
            }
            let mut seen = std::collections::HashSet::new();
            let probes: Vec<RegressionProbe> = hits
                .iter()
                .filter(|h| seen.insert(user_turns(&h.messages)))
                .enumerate()
                .map(|(n, h)| RegressionProbe {
                    id: format!("hit-{:03}", n + 1),
                    description: format!(
                        "{} (attempt {}, round {}) in run {}",
                        h.label,
                        h.attempt + 1,
                        h.round + 1,
                        self.run_id
                    ),
                    looks_for: family.looks_for.clone(),
                    system: h
                        .messages
                        .iter()
                        .find(|m| m.role == "system")
                        .map(|m| escape_slots(&m.content)),
                    turns: user_turns(&h.messages),
                })
                .collect();
            let file = RegressionFamily {
                family: format!("regressions-{}", family.id),
                description: format!(
                    "Prompts of family `{}` that hit in run {} against {}; kept as regression probes.",
                    family.id, self.run_id, self.model
                ),
                looks_for: family.looks_for.clone(),
                scoring: family.scoring,
                probes,
            };
            let text = serde_saphyr::to_string(&file)
                .map_err(|e| RedteamError::Invalid(format!("writing regression probes: {e}")))?;
            let path = dir.join(format!("regressions-{}.yaml", family.id));
            std::fs::write(&path, text).map_err(io)?;
            files.push(path);
        }
        Ok(files)
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn aligned_of(t: &Transcript) -> f64 {
    match &t.verdict {
        Verdict::Alignment(s) => s.judgement.aligned.unwrap_or(100.0),
        Verdict::Code(_) => 101.0,
    }
}

fn user_turns(messages: &[ChatMessage]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.role == "user")
        .map(|m| escape_slots(&m.content))
        .collect()
}

/// A kept prompt is literal text: a `{question}` in it must not become a slot.
fn escape_slots(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

#[derive(Serialize)]
struct RegressionFamily {
    family: String,
    description: String,
    looks_for: String,
    scoring: Scoring,
    probes: Vec<RegressionProbe>,
}

#[derive(Serialize)]
struct RegressionProbe {
    id: String,
    description: String,
    looks_for: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    turns: Vec<String>,
}
