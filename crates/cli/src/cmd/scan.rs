//! `emguard scan`: scan files, directories, stdin or model answers for vulnerabilities
//! (see `emguard_codescan`). Exit 0: nothing at or above `--fail-on`; 1: findings; 2: usage
//! or I/O errors, or a file named on the command line that could not be scanned (files found
//! in a directory that cannot be scanned are reported as skipped and do not stop the run).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use emguard_codescan::{
    Finding, Language, Note, Profile, Project, ScanResult, Scanner, Severity, all_rules,
    decode_python_source, sarif,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, directories (searched for .py and Markdown files) or `-` for stdin. Markdown
    /// files and stdin are read as model answers: the code in their fences is scanned, or all
    /// of it when there are no fences.
    #[arg(value_name = "PATH", required_unless_present = "list_rules")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Exit 1 when a finding is at or above this severity (low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY", default_value = "low")]
    fail_on: Severity,
    /// Read every file as a model answer (code in Markdown fences), whatever its extension.
    #[arg(long)]
    answers: bool,
    /// Rules to run: `default` (vulnerabilities as written) or `audit` (also lists
    /// dangerous calls and settings even with constant input, as bandit does).
    #[arg(long, value_name = "PROFILE", default_value = "default")]
    profile: Profile,
    /// List the rules (id, CWE, severity, confidence, profile, title) and exit.
    #[arg(long)]
    list_rules: bool,
    /// Read each file on its own: do not look up the project modules it imports (by default
    /// a call into a module of the project is read through what that function returns).
    #[arg(long)]
    no_follow_imports: bool,
    /// Files scanned at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
    Sarif,
}

/// One scanned input.
struct Scanned {
    path: String,
    result: ScanResult,
}

/// An input that was not scanned, and why (binary, undecodable, unreadable, not Python).
/// The run goes on without it: one bad file must not hide the findings in the rest.
#[derive(serde::Serialize)]
struct Skipped {
    path: String,
    reason: String,
    /// Named on the command line (not found in a directory): the run exits 2.
    #[serde(skip)]
    named: bool,
}

/// What to scan: stdin (already read) or a file.
enum Input {
    Stdin(String),
    /// A file, and whether it was named on the command line.
    File(PathBuf, bool),
}

/// How a file is read: as Python source, or as a model answer (code in Markdown fences).
enum Reading {
    Python,
    Answer,
}

/// How `path` is read, or why it is not scanned. Directories yield only `.py` and
/// Markdown files; a named file of another kind is read as Python only when its first line
/// is a Python shebang, otherwise it is refused with a reason rather than parsed as Python.
fn reading_for(path: &Path, answers: bool, head: &[u8]) -> Result<Reading, String> {
    if answers {
        return Ok(Reading::Answer);
    }
    if Language::from_path(path) == Some(Language::Python) {
        return Ok(Reading::Python);
    }
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("md" | "markdown")
    ) {
        return Ok(Reading::Answer);
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if first_line.starts_with(b"#!") && String::from_utf8_lossy(first_line).contains("python") {
        return Ok(Reading::Python);
    }
    Err("not a Python file (no .py extension or python shebang) nor Markdown; pass --answers to read it as a model answer".into())
}

impl Input {
    /// Reads and scans the input: Markdown files and stdin are model answers, Python files
    /// are decoded as the interpreter would (PEP 263 encoding declarations).
    fn scan(
        &self,
        scanner: &Scanner,
        answers: bool,
        project: Option<&Project>,
    ) -> Result<Scanned, Skipped> {
        match self {
            Input::Stdin(text) => Ok(Scanned {
                path: "-".into(),
                result: scanner.scan_answer(text, Language::Python),
            }),
            Input::File(path, named) => {
                let shown = path.display().to_string();
                let skipped = |reason: String| Skipped {
                    path: shown.clone(),
                    reason,
                    named: *named,
                };
                let bytes =
                    std::fs::read(path).map_err(|e| skipped(format!("cannot read: {e}")))?;
                let reading = reading_for(path, answers, &bytes).map_err(skipped)?;
                let text = decode_python_source(&bytes).map_err(|e| skipped(e.to_string()))?;
                let result = match (reading, project) {
                    (Reading::Python, Some(project)) => {
                        scanner.scan_file(&text, Language::Python, path, project)
                    }
                    (Reading::Python, None) => scanner.scan(&text, Language::Python),
                    (Reading::Answer, _) => scanner.scan_answer(&text, Language::Python),
                };
                Ok(Scanned {
                    path: shown,
                    result,
                })
            }
        }
    }
}

