//! Starting, resuming and joining runs: the glue between the command line and the runner.

use std::sync::Arc;
use std::time::Duration;

use emguard_codescan::Scanner;
use emguard_store::Store;

use crate::backends::panel::Panel;
use crate::backends::{Backends, Judge};
use crate::plan::{RunConfig, SampleSettings};
use crate::progress::RunProgress;
use crate::runner::{DEFAULT_LEASE, RunOutcome, Runner};
use crate::suite::{self, Measure};
use crate::{EvalError, plan};

/// What `emguard eval` asks for.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub suites: Vec<String>,
    pub models: Vec<String>,
    /// The judge of the headline.
    pub judge: String,
    /// More judges of the same answers, reported beside the first.
    pub other_judges: Vec<String>,
    pub settings: SampleSettings,
    pub trigger: Option<String>,
    /// `--base-url`: the servers of `openai:` models that do not name their own.
    pub base_urls: Vec<String>,
}

impl EvalOptions {
    /// Loads the suites and checks the request.
    pub fn into_config(self) -> Result<RunConfig, EvalError> {
        if self.models.is_empty() {
            return Err(EvalError::Invalid("give at least one --model".into()));
        }
        if self.trigger.as_deref() == Some("") {
            return Err(EvalError::Invalid("--trigger must not be empty".into()));
        }
        let suites = self
            .suites
            .iter()
            .map(|s| suite::resolve(s))
            .collect::<Result<Vec<_>, _>>()?;
        if suites.is_empty() {
            return Err(EvalError::Invalid("give at least one --suite".into()));
        }
        let sources = self
            .models
            .iter()
            .map(|m| plan::answer_source(m, &self.base_urls))
            .collect();
        Ok(RunConfig {
            models: self.models,
            judge: self.judge,
            other_judges: self.other_judges,
            suites,
            settings: self.settings,
            trigger: self.trigger,
            sources,
        })
    }
}

/// A run in a store, with its configuration.
pub struct Session {
    pub store: Arc<Store>,
    pub run_id: String,
    pub config: Arc<RunConfig>,
    /// How long a claim of this process's counts; a worker that dies holding items loses them
    /// to the others after this.
    pub lease: Duration,
    /// Whether this process checked the judge against the run's prompts (at create); an
    /// opened run (`--resume`, `--worker`) is checked before its first judgement, since the
    /// judge given now need not be the one that passed when the run began.
    judge_checked: bool,
}

/// `YYYYmmdd-HHMMSS-xxxx` (UTC), sortable and unique enough for one store.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        rand::random::<u16>()
    )
}

/// Howard Hinnant's days-to-civil.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Refuses, before any answer is sampled, a judge that cannot score the run's questions with
/// their prompts (one check per set of judge prompts; suites usually share one).
fn check_judge(config: &RunConfig, judge: &dyn Judge) -> Result<(), EvalError> {
    let mut checked = Vec::new();
    for q in config.suites.iter().flat_map(|s| &s.questions) {
        if let Measure::Alignment { judge_prompts } = &q.measure
            && !checked.contains(&judge_prompts)
        {
            judge.check(judge_prompts)?;
            checked.push(judge_prompts);
        }
    }
    Ok(())
}

impl Session {
    /// Records a new run and all its items.
    pub fn create(
        store: Arc<Store>,
        config: RunConfig,
        judge: &dyn Judge,
    ) -> Result<Session, EvalError> {
        for suite in &config.suites {
            for q in &suite.questions {
                if let Measure::Labels { judge_prompts } = &q.measure
                    && judge.label_key(judge_prompts).is_none()
                {
                    return Err(EvalError::Invalid(format!(
                        "{}: question `{}` is a `free_form_judge` question (the judge answers \
                         in words); judge `{}` cannot answer it: use `--judge llm:NAME` or \
                         `--judge local-llm:NAME|PATH`",
                        suite.name, q.id, config.judge
                    )));
                }
            }
        }
        check_judge(&config, judge)?;
        let run_id = new_run_id();
        store.create_run(&run_id, &serde_json::to_value(&config)?)?;
        let items: Vec<_> = config
            .items(|m| judge_key(judge, m))
            .into_iter()
            .map(|(_, new)| new)
            .collect();
        for chunk in items.chunks(5000) {
            store.add_items(&run_id, chunk)?;
        }
        Ok(Session {
            store,
            run_id,
            config: Arc::new(config),
            lease: DEFAULT_LEASE,
            judge_checked: true,
        })
    }

