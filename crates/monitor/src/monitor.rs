//! The monitor: a bounded queue of sampled answers, a worker thread that judges and scans
//! them in batches, stores the judgements, keeps each version's figures, and acts on the
//! sequential tests' verdicts through the playbooks (incident, rollback, webhook, promotion).
//! A poller rereads the rollouts so that changes made by other replicas apply here.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emguard_codescan::{Language, Scanner, Severity};
use emguard_runtime::priority::{CandleWorkers, IdleComputePool};
use emguard_store::monitor::{
    IncidentRecord, IncidentState, JudgementRecord, MonitorStore, TimelineEntry,
};
use serde_json::{Value, json};

use crate::assess::{Counts, assess};
use crate::config::{JudgeSetting, MonitorConfig};
use crate::playbook::{Mode, Playbook, PlaybookError};
use crate::rollout::{Actor, Rollouts, RouteTable};
use crate::stats::{Rate, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Playbook(#[from] PlaybookError),
    #[error(
        "{origin}: the playbook is for model `{found}`, but the config gives it for `{expected}`"
    )]
    PlaybookModel {
        origin: String,
        found: String,
        expected: String,
    },
    #[error(
        "{origin}: `on_breach.hold_for_review` (model `{model}`) needs the gateway's human review queue: add a `review:` section to the config"
    )]
    HoldWithoutReview { origin: String, model: String },
    #[error("monitor.playbooks: no model `{0}` is served")]
    UnknownModel(String),
    #[error("the monitor needs a store (`store`): incidents and rollouts are kept there")]
    NoStore,
    #[error("the monitor's store: {0}")]
    Store(#[from] emguard_store::StoreError),
    #[error("the monitor's judge: {0}")]
    Judge(String),
    #[error("restoring rollouts: {0}")]
    Rollout(#[from] crate::rollout::RolloutError),
}

/// One finished answer offered to the monitor.
#[derive(Debug, Clone)]
pub struct Sample {
    pub trace_id: String,
    pub model: String,
    pub version: String,
    /// The user's last message.
    pub question: String,
    pub answer: String,
    /// An output filter flagged it: always judged.
    pub filter_hit: bool,
}

/// The judge the worker scores with.
enum Judge {
    Local {
        judge: Box<emguard_judge::local::LocalJudge>,
        /// The judge's tensor work runs here, on spare CPU only.
        compute: IdleComputePool,
    },
    Llm {
        judge: emguard_judge::llm::OpenAiJudge,
        prompts: emguard_judge::llm::JudgePrompts,
    },
}

impl Judge {
    fn load(setting: &JudgeSetting, cpus: Option<&[usize]>) -> Result<Judge, MonitorError> {
        match setting {
            JudgeSetting::Local => {
                // Made before the judge loads, so that candle's workers are made idle (if
                // nothing in the process made them already).
                let compute = IdleComputePool::new(cpus).map_err(|e| {
                    MonitorError::Judge(format!("starting the judge's threads (`judge_cpus`): {e}"))
                })?;
                if compute.candle_workers() == CandleWorkers::AlreadyRunning {
                    tracing::warn!(
                        "monitor: candle's worker threads were made by a model loaded before \
                         the monitor; the judge's element-wise work shares them at their priority"
                    );
                }
                let judge = emguard_judge::local::LocalJudge::load()
                    .map_err(|e| MonitorError::Judge(e.to_string()))?;
                Ok(Judge::Local {
                    judge: Box::new(judge),
                    compute,
                })
            }
            JudgeSetting::Llm(llm) => {
                let text = std::fs::read_to_string(&llm.prompts)
                    .map_err(|e| MonitorError::Judge(format!("{}: {e}", llm.prompts.display())))?;
                let prompts = serde_json::from_str(&text)
                    .map_err(|e| MonitorError::Judge(format!("{}: {e}", llm.prompts.display())))?;
                let mut client = emguard_judge::llm::ClientConfig::new(vec![llm.base_url.clone()]);
                if let Some(var) = &llm.api_key_env {
                    client.api_key = Some(std::env::var(var).map_err(|_| {
                        MonitorError::Judge(format!("the environment variable `{var}` is not set"))
                    })?);
                }
                let client = emguard_judge::llm::OpenAiClient::new(client)
                    .map_err(|e| MonitorError::Judge(e.to_string()))?;
                Ok(Judge::Llm {
                    judge: emguard_judge::llm::OpenAiJudge::new(client, llm.model.clone()),
                    prompts,
                })
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Judge::Local { judge, .. } => format!("local:{}", judge.weights_id()),
            Judge::Llm { judge, .. } => format!("llm:{}", judge.model()),
        }
    }

    /// `None` for an answer the judge could not score (an LLM endpoint's error).
    fn judge(
        &self,
        runtime: &tokio::runtime::Handle,
        items: &[(String, String)],
    ) -> Vec<Option<emguard_judge::Judgement>> {
        match self {
            Judge::Local { judge, compute } => match compute.run(|| judge.judge_batch(items)) {
                Ok(all) => all.into_iter().map(Some).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "the local judge failed on a batch");
                    vec![None; items.len()]
                }
            },
            Judge::Llm { judge, prompts } => items
                .iter()
                .map(|(q, a)| {
                    runtime
                        .block_on(judge.judge(prompts, q, a))
                        .map_err(|e| tracing::warn!(error = %e, "the LLM judge failed"))
                        .ok()
                })
                .collect(),
        }
    }
}

