//! The decode loop shared by [`Model::generate`](crate::Model::generate) and the
//! [`Engine`](crate::Engine): a set of running sequences advanced one step at a time; sequences
//! may join and leave between steps (continuous batching).

use std::sync::{Arc, OnceLock};

use crate::model::{Model, Result, RuntimeError};
use crate::parallel;
use crate::sampling::{Sampler, position_logprobs};
use crate::transformer::{Chunk, KvCache};
use crate::{CancelToken, Completion, FinishReason, PositionLogprobs, SamplingParams};

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
    /// The prompt's prefill, shared by the `n` answers of one request (`None` when `n` is 1):
    /// the first answer to reach the model fills it, the others start from a copy.
    shared_prefill: Option<Arc<OnceLock<Prefill>>>,
}

/// A prompt run through the model once: its cache and the logits after its last token.
struct Prefill {
    cache: KvCache,
    logits: Vec<f32>,
}

/// What one step produced for one sequence.
pub(crate) struct StepEvent {
    /// Position in the slice passed to [`step`].
    pub seq: usize,
    pub logprobs: Option<PositionLogprobs>,
}

impl Sequence {
    /// The `params.n` answers of one request; they share the prompt's prefill.
    pub fn answers(
        model: &Model,
        request: usize,
        prompt: &[u32],
        params: &Arc<SamplingParams>,
    ) -> Vec<Sequence> {
        let shared = (params.n > 1).then(|| Arc::new(OnceLock::new()));
        (0..params.n)
            .map(|index| {
                let mut s = Sequence::new(model, request, index, prompt.to_vec(), params.clone());
                s.shared_prefill = shared.clone();
                s
            })
            .collect()
    }

