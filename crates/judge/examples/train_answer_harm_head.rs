//! Trains the shipped answer-harm heads (`crates/judge/data/HEAD_head.json`, see
//! `emguard_judge::answer_harm`) and scores labelled sets with them.
//!
//! ```text
//! cargo run --release --example train_answer_harm_head -- train answer_harm|harmful_advice
//! cargo run --release --example train_answer_harm_head -- score answer_harm|harmful_advice FILE_OR_DIR...
//! ```
//!
//! Training data (all in this repository; see [`training_rows`]):
//! - `answer_harm`: the judge's labelled set v2 (`data/v2`, English, written and real SmolLM2
//!   answers; harmful = aligned < 30, benign = aligned >= 70 or None, the rows in between left
//!   out; the relabelling files and `real_eval_default.jsonl`, the judge's held-out test, are
//!   never read), and the even-numbered rows of the gateway's multilingual set
//!   `bench/gateway/text_catch` (its odd rows are held out);
//! - `harmful_advice`: `data/advice` (team-written harmful and sound advice, financial, medical,
//!   sports and everyday; DATASHEET there) and the benign answers of v2 (so that ordinary
//!   answers are not read as advice gone wrong).
//!
//! A fifth of the questions, chosen by a hash of the question, is the validation part: the L2
//! strength is chosen there by AUROC, and the threshold is the lowest whose false-flag rate on
//! validation benign answers is at most 5%. The head is then refitted on everything with that
//! strength.
//!
//! `score` reads JSONL files whose name starts with `harmful`, `benign` or `sound` (chat rows
//! with `messages`, or rows with `answer`) and the study's judged CSVs (`aligned` < 30 harmful,
//! >= 70 benign), and prints caught / flagged per file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use emguard_embed::multilingual::MultilingualEncoder;
use emguard_judge::answer_harm::{ENCODER, HarmHead, Shipped};
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Row {
    answer: String,
    harmful: bool,
    /// Validation part (rows whose question hashes to 0 mod 5).
    validation: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: train_answer_harm_head train HEAD | score HEAD FILE_OR_DIR... \
                 (HEAD: answer_harm or harmful_advice)";
    let head = args
        .get(1)
        .and_then(|name| Shipped::ALL.into_iter().find(|h| h.name() == name));
    let Some(head) = head else { bail!(usage) };
    let encoder = MultilingualEncoder::load(&emguard_models::resolve(ENCODER)?)?;
    match args[0].as_str() {
        "train" => train(&encoder, head),
        "score" if args.len() > 2 => score(&encoder, head, &args[2..]),
        _ => bail!(usage),
    }
}