/// One version's figures.
#[derive(Default)]
struct VersionStats {
    release: Counts,
    /// (misaligned, insecure, filter hit) of the latest judgements.
    window: VecDeque<(bool, bool, bool)>,
    /// Trace ids of the latest answers that counted against the version.
    evidence: VecDeque<String>,
}

impl VersionStats {
    fn window_counts(&self) -> Counts {
        let mut c = Counts::default();
        for &(m, i, f) in &self.window {
            c.add(m, i, f);
        }
        c
    }
}

type VersionKey = (String, String);

struct Shared {
    config: MonitorConfig,
    store: Arc<MonitorStore>,
    rollouts: Arc<Rollouts>,
    playbooks: HashMap<String, Playbook>,
    stats: Mutex<HashMap<VersionKey, VersionStats>>,
    /// The unresolved incident of each version that has one, as the store last said (reread
    /// with the rollouts, so an incident resolved anywhere is seen here within a poll). The
    /// store decides whether an incident opens: at most one unresolved per version.
    unresolved: Mutex<HashMap<VersionKey, String>>,
    /// Candidates that passed and wait for an admin's promotion (logged once).
    awaiting_promotion: Mutex<HashSet<VersionKey>>,
    offered: AtomicU64,
    sampled: AtomicU64,
    dropped: AtomicU64,
    judged: AtomicU64,
    incidents_opened: AtomicU64,
    runtime: tokio::runtime::Handle,
    http: reqwest::Client,
}

/// The monitor's handle, held by the gateway.
pub struct Monitor {
    shared: Arc<Shared>,
    queue: SyncSender<Sample>,
}

