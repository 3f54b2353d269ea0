//! The output filters' catch table: how many answers of each file the gateway's filters
//! withhold under `block` (code at `min_severity: medium`, the default, and text), per field
//! the answer arrives in (the message content whole, the content streamed in 16-character
//! deltas, a tool call's arguments), through the gateway's own choice filters
//! (`filter::choice`, what the chat and completions routes run). Run by
//! bench/gateway/filter_catch.sh; files are chat JSONL (`{"messages": [...]}`), the answer the
//! last assistant message, read against the last user message.
//!
//! With `--http EMGUARD` (the `emguard` binary) the same rows also go end to end: through a
//! real `emguard serve` over HTTP, from an upstream on 127.0.0.1 that replays each row's
//! answer ([`http`]). The table is then the HTTP counts, followed by every row where HTTP and
//! the direct call disagree (there should be none: a difference is a bug).
//!
//! The text filter reads answers with the gateway's default model (`server.text_model`)
//! beside its lexicons; `--lexicons-only` leaves the model out (`text_model: off`).
//!
//! Usage: filter_catch [--lexicons-only] [--http EMGUARD] LABEL=PATH [LABEL=PATH ...] (at most
//! `EMGUARD_CATCH_ROWS` rows per file, default all).

mod http;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use emguard_judge::answer_harm::{AnswerHarmClassifier, Shipped};

use emguard_gateway::filter::choice::{ChoiceStream, filter_whole};
use emguard_gateway::filter::{FilterPolicy, Filters};
use serde_json::{Value, json};

/// The size of a streamed delta, in characters, in both modes.
const STREAM_DELTA_CHARS: usize = 16;
const FIELDS: [&str; 3] = ["content, whole", "content, streamed", "tool arguments"];
/// Disagreeing rows printed per file (all are counted).
const SHOWN_DIFFERENCES: usize = 20;