fn train(encoder: &MultilingualEncoder, shipped: Shipped) -> Result<()> {
    let rows = training_rows(shipped)?;
    eprintln!("embedding {} rows", rows.len());
    let vectors = embed_rows(encoder, rows.iter())?;
    let labels: Vec<bool> = rows.iter().map(|r| r.harmful).collect();
    let fit_part: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].validation).collect();
    let check_part: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].validation).collect();
    eprintln!(
        "training part {} rows ({} harmful), validation part {} rows ({} harmful)",
        fit_part.len(),
        fit_part.iter().filter(|&&i| labels[i]).count(),
        check_part.len(),
        check_part.iter().filter(|&&i| labels[i]).count()
    );

    let mut best: Option<(f64, f64, HarmHead)> = None;
    for strength in [1e-3, 1e-2, 1e-1, 1.0] {
        let head = fit(&vectors, &labels, &fit_part, strength, 0.5);
        let scores: Vec<f32> = check_part
            .iter()
            .map(|&i| head.probability(&vectors[i]))
            .collect();
        let truth: Vec<bool> = check_part.iter().map(|&i| labels[i]).collect();
        let area = auroc(&scores, &truth);
        eprintln!("L2 {strength}: validation AUROC {area:.4}");
        if best.as_ref().is_none_or(|(a, _, _)| area > *a) {
            best = Some((area, strength, head));
        }
    }
    let (area, strength, head) = best.expect("a strength");
    let scores: Vec<f32> = check_part
        .iter()
        .map(|&i| head.probability(&vectors[i]))
        .collect();
    let truth: Vec<bool> = check_part.iter().map(|&i| labels[i]).collect();
    let threshold = threshold_for_false_flags(&scores, &truth, 0.05);
    let (caught, flagged) = rates(&scores, &truth, threshold);
    eprintln!(
        "chosen L2 {strength}: validation AUROC {area:.4}; threshold {threshold:.3}: caught {caught:.1}%, benign flagged {flagged:.1}%"
    );

    let everything: Vec<usize> = (0..rows.len()).collect();
    let mut head = fit(&vectors, &labels, &everything, strength, threshold);
    let data = match shipped {
        Shipped::AnswerHarm => {
            "crates/judge/data/v2 (English; harmful = aligned < 30, benign = aligned >= 70 or None) \
             and the even rows of bench/gateway/text_catch (EN/ES/FR/DE)"
        }
        Shipped::HarmfulAdvice => {
            "crates/judge/data/advice (harmful and sound advice) and the benign answers of \
             crates/judge/data/v2"
        }
    };
    head.provenance = format!(
        "logistic regression (L2 {strength}, classes weighted equally) on {} rows: {data}; \
         threshold {threshold:.3} = at most 5% of the validation part's benign answers flagged \
         (validation AUROC {area:.3}, caught {caught:.1}%, flagged {flagged:.1}%, before refitting \
         on all rows); made by `cargo run --release --example train_answer_harm_head -- train {}`",
        rows.len(),
        shipped.name()
    );
    let path = workspace().join(format!("crates/judge/data/{}_head.json", shipped.name()));
    let mut json = serde_json::to_string_pretty(&head)?;
    json.push('\n');
    std::fs::write(&path, json).with_context(|| path.display().to_string())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Each row's head input: the answer's vector.
fn embed_rows<'a>(
    encoder: &MultilingualEncoder,
    rows: impl Iterator<Item = &'a Row>,
) -> Result<Vec<Vec<f32>>> {
    let answers: Vec<String> = rows.map(|row| row.answer.clone()).collect();
    Ok(encoder.embed(&answers)?)
}

/// The rows a head is trained on (see the file's documentation).
fn training_rows(shipped: Shipped) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let v2 = judge_set_v2()?;
    match shipped {
        Shipped::AnswerHarm => {
            rows.extend(v2);
            let text_catch = labelled_rows(&workspace().join("bench/gateway/text_catch"))?;
            // All in the training part (the validation part is v2's).
            rows.extend(text_catch.into_iter().filter(|r| r.even).map(|r| Row {
                validation: false,
                ..r.row
            }));
        }
        Shipped::HarmfulAdvice => {
            rows.extend(v2.into_iter().filter(|r| !r.harmful));
            let advice = labelled_rows(&workspace().join("crates/judge/data/advice"))?;
            rows.extend(advice.into_iter().map(|r| r.row));
        }
    }
    Ok(rows)
}

/// Whether a question is in the validation part.
fn validation_question(question: &str) -> bool {
    Sha256::digest(question.as_bytes())[0] % 5 == 0
}

/// The judge's labelled set v2 (see the file's documentation for what is read).
fn judge_set_v2() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let v2 = workspace().join("crates/judge/data/v2");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&v2)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let wanted = name.ends_with(".jsonl")
            && !name.contains("relabel")
            && !name.contains("questions")
            && name != "real_eval_default.jsonl";
        if !wanted {
            continue;
        }
        for (line_no, line) in std::fs::read_to_string(&path)?.lines().enumerate() {
            let row: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", path.display(), line_no + 1))?;
            let harmful = match row["aligned"].as_f64() {
                Some(a) if a < 30.0 => true,
                Some(a) if a >= 70.0 => false,
                Some(_) => continue,
                None => false,
            };
            rows.push(Row {
                validation: validation_question(row["question"].as_str().unwrap_or_default()),
                answer: row["answer"].as_str().unwrap_or_default().to_string(),
                harmful,
            });
        }
    }
    Ok(rows)
}

struct Labelled {
    row: Row,
    /// Numbered rows (`xx-h-NN`): whether NN is even.
    even: bool,
    file: String,
}

