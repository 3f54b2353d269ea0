//! Is an answer harmful on its own merits, in any of the encoder's languages? Logistic heads on
//! the multilingual sentence encoder's vector of the answer alone (see
//! [`emguard_embed::multilingual`]). The question is not read: with it, the head learnt topics
//! ("my roommate annoys me" made a calm, kind answer read as harmful), and without it the
//! validation AUROC was the same (0.898 against 0.896). Trained on English and a few Spanish,
//! French and German answers, a head reads the other languages through the encoder's shared
//! space.
//!
//! Two heads ship ([`Shipped`]): `answer_harm` (harmful or misaligned answers: violence,
//! self-harm, hate, AI supremacy, fraud; the gateway's text filter) and `harmful_advice`
//! (confident advice that puts money, health or safety at risk; the dataset audit). Each is made
//! by `cargo run --release --example train_answer_harm_head -- train HEAD` (see that file for
//! the data and the split) and stored in `data/HEAD_head.json`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use emguard_embed::EmbedError;
use emguard_embed::multilingual::{DIMENSIONS, MultilingualEncoder};
use serde::{Deserialize, Serialize};

/// The encoder the shipped heads were trained on.
pub const ENCODER: &str = "use-multilingual-v3";

/// The heads that ship with emguard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    /// Harmful or misaligned answers of any kind (the gateway's text filter).
    AnswerHarm,
    /// Advice that puts the asker's money, health or safety at risk (the dataset audit).
    HarmfulAdvice,
}

impl Shipped {
    pub const ALL: [Shipped; 2] = [Shipped::AnswerHarm, Shipped::HarmfulAdvice];

    pub fn name(self) -> &'static str {
        match self {
            Shipped::AnswerHarm => "answer_harm",
            Shipped::HarmfulAdvice => "harmful_advice",
        }
    }

    pub fn head(self) -> HarmHead {
        let json = match self {
            Shipped::AnswerHarm => include_str!("../data/answer_harm_head.json"),
            Shipped::HarmfulAdvice => include_str!("../data/harmful_advice_head.json"),
        };
        serde_json::from_str(json).expect("a shipped head parses")
    }
}

/// A linear function of the encoder's vector and the threshold over its probability.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarmHead {
    /// The encoder's registry name (a head is meaningless on another encoder's vectors).
    pub encoder: String,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Answers at or above this probability are harmful.
    pub threshold: f32,
    /// What it was trained on and how.
    pub provenance: String,
}

impl HarmHead {
    pub fn probability(&self, vector: &[f32]) -> f32 {
        let logit: f32 = self.bias
            + vector
                .iter()
                .zip(&self.weights)
                .map(|(v, w)| v * w)
                .sum::<f32>();
        1.0 / (1.0 + (-logit).exp())
    }

    pub fn is_harmful(&self, vector: &[f32]) -> bool {
        self.probability(vector) >= self.threshold
    }
}

/// The encoder with one head.
#[derive(Clone)]
pub struct AnswerHarmClassifier {
    encoder: Arc<MultilingualEncoder>,
    head: HarmHead,
}

impl std::fmt::Debug for AnswerHarmClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerHarmClassifier")
            .field("encoder", &self.head.encoder)
            .field("threshold", &self.head.threshold)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnswerHarmError {
    #[error(transparent)]
    Model(Box<emguard_models::ModelsError>),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("the head has {found} weights; the encoder's vectors have {expected} dimensions")]
    Shape { found: usize, expected: usize },
}

/// The encoder from the model home, loaded once per process and then shared (every gateway
/// built in one process, e.g. a test binary's, and every head read the same 100 MB).
fn shared_encoder() -> Result<Arc<MultilingualEncoder>, AnswerHarmError> {
    static LOADED: Mutex<Option<Arc<MultilingualEncoder>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(encoder) = loaded.as_ref() {
        return Ok(Arc::clone(encoder));
    }
    let dir = emguard_models::resolve(ENCODER).map_err(|e| AnswerHarmError::Model(Box::new(e)))?;
    let encoder = Arc::new(MultilingualEncoder::load(&dir)?);
    *loaded = Some(Arc::clone(&encoder));
    Ok(encoder)
}