/// Rows of one file and how many each field's filter withheld.
#[derive(Default)]
struct Counts {
    rows: usize,
    withheld: [usize; 3],
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let lexicons_only = args.iter().any(|a| a == "--lexicons-only");
    args.retain(|a| a != "--lexicons-only");
    let emguard = match args.iter().position(|a| a == "--http") {
        Some(i) if i + 1 < args.len() => {
            let path = PathBuf::from(args.remove(i + 1));
            args.remove(i);
            Some(path)
        }
        Some(_) => {
            eprintln!("error: --http needs the path of the emguard binary");
            return ExitCode::from(2);
        }
        None => None,
    };
    let files: Vec<(String, String)> = args
        .iter()
        .filter_map(|a| {
            a.split_once('=')
                .map(|(l, p)| (l.to_string(), p.to_string()))
        })
        .collect();
    if files.is_empty() {
        eprintln!("usage: filter_catch [--http EMGUARD] LABEL=PATH [LABEL=PATH ...]");
        return ExitCode::from(2);
    }
    let limit: usize = std::env::var("EMGUARD_CATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let gateway = match emguard
        .as_deref()
        .map(|path| http::Gateway::start(path, lexicons_only))
        .transpose()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let policy: FilterPolicy = serde_json::from_value(json!({
        "code": {"action": "block", "min_severity": "medium"},
        "text": {"action": "block"}
    }))
    .expect("a valid policy");
    let filters = if lexicons_only {
        Filters::new()
    } else {
        match AnswerHarmClassifier::shipped(Shipped::AnswerHarm) {
            Ok(model) => Filters::new().with_answer_judge(Arc::new(model)),
            Err(e) => {
                eprintln!("error: the text filter's model: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let mut differences: Vec<String> = Vec::new();
    let mut failed = false;
    if gateway.is_some() {
        println!("Over HTTP, through `emguard serve` (filters on `block`):");
        println!();
    }
    println!("| set | rows | content, whole | content, streamed | tool arguments |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, path) in &files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {path}: {e}");
                return ExitCode::from(1);
            }
        };
        let mut counts = Counts::default();
        let mut differing = 0;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            if counts.rows >= limit {
                break;
            }
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {path}:{}: {e}", n + 1);
                    return ExitCode::from(1);
                }
            };
            let Some((user, answer)) = turn(&line) else {
                eprintln!("error: {path}:{}: no user and assistant message", n + 1);
                return ExitCode::from(1);
            };
            counts.rows += 1;
            let direct = [
                whole(&filters, &policy, &user, content(&answer)),
                streamed(&filters, &policy, &user, &answer),
                whole(&filters, &policy, &user, tool_call(&answer)),
            ];
            let Some(gateway) = &gateway else {
                for (count, withheld) in counts.withheld.iter_mut().zip(direct) {
                    *count += usize::from(withheld);
                }
                continue;
            };
            let over_http = [
                gateway.content(&user, &answer),
                gateway.streamed(&user, &answer),
                gateway.tool_call(&user, &answer),
            ];
            for (k, (received, withheld)) in over_http.into_iter().zip(direct).enumerate() {
                counts.withheld[k] += usize::from(received == http::Received::Withheld);
                let agrees = match &received {
                    http::Received::Withheld => withheld,
                    http::Received::Delivered => !withheld,
                    http::Received::Other(_) => false,
                };
                if !agrees {
                    failed = true;
                    differing += 1;
                    if differing <= SHOWN_DIFFERENCES {
                        differences.push(format!(
                            "{label}, {path}:{} ({}): direct {}, HTTP {received:?}",
                            n + 1,
                            FIELDS[k],
                            if withheld { "withheld" } else { "delivered" }
                        ));
                    }
                }
            }
        }
        if differing > SHOWN_DIFFERENCES {
            differences.push(format!(
                "{label}: {} more differences not shown",
                differing - SHOWN_DIFFERENCES
            ));
        }
        let pct = |k: usize| format!("{k} ({:.1}%)", 100.0 * k as f64 / counts.rows.max(1) as f64);
        println!(
            "| {label} | {} | {} | {} | {} |",
            counts.rows,
            pct(counts.withheld[0]),
            pct(counts.withheld[1]),
            pct(counts.withheld[2])
        );
    }
    if gateway.is_some() {
        println!();
        if differences.is_empty() {
            println!(
                "HTTP and direct agree on every row and field (same answers withheld, the rest delivered unchanged)."
            );
        } else {
            println!("Rows where HTTP and the direct call disagree:");
            for d in &differences {
                println!("- {d}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The last user message and the last assistant message of a chat row.
fn turn(line: &str) -> Option<(String, String)> {
    let row: Value = serde_json::from_str(line).ok()?;
    let messages = row["messages"].as_array()?;
    let last = |role: &str| {
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .map(str::to_owned)
    };
    Some((last("user")?, last("assistant")?))
}

fn content(answer: &str) -> Value {
    json!({"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"})
}

/// The arguments of the tool call that carries an answer.
fn tool_arguments(answer: &str) -> String {
    json!({"code": answer}).to_string()
}

/// The answer as a proposed action: a tool call whose arguments carry it.
fn tool_call(answer: &str) -> Value {
    json!({"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "run", "arguments": tool_arguments(answer)}}
    ]}, "finish_reason": "tool_calls"})
}

/// Whether the whole answer's filter withheld something (the answer, or the tool call).
fn whole(filters: &Filters, policy: &FilterPolicy, user: &str, mut choice: Value) -> bool {
    let outcome = filter_whole(filters, policy, user, 0, &mut choice);
    outcome.blocked || outcome.verdicts.iter().any(|v| v.action == "blocked")
}

/// Whether the stream's filter withheld the answer, fed in 16-character deltas.
fn streamed(filters: &Filters, policy: &FilterPolicy, user: &str, answer: &str) -> bool {
    let mut stream = ChoiceStream::new(filters, policy, user, 0);
    let chars: Vec<char> = answer.chars().collect();
    for piece in chars.chunks(STREAM_DELTA_CHARS) {
        let piece: String = piece.iter().collect();
        let mut chunk = json!({"index": 0, "delta": {"content": piece}, "finish_reason": null});
        stream.process(&mut chunk);
    }
    let mut last = json!({"index": 0, "delta": {}, "finish_reason": "stop"});
    stream.process(&mut last);
    stream.into_verdicts().iter().any(|v| v.action == "blocked")
}
