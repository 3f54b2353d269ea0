//! The gateway config's `redteam:` section: `emguard serve --config` runs [`Continuous`]
//! cycles itself, on each served model's active and canary versions, in the background (a
//! thread of its own at idle CPU priority with its own async runtime, so no request handler
//! waits on it; its probes reach the gateway through its listener like any client's).
//!
//! Errors name the config file, the line and the field (YAML; a TOML config's lines are not
//! known and are left out).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use emguard_eval::backends::Endpoints;
use emguard_store::Store;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::RedteamError;
use crate::continuous::{Continuous, Incidents, ListVersions, VersionRun, Versions};
use crate::plan::Settings;
use crate::probe::MAX_REPEATS;
use crate::session::{DEFAULT_MODEL, Options};

/// `redteam:` as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedteamSection {
    /// How often a cycle starts: `90s`, `30m`, `6h`, `1d`.
    pub every: Spanned<String>,
    /// Stop after this many cycles [default: never].
    #[serde(default)]
    pub cycles: Option<Spanned<u64>>,
    /// Probe files, folders or shipped family names (relative paths: to the config file)
    /// [default: the shipped suite].
    #[serde(default)]
    pub probes: Vec<String>,
    /// Only these families (ids).
    #[serde(default)]
    pub families: Vec<String>,
    /// A family above this attack success rate (0..1) opens an incident for the version.
    pub fail_above: Spanned<f64>,
    /// The served models probed [default: every model with a chat version].
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    /// As `emguard redteam --judge` [default: `local`].
    #[serde(default)]
    pub judge: Option<String>,
    /// The LLM judge's server (`llm:NAME` judges).
    #[serde(default)]
    pub judge_base_url: Option<String>,
    /// The variable holding the judge server's key.
    #[serde(default)]
    pub judge_api_key_env: Option<Spanned<String>>,
    /// The attacker model [default: the local SmolLM2].
    #[serde(default)]
    pub attacker: Option<String>,
    #[serde(default)]
    pub attempts: Option<Spanned<usize>>,
    #[serde(default)]
    pub budget: Option<Spanned<usize>>,
    #[serde(default)]
    pub max_tokens: Option<Spanned<usize>>,
    #[serde(default)]
    pub seed: u64,
    /// Where runs are stored: a SQLite file (relative: to the config file) or postgres://...
    /// [default: `redteam.sqlite` beside the config].
    #[serde(default)]
    pub store: Option<String>,
    /// Requests handed to a model or judge at once.
    #[serde(default)]
    pub concurrency: Option<Spanned<usize>>,
}

/// A field of the section at fault: its line (0 when unknown), its path and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

fn problem<T>(at: &Spanned<T>, field: &str, message: String) -> Problem {
    Problem {
        line: at.referenced.line() as usize,
        field: format!("redteam.{field}"),
        message,
    }
}

const DEFAULT_CONCURRENCY: usize = 4;

/// Where runs are stored when the section does not say (beside the config file).
const DEFAULT_STORE: &str = "redteam.sqlite";

impl RedteamSection {
    /// Makes relative probe paths and the store's path relative to `dir` (the config file's).
    pub fn resolve_paths(&mut self, dir: &Path) {
        for spec in &mut self.probes {
            let path = Path::new(spec.as_str());
            if crate::builtin::names().contains(&spec.as_str()) || !path.is_relative() {
                continue;
            }
            *spec = dir.join(path).display().to_string();
        }
        let store = self.store.get_or_insert_with(|| DEFAULT_STORE.into());
        if !store.contains("://") && Path::new(store.as_str()).is_relative() {
            *store = dir.join(store.as_str()).display().to_string();
        }
    }

    /// What is wrong with the section's values, the first problem found.
    pub fn problems(&self, model_ids: &[&str]) -> Option<Problem> {
        if let Err(e) = parse_duration(&self.every.value) {
            return Some(problem(&self.every, "every", e));
        }
        if let Some(c) = &self.cycles
            && c.value == 0
        {
            return Some(problem(c, "cycles", "must be at least 1".into()));
        }
        let rate = &self.fail_above;
        if !(0.0..=1.0).contains(&rate.value) {
            return Some(problem(
                rate,
                "fail_above",
                format!("{} is not a rate between 0 and 1", rate.value),
            ));
        }
        if let Some(m) = self
            .models
            .iter()
            .find(|m| !model_ids.contains(&m.value.as_str()))
        {
            return Some(problem(
                m,
                "models",
                format!("no model `{}` is configured", m.value),
            ));
        }
        if let Some(var) = &self.judge_api_key_env
            && std::env::var_os(&var.value).is_none()
        {
            return Some(problem(
                var,
                "judge_api_key_env",
                format!("the variable `{}` is not set", var.value),
            ));
        }
        let counts = [
            ("attempts", &self.attempts, MAX_REPEATS),
            ("budget", &self.budget, MAX_REPEATS),
            ("max_tokens", &self.max_tokens, usize::MAX),
            ("concurrency", &self.concurrency, usize::MAX),
        ];
        for (field, value, max) in counts {
            if let Some(v) = value
                && !(1..=max).contains(&v.value)
            {
                return Some(problem(
                    v,
                    field,
                    format!("{} is not between 1 and {max}", v.value),
                ));
            }
        }
        None
    }

    /// The probe files and families, loaded and checked as a run would (a bad probe file
    /// names its own file, line and field).
    pub fn check_probes(&self) -> Result<(), RedteamError> {
        self.options("check").into_config().map(|_| ())
    }

    fn every(&self) -> Duration {
        parse_duration(&self.every.value).unwrap_or(Duration::from_secs(6 * 3600))
    }