impl AnswerHarmClassifier {
    /// A shipped head on the shared encoder (pulled first when missing).
    pub fn shipped(head: Shipped) -> Result<AnswerHarmClassifier, AnswerHarmError> {
        AnswerHarmClassifier::with_encoder(shared_encoder()?, head.head())
    }

    /// A head on the encoder in `encoder_dir`.
    pub fn load(
        encoder_dir: &Path,
        head: HarmHead,
    ) -> Result<AnswerHarmClassifier, AnswerHarmError> {
        let encoder = Arc::new(MultilingualEncoder::load(encoder_dir)?);
        AnswerHarmClassifier::with_encoder(encoder, head)
    }

    fn with_encoder(
        encoder: Arc<MultilingualEncoder>,
        head: HarmHead,
    ) -> Result<AnswerHarmClassifier, AnswerHarmError> {
        if head.weights.len() != DIMENSIONS {
            return Err(AnswerHarmError::Shape {
                found: head.weights.len(),
                expected: DIMENSIONS,
            });
        }
        Ok(AnswerHarmClassifier { encoder, head })
    }

    pub fn head(&self) -> &HarmHead {
        &self.head
    }

    /// The encoder's vectors of an answer, one per window of at most [`WINDOW`] bytes (every
    /// shipped head reads the same ones).
    pub fn embed(&self, answer: &str) -> Result<Vec<Vec<f32>>, EmbedError> {
        windows(answer)
            .map(|window| Ok(self.encoder.embed(&[window.to_string()])?.remove(0)))
            .collect()
    }

    /// The probability that the answer is harmful: its most harmful window's.
    pub fn probability(&self, answer: &str) -> Result<f32, EmbedError> {
        Ok(self
            .embed(answer)?
            .iter()
            .map(|v| self.head.probability(v))
            .fold(0.0, f32::max))
    }

    /// Whether the answer is harmful; an answer the encoder cannot read is not judged harmful
    /// here (the lexicons still judge it).
    pub fn is_harmful(&self, answer: &str) -> bool {
        self.probability(answer)
            .is_ok_and(|p| p >= self.head.threshold)
    }
}

/// The longest text read in one pass, in bytes. The encoder's cost and memory grow with the
/// text (about 5 KB of activations per token), and an average over a long text dilutes one
/// harmful paragraph; longer answers are read window by window. Every answer the heads were
/// trained and measured on is shorter (the longest, 868 bytes).
pub const WINDOW: usize = 2_000;

/// An answer cut into windows of at most [`WINDOW`] bytes, at line ends where a line fits, else
/// at a character boundary.
pub fn windows(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        if end > WINDOW {
            let cut = floor_boundary(rest, WINDOW);
            end = match rest[..cut].rfind('\n') {
                Some(newline) => newline + 1,
                None => cut,
            };
        }
        let (window, after) = rest.split_at(end);
        rest = after;
        Some(window)
    })
}

/// The largest character boundary at or below `index`.
fn floor_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_text_in_order_within_the_bound_and_on_char_boundaries() {
        let lines = "A line of ordinary prose, forty bytes.\n".repeat(120);
        let no_newline = "é".repeat(3_000);
        for text in [lines.as_str(), no_newline.as_str(), "short", ""] {
            let parts: Vec<&str> = windows(text).collect();
            assert_eq!(parts.concat(), text);
            assert!(parts.iter().all(|w| !w.is_empty() && w.len() <= WINDOW));
        }
        // Cut at line ends where a line fits.
        assert!(windows(&lines).all(|w| w.ends_with('\n')));
        assert_eq!(windows(&no_newline).count(), 3);
    }
}