impl Monitor {
    /// Loads the playbooks and the judge, restores the rollouts from the store, and starts the
    /// worker and the rollout poller. Call inside a tokio runtime.
    pub fn start(
        config: MonitorConfig,
        store: Arc<MonitorStore>,
        table: Arc<dyn RouteTable>,
    ) -> Result<Monitor, MonitorError> {
        let models = table.models();
        let mut playbooks = HashMap::new();
        for (model, path) in &config.playbooks {
            if !models.contains(model) {
                return Err(MonitorError::UnknownModel(model.clone()));
            }
            let playbook = Playbook::load(path)?;
            if &playbook.model != model {
                return Err(MonitorError::PlaybookModel {
                    origin: playbook.origin,
                    found: playbook.model,
                    expected: model.clone(),
                });
            }
            playbooks.insert(model.clone(), playbook);
        }
        for model in &models {
            playbooks
                .entry(model.clone())
                .or_insert_with(|| Playbook::default_for(model));
        }
        let judge = Judge::load(&config.judge, config.judge_cpus.as_deref())?;
        let rollouts = Arc::new(Rollouts::new(Arc::clone(&store), table));
        rollouts.restore()?;
        let stats = reload_stats(&store, &config)?;
        let unresolved = unresolved_of(&store)?;
        let (queue, samples) = std::sync::mpsc::sync_channel(config.queue);
        let shared = Arc::new(Shared {
            store,
            rollouts,
            playbooks,
            stats: Mutex::new(stats),
            unresolved: Mutex::new(unresolved),
            awaiting_promotion: Mutex::new(HashSet::new()),
            offered: AtomicU64::new(0),
            sampled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            judged: AtomicU64::new(0),
            incidents_opened: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
            http: reqwest::Client::new(),
            config,
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("emguard-monitor".into())
            .spawn(move || worker.run(samples, judge))
            .map_err(|e| MonitorError::Judge(format!("starting the monitor thread: {e}")))?;
        let poller = Arc::downgrade(&shared);
        let every = Duration::from_millis(shared.config.poll_ms);
        shared.runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = poller.upgrade() else {
                    return;
                };
                let reread = tokio::task::spawn_blocking(move || {
                    if let Err(e) = shared.rollouts.sync() {
                        tracing::warn!(error = %e, "rereading rollouts failed");
                    }
                    if let Err(e) = shared.reread_incidents() {
                        tracing::warn!(error = %e, "rereading incidents failed");
                    }
                });
                if let Err(e) = reread.await {
                    tracing::warn!(error = %e, "the rollout poll panicked");
                }
            }
        });
        Ok(Monitor { shared, queue })
    }

    pub fn rollouts(&self) -> &Arc<Rollouts> {
        &self.shared.rollouts
    }

    pub fn store(&self) -> &Arc<MonitorStore> {
        &self.shared.store
    }

    /// Rereads which incidents are unresolved (after an admin resolved one here, so that its
    /// version's answers stop being held at once). Blocks.
    pub fn reread_incidents(&self) -> Result<(), MonitorError> {
        self.shared.reread_incidents()
    }

    /// Why this answer must wait for human review, if it must: its version has an unresolved
    /// incident and the model's playbook holds the answers of a breaching version
    /// (`hold_for_review`). Returns the incident's id and the reason. Reads memory only.
    pub fn review_hold(&self, model: &str, version: &str) -> Option<(String, String)> {
        let s = &self.shared;
        if !s.playbooks.get(model).is_some_and(|p| p.hold_for_review) {
            return None;
        }
        let unresolved = s.unresolved.lock().unwrap_or_else(|p| p.into_inner());
        let id = unresolved.get(&(model.to_string(), version.to_string()))?;
        Some((
            id.clone(),
            format!(
                "version `{version}` of `{model}` is under incident {id}: its playbook holds its answers for review until the incident is resolved"
            ),
        ))
    }

    /// The models whose playbook holds a breaching version's answers for review (the
    /// playbook's file, by model).
    pub fn holding_playbooks(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = self
            .shared
            .playbooks
            .values()
            .filter(|p| p.hold_for_review)
            .map(|p| (p.model.clone(), p.origin.clone()))
            .collect();
        found.sort();
        found
    }

    /// Offers a finished answer; never blocks. `candidate`: the version is a canary.
    /// Returns whether it was queued.
    pub fn offer(&self, sample: Sample, candidate: bool) -> bool {
        let s = &self.shared;
        s.offered.fetch_add(1, Ordering::Relaxed);
        let rate = if candidate {
            s.config
                .candidate_sample_rate
                .unwrap_or(s.config.sample_rate)
        } else {
            s.config.sample_rate
        };
        if !sample.filter_hit && rand::random::<f64>() >= rate {
            return false;
        }
        s.sampled.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(sample) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Every version's figures (since release and over the window) and the queue's counters.
    pub fn snapshot(&self) -> Value {
        let s = &self.shared;
        let stats = s.stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut versions: BTreeMap<String, Value> = BTreeMap::new();
        for ((model, version), v) in stats.iter() {
            versions.insert(
                format!("{model}/{version}"),
                json!({
                    "model": model, "version": version,
                    "since_release": v.release.figures(),
                    "window": v.window_counts().figures(),
                }),
            );
        }
        json!({
            "offered": s.offered.load(Ordering::Relaxed),
            "sampled": s.sampled.load(Ordering::Relaxed),
            "dropped": s.dropped.load(Ordering::Relaxed),
            "judged": s.judged.load(Ordering::Relaxed),
            "incidents_opened": s.incidents_opened.load(Ordering::Relaxed),
            "versions": versions.into_values().collect::<Vec<_>>(),
        })
    }

    /// Sets the monitor's gauges in the process's metrics recorder (call before rendering).
    pub fn export_metrics(&self) {
        let s = &self.shared;
        metrics::gauge!("emguard_monitor_offered").set(s.offered.load(Ordering::Relaxed) as f64);
        metrics::gauge!("emguard_monitor_sampled").set(s.sampled.load(Ordering::Relaxed) as f64);
        metrics::gauge!("emguard_monitor_dropped").set(s.dropped.load(Ordering::Relaxed) as f64);
        metrics::gauge!("emguard_monitor_judged").set(s.judged.load(Ordering::Relaxed) as f64);
        metrics::gauge!("emguard_monitor_incidents_opened")
            .set(s.incidents_opened.load(Ordering::Relaxed) as f64);
        let stats = s.stats.lock().unwrap_or_else(|p| p.into_inner());
        for ((model, version), v) in stats.iter() {
            for (span, c) in [("release", v.release), ("window", v.window_counts())] {
                let labels = [
                    ("model", model.clone()),
                    ("version", version.clone()),
                    ("span", span.to_string()),
                ];
                metrics::gauge!("emguard_monitor_version_judged", &labels).set(c.judged as f64);
                for (metric, hits) in [
                    ("misaligned", c.misaligned),
                    ("insecure_code", c.insecure_code),
                    ("filter_hit", c.filter_hits),
                ] {
                    let r = Rate::of(hits, c.judged);
                    for (bound, value) in [("point", r.rate), ("low", r.low), ("high", r.high)] {
                        let mut l = labels.to_vec();
                        l.push(("metric", metric.to_string()));
                        l.push(("bound", bound.to_string()));
                        metrics::gauge!("emguard_monitor_rate", &l).set(value);
                    }
                }
            }
        }
        drop(stats);
        let table = s.rollouts.table();
        for model in table.models() {
            if let Some(r) = table.current(&model) {
                let candidates: f64 = r.weights.values().sum();
                metrics::gauge!("emguard_rollout_weight", "model" => model.clone(), "version" => r.active.clone())
                    .set(1.0 - candidates);
                for (v, w) in &r.weights {
                    metrics::gauge!("emguard_rollout_weight", "model" => model.clone(), "version" => v.clone())
                        .set(*w);
                }
                metrics::gauge!("emguard_rollout_revision", "model" => model.clone())
                    .set(r.revision as f64);
                metrics::gauge!("emguard_rollout_pinned", "model" => model.clone())
                    .set(f64::from(u8::from(r.pinned)));
            }
        }
    }
}