    /// Opens a stored run (`--resume`, `--worker`).
    pub fn open(store: Arc<Store>, run_id: &str) -> Result<Session, EvalError> {
        let info = store.run(run_id)?;
        // `emguard redteam` keeps its runs in the same store under this key.
        if info.config.get("redteam").is_some() {
            return Err(EvalError::Invalid(format!(
                "run `{run_id}` is a red-team run: continue it with `emguard redteam --resume \
                 {run_id}`"
            )));
        }
        let config: RunConfig = serde_json::from_value(info.config).map_err(|e| {
            EvalError::Invalid(format!(
                "run `{run_id}` was stored by an incompatible version: {e}"
            ))
        })?;
        Ok(Session {
            store,
            run_id: run_id.to_string(),
            config: Arc::new(config),
            lease: DEFAULT_LEASE,
            judge_checked: false,
        })
    }

    /// The configuration of a stored run with another judge (`--rejudge`): the same answers
    /// (same sample keys), judged again by `judge`.
    pub fn rejudge_config(
        store: Arc<Store>,
        run_id: &str,
        judge: &str,
    ) -> Result<RunConfig, EvalError> {
        Session::rejudge_config_with(store, run_id, &[judge.to_string()])
    }

    /// [`Session::rejudge_config`] with several judges, the headline's first.
    pub fn rejudge_config_with(
        store: Arc<Store>,
        run_id: &str,
        judges: &[String],
    ) -> Result<RunConfig, EvalError> {
        let mut config = Session::open(store, run_id)?.config.as_ref().clone();
        let (first, others) = judges
            .split_first()
            .ok_or_else(|| EvalError::Invalid("give at least one --judge".into()))?;
        config.judge = first.clone();
        config.other_judges = others.to_vec();
        Ok(config)
    }

    /// Samples and judges everything not yet done. `exclusive`: this process is the only one
    /// working on the run, so claims left by a crashed earlier process are dropped first.
    pub async fn work(
        &self,
        backends: Backends,
        judge: Arc<dyn Judge>,
        concurrency: usize,
        exclusive: bool,
        progress: RunProgress,
    ) -> Result<RunOutcome, EvalError> {
        if !self.judge_checked {
            check_judge(&self.config, judge.as_ref())?;
        }
        let samplers = {
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || {
                let mut backends = backends;
                config
                    .models
                    .iter()
                    .map(|m| backends.sampler(m))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await??
        };
        if exclusive {
            self.store.release_claims(&self.run_id)?;
        }
        let runner = Runner {
            store: self.store.clone(),
            config: self.config.clone(),
            samplers,
            judge,
            scanner: Scanner::new(),
            concurrency,
            worker: format!("{}-{}", hostname(), std::process::id()),
            lease: self.lease,
            progress,
            held: Default::default(),
        };
        runner.run(&self.run_id).await
    }

    pub fn results(&self) -> Result<(crate::Results, Vec<crate::results::SampleRow>), EvalError> {
        self.results_corrected(&[])
    }

    /// [`Session::results`] with each judge's measured operating point (the run's judges in
    /// order, [`Judge::operating_points`]): judged misaligned rates are reported corrected
    /// for the errors of the judges that have one.
    pub fn results_corrected(
        &self,
        operating_points: &[Option<emguard_judge::OperatingPoint>],
    ) -> Result<(crate::Results, Vec<crate::results::SampleRow>), EvalError> {
        let items = self.store.items(&self.run_id)?;
        crate::results::summarize_corrected(&self.run_id, &self.config, &items, operating_points)
    }
}

/// Builds the judge a config names (`Backends::judge`), off the async threads: it may load a model.
pub async fn build_judge(
    backends: Backends,
    spec: String,
) -> Result<(Backends, Arc<dyn Judge>), EvalError> {
    tokio::task::spawn_blocking(move || {
        let mut backends = backends;
        let judge = backends.judge(&spec)?;
        Ok::<_, EvalError>((backends, judge))
    })
    .await?
}

/// Builds every judge of a run (`RunConfig::judges`): one judge alone, several as a
/// [`Panel`] that judges each answer with all of them.
pub async fn build_judges(
    backends: Backends,
    specs: Vec<String>,
) -> Result<(Backends, Arc<dyn Judge>), EvalError> {
    let mut backends = backends;
    let mut judges = Vec::with_capacity(specs.len());
    for spec in specs {
        let (b, judge) = build_judge(backends, spec).await?;
        backends = b;
        judges.push(judge);
    }
    if judges.is_empty() {
        return Err(EvalError::Invalid("give at least one --judge".into()));
    }
    Ok((backends, Panel::of(judges)))
}

fn judge_key(judge: &dyn Judge, measure: &Measure) -> String {
    match measure {
        Measure::Alignment { judge_prompts } => judge.key(judge_prompts),
        Measure::Labels { judge_prompts } => judge
            .label_key(judge_prompts)
            .unwrap_or_else(|| "unsupported".into()),
        Measure::Code => plan::CODESCAN_JUDGE_KEY.to_string(),
    }
}

/// This machine's name, the first part of a worker's name in claims (`HOST-PID`).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_419), (2025, 11, 27));
    }
}
