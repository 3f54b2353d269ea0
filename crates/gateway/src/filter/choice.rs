//! Filtering a choice of an answer, every field of it ([`super::fields`]): whole
//! ([`filter_whole`]) or chunk by chunk ([`ChoiceStream`]).
//!
//! What a filter removes is removed from every field: a blocked choice keeps only the
//! withheld note; a redacted field is replaced; a tool call with a finding is dropped under
//! `redact` (its arguments cannot be half-run); and the logprobs, which repeat the content's
//! tokens, go with whatever they would give back: whole, they are dropped when anything was
//! changed; streamed, each token's logprob is sent once the text it belongs to was sent
//! unchanged, and none after the first change.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

use super::fields::{self, TEXT_FIELDS};
use super::stream::StreamFilter;
use super::{FilterPolicy, Filters, Verdict, WITHHELD};

/// What filtering one choice did.
#[derive(Debug, Default)]
pub struct ChoiceOutcome {
    pub blocked: bool,
    pub verdicts: Vec<Verdict>,
    /// The content as sent (for the trace).
    pub content: String,
}

/// Filters every field of a whole answer's `choice` in place.
pub fn filter_whole(
    filters: &Filters,
    policy: &FilterPolicy,
    user: &str,
    index: usize,
    choice: &mut Value,
) -> ChoiceOutcome {
    let mut outcome = ChoiceOutcome::default();
    let Some(message) = choice.get_mut("message").filter(|m| m.is_object()) else {
        return outcome;
    };
    let mut changed = false;
    for field in TEXT_FIELDS {
        let Some(text) = fields::text_of(&message[field]) else {
            continue;
        };
        let filtered = filters.check_field(policy, user, index, fields::verdict_name(field), &text);
        outcome.verdicts.extend(filtered.verdicts);
        if filtered.blocked {
            outcome.blocked = true;
        } else if filtered.text != text {
            message[field] = Value::String(filtered.text);
            changed = true;
        }
    }
    let mut dropped_call = false;
    if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
        let mut keep = Vec::new();
        for (k, call) in std::mem::take(calls).into_iter().enumerate() {
            let name = format!("tool_calls[{k}].function.arguments");
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            match judge_arguments(filters, policy, user, index, &name, arguments, &mut outcome) {
                Judged::Keep => keep.push(call),
                Judged::Drop => dropped_call = true,
            }
        }
        *calls = keep;
    }
    if let Some(arguments) = message["function_call"]["arguments"]
        .as_str()
        .map(str::to_owned)
    {
        let name = "function_call.arguments";
        if judge_arguments(filters, policy, user, index, name, &arguments, &mut outcome)
            == Judged::Drop
        {
            if let Some(m) = message.as_object_mut() {
                m.remove("function_call");
            }
            dropped_call = true;
        }
    }
    if outcome.blocked {
        choice["message"] = json!({"role": "assistant", "content": WITHHELD});
        choice["finish_reason"] = Value::String("content_filter".into());
        choice["logprobs"] = Value::Null;
        outcome.content = WITHHELD.to_string();
        return outcome;
    }
    if dropped_call {
        choice["finish_reason"] = Value::String("content_filter".into());
    }
    if changed || dropped_call {
        choice["logprobs"] = Value::Null;
    }
    outcome.content = fields::text_of(&choice["message"]["content"]).unwrap_or_default();
    outcome
}

#[derive(Debug, PartialEq)]
enum Judged {
    Keep,
    Drop,
}

fn judge_arguments(
    filters: &Filters,
    policy: &FilterPolicy,
    user: &str,
    index: usize,
    name: &str,
    arguments: &str,
    outcome: &mut ChoiceOutcome,
) -> Judged {
    let text = fields::arguments_text(arguments);
    let filtered = filters.check_field(policy, user, index, Some(name), &text);
    outcome.verdicts.extend(filtered.verdicts);
    if filtered.blocked {
        outcome.blocked = true;
        Judged::Drop
    } else if filtered.text != text {
        Judged::Drop
    } else {
        Judged::Keep
    }
}