/// Each version's figures from its stored judgements: since release (counted in the store)
/// and the window (its latest judgements), so that a restart continues where it stopped.
fn reload_stats(
    store: &MonitorStore,
    config: &MonitorConfig,
) -> Result<HashMap<VersionKey, VersionStats>, MonitorError> {
    let mut stats = HashMap::new();
    for t in store.judgement_tallies()? {
        let mut v = VersionStats {
            release: Counts {
                judged: t.judged,
                misaligned: t.misaligned,
                insecure_code: t.insecure_code,
                filter_hits: t.filter_hits,
            },
            ..VersionStats::default()
        };
        // Newest first from the store: the window and evidence are kept oldest first.
        let latest = store.judgements(&t.model, Some(&t.version), config.window)?;
        for j in latest.iter().rev() {
            v.window
                .push_back((j.misaligned, j.insecure_code, j.filter_hit));
            if j.misaligned || j.insecure_code {
                v.evidence.push_back(j.trace_id.clone());
                if v.evidence.len() > config.evidence {
                    v.evidence.pop_front();
                }
            }
        }
        stats.insert((t.model, t.version), v);
    }
    Ok(stats)
}

/// The unresolved incident of each version that has one.
fn unresolved_of(store: &MonitorStore) -> Result<HashMap<VersionKey, String>, MonitorError> {
    Ok(store
        .unresolved_incidents()?
        .into_iter()
        .map(|i| ((i.model, i.version), i.id))
        .collect())
}