/// Scans the inputs on `jobs` threads (each takes the next unscanned input, so a few large
/// files do not hold up the rest) and returns the results in input order, with the inputs
/// that were skipped.
fn scan_all(
    inputs: &[Input],
    answers: bool,
    jobs: usize,
    profile: Profile,
    follow_imports: bool,
) -> (Vec<Scanned>, Vec<Skipped>) {
    let scanner = Scanner::with_profile(profile);
    let project = Project::new();
    let project = follow_imports.then_some(&project);
    let next = AtomicUsize::new(0);
    let jobs = jobs.clamp(1, inputs.len().max(1));
    let mut done: Vec<(usize, Result<Scanned, Skipped>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = inputs.get(i) else {
                            return mine;
                        };
                        mine.push((i, input.scan(&scanner, answers, project)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    let mut scanned = Vec::with_capacity(done.len());
    let mut skipped = Vec::new();
    for (_, outcome) in done {
        match outcome {
            Ok(s) => scanned.push(s),
            Err(s) => skipped.push(s),
        }
    }
    (scanned, skipped)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list_rules {
        list_rules(args.format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut inputs = Vec::new();
    for path in &args.paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            let text = decode_python_source(&bytes).map_err(|e| anyhow::anyhow!("stdin: {e}"))?;
            inputs.push(Input::Stdin(text.into_owned()));
            continue;
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
        if meta.is_dir() {
            inputs.extend(
                files_under(path)?
                    .into_iter()
                    .map(|f| Input::File(f, false)),
            );
        } else {
            inputs.push(Input::File(path.clone(), true));
        }
    }
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let (scanned, skipped) = scan_all(
        &inputs,
        args.answers,
        jobs,
        args.profile,
        !args.no_follow_imports,
    );
    for s in &skipped {
        eprintln!("{}: skipped: {}", s.path, s.reason);
    }
    // Stdout is line-buffered: pretty JSON would cost a write call per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Human => print_human(&mut out, &scanned, skipped.len())?,
        Format::Json => print_json(&mut out, &scanned, &skipped)?,
        Format::Sarif => {
            let log = sarif::sarif_log(
                scanned
                    .iter()
                    .map(|s| (s.path.as_str(), s.result.findings.as_slice())),
            );
            serde_json::to_writer_pretty(&mut out, &log)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    let failing = scanned
        .iter()
        .any(|s| s.result.has_findings_at_or_above(args.fail_on));
    Ok(if skipped.iter().any(|s| s.named) {
        ExitCode::from(2)
    } else if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Python and Markdown files under `dir`, sorted, skipping hidden, build and environment
/// directories.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                let skip = name.starts_with('.')
                    || matches!(
                        name.as_str(),
                        "target" | "node_modules" | "__pycache__" | "venv"
                    );
                if !skip {
                    pending.push(path);
                }
            } else if Language::from_path(&path).is_some()
                || matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("md" | "markdown")
                )
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn print_human(out: &mut impl Write, scanned: &[Scanned], skipped: usize) -> anyhow::Result<()> {
    let mut counts = [0usize; 4];
    for s in scanned {
        for Note {
            line,
            column,
            message,
        } in &s.result.notes
        {
            eprintln!("{}:{line}:{column}: note: {message}", s.path);
        }
        for f in &s.result.findings {
            let Finding {
                rule_id,
                cwe,
                severity,
                message,
                line,
                column,
                snippet,
                ..
            } = f;
            writeln!(
                out,
                "{}:{line}:{column}: {rule_id} [CWE-{cwe}] {severity}: {message}",
                s.path
            )?;
            writeln!(out, "    {snippet}")?;
            counts[*severity as usize] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let by_severity: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter(|sev| counts[**sev as usize] > 0)
        .map(|sev| format!("{} {sev}", counts[*sev as usize]))
        .collect();
    let detail = if by_severity.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_severity.join(", "))
    };
    let skipped = if skipped > 0 {
        format!(" ({skipped} skipped)")
    } else {
        String::new()
    };
    eprintln!(
        "{total} findings{detail} in {} inputs{skipped}",
        scanned.len()
    );
    Ok(())
}

/// `{"files": [{"path", "findings", "notes"}], "skipped": [{"path", "reason"}]}`,
/// serialized straight from the results.
fn print_json(
    out: &mut impl Write,
    scanned: &[Scanned],
    skipped: &[Skipped],
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        path: &'a str,
        findings: &'a [Finding],
        notes: &'a [Note],
    }
    #[derive(serde::Serialize)]
    struct Report<'a> {
        files: Vec<File<'a>>,
        skipped: &'a [Skipped],
    }
    let files = scanned
        .iter()
        .map(|s| File {
            path: &s.path,
            findings: &s.result.findings,
            notes: &s.result.notes,
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &Report { files, skipped })?;
    writeln!(out)?;
    Ok(())
}

fn list_rules(format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Human => {
            for rule in all_rules() {
                writeln!(
                    out,
                    "{:<28} CWE-{:<5} {:<8} {:<6} {:<7} {}",
                    rule.id,
                    rule.cwe,
                    rule.severity.as_str(),
                    rule.confidence.as_str(),
                    rule.profile.as_str(),
                    rule.title
                )?;
            }
        }
        Format::Json | Format::Sarif => {
            let rules: Vec<serde_json::Value> = all_rules()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id, "title": r.title, "language": r.language, "cwe": r.cwe,
                        "severity": r.severity, "confidence": r.confidence, "profile": r.profile, "message": r.message, "fix": r.fix,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &rules)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
