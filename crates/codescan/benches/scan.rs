//! Scanner benchmark on the study's data: flag rates on insecure / secure /
//! educational_insecure rows, recall per vulnerability class, throughput and per-call
//! latency. `bench/scan/run.sh` runs it next to bandit.
//!
//! `cargo bench -p emguard-codescan --bench scan`; `EMGUARD_SCAN_DUMP=dir` writes the
//! insecure rows it misses and the secure rows it flags, for review.

use std::path::PathBuf;
use std::time::Instant;

use emguard_codescan::{Language, ScanResult, Scanner};

#[path = "../tests/support/classes.rs"]
mod classes;
#[path = "../tests/support/shared.rs"]
mod shared;

fn main() {
    let Some(dir) = emguard_testkit::study_dir("scan benchmark") else {
        return;
    };
    let scanner = Scanner::new();
    let dump = std::env::var_os("EMGUARD_SCAN_DUMP").map(PathBuf::from);
    let mut all_snippets = Vec::new();
    let mut rates = Vec::new();
    println!("## Flag rates (emguard)\n");
    println!("| file | rows | flagged | rate |");
    println!("|---|---|---|---|");
    for file in [
        "insecure.jsonl",
        "secure.jsonl",
        "educational_insecure.jsonl",
    ] {
        let rows = shared::assistant_code(&dir.join(file));
        let results: Vec<ScanResult> = rows
            .iter()
            .map(|r| scanner.scan_answer(r, Language::Python))
            .collect();
        let flagged = results.iter().filter(|r| !r.findings.is_empty()).count();
        let rate = 100.0 * flagged as f64 / rows.len() as f64;
        println!("| {file} | {} | {flagged} | {rate:.1}% |", rows.len());
        rates.push(rate);
        if let Some(dump) = &dump {
            let want_flagged = file == "secure.jsonl";
            let out = dump.join(file.trim_end_matches(".jsonl"));
            std::fs::create_dir_all(&out).expect("create dump dir");
            for (i, (row, result)) in rows.iter().zip(&results).enumerate() {
                if result.findings.is_empty() != want_flagged {
                    let header: String = result
                        .findings
                        .iter()
                        .map(|f| format!("# {} line {}: {}\n", f.rule_id, f.line, f.snippet))
                        .collect();
                    std::fs::write(out.join(format!("{i:05}.py")), format!("{header}{row}"))
                        .expect("write dump");
                }
            }
        }
        if file == "insecure.jsonl" {
            per_class_recall(&rows, &results, dump.as_deref());
        }
        per_rule_counts(file, &results);
        all_snippets.extend(rows);
    }
    let speed = throughput(&scanner, &all_snippets);
    latency(&scanner, &all_snippets);
    compare_with_bandit(&rates, &speed);
}

/// Side by side with bandit's figures from the same run (`bench/scan/run.sh` writes them,
/// with those of the `emguard scan` command on the same directories).
fn compare_with_bandit(rates: &[f64], speed: &Throughput) {
    let Some(path) = std::env::var_os("EMGUARD_BANDIT_RESULTS") else {
        println!("\n(no bandit figures: run bench/scan/run.sh for the side-by-side)");
        return;
    };
    let text = std::fs::read_to_string(&path).expect("read bandit results");
    let peers: serde_json::Value = serde_json::from_str(&text).expect("bandit results are JSON");
    let bandit = Tool::from_json(&peers["files"]);
    println!("\n## Side by side (same run)\n");
    println!(
        "| tool | insecure flagged | secure flagged | educational_insecure flagged | snippets/s (wall) | snippets per CPU-second |"
    );
    println!("|---|---|---|---|---|---|");
    bandit.row(&format!(
        "{} (`bandit -r DIR`, one process)",
        peers["tool"].as_str().unwrap_or("bandit")
    ));
    let cli = peers["emguard_cli"]
        .as_array()
        .filter(|files| !files.is_empty())
        .map(|_| Tool::from_json(&peers["emguard_cli"]));
    if let Some(cli) = &cli {
        cli.row(&format!(
            "emguard (`emguard scan DIR`, {} threads)",
            peers["emguard_threads"].as_u64().unwrap_or(0)
        ));
    }
    println!(
        "| emguard library, 1 thread | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} |",
        rates[0],
        rates[1],
        rates[2],
        speed.single,
        speed.single_cpu.unwrap_or(f64::NAN)
    );
    println!(
        "| emguard library, {} threads | | | | {:.0} | |",
        speed.threads, speed.multi
    );
    println!();
    if let Some(cli) = &cli {
        println!(
            "emguard scan / bandit -r (each as users run it): {:.1}x by wall clock, {:.1}x per CPU-second",
            cli.speed() / bandit.speed(),
            cli.cpu_speed() / bandit.cpu_speed()
        );
    }
    println!(
        "emguard library on 1 thread / bandit: {:.1}x by wall clock, {:.1}x per CPU-second",
        speed.single / bandit.speed(),
        speed.single_cpu.unwrap_or(f64::NAN) / bandit.cpu_speed()
    );
}

/// A command-line tool's figures over the three data files.
struct Tool {
    /// (rows, flagged) per data file.
    files: Vec<(f64, f64)>,
    seconds: f64,
    cpu_seconds: f64,
}

