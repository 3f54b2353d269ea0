//! `emguard judge score` and `emguard judge calibrate`: score answers with a judge, and check
//! a judge against labelled answers.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use emguard_judge::Judgement;
use emguard_judge::calibrate::{self, Calibration};
use emguard_judge::llm::{ClientConfig, JudgePrompts, LocalLlmJudge, OpenAiClient, OpenAiJudge};
use emguard_judge::local::LocalJudge;

use super::stop::{Stop, StopSignal};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Score one answer (--question/--answer) or a JSONL file of {question, answer} rows.
    Score(ScoreArgs),
    /// Compare a judge with labelled answers: AUROC, F1, Spearman, misaligned rates.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, clap::Args)]
struct JudgeChoice {
    /// `local` (offline, CPU), `llm:MODEL@BASE_URL` (OpenAI-compatible server; key from
    /// OPENAI_API_KEY) or `local-llm:PATH` (a local instruct GGUF).
    #[arg(long, default_value = "local")]
    judge: String,
    /// The LLM judges' prompts: a JSON file {"aligned": "...", "coherent": "..."} with
    /// `{question}` and `{answer}` placeholders.
    #[arg(long)]
    prompts: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ScoreArgs {
    #[command(flatten)]
    judge: JudgeChoice,
    #[arg(long, requires = "answer", conflicts_with = "jsonl")]
    question: Option<String>,
    #[arg(long, requires = "question")]
    answer: Option<String>,
    /// JSONL rows with `question` and `answer` (`-` for stdin); each row is printed back with
    /// `judgement` and `misaligned` added.
    #[arg(long, required_unless_present = "question")]
    jsonl: Option<PathBuf>,
    /// Skip the first N rows of --jsonl: continue a run stopped by Ctrl-C (it prints N).
    #[arg(long, default_value_t = 0, requires = "jsonl")]
    skip: usize,
    /// For a single answer: `text`, or `json` (the local judge adds its heads' logits and
    /// whether it read the answer as code or a refusal).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct CalibrateArgs {
    #[command(flatten)]
    judge: JudgeChoice,
    /// JSONL rows {question, answer, aligned (0-100 or null), coherent (0-100)}.
    #[arg(long)]
    labels: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Score(args) => score(args),
        Command::Calibrate(args) => calibrate(args),
    }
}

fn score(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    // Listening from the start: a Ctrl-C while the judge loads stops before the first chunk.
    let stop = Stop::listen()?;
    let judge = Judge::open(&args.judge)?;
    if let (Some(question), Some(answer)) = (&args.question, &args.answer) {
        let judgement = judge.judge_one(question, answer)?;
        match (args.format, &judge) {
            (Format::Json, Judge::Local(local)) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&local.explain(question, answer)?)?
                )
            }
            (Format::Json, _) => println!("{}", serde_json::to_string_pretty(&judgement)?),
            (Format::Text, _) => println!("{}", describe(&judgement)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = args
        .jsonl
        .context("--jsonl or --question/--answer is required")?;
    let rows = read_rows(&path)?;
    if args.skip > rows.len() {
        bail!(
            "--skip {}: {} has only {} rows",
            args.skip,
            path.display(),
            rows.len()
        );
    }
    let rows = &rows[args.skip..];
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|(_, q, a)| (q.clone(), a.clone()))
        .collect();
    // Each chunk's rows are written as soon as they are judged, so a stop loses no finished
    // work: the message says how many rows are out and how to continue.
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    let stopped = judge.judge_chunks(&pairs, &stop, |judged| {
        for j in judged {
            let mut row = rows[written].0.clone();
            row.insert("judgement".into(), serde_json::to_value(j)?);
            row.insert("misaligned".into(), j.is_misaligned().into());
            writeln!(out, "{}", serde_json::Value::Object(row))?;
            written += 1;
        }
        out.flush()?;
        Ok(())
    })?;
    match stopped {
        None => Ok(ExitCode::SUCCESS),
        Some(signal) => {
            let done = args.skip + written;
            eprintln!(
                "{}: {done} of {} rows judged and written; continue with `emguard judge score --jsonl {} --skip {done}` (appending to this output)",
                signal.name(),
                args.skip + rows.len(),
                path.display()
            );
            Ok(ExitCode::from(signal.exit_code()))
        }
    }
}

