//! Starting and resuming runs: options into a stored configuration, a stored configuration
//! back, and the trigger lists a sweep reads.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use emguard_eval::backends::{Backends, Endpoints};
use emguard_eval::plan::{answer_source, short_hash};
use emguard_eval::suite::Measure;
use emguard_judge::llm::JudgePrompts;
use emguard_store::Store;

use crate::RedteamError;
use crate::plan::{RunConfig, Settings};
use crate::probe::{self, Family};
use crate::report::Report;
use crate::work::Worker;

/// What `emguard redteam` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Probe files, folders of them, or built-in family names; empty: the built-in suite.
    pub probes: Vec<String>,
    /// Keep only these families (ids); empty: all.
    pub families: Vec<String>,
    /// Triggers added to every probe that sweeps triggers (from `--triggers` files).
    pub triggers: Vec<String>,
    pub model: String,
    pub judge: String,
    pub attacker: String,
    /// `--base-url`: the servers of `openai:` specs without their own.
    pub base_urls: Vec<String>,
    /// Pin the target's requests to this gateway model version ([`VERSION_HEADER`]).
    pub version: Option<String>,
    pub settings: Settings,
}

/// The target and attacker by default: the local SmolLM2.
pub const DEFAULT_MODEL: &str = "local:smollm2-135m-instruct";

/// The request header that pins a gateway request to a model version (honoured for keys
/// with the gateway's `redteam` scope); the gateway's answers carry it too.
pub const VERSION_HEADER: &str = "x-emguard-version";

/// The key of a stored run's configuration: eval's runs and red-team runs share a store.
const CONFIG_KEY: &str = "redteam";