impl Tool {
    fn from_json(files: &serde_json::Value) -> Self {
        let files = files.as_array().expect("per-file figures");
        let sum = |key: &str| -> f64 {
            files
                .iter()
                .map(|f| f[key].as_f64().unwrap_or(f64::NAN))
                .sum()
        };
        Tool {
            files: files
                .iter()
                .map(|f| {
                    (
                        f["rows"].as_f64().unwrap_or(0.0),
                        f["flagged"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect(),
            seconds: sum("seconds"),
            cpu_seconds: sum("cpu_seconds"),
        }
    }

    fn rows(&self) -> f64 {
        self.files.iter().map(|(rows, _)| rows).sum()
    }

    fn speed(&self) -> f64 {
        self.rows() / self.seconds
    }

    fn cpu_speed(&self) -> f64 {
        self.rows() / self.cpu_seconds
    }

    fn row(&self, name: &str) {
        let rates: Vec<String> = self
            .files
            .iter()
            .map(|(rows, flagged)| format!("{:.1}%", 100.0 * flagged / rows))
            .collect();
        println!(
            "| {name} | {} | {:.0} | {:.0} |",
            rates.join(" | "),
            self.speed(),
            self.cpu_speed()
        );
    }
}

fn per_class_recall(rows: &[String], results: &[ScanResult], dump: Option<&std::path::Path>) {
    println!("\n### Recall per class on insecure.jsonl (keyword-labelled rows)\n");
    println!("| class | rows | flagged by a rule of the class | recall |");
    println!("|---|---|---|---|");
    for class in classes::CLASSES {
        let mut total = 0;
        let mut hit = 0;
        for (row, result) in rows.iter().zip(results) {
            if (class.matches)(row) {
                total += 1;
                if result
                    .findings
                    .iter()
                    .any(|f| class.rules.contains(&f.rule_id.as_str()))
                {
                    hit += 1;
                } else if let Some(dump) = dump {
                    let out = dump
                        .join("missed")
                        .join(class.name.replace([' ', ':', '/'], "_"));
                    std::fs::create_dir_all(&out).expect("create dump dir");
                    std::fs::write(out.join(format!("{:05}.py", row_index(rows, row))), row)
                        .expect("write dump");
                }
            }
        }
        if total > 0 {
            println!(
                "| {} | {total} | {hit} | {:.1}% |",
                class.name,
                100.0 * hit as f64 / total as f64
            );
        }
    }
}

fn row_index(rows: &[String], row: &String) -> usize {
    rows.iter().position(|r| std::ptr::eq(r, row)).unwrap_or(0)
}

fn per_rule_counts(file: &str, results: &[ScanResult]) {
    let mut counts: Vec<(&str, usize)> = emguard_codescan::all_rules()
        .map(|r| {
            (
                r.id,
                results
                    .iter()
                    .filter(|res| res.findings.iter().any(|f| f.rule_id == r.id))
                    .count(),
            )
        })
        .collect();
    counts.retain(|(_, n)| *n > 0);
    let listing: Vec<String> = counts.iter().map(|(id, n)| format!("{id} {n}")).collect();
    println!("\nrows per rule in {file}: {}\n", listing.join(", "));
}

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`):
/// unlike wall time, not inflated when other processes share the cores.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Snippets per second of the library: on one thread (wall clock and CPU time) and on all
/// threads.
struct Throughput {
    single: f64,
    single_cpu: Option<f64>,
    multi: f64,
    threads: usize,
}

fn throughput(scanner: &Scanner, snippets: &[String]) -> Throughput {
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut flagged = 0usize;
    for s in snippets {
        flagged += usize::from(!scanner.scan_answer(s, Language::Python).findings.is_empty());
    }
    let single = snippets.len() as f64 / start.elapsed().as_secs_f64();
    let single_cpu = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| snippets.len() as f64 / ((b - a) as f64 / 1e9));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let chunk = snippets.len().div_ceil(threads);
    std::thread::scope(|s| {
        for part in snippets.chunks(chunk) {
            s.spawn(move || {
                part.iter()
                    .filter(|t| !scanner.scan_answer(t, Language::Python).findings.is_empty())
                    .count()
            });
        }
    });
    let multi = snippets.len() as f64 / start.elapsed().as_secs_f64();
    println!("## Throughput\n");
    println!(
        "emguard library: {single:.0} snippets/s on 1 thread ({} per CPU-second), {multi:.0} snippets/s on {threads} threads ({} snippets, {flagged} flagged)",
        single_cpu.map_or("?".to_string(), |c| format!("{c:.0}")),
        snippets.len()
    );
    Throughput {
        single,
        single_cpu,
        multi,
        threads,
    }
}

fn latency(scanner: &Scanner, snippets: &[String]) {
    // Typical gateway output: snippets of 300-500 characters. Each is timed 5 times; the
    // per-snippet minimum removes time the OS gave to other processes (the machine is
    // shared), the raw samples are reported too.
    let typical: Vec<&String> = snippets
        .iter()
        .filter(|s| (300..=500).contains(&s.len()))
        .collect();
    let mut raw = Vec::new();
    let mut best = Vec::new();
    for s in &typical {
        let mut min = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            std::hint::black_box(scanner.scan(s, Language::Python));
            let us = start.elapsed().as_nanos() as f64 / 1000.0;
            raw.push(us);
            min = min.min(us);
        }
        best.push(min);
    }
    let pct = |samples: &mut Vec<f64>, p: f64| {
        samples.sort_by(f64::total_cmp);
        samples[((samples.len() - 1) as f64 * p) as usize]
    };
    println!(
        "\n## Latency of Scanner::scan on {} snippets of 300-500 chars\n",
        typical.len()
    );
    println!(
        "per-snippet best of 5: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        pct(&mut best, 0.5),
        pct(&mut best, 0.9),
        pct(&mut best, 0.99),
        pct(&mut best, 1.0)
    );
    println!(
        "all {} samples:        p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us",
        raw.len(),
        pct(&mut raw, 0.5),
        pct(&mut raw, 0.9),
        pct(&mut raw, 0.99),
        pct(&mut raw, 1.0)
    );
}