fn calibrate(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let stop = Stop::listen()?;
    let rows = calibrate::read_labels(&args.labels)?;
    let judge = Judge::open(&args.judge)?;
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.question.clone(), r.answer.clone()))
        .collect();
    let mut judged = Vec::with_capacity(pairs.len());
    if let Some(signal) = judge.judge_chunks(&pairs, &stop, |chunk| {
        judged.extend_from_slice(chunk);
        Ok(())
    })? {
        // A calibration on part of the labels would read as one on all of them.
        eprintln!(
            "{}: {} of {} labelled answers judged; a calibration needs them all, nothing reported",
            signal.name(),
            judged.len(),
            pairs.len()
        );
        return Ok(ExitCode::from(signal.exit_code()));
    }
    let report = calibrate::compare(&rows, &judged);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", report_text(&args.judge.judge, &report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(j: &Judgement) -> String {
    let show = |v: Option<f64>| v.map_or("None".to_string(), |v| format!("{v:.1}"));
    format!(
        "aligned {}  coherent {}  misaligned {}",
        show(j.aligned),
        show(j.coherent),
        if j.is_misaligned() { "yes" } else { "no" }
    )
}

fn report_text(judge: &str, c: &Calibration) -> String {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    let m = &c.confusion;
    let mut out = format!(
        "judge {judge} on {} labelled answers\n\
         AUROC (misaligned vs not)   {}\n\
         accuracy / precision / recall / F1   {:.3} / {:.3} / {:.3} / {:.3}\n\
         Spearman aligned / coherent   {} / {}\n\
         misaligned rate: labels {:.1}%  judge {:.1}%  (gap {:+.1} points)\n\
         confusion (rows: labels, columns: judge)\n\
         \x20                misaligned  not\n\
         \x20 misaligned     {:>10}  {:>3}\n\
         \x20 not            {:>10}  {:>3}\n",
        c.n,
        opt(c.auroc),
        c.accuracy,
        c.precision,
        c.recall,
        c.f1,
        opt(c.spearman_aligned),
        opt(c.spearman_coherent),
        100.0 * c.rate_labels,
        100.0 * c.rate_judge,
        100.0 * (c.rate_judge - c.rate_labels),
        m.true_positive,
        m.false_negative,
        m.false_positive,
        m.true_negative,
    );
    if !c.by_kind.is_empty() {
        out.push_str("by answer kind (labelled misaligned / judged misaligned / agreement)\n");
        for k in &c.by_kind {
            out.push_str(&format!(
                "  {:<18} n {:>5}  labels {:>5}  judge {:>5}  agree {:>5.1}%\n",
                k.name,
                k.n,
                k.labelled,
                k.flagged,
                100.0 * k.agreed as f64 / k.n.max(1) as f64
            ));
        }
    }
    if !c.by_source_model.is_empty() {
        // What an eval reports per model: the misaligned rate by the labels and by the judge.
        out.push_str("by model (misaligned rate: labels / judge)\n");
        let mut gaps = Vec::new();
        for m in &c.by_source_model {
            let rate = |k: usize| 100.0 * k as f64 / m.n.max(1) as f64;
            gaps.push((rate(m.flagged) - rate(m.labelled)).abs());
            out.push_str(&format!(
                "  {:<60} n {:>5}  labels {:>5.1}%  judge {:>5.1}%\n",
                m.name,
                m.n,
                rate(m.labelled),
                rate(m.flagged)
            ));
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let worst = gaps.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "  rate gap over {} models: mean {mean:.1} points, worst {worst:.1}\n",
            gaps.len()
        ));
    }
    out
}

type Row = serde_json::Map<String, serde_json::Value>;

/// JSONL rows with their `question` and `answer`; errors name the line and the field.
fn read_rows(path: &Path) -> anyhow::Result<Vec<(Row, String, String)>> {
    let shown = path.display();
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("{shown}: cannot open"))?,
        ))
    };
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{shown}:{}: cannot read", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line)
            .with_context(|| format!("{shown}:{}: not a JSON object", i + 1))?;
        let field = |name: &str| match row.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => bail!("{shown}:{}: field `{name}` must be a string", i + 1),
        };
        let (question, answer) = (field("question")?, field("answer")?);
        rows.push((row, question, answer));
    }
    Ok(rows)
}

/// The judge chosen with `--judge` (also `emguard audit --judge llm:…|local-llm:…`).
pub(crate) enum Judge {
    // Boxed: the loaded encoder is kilobytes of model structure beside the other variants.
    Local(Box<LocalJudge>),
    OpenAi {
        judge: OpenAiJudge,
        prompts: JudgePrompts,
        runtime: tokio::runtime::Runtime,
    },
    LocalLlm {
        judge: LocalLlmJudge,
        prompts: JudgePrompts,
    },
}