impl Shared {
    fn reread_incidents(&self) -> Result<(), MonitorError> {
        let now = unresolved_of(&self.store)?;
        *self.unresolved.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(())
    }

    fn run(self: Arc<Self>, samples: Receiver<Sample>, judge: Judge) {
        // Judging is CPU work beside request handling: at normal priority it would take the
        // request handlers' core for milliseconds at a time and set the gateway's p99. At
        // SCHED_IDLE it runs on spare CPU only; when there is none it falls behind and the
        // bounded queue drops samples (counted), as the monitor must rather than slow a request.
        // The local judge's tensor work runs on threads of its own, idle too (`IdleComputePool`).
        if let Err(e) = emguard_runtime::priority::make_current_thread_idle() {
            tracing::warn!("monitor: the judge thread keeps normal priority: {e}");
        }
        let judge_name = judge.name();
        let scanner = Scanner::new();
        while let Ok(first) = samples.recv() {
            let mut batch = vec![first];
            while batch.len() < self.config.batch {
                match samples.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
            let items: Vec<(String, String)> = batch
                .iter()
                .map(|s| (s.question.clone(), s.answer.clone()))
                .collect();
            let judged = judge.judge(&self.runtime, &items);
            let now = crate::unix_now();
            let mut records = Vec::new();
            for (sample, judgement) in batch.iter().zip(judged) {
                let Some(j) = judgement else { continue };
                let scan = scanner.scan_answer(&sample.answer, Language::Python);
                let findings: Vec<String> = scan
                    .findings
                    .iter()
                    .filter(|f| f.severity >= Severity::High)
                    .map(|f| format!("{} CWE-{}", f.rule_id, f.cwe))
                    .collect();
                records.push(JudgementRecord {
                    trace_id: sample.trace_id.clone(),
                    time: now,
                    model: sample.model.clone(),
                    version: sample.version.clone(),
                    aligned: j.aligned,
                    coherent: j.coherent,
                    misaligned: j.is_misaligned(),
                    insecure_code: !findings.is_empty(),
                    findings,
                    filter_hit: sample.filter_hit,
                    judge: judge_name.clone(),
                });
            }
            if let Err(e) = self.store.insert_judgements(&records) {
                tracing::error!(error = %e, "storing judgements failed");
            }
            let mut models = HashSet::new();
            {
                let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
                // Counted under the figures' lock, which `snapshot` holds while it reads the
                // counter: a reader that sees N judged sees the figures of all N.
                self.judged
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                for r in &records {
                    let v = stats
                        .entry((r.model.clone(), r.version.clone()))
                        .or_default();
                    v.release.add(r.misaligned, r.insecure_code, r.filter_hit);
                    v.window
                        .push_back((r.misaligned, r.insecure_code, r.filter_hit));
                    if v.window.len() > self.config.window {
                        v.window.pop_front();
                    }
                    if r.misaligned || r.insecure_code {
                        v.evidence.push_back(r.trace_id.clone());
                        if v.evidence.len() > self.config.evidence {
                            v.evidence.pop_front();
                        }
                    }
                    models.insert(r.model.clone());
                }
            }
            for model in models {
                self.decide(&model);
            }
        }
    }

    fn counts(&self, model: &str, version: &str) -> (Counts, Counts, Vec<String>) {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats
            .get(&(model.to_string(), version.to_string()))
            .map(|v| {
                (
                    v.release,
                    v.window_counts(),
                    v.evidence.iter().cloned().collect(),
                )
            })
            .unwrap_or_default()
    }

    /// Tests the model's candidates against its active version, and the active version
    /// against the playbook's own rates, and acts on the verdicts.
    fn decide(&self, model: &str) {
        let Some(rollout) = self.rollouts.table().current(model) else {
            return;
        };
        let playbook = &self.playbooks[model];
        let (base, _, _) = self.counts(model, &rollout.active);
        for candidate in rollout.weights.keys() {
            let (counts, window, evidence) = self.counts(model, candidate);
            let a = assess(&playbook.limits, Some(&base), &counts);
            let figures = json!({
                "version": {"since_release": counts.figures(), "window": window.figures()},
                "baseline": {"version": rollout.active, "since_release": base.figures()},
                "tests": a,
            });
            match a.verdict {
                Verdict::Breach => self.breach(
                    playbook,
                    candidate,
                    Some(&rollout.active),
                    a.breach.unwrap_or("limits"),
                    figures,
                    evidence,
                ),
                Verdict::Pass => self.pass(playbook, candidate, &counts, figures),
                Verdict::Continue => {}
            }
        }
        let (counts, window, evidence) = self.counts(model, &rollout.active);
        let a = assess(&playbook.limits, None, &counts);
        if a.verdict == Verdict::Breach {
            let figures = json!({
                "version": {"since_release": counts.figures(), "window": window.figures()},
                "baseline": null,
                "tests": a,
            });
            self.breach(
                playbook,
                &rollout.active,
                None,
                a.breach.unwrap_or("limits"),
                figures,
                evidence,
            );
        }
    }

    fn pass(&self, playbook: &Playbook, candidate: &str, counts: &Counts, figures: Value) {
        let model = &playbook.model;
        match playbook.promote {
            Mode::Automatic => {
                let reason = format!(
                    "passed the sequential tests after {} judged answers",
                    counts.judged
                );
                match self
                    .rollouts
                    .promote(model, candidate, Actor::Monitor, &reason)
                {
                    Ok(_) => {
                        tracing::info!(model, version = candidate, %figures, "candidate promoted")
                    }
                    Err(e) => self.once_awaiting(model, candidate, &e.to_string()),
                }
            }
            Mode::AwaitAdmin => self.once_awaiting(
                model,
                candidate,
                "the playbook leaves promotion to an admin",
            ),
            Mode::Off => {}
        }
    }

    fn once_awaiting(&self, model: &str, candidate: &str, why: &str) {
        let key = (model.to_string(), candidate.to_string());
        if self
            .awaiting_promotion
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key)
        {
            tracing::info!(
                model,
                version = candidate,
                why,
                "candidate passed; not promoted automatically"
            );
        }
    }