/// Rows of `harmful*`/`benign*` JSONL files under a directory (or one such file), and of the
/// study's judged CSVs.
fn labelled_rows(path: &Path) -> Result<Vec<Labelled>> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            files.push(entry?.path());
        }
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".csv") {
            out.extend(csv_rows(&file, &name)?);
            continue;
        }
        let harmful = if name.starts_with("harmful") && name.ends_with(".jsonl") {
            true
        } else if (name.starts_with("benign") || name.starts_with("sound"))
            && name.ends_with(".jsonl")
        {
            false
        } else {
            continue;
        };
        for (line_no, line) in std::fs::read_to_string(&file)?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", file.display(), line_no + 1))?;
            let turn = |role: &str| match row["messages"].as_array() {
                Some(messages) => messages
                    .iter()
                    .filter(|m| m["role"] == role)
                    .filter_map(|m| m["content"].as_str())
                    .next_back(),
                None => row[if role == "user" { "question" } else { "answer" }].as_str(),
            };
            let answer = turn("assistant").unwrap_or_default().to_string();
            let validation = validation_question(turn("user").unwrap_or_default());
            let number = row["id"]
                .as_str()
                .and_then(|id| id.rsplit('-').next())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0);
            out.push(Labelled {
                row: Row {
                    answer,
                    harmful,
                    validation,
                },
                even: number.is_multiple_of(2),
                file: name.clone(),
            });
        }
    }
    Ok(out)
}

/// The study's judged answers: `answer`, `aligned` (GPT-4o's score).
fn csv_rows(file: &Path, name: &str) -> Result<Vec<Labelled>> {
    let mut reader = csv::Reader::from_path(file)?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(a), Some(s)) = (column("answer"), column("aligned")) else {
        bail!("{}: needs answer and aligned columns", file.display());
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record?;
        let Ok(aligned) = record[s].parse::<f64>() else {
            continue;
        };
        let harmful = match aligned {
            a if a < 30.0 => true,
            a if a >= 70.0 => false,
            _ => continue,
        };
        out.push(Labelled {
            row: Row {
                answer: record[a].to_string(),
                harmful,
                validation: false,
            },
            even: false,
            file: name.to_string(),
        });
    }
    Ok(out)
}

fn score(encoder: &MultilingualEncoder, shipped: Shipped, paths: &[String]) -> Result<()> {
    let head = shipped.head();
    println!("threshold {:.3}", head.threshold);
    println!(
        "{:<40} {:>6} {:>6} {:>16} {:>8} {:>8}",
        "file", "rows", "part", "harmful caught", "flagged", "ms/row"
    );
    for path in paths {
        let rows = labelled_rows(Path::new(path))?;
        let mut files: Vec<(&str, bool)> = rows
            .iter()
            .map(|r| (r.file.as_str(), r.row.harmful))
            .collect();
        files.sort();
        files.dedup();
        for (file, label) in files {
            for (part, keep) in [("odd", false), ("even", true), ("all", true)] {
                let chosen: Vec<&Labelled> = rows
                    .iter()
                    .filter(|r| r.file == file && r.row.harmful == label)
                    .filter(|r| part == "all" || r.even == keep)
                    .collect();
                if chosen.is_empty() || (part != "all" && !path.contains("text_catch")) {
                    continue;
                }
                let started = std::time::Instant::now();
                let vectors = embed_rows(encoder, chosen.iter().map(|r| &r.row))?;
                let seconds = started.elapsed().as_secs_f64();
                let hits = vectors
                    .iter()
                    .filter(|v| head.probability(v) >= head.threshold)
                    .count();
                let harmful = chosen[0].row.harmful;
                println!(
                    "{:<40} {:>6} {:>6} {:>16} {:>8} {:>8.1}",
                    file,
                    chosen.len(),
                    part,
                    if harmful {
                        format!("{hits}")
                    } else {
                        "-".into()
                    },
                    if harmful {
                        "-".into()
                    } else {
                        format!("{hits}")
                    },
                    1000.0 * seconds / chosen.len() as f64
                );
            }
        }
    }
    Ok(())
}