/// A tool call held until its choice ends: its arguments are judged whole.
#[derive(Default)]
struct HeldCall {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

/// The filter state of one choice of a streamed answer.
pub struct ChoiceStream {
    filters: Filters,
    policy: FilterPolicy,
    user: String,
    index: usize,
    /// One filter per text field, in [`TEXT_FIELDS`] order.
    texts: Vec<StreamFilter>,
    calls: BTreeMap<u64, HeldCall>,
    legacy_call: Option<HeldCall>,
    logprobs: LogprobGate,
    blocked: bool,
    extra_verdicts: Vec<Verdict>,
    /// The content sent so far (for the trace).
    pub sent: String,
}

impl ChoiceStream {
    pub fn new(filters: &Filters, policy: &FilterPolicy, user: &str, index: usize) -> Self {
        let texts = TEXT_FIELDS
            .iter()
            .map(|field| {
                let f = StreamFilter::new(filters, policy, user, index);
                match fields::verdict_name(field) {
                    Some(name) => f.for_field(name),
                    None => f,
                }
            })
            .collect();
        ChoiceStream {
            filters: filters.clone(),
            policy: policy.clone(),
            user: user.to_string(),
            index,
            texts,
            calls: BTreeMap::new(),
            legacy_call: None,
            logprobs: LogprobGate::default(),
            blocked: false,
            extra_verdicts: Vec::new(),
            sent: String::new(),
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Holds each code region until judged (see [`StreamFilter::holding_code`]).
    pub fn holding_code(mut self) -> Self {
        self.texts = self
            .texts
            .into_iter()
            .map(StreamFilter::holding_code)
            .collect();
        self
    }

    /// Filters one chunk's `choice` in place; false when there is nothing of it to send.
    pub fn process(&mut self, choice: &mut Value) -> bool {
        if self.blocked {
            return false; // its final chunk was sent when it was blocked
        }
        let finished = !choice["finish_reason"].is_null();
        let mut delta = choice
            .get_mut("delta")
            .map(Value::take)
            .unwrap_or(Value::Null);
        let mut outs: Vec<Option<String>> = Vec::with_capacity(TEXT_FIELDS.len());
        let mut received_content = String::new();
        for (field, filter) in TEXT_FIELDS.iter().zip(self.texts.iter_mut()) {
            let input = fields::text_of(&delta[*field]);
            if *field == "content" {
                received_content = input.clone().unwrap_or_default();
            }
            let mut out = input.as_deref().map(|t| filter.push(t));
            if finished && !filter.is_blocked() {
                let rest = filter.finish();
                if !rest.is_empty() || out.is_some() {
                    out.get_or_insert_with(String::new).push_str(&rest);
                }
            }
            if filter.is_blocked() {
                self.blocked = true;
            }
            outs.push(out);
        }
        self.hold_calls(&mut delta);
        let mut dropped_call = false;
        if finished && !self.blocked {
            dropped_call = self.release_calls(&mut delta);
        }
        let content_out = outs[0].clone().unwrap_or_default();
        if self.blocked {
            self.sent.push_str(&content_out);
            self.logprobs.close();
            choice["delta"] = json!({"content": content_out});
            choice["finish_reason"] = Value::String("content_filter".into());
            choice["logprobs"] = Value::Null;
            return true;
        }
        for (field, out) in TEXT_FIELDS.iter().zip(outs) {
            match out {
                Some(text) => delta[*field] = Value::String(text),
                None => {
                    if let Some(d) = delta.as_object_mut() {
                        d.remove(*field);
                    }
                }
            }
        }
        self.sent.push_str(&content_out);
        let had_logprobs = choice.get("logprobs").is_some_and(|l| !l.is_null());
        let entries = if had_logprobs {
            choice["logprobs"]["content"]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let released = self
            .logprobs
            .pass(&received_content, &content_out, entries, finished);
        if had_logprobs || !released.is_empty() {
            choice["logprobs"] = if released.is_empty() && !self.logprobs.open {
                Value::Null
            } else {
                json!({"content": released, "refusal": null})
            };
        }
        if dropped_call {
            choice["finish_reason"] = Value::String("content_filter".into());
        }
        let news = finished
            || delta
                .as_object()
                .is_some_and(|d| d.values().any(|v| v.as_str() != Some("")))
            || choice["logprobs"]["content"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
        choice["delta"] = delta;
        news
    }

    /// Takes the tool-call pieces out of `delta` into the held calls.
    fn hold_calls(&mut self, delta: &mut Value) {
        let Some(d) = delta.as_object_mut() else {
            return;
        };
        if let Some(Value::Array(pieces)) = d.remove("tool_calls") {
            for (position, piece) in pieces.into_iter().enumerate() {
                let key = piece["index"].as_u64().unwrap_or(position as u64);
                let call = self.calls.entry(key).or_default();
                absorb(call, &piece);
            }
        }
        if let Some(piece) = d.remove("function_call") {
            let call = self.legacy_call.get_or_insert_with(HeldCall::default);
            let wrapped = json!({"function": piece});
            absorb(call, &wrapped);
        }
    }

    /// The choice ended: judge each held call and put those kept back into `delta`; true
    /// when a call was dropped.
    fn release_calls(&mut self, delta: &mut Value) -> bool {
        let mut dropped = false;
        let mut kept = Vec::new();
        let mut outcome = ChoiceOutcome::default();
        for (key, call) in std::mem::take(&mut self.calls) {
            let name = format!("tool_calls[{key}].function.arguments");
            let judged = judge_arguments(
                &self.filters,
                &self.policy,
                &self.user,
                self.index,
                &name,
                &call.arguments,
                &mut outcome,
            );
            if judged == Judged::Keep {
                kept.push(json!({
                    "index": key,
                    "id": call.id.unwrap_or(Value::Null),
                    "type": call.kind.unwrap_or_else(|| Value::String("function".into())),
                    "function": {"name": call.name, "arguments": call.arguments},
                }));
            } else {
                dropped = true;
            }
        }
        if let Some(call) = self.legacy_call.take() {
            let judged = judge_arguments(
                &self.filters,
                &self.policy,
                &self.user,
                self.index,
                "function_call.arguments",
                &call.arguments,
                &mut outcome,
            );
            if judged == Judged::Keep {
                delta["function_call"] = json!({"name": call.name, "arguments": call.arguments});
            } else {
                dropped = true;
            }
        }
        if outcome.blocked {
            self.blocked = true;
        }
        self.extra_verdicts.extend(outcome.verdicts);
        if !kept.is_empty() && !self.blocked {
            delta["tool_calls"] = Value::Array(kept);
        }
        dropped
    }

    /// How many verdicts the filters gave so far (cheap: a stream checks it per chunk).
    pub fn verdict_count(&self) -> usize {
        self.texts
            .iter()
            .map(StreamFilter::verdict_count)
            .sum::<usize>()
            + self.extra_verdicts.len()
    }

    /// The verdicts so far, unmerged (human review reads them while the stream goes on).
    pub fn verdicts_so_far(&self) -> Vec<Verdict> {
        let mut verdicts: Vec<Verdict> = self
            .texts
            .iter()
            .flat_map(|t| t.verdicts().iter().cloned())
            .collect();
        verdicts.extend(self.extra_verdicts.iter().cloned());
        verdicts
    }

    pub fn into_verdicts(self) -> Vec<Verdict> {
        let mut verdicts: Vec<Verdict> = self
            .texts
            .into_iter()
            .flat_map(StreamFilter::into_verdicts)
            .collect();
        verdicts.extend(self.extra_verdicts);
        verdicts
    }
}

fn absorb(call: &mut HeldCall, piece: &Value) {
    if let Some(id) = piece.get("id").filter(|v| !v.is_null()) {
        call.id = Some(id.clone());
    }
    if let Some(kind) = piece.get("type").filter(|v| !v.is_null()) {
        call.kind = Some(kind.clone());
    }
    if let Some(name) = piece["function"]["name"].as_str() {
        call.name.push_str(name);
    }
    if let Some(arguments) = piece["function"]["arguments"].as_str() {
        call.arguments.push_str(arguments);
    }
}

/// Releases the content's token logprobs once the text they spell was sent unchanged.
struct LogprobGate {
    open: bool,
    /// Content received and not yet sent.
    unsent: String,
    queue: VecDeque<(Value, usize)>,
    sent_bytes: usize,
    released_bytes: usize,
}

impl Default for LogprobGate {
    fn default() -> Self {
        LogprobGate {
            open: true,
            unsent: String::new(),
            queue: VecDeque::new(),
            sent_bytes: 0,
            released_bytes: 0,
        }
    }
}

impl LogprobGate {
    fn close(&mut self) {
        self.open = false;
        self.queue.clear();
        self.unsent.clear();
    }

    fn pass(&mut self, received: &str, sent: &str, entries: Vec<Value>, last: bool) -> Vec<Value> {
        if !self.open {
            return Vec::new();
        }
        self.unsent.push_str(received);
        if !self.unsent.starts_with(sent) {
            self.close(); // the text was changed: its tokens would give it back
            return Vec::new();
        }
        self.unsent.replace_range(..sent.len(), "");
        self.sent_bytes += sent.len();
        for e in entries {
            let len = e["token"].as_str().map_or(0, str::len);
            self.queue.push_back((e, len));
        }
        let mut out = Vec::new();
        let everything_sent = last && self.unsent.is_empty();
        while let Some((_, len)) = self.queue.front() {
            if everything_sent || self.released_bytes + len <= self.sent_bytes {
                if let Some((e, len)) = self.queue.pop_front() {
                    self.released_bytes += len;
                    out.push(e);
                }
            } else {
                break;
            }
        }
        out
    }
}