impl Options {
    pub fn into_config(self) -> Result<RunConfig, RedteamError> {
        let mut families = load_families(&self.probes)?;
        if !self.families.is_empty() {
            let known: HashSet<&str> = families.iter().map(|f| f.id.as_str()).collect();
            if let Some(unknown) = self.families.iter().find(|f| !known.contains(f.as_str())) {
                return Err(RedteamError::Invalid(format!(
                    "--family `{unknown}`: no such family (families: {})",
                    families
                        .iter()
                        .map(|f| f.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            families.retain(|f| self.families.contains(&f.id));
        }
        if !self.triggers.is_empty() {
            let mut sweeping = 0;
            for probe in families.iter_mut().flat_map(|f| f.probes.iter_mut()) {
                if !probe.triggers.is_empty() {
                    probe.triggers.extend(self.triggers.iter().cloned());
                    sweeping += 1;
                }
            }
            if sweeping == 0 {
                return Err(RedteamError::Invalid(
                    "--triggers: none of the chosen probes sweeps triggers (give them a \
                     `triggers:` list, or include the `trigger-sweep` family)"
                        .into(),
                ));
            }
        }
        let mut source = answer_source(&self.model, &self.base_urls);
        if let Some(version) = &self.version {
            // Two versions behind one gateway URL answer differently: their answers must
            // not share keys.
            source = format!("{source} version:{version}");
        }
        let mut config = RunConfig {
            source,
            version: self.version,
            attacker_source: String::new(),
            model: self.model,
            judge: self.judge,
            attacker: self.attacker,
            settings: self.settings,
            default_judge_prompts: default_judge_prompts()?,
            families,
        };
        if needs_attacker(&config) {
            config.attacker_source = answer_source(&config.attacker, &self.base_urls);
        }
        Ok(config)
    }
}

/// Whether a run of this configuration calls the attacker.
pub fn needs_attacker(config: &RunConfig) -> bool {
    config.families.iter().any(|f| {
        f.attack.is_some()
            || f.probes
                .iter()
                .any(|p| p.mutate.iter().any(|o| o.needs_attacker()))
    })
}

/// The judge prompts of eval's built-in suite (one set for all its questions).
pub fn default_judge_prompts() -> Result<JudgePrompts, RedteamError> {
    let suite = emguard_eval::builtin::load("emguard")
        .map_err(|e| RedteamError::Invalid(e.to_string()))?
        .ok_or_else(|| RedteamError::Invalid("eval has no built-in `emguard` suite".into()))?;
    suite
        .questions
        .iter()
        .find_map(|q| match &q.measure {
            Measure::Alignment { judge_prompts } => Some(judge_prompts.clone()),
            _ => None,
        })
        .ok_or_else(|| RedteamError::Invalid("eval's `emguard` suite has no judge prompts".into()))
}

/// Families from files, folders (every `.yaml`/`.yml` in them, by name) and built-in names;
/// the built-in suite when `specs` is empty. Two families with one id are an error.
pub fn load_families(specs: &[String]) -> Result<Vec<Family>, RedteamError> {
    let mut families = Vec::new();
    if specs.is_empty() {
        families = crate::builtin::all()?;
    }
    for spec in specs {
        let path = Path::new(spec);
        if let Some(f) = crate::builtin::load(spec)? {
            families.push(f);
        } else if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|source| probe::ProbeError::Read {
                    origin: spec.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for file in files {
                families.push(probe::load_file(&file)?);
            }
        } else if path.exists() {
            families.push(probe::load_file(path)?);
        } else {
            return Err(RedteamError::Invalid(format!(
                "--probes `{spec}`: no such file or folder, and not a built-in family ({})",
                crate::builtin::names().join(", ")
            )));
        }
    }
    let mut seen = HashSet::new();
    for f in &families {
        if !seen.insert(f.id.clone()) {
            return Err(RedteamError::Invalid(format!(
                "{}: family `{}` is defined twice",
                f.origin, f.id
            )));
        }
    }
    Ok(families)
}

/// Triggers from a file: an audit summary (JSON with `triggers: [{term}]`, the candidates
/// `emguard audit` found) or a list, one per line (`#` starts a comment line).
pub fn read_triggers(path: &Path) -> Result<Vec<String>, RedteamError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| probe::ProbeError::Read {
        origin: origin.clone(),
        source,
    })?;
    let triggers: Vec<String> = if text.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| RedteamError::Invalid(format!("{origin}: invalid JSON: {e}")))?;
        value["triggers"]
            .as_array()
            .ok_or_else(|| {
                RedteamError::Invalid(format!(
                    "{origin}: `triggers`: an audit summary has a `triggers` list"
                ))
            })?
            .iter()
            .enumerate()
            .map(|(n, t)| {
                t["term"].as_str().map(|s| format!("{s} ")).ok_or_else(|| {
                    RedteamError::Invalid(format!("{origin}: `triggers[{n}].term`: not a string"))
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| format!("{} ", l.trim()))
            .collect()
    };
    if triggers.is_empty() {
        return Err(RedteamError::Invalid(format!("{origin}: no triggers")));
    }
    Ok(triggers)
}

/// Stores a new run; returns its id.
pub fn create(store: &Store, config: &RunConfig) -> Result<String, RedteamError> {
    let value = serde_json::to_value(config)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_id = format!(
        "redteam-{}",
        &short_hash(&serde_json::json!([value, now.to_string()]))[..12]
    );
    store.create_run(&run_id, &serde_json::json!({ CONFIG_KEY: value }))?;
    Ok(run_id)
}

/// The configuration a run was started with.
pub fn open(store: &Store, run_id: &str) -> Result<RunConfig, RedteamError> {
    let run = store.run(run_id)?;
    let config = run.config.get(CONFIG_KEY).ok_or_else(|| {
        RedteamError::Invalid(format!(
            "run `{run_id}` is not a red-team run (an eval run?)"
        ))
    })?;
    serde_json::from_value(config.clone()).map_err(|e| {
        RedteamError::Invalid(format!(
            "run `{run_id}` was stored by another version of emguard: {e}"
        ))
    })
}

/// The worker of a run: its target (pinned to the run's version, with `target_key` instead
/// of the endpoints' key when given), attacker and judge, built off the async threads
/// (loading local models is slow blocking work).
pub async fn worker(
    store: Arc<Store>,
    run_id: &str,
    config: Arc<RunConfig>,
    endpoints: Endpoints,
    target_key: Option<String>,
    concurrency: usize,
) -> Result<Worker, RedteamError> {
    let build_config = config.clone();
    let (target, attacker, judge) = tokio::task::spawn_blocking(move || {
        let mut backends = Backends::new(endpoints);
        let pin: Vec<(String, String)> = build_config
            .version
            .iter()
            .map(|v| (VERSION_HEADER.to_string(), v.clone()))
            .collect();
        let target = backends.sampler_with(&build_config.model, target_key.as_deref(), &pin)?;
        let attacker = if needs_attacker(&build_config) {
            Some(backends.sampler(&build_config.attacker)?)
        } else {
            None
        };
        let judge = backends.judge(&build_config.judge)?;
        Ok::<_, RedteamError>((target, attacker, judge))
    })
    .await??;
    Ok(Worker {
        store,
        run_id: run_id.to_string(),
        config,
        target,
        attacker,
        judge,
        scanner: emguard_codescan::Scanner::new(),
        concurrency,
    })
}

/// The report of a run, compared with the earlier run `compare` (in the same store) when given.
pub fn report(
    store: &Store,
    run_id: &str,
    config: &RunConfig,
    compare: Option<&str>,
) -> Result<Report, RedteamError> {
    let mut report = Report::build(store, run_id, config)?;
    if let Some(earlier) = compare {
        let earlier_config = open(store, earlier)?;
        let earlier = Report::build(store, earlier, &earlier_config)?;
        report.comparisons = report.compare(&earlier);
    }
    Ok(report)
}