    /// The models probed: the section's, else `served` (every model with a chat version).
    pub fn models<'a>(&'a self, served: &[&'a str]) -> Vec<&'a str> {
        if self.models.is_empty() {
            served.to_vec()
        } else {
            self.models.iter().map(|m| m.value.as_str()).collect()
        }
    }

    fn options(&self, target: &str) -> Options {
        Options {
            probes: self.probes.clone(),
            families: self.families.clone(),
            triggers: Vec::new(),
            model: target.to_string(),
            judge: self.judge.clone().unwrap_or_else(|| "local".into()),
            attacker: self
                .attacker
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
            base_urls: Vec::new(),
            version: None,
            settings: Settings {
                temperature: 1.0,
                top_p: 1.0,
                max_tokens: self.max_tokens.as_ref().map_or(160, |m| m.value),
                seed: self.seed,
                attacker_max_tokens: 120,
                attempts: self.attempts.as_ref().map(|a| a.value),
                budget: self.budget.as_ref().map(|b| b.value),
            },
        }
    }
}

/// One served model the background cycles probe.
pub struct Target {
    pub model: String,
    /// Its active version and canaries now (the gateway's live routes).
    pub versions: ListVersions,
}

/// What the background cycles need from the gateway.
pub struct Gateway {
    /// The gateway's own `/v1` (its listener).
    pub base_url: String,
    /// A key with the `redteam` scope (pins versions); `None` when the gateway has no keys.
    pub key: Option<String>,
    /// Where incidents are opened (the gateway's store).
    pub incidents: Arc<emguard_store::monitor::MonitorStore>,
    pub targets: Vec<Target>,
}

/// `"6h"`, `"30m"`, `"90s"`, `"1d"`: a whole number and its unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: a whole number and a unit (s, m, h, d), e.g. 6h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d, e.g. 6h")),
    };
    if n == 0 {
        return Err(format!("`{text}`: must be longer than nothing"));
    }
    Ok(Duration::from_secs(n * seconds))
}

/// Starts the cycles on a thread of their own (idle CPU priority, its own async runtime);
/// `on_run` sees each version's run. Errors are logged and the next cycle goes on.
pub fn start(
    section: RedteamSection,
    gateway: Gateway,
    on_run: impl Fn(&str, &VersionRun) + Send + Sync + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("emguard-redteam".into())
        .spawn(move || {
            if let Err(e) = emguard_runtime::priority::make_current_thread_idle() {
                tracing::warn!(error = %e, "red-team cycles run at normal CPU priority");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "red-team cycles could not start");
                    return;
                }
            };
            runtime.block_on(run(section, gateway, on_run));
        })
}

async fn run(section: RedteamSection, gateway: Gateway, on_run: impl Fn(&str, &VersionRun)) {
    let location = section.store.as_deref().unwrap_or(DEFAULT_STORE);
    let store = match Store::open(location) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            tracing::error!(error = %e, location, "red-team cycles: cannot open their store");
            return;
        }
    };
    let endpoints = Endpoints {
        judge_base_urls: section.judge_base_url.iter().cloned().collect(),
        api_key: section
            .judge_api_key_env
            .as_ref()
            .and_then(|v| std::env::var(&v.value).ok()),
        local_batch: 16,
        ..Endpoints::default()
    };
    let loops = gateway
        .targets
        .into_iter()
        .map(|Target { model, versions }| {
            let continuous = Continuous {
                options: section.options(&format!("openai:{model}@{}", gateway.base_url)),
                endpoints: endpoints.clone(),
                target_key: gateway.key.clone(),
                concurrency: section
                    .concurrency
                    .as_ref()
                    .map_or(DEFAULT_CONCURRENCY, |c| c.value),
                store: store.clone(),
                claims: None,
                versions: Versions::Listed(versions),
                threshold: Some(section.fail_above.value),
                incidents: Some(Incidents {
                    store: gateway.incidents.clone(),
                    model: model.clone(),
                }),
            };
            let on_run = &on_run;
            let every = section.every();
            let cycles = section.cycles.as_ref().map(|c| c.value);
            async move {
                let progress = |line: &str| tracing::debug!(model = %model, "{line}");
                continuous
                    .run(every, cycles, &progress, |run| {
                        on_run(&model, &run);
                        ControlFlow::Continue(())
                    })
                    .await;
            }
        });
    futures::future::join_all(loops).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<RedteamSection, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    const GOOD: &str = "every: 6h\nfail_above: 0.1\nprobes: [persona]\nmodels: [assistant]\n";

    #[test]
    fn a_good_section_has_no_problem_and_its_probes_load() {
        let s = section(GOOD).unwrap();
        assert_eq!(s.problems(&["assistant"]), None);
        s.check_probes().unwrap();
        assert_eq!(s.every(), Duration::from_secs(6 * 3600));
        assert_eq!(s.models(&["other"]), ["assistant"]);
    }

    #[test]
    fn problems_name_the_line_and_field() {
        let p = section(&GOOD.replace("6h", "6 hours"))
            .unwrap()
            .problems(&["assistant"])
            .unwrap();
        assert_eq!((p.line, p.field.as_str()), (1, "redteam.every"));
        assert!(p.message.contains("6 hours"), "{p:?}");
        let p = section(&GOOD.replace("0.1", "1.5"))
            .unwrap()
            .problems(&["assistant"])
            .unwrap();
        assert_eq!((p.line, p.field.as_str()), (2, "redteam.fail_above"));
        let p = section(GOOD).unwrap().problems(&["other"]).unwrap();
        assert_eq!((p.line, p.field.as_str()), (4, "redteam.models"));
        assert!(p.message.contains("`assistant`"), "{p:?}");
        let e = section(&format!("{GOOD}bound: 0.1\n")).unwrap_err();
        assert!(e.contains("bound") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("6").unwrap_err().contains("unit"));
    }
}