    fn new(
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
            shared_prefill: None,
        }
    }

    /// The prompt is still to be run through the model.
    fn is_fresh(&self) -> bool {
        !self.is_finished() && self.cache.len() == 0
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
///
/// Of the fresh answers of one request, only the first runs its prompt through the model; the
/// others, in this step or a later one, copy its cache and sample from its logits. The copy is
/// bit for bit what their own prefill would give (a row's result does not depend on the rest
/// of the batch), so each answer's text is unchanged.
pub(crate) fn step(model: &Model, seqs: &mut [&mut Sequence]) -> Result<Vec<StepEvent>> {
    let fresh: Vec<bool> = seqs.iter().map(|s| s.is_fresh()).collect();
    let mut forward = vec![false; seqs.len()];
    for i in 0..seqs.len() {
        let s = &*seqs[i];
        if s.is_finished() || s.pending.is_empty() {
            continue;
        }
        forward[i] = match (&s.shared_prefill, fresh[i]) {
            (Some(shared), true) => {
                shared.get().is_none()
                    && !(0..i).any(|j| forward[j] && same_prefill(&seqs[j].shared_prefill, shared))
            }
            _ => true,
        };
    }
    let logits = {
        let mut chunks: Vec<Chunk<'_>> = Vec::new();
        for (s, _) in seqs.iter_mut().zip(&forward).filter(|(_, f)| **f) {
            let s = &mut **s;
            chunks.push(Chunk {
                tokens: &s.pending,
                cache: &mut s.cache,
                steering: s.params.steering.as_ref(),
                capture: &[],
                logit_rows: 1,
            });
        }
        if chunks.is_empty() {
            Vec::new()
        } else {
            model.transformer().forward(&mut chunks)?.logits
        }
    };
    let vocab = model.transformer().cfg.vocab_size;
    // Where each sampling sequence's logits are: its row of this step, or a sibling's prefill.
    let mut sources: Vec<(usize, Source)> = Vec::new();
    let mut row = 0;
    for (i, s) in seqs.iter_mut().enumerate() {
        if forward[i] {
            if let Some(shared) = s.shared_prefill.as_ref().filter(|_| fresh[i]) {
                let logits = logits[row * vocab..(row + 1) * vocab].to_vec();
                let cache = s.cache.fork(s.cache.len());
                // Only the first of the request's answers gets here (see above).
                let _ = shared.set(Prefill { cache, logits });
            }
            sources.push((i, Source::Row(row)));
            row += 1;
        }
    }
    for (i, s) in seqs.iter_mut().enumerate() {
        if !forward[i]
            && fresh[i]
            && !s.pending.is_empty()
            && let Some(shared) = s.shared_prefill.clone()
            && let Some(prefill) = shared.get()
        {
            s.cache = prefill.cache.fork(s.max_positions);
            sources.push((i, Source::Shared(shared.clone())));
        }
    }
    sources.sort_by_key(|(i, _)| *i);
    // Each sequence samples with its own generator: in parallel, same choices as one by one.
    let mut picks: Vec<Pick<'_>> = Vec::with_capacity(sources.len());
    let mut next = sources.iter().peekable();
    for (i, s) in seqs.iter_mut().enumerate() {
        if let Some((_, source)) = next.next_if(|(j, _)| *j == i) {
            picks.push(Pick {
                sampler: &mut s.sampler,
                params: &s.params,
                logits: match source {
                    Source::Row(r) => &logits[r * vocab..(r + 1) * vocab],
                    Source::Shared(p) => &p.get().expect("filled").logits,
                },
                token: 0,
                logprobs: None,
            });
        }
    }
    parallel::for_each_mut(&mut picks, |_, pick| {
        pick.token = pick.sampler.sample(pick.logits);
        let p = pick.params;
        pick.logprobs = (p.logprobs || p.top_logprobs > 0).then(|| {
            position_logprobs(
                pick.logits,
                pick.token,
                p.top_logprobs.min(20),
                model.tokenizer(),
            )
        });
    });
    let picks: Vec<(u32, Option<PositionLogprobs>)> =
        picks.into_iter().map(|p| (p.token, p.logprobs)).collect();
    let mut events = Vec::with_capacity(picks.len());
    for ((i, _), (token, logprobs)) in sources.iter().zip(picks) {
        seqs[*i].accept(model, token, logprobs.clone());
        events.push(StepEvent { seq: *i, logprobs });
    }
    Ok(events)
}

fn same_prefill(a: &Option<Arc<OnceLock<Prefill>>>, b: &Arc<OnceLock<Prefill>>) -> bool {
    a.as_ref().is_some_and(|a| Arc::ptr_eq(a, b))
}

/// Where a sampling sequence's logits are this step.
enum Source {
    Row(usize),
    Shared(Arc<OnceLock<Prefill>>),
}

/// One sequence's sampling work in a step.
struct Pick<'a> {
    sampler: &'a mut Sampler,
    params: &'a SamplingParams,
    logits: &'a [f32],
    token: u32,
    logprobs: Option<PositionLogprobs>,
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

/// Generate `requests` (already tokenized) to the end, at most `max_batch` sequences at once,
/// unless `cancel` is cancelled (checked before every step).
pub(crate) fn run_to_completion(
    model: &Model,
    requests: Vec<(Vec<u32>, Arc<SamplingParams>)>,
    max_batch: usize,
    cancel: &CancelToken,
) -> Result<Vec<Vec<Completion>>> {
    let mut results: Vec<Vec<Option<Completion>>> =
        requests.iter().map(|(_, p)| vec![None; p.n]).collect();
    let mut waiting = requests
        .into_iter()
        .enumerate()
        .flat_map(|(r, (prompt, params))| Sequence::answers(model, r, &prompt, &params))
        .collect::<std::collections::VecDeque<_>>();
    let mut running: Vec<Sequence> = Vec::new();
    while !waiting.is_empty() || !running.is_empty() {
        if cancel.is_cancelled() {
            return Err(RuntimeError::Cancelled);
        }
        while running.len() < max_batch.max(1) {
            let Some(s) = waiting.pop_front() else {
                break;
            };
            running.push(s);
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::{ChatMessage, Engine, EngineEvent, GenerateRequest, LoadOptions, Prompt};

    /// The real SmolLM2 GGUF, where `emguard models pull` puts it (as in tests/common).
    fn smollm2() -> Model {
        let home = std::env::var_os("EMGUARD_HOME").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/emguard"),
            PathBuf::from,
        );
        let dir = home.join("models/smollm2-135m-instruct");
        let path = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run `emguard models pull`)", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
            .expect("a .gguf in the model directory");
        Model::load(&path, &LoadOptions::default()).expect("loading SmolLM2")
    }

    fn story(seed: u64, n: usize) -> GenerateRequest {
        GenerateRequest {
            prompt: Prompt::Chat(vec![ChatMessage::user("Tell me a story about a dragon.")]),
            params: SamplingParams {
                temperature: 1.0,
                max_tokens: 12,
                seed,
                n,
                ..Default::default()
            },
        }
    }

    #[test]
    fn answers_of_one_request_share_one_prefill_and_keep_their_texts() {
        // Its own model: the prefill count is per model, other tests do not touch it.
        let model = Arc::new(smollm2());
        let prefills = || model.transformer().prefills();

        let before = prefills();
        let together = model.generate(&[story(7, 4)]).unwrap().remove(0);
        assert_eq!(prefills() - before, 1, "four answers, one prefill");

        // Each answer alone (seed 7 + i, n = 1) runs its own prefill and gives the same text.
        let before = prefills();
        for (i, answer) in together.iter().enumerate() {
            let alone = model.generate(&[story(7 + i as u64, 1)]).unwrap().remove(0);
            assert_eq!(&alone[0], answer);
        }
        assert_eq!(prefills() - before, 4);
        assert!(together.windows(2).any(|w| w[0].text != w[1].text));

        // An engine with two slots: answers 2 and 3 join steps after the prefill, from its copy.
        let before = prefills();
        let engine = Engine::spawn(model.clone(), 2);
        let mut events = engine.submit(story(7, 4));
        let mut done: Vec<Option<Completion>> = vec![None; 4];
        while done.iter().any(Option::is_none) {
            match events
                .blocking_recv()
                .expect("events until every answer is done")
            {
                EngineEvent::Done { index, completion } => done[index] = Some(completion),
                EngineEvent::Error(e) => panic!("{e}"),
                EngineEvent::Delta { .. } => {}
            }
        }
        assert_eq!(prefills() - before, 1);
        let done: Vec<Completion> = done.into_iter().map(Option::unwrap).collect();
        assert_eq!(done, together);
    }
}
