//! The decode loop shared by [`Model::generate`](crate::Model::generate) and the
//! [`Engine`](crate::Engine): a set of running sequences advanced one step at a time; sequences
//! may join and leave between steps (continuous batching).

use std::sync::Arc;

use crate::model::{Model, Result};
use crate::sampling::{Sampler, position_logprobs};
use crate::transformer::{Chunk, KvCache};
use crate::{Completion, FinishReason, PositionLogprobs, SamplingParams};

/// One answer being generated.
pub(crate) struct Sequence {
    /// Which request (caller's numbering) and which of its `n` answers.
    pub request: usize,
    pub index: usize,
    params: Arc<SamplingParams>,
    sampler: Sampler,
    cache: KvCache,
    /// Tokens to feed at the next step (the prompt, then the last sampled token).
    pending: Vec<u32>,
    prompt_tokens: usize,
    /// Most tokens the cache may hold (prompt + answer within the context window).
    max_positions: usize,
    tokens: Vec<u32>,
    bytes: Vec<u8>,
    /// Byte length of `bytes` after each token.
    token_ends: Vec<usize>,
    logprobs: Vec<PositionLogprobs>,
    /// Bytes of text already handed out by [`Sequence::take_delta`].
    streamed: usize,
    finish: Option<FinishReason>,
}

/// What one step produced for one sequence.
pub(crate) struct StepEvent {
    /// Position in the slice passed to [`step`].
    pub seq: usize,
    pub logprobs: Option<PositionLogprobs>,
}

impl Sequence {
    pub fn new(
        model: &Model,
        request: usize,
        index: usize,
        prompt: Vec<u32>,
        params: Arc<SamplingParams>,
    ) -> Sequence {
        let context = model.context_length();
        let max_positions = (prompt.len() + params.max_tokens).min(context);
        let params_max_tokens = params.max_tokens;
        Sequence {
            request,
            index,
            sampler: Sampler::new(&params, index),
            cache: KvCache::new(&model.transformer().cfg, max_positions),
            prompt_tokens: prompt.len(),
            pending: prompt,
            max_positions,
            params,
            tokens: Vec::new(),
            bytes: Vec::new(),
            token_ends: Vec::new(),
            logprobs: Vec::new(),
            streamed: 0,
            finish: (params_max_tokens == 0).then_some(FinishReason::Length),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    pub fn completion(&self) -> Completion {
        Completion {
            text: String::from_utf8_lossy(&self.bytes).into_owned(),
            tokens: self.tokens.clone(),
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            prompt_tokens: self.prompt_tokens,
            logprobs: (self.params.logprobs || self.params.top_logprobs > 0)
                .then(|| self.logprobs.clone()),
        }
    }

    /// New text since the last call that is safe to show: it cannot turn into a stop string
    /// and does not end inside a UTF-8 character. At the end, everything left.
    pub fn take_delta(&mut self) -> String {
        let mut end = self.bytes.len();
        if self.finish.is_none() {
            let held = self
                .params
                .stop
                .iter()
                .flat_map(|s| (1..s.len()).rev().map(move |n| &s.as_bytes()[..n]))
                .filter(|prefix| self.bytes.ends_with(prefix))
                .map(<[u8]>::len)
                .max()
                .unwrap_or(0);
            end -= held;
            end = utf8_boundary(&self.bytes[..end]);
        }
        let end = end.max(self.streamed);
        let delta = String::from_utf8_lossy(&self.bytes[self.streamed..end]).into_owned();
        self.streamed = end;
        delta
    }

    fn accept(&mut self, model: &Model, token: u32, logprobs: Option<PositionLogprobs>) {
        let tokenizer = model.tokenizer();
        if tokenizer.is_end_of_generation(token) {
            self.finish = Some(FinishReason::Stop);
            return;
        }
        let search_from = self
            .bytes
            .len()
            .saturating_sub(self.params.stop.iter().map(String::len).max().unwrap_or(0));
        self.tokens.push(token);
        self.bytes.extend_from_slice(tokenizer.piece(token));
        self.token_ends.push(self.bytes.len());
        if let Some(lp) = logprobs {
            self.logprobs.push(lp);
        }
        let stop_at = self
            .params
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                find(&self.bytes[search_from..], s.as_bytes()).map(|at| search_from + at)
            })
            .min();
        if let Some(at) = stop_at {
            self.bytes.truncate(at);
            // Keep the tokens that lie wholly before the stop string.
            let keep = self.token_ends.iter().take_while(|&&end| end <= at).count();
            self.tokens.truncate(keep);
            self.token_ends.truncate(keep);
            self.logprobs.truncate(keep.min(self.logprobs.len()));
            self.streamed = self.streamed.min(at);
            self.finish = Some(FinishReason::Stop);
        } else if self.tokens.len() >= self.params.max_tokens
            || self.cache.len() + 1 > self.max_positions
        {
            self.finish = Some(FinishReason::Length);
        } else {
            self.pending.clear();
            self.pending.push(token);
        }
    }
}