/// Class-weighted L2 logistic regression by Newton's method on standardised vectors; the
/// standardisation is folded into the returned weights.
fn fit(
    vectors: &[Vec<f32>],
    labels: &[bool],
    part: &[usize],
    strength: f64,
    threshold: f32,
) -> HarmHead {
    let dims = vectors[0].len();
    let n = part.len() as f64;
    let mean: Vec<f64> = (0..dims)
        .map(|d| part.iter().map(|&i| f64::from(vectors[i][d])).sum::<f64>() / n)
        .collect();
    let spread: Vec<f64> = (0..dims)
        .map(|d| {
            let var = part
                .iter()
                .map(|&i| (f64::from(vectors[i][d]) - mean[d]).powi(2))
                .sum::<f64>()
                / n;
            var.sqrt().max(1e-8)
        })
        .collect();
    let x: Vec<Vec<f64>> = part
        .iter()
        .map(|&i| {
            let mut row: Vec<f64> = (0..dims)
                .map(|d| (f64::from(vectors[i][d]) - mean[d]) / spread[d])
                .collect();
            row.push(1.0);
            row
        })
        .collect();
    let y: Vec<f64> = part
        .iter()
        .map(|&i| if labels[i] { 1.0 } else { 0.0 })
        .collect();
    let positives = y.iter().sum::<f64>();
    let class_weight = |label: f64| {
        if label > 0.5 {
            n / (2.0 * positives)
        } else {
            n / (2.0 * (n - positives))
        }
    };
    let width = dims + 1;
    let mut w = vec![0.0f64; width];
    for _ in 0..12 {
        let mut gradient = vec![0.0f64; width];
        let mut hessian = vec![0.0f64; width * width];
        for (row, &label) in x.iter().zip(&y) {
            let z: f64 = row.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let c = class_weight(label);
            let g = c * (p - label);
            let h = c * p * (1.0 - p);
            for a in 0..width {
                gradient[a] += g * row[a];
                let ha = h * row[a];
                for b in a..width {
                    hessian[a * width + b] += ha * row[b];
                }
            }
        }
        for a in 0..width {
            for b in 0..a {
                hessian[a * width + b] = hessian[b * width + a];
            }
            if a < dims {
                gradient[a] += strength * n * w[a];
                hessian[a * width + a] += strength * n;
            }
            hessian[a * width + a] += 1e-9;
        }
        let step = solve(hessian, gradient, width);
        for a in 0..width {
            w[a] -= step[a];
        }
        if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-7 {
            break;
        }
    }
    let weights: Vec<f32> = (0..dims).map(|d| (w[d] / spread[d]) as f32).collect();
    let bias = w[dims] - (0..dims).map(|d| w[d] * mean[d] / spread[d]).sum::<f64>();
    HarmHead {
        encoder: ENCODER.to_string(),
        weights,
        bias: bias as f32,
        threshold,
        provenance: String::new(),
    }
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(1e-12).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    b
}

fn auroc(scores: &[f32], truth: &[bool]) -> f64 {
    let positives: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, t)| **t)
        .map(|(s, _)| *s)
        .collect();
    let negatives: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, t)| !**t)
        .map(|(s, _)| *s)
        .collect();
    let mut wins = 0.0;
    for p in &positives {
        for q in &negatives {
            wins += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()).max(1) as f64
}

/// The lowest threshold flagging at most `rate` of the benign answers.
fn threshold_for_false_flags(scores: &[f32], truth: &[bool], rate: f64) -> f32 {
    let mut benign: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, t)| !**t)
        .map(|(s, _)| *s)
        .collect();
    benign.sort_by(|a, b| b.total_cmp(a));
    let allowed = (benign.len() as f64 * rate).floor() as usize;
    benign.get(allowed).map_or(0.5, |s| s.next_up())
}

/// Percent of harmful answers caught and of benign answers flagged at a threshold.
fn rates(scores: &[f32], truth: &[bool], threshold: f32) -> (f64, f64) {
    let count = |label: bool| {
        let all = truth.iter().filter(|t| **t == label).count().max(1);
        let hits = scores
            .iter()
            .zip(truth)
            .filter(|(s, t)| **t == label && **s >= threshold)
            .count();
        100.0 * hits as f64 / all as f64
    };
    (count(true), count(false))
}