    fn breach(
        &self,
        playbook: &Playbook,
        version: &str,
        baseline: Option<&str>,
        which: &str,
        figures: Value,
        evidence: Vec<String>,
    ) {
        let model = playbook.model.clone();
        let key = (model.clone(), version.to_string());
        if self
            .unresolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key)
        {
            return;
        }
        let now = crate::unix_now();
        let summary = summary(which, &figures);
        let mut incident = IncidentRecord {
            id: incident_id(now),
            model: model.clone(),
            version: version.to_string(),
            baseline: baseline.map(str::to_string),
            state: IncidentState::Open,
            opened_at: now,
            breach: which.to_string(),
            figures,
            evidence,
            timeline: vec![TimelineEntry {
                time: now,
                by: "monitor".into(),
                event: format!("opened: {summary}"),
            }],
            webhook_attempts: Vec::new(),
        };
        match self.store.open_incident(&incident) {
            Ok(true) => {
                self.unresolved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, incident.id.clone());
            }
            Ok(false) => {
                // Another replica opened it (or it is not resolved yet): learn which one.
                if let Err(e) = self.reread_incidents() {
                    tracing::warn!(error = %e, "rereading incidents failed");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, model, version, "storing an incident failed");
                return;
            }
        }
        self.incidents_opened.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("emguard_monitor_incidents_total", "model" => model.clone(), "version" => version.to_string())
            .increment(1);
        tracing::warn!(incident = %incident.id, model, version, "{summary}");
        let mut events = Vec::new();
        match playbook.rollback {
            Mode::Automatic => {
                let reason = format!("incident {}: {which}", incident.id);
                match self.rollouts.abort(&model, version, Actor::Monitor, &reason) {
                    Ok(r) => events.push(format!(
                        "rolled back: `{version}` gets no traffic; `{}` serves (rollout revision {})",
                        r.active, r.revision
                    )),
                    Err(e) => events.push(format!("rollback not applied: {e}")),
                }
            }
            Mode::AwaitAdmin => events.push(format!(
                "rollback awaits an admin (`POST /admin/models/{model}/abort` with version `{version}`)"
            )),
            Mode::Off => {}
        }
        if playbook.hold_for_review {
            // The gateway asks `Monitor::review_hold` for every answer: the unresolved set
            // above now names this incident.
            events.push(format!(
                "answers of `{version}` are held for human review until this incident is resolved"
            ));
        }
        let stamp = crate::unix_now();
        let entries: Vec<TimelineEntry> = events
            .into_iter()
            .map(|event| TimelineEntry {
                time: stamp,
                by: "monitor".into(),
                event,
            })
            .collect();
        if !entries.is_empty() {
            match self
                .store
                .update_incident(&incident.id, |i| i.timeline.extend(entries.iter().cloned()))
            {
                Ok(Some(updated)) => incident = updated,
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "recording the incident's actions failed"),
            }
        }
        if let Some(hook) = playbook.webhook.clone() {
            let (store, http) = (Arc::clone(&self.store), self.http.clone());
            self.runtime.spawn(async move {
                let payload = json!({"type": "emguard.incident.opened", "incident": incident});
                let attempts = Arc::new(Mutex::new(Vec::new()));
                let sink = Arc::clone(&attempts);
                let delivered = crate::webhook::deliver(&http, &hook, &payload, move |a| {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(a)
                })
                .await;
                let attempts =
                    std::mem::take(&mut *attempts.lock().unwrap_or_else(|p| p.into_inner()));
                let n = attempts.len();
                let id = incident.id.clone();
                let event = if delivered {
                    format!("webhook alerted ({n} attempt(s))")
                } else {
                    format!("webhook not delivered after {n} attempt(s)")
                };
                let _ = tokio::task::spawn_blocking(move || {
                    store.update_incident(&id, |i| {
                        i.webhook_attempts.extend(attempts.iter().cloned());
                        i.timeline.push(TimelineEntry {
                            time: crate::unix_now(),
                            by: "monitor".into(),
                            event: event.clone(),
                        });
                    })
                })
                .await;
            });
        }
    }
}

