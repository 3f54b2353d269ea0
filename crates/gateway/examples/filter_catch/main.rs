//! The output filters' catch table: how many answers of each file the gateway's filters
//! withhold under `block` (code at `min_severity: medium`, the default, and text), per field
//! the answer arrives in (the message content whole, the content streamed in 16-character
//! deltas, a tool call's arguments), through the gateway's own choice filters
//! (`filter::choice`, what the chat and completions routes run). Run by
//! bench/gateway/filter_catch.sh; files are chat JSONL (`{"messages": [...]}`), the answer the
//! last assistant message, read against the last user message.
//!
//! Usage: filter_catch LABEL=PATH [LABEL=PATH ...] (at most `EMGUARD_CATCH_ROWS` rows per
//! file, default all).

use std::io::BufRead;
use std::process::ExitCode;

use emguard_gateway::filter::choice::{ChoiceStream, filter_whole};
use emguard_gateway::filter::{FilterPolicy, Filters};
use serde_json::{Value, json};

/// Rows of one file and how many each field's filter withheld.
#[derive(Default)]
struct Counts {
    rows: usize,
    content: usize,
    streamed: usize,
    tool_arguments: usize,
}

fn main() -> ExitCode {
    let files: Vec<(String, String)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(l, p)| (l.to_string(), p.to_string()))
        })
        .collect();
    if files.is_empty() {
        eprintln!("usage: filter_catch LABEL=PATH [LABEL=PATH ...]");
        return ExitCode::from(2);
    }
    let limit: usize = std::env::var("EMGUARD_CATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let policy: FilterPolicy = serde_json::from_value(json!({
        "code": {"action": "block", "min_severity": "medium"},
        "text": {"action": "block"}
    }))
    .expect("a valid policy");
    let filters = Filters::new();
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
            counts.content += usize::from(whole(&filters, &policy, &user, content(&answer)));
            counts.streamed += usize::from(streamed(&filters, &policy, &user, &answer));
            counts.tool_arguments +=
                usize::from(whole(&filters, &policy, &user, tool_call(&answer)));
        }
        let pct = |k: usize| format!("{k} ({:.1}%)", 100.0 * k as f64 / counts.rows.max(1) as f64);
        println!(
            "| {label} | {} | {} | {} | {} |",
            counts.rows,
            pct(counts.content),
            pct(counts.streamed),
            pct(counts.tool_arguments)
        );
    }
    ExitCode::SUCCESS
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

/// The answer as a proposed action: a tool call whose arguments carry it.
fn tool_call(answer: &str) -> Value {
    let arguments = json!({"code": answer}).to_string();
    json!({"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "run", "arguments": arguments}}
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
    for piece in chars.chunks(16) {
        let piece: String = piece.iter().collect();
        let mut chunk = json!({"index": 0, "delta": {"content": piece}, "finish_reason": null});
        stream.process(&mut chunk);
    }
    let mut last = json!({"index": 0, "delta": {}, "finish_reason": "stop"});
    stream.process(&mut last);
    stream.into_verdicts().iter().any(|v| v.action == "blocked")
}