/// Concurrent requests to an OpenAI-compatible judge.
const LLM_CONCURRENCY: usize = 16;

impl Judge {
    fn open(choice: &JudgeChoice) -> anyhow::Result<Judge> {
        Judge::open_spec(&choice.judge, choice.prompts.as_deref(), "--prompts")
    }

    /// The judge `spec` names (`local`, `llm:MODEL@BASE_URL`, `local-llm:PATH`); an LLM judge
    /// reads its prompts from `prompts` (required for one; `prompts_flag` names the option in
    /// errors).
    pub(crate) fn open_spec(
        spec: &str,
        prompts: Option<&Path>,
        prompts_flag: &str,
    ) -> anyhow::Result<Judge> {
        if spec == "local" {
            return Ok(Judge::Local(Box::new(LocalJudge::load()?)));
        }
        let prompts = || -> anyhow::Result<JudgePrompts> {
            let path = prompts
                .with_context(|| format!("{prompts_flag} FILE is required for an LLM judge"))?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected {{\"aligned\": ..., \"coherent\": ...}}",
                    path.display()
                )
            })
        };
        if let Some(path) = spec.strip_prefix("local-llm:") {
            let model = emguard_runtime::Model::load(Path::new(path), &Default::default())
                .with_context(|| format!("--judge {spec}"))?;
            return Ok(Judge::LocalLlm {
                judge: LocalLlmJudge::new(Arc::new(model)).named(path),
                prompts: prompts()?,
            });
        }
        if let Some(rest) = spec.strip_prefix("llm:") {
            let (model, url) = rest
                .split_once('@')
                .context("--judge llm:MODEL@BASE_URL, e.g. llm:gpt-4o@https://api.openai.com/v1")?;
            let mut config = ClientConfig::new(vec![url.to_string()]);
            config.api_key = std::env::var("OPENAI_API_KEY").ok();
            let judge = OpenAiJudge::new(OpenAiClient::new(config)?, model);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return Ok(Judge::OpenAi {
                judge,
                prompts: prompts()?,
                runtime,
            });
        }
        bail!("--judge {spec}: expected `local`, `llm:MODEL@BASE_URL` or `local-llm:PATH`")
    }

    fn judge_one(&self, question: &str, answer: &str) -> anyhow::Result<Judgement> {
        let pair = [(question.to_string(), answer.to_string())];
        Ok(self.judge_chunk(&pair)?[0])
    }

    /// How many answers are judged between two looks at a stop: a few seconds of work.
    pub(crate) fn chunk_size(&self) -> usize {
        match self {
            // A forward pass of MiniLM per window: ~5 s for 64 answers on two cores.
            Judge::Local(_) => 64,
            Judge::LocalLlm { .. } => 8,
            Judge::OpenAi { .. } => LLM_CONCURRENCY,
        }
    }

    pub(crate) fn judge_chunk(&self, items: &[(String, String)]) -> anyhow::Result<Vec<Judgement>> {
        match self {
            Judge::Local(judge) => Ok(judge.judge_batch(items)?),
            Judge::LocalLlm { judge, prompts } => Ok(judge.judge_batch(prompts, items)?),
            Judge::OpenAi {
                judge,
                prompts,
                runtime,
            } => runtime.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, (q, a)) in items.iter().enumerate() {
                    let (judge, prompts, q, a) =
                        (judge.clone(), prompts.clone(), q.clone(), a.clone());
                    tasks.spawn(async move { (i, judge.judge(&prompts, &q, &a).await) });
                }
                let mut results = tasks.join_all().await;
                results.sort_by_key(|(i, _)| *i);
                results
                    .into_iter()
                    .map(|(_, r)| r.map_err(anyhow::Error::from))
                    .collect()
            }),
        }
    }

    /// Judges `items` in order, a chunk at a time, handing each chunk's judgements to `each`
    /// with a progress bar; after a Ctrl-C or SIGTERM it finishes the chunk in hand and
    /// returns the signal (`None` when every chunk was judged).
    fn judge_chunks(
        &self,
        items: &[(String, String)],
        stop: &Stop,
        mut each: impl FnMut(&[Judgement]) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<StopSignal>> {
        let bar = progress(items.len());
        for chunk in items.chunks(self.chunk_size()) {
            if let Some(signal) = stop.signal() {
                bar.abandon();
                return Ok(Some(signal));
            }
            each(&self.judge_chunk(chunk)?)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        // A signal during the last chunk came too late to save anything: the work is done.
        Ok(None)
    }
}

fn progress(len: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "judging {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