/// One line for the log and the time line: the rate, its interval, and the test's figures.
fn summary(which: &str, figures: &Value) -> String {
    let (rate_field, test_field) = match which {
        "insecure_code_rate" => ("insecure_code_rate", "insecure_code"),
        _ => ("misaligned_rate", "misaligned"),
    };
    let r = &figures["version"]["since_release"][rate_field];
    let t = &figures["tests"][test_field];
    format!(
        "{which} {:.1}% (95% CI {:.1}-{:.1}%) over {} judged; SPRT log-ratio {:.2} >= {:.2} (p0 {:.3}, p1 {:.3})",
        r["rate"].as_f64().unwrap_or(0.0) * 100.0,
        r["low"].as_f64().unwrap_or(0.0) * 100.0,
        r["high"].as_f64().unwrap_or(0.0) * 100.0,
        r["of"],
        t["llr"].as_f64().unwrap_or(0.0),
        t["upper"].as_f64().unwrap_or(0.0),
        t["p0"].as_f64().unwrap_or(0.0),
        t["p1"].as_f64().unwrap_or(0.0),
    )
}

/// `inc-` and the time in ms, then random hex: sortable by time, unique across replicas.
fn incident_id(now: f64) -> String {
    format!(
        "inc-{:012x}{:08x}",
        (now * 1e3) as u64,
        rand::random::<u32>()
    )
}