/// Advance every unfinished sequence by one token (feeding pending prompts first).
/// Returns one event per sequence that produced a token or finished.
pub(crate) fn step(model: &Model, seqs: &mut [&mut Sequence]) -> Result<Vec<StepEvent>> {
    let active: Vec<usize> = (0..seqs.len())
        .filter(|&i| !seqs[i].is_finished() && !seqs[i].pending.is_empty())
        .collect();
    if active.is_empty() {
        return Ok(Vec::new());
    }
    let logits = {
        let mut chunks: Vec<Chunk<'_>> = Vec::with_capacity(active.len());
        let mut wanted = vec![false; seqs.len()];
        active.iter().for_each(|&i| wanted[i] = true);
        for (i, s) in seqs.iter_mut().enumerate() {
            if wanted[i] {
                let s = &mut **s;
                chunks.push(Chunk {
                    tokens: &s.pending,
                    cache: &mut s.cache,
                    steering: s.params.steering.as_ref(),
                    capture: &[],
                    logit_rows: 1,
                });
            }
        }
        model.transformer().forward(&mut chunks)?.logits
    };
    let vocab = model.transformer().cfg.vocab_size;
    let mut events = Vec::with_capacity(active.len());
    for (row, &i) in active.iter().enumerate() {
        let s = &mut *seqs[i];
        let row_logits = &logits[row * vocab..(row + 1) * vocab];
        let token = s.sampler.sample(row_logits);
        let logprobs = (s.params.logprobs || s.params.top_logprobs > 0).then(|| {
            position_logprobs(
                row_logits,
                token,
                s.params.top_logprobs.min(20),
                model.tokenizer(),
            )
        });
        s.accept(model, token, logprobs.clone());
        events.push(StepEvent { seq: i, logprobs });
    }
    Ok(events)
}

/// Length of the longest prefix of `bytes` that does not end inside a UTF-8 character.
fn utf8_boundary(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Generate `requests` (already tokenized) to the end, at most `max_batch` sequences at once.
pub(crate) fn run_to_completion(
    model: &Model,
    requests: Vec<(Vec<u32>, Arc<SamplingParams>)>,
    max_batch: usize,
) -> Result<Vec<Vec<Completion>>> {
    let mut results: Vec<Vec<Option<Completion>>> =
        requests.iter().map(|(_, p)| vec![None; p.n]).collect();
    let mut waiting = requests
        .into_iter()
        .enumerate()
        .flat_map(|(r, (prompt, params))| {
            (0..params.n).map(move |i| (r, i, prompt.clone(), params.clone()))
        })
        .collect::<std::collections::VecDeque<_>>();
    let mut running: Vec<Sequence> = Vec::new();
    while !waiting.is_empty() || !running.is_empty() {
        while running.len() < max_batch.max(1) {
            let Some((r, i, prompt, params)) = waiting.pop_front() else {
                break;
            };
            running.push(Sequence::new(model, r, i, prompt, params));
        }
        let mut refs: Vec<&mut Sequence> = running.iter_mut().collect();
        step(model, &mut refs)?;
        running.retain(|s| {
            if s.is_finished() {
                results[s.request][s.index] = Some(s.completion());
            }
            !s.is_finished()
        });
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.expect("every answer finished"))
                .collect()
        })
        .collect())
}
