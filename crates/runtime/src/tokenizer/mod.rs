//! GPT-2 style byte-level BPE built from GGUF metadata (`tokenizer.ggml.*`), giving the same ids
//! as llama.cpp: pre-tokenizer by `tokenizer.ggml.pre`, merges by rank, control tokens matched
//! literally in the text when `parse_special`.

mod pretokenize;

use std::collections::HashMap;

use candle_core::quantized::gguf_file;

pub use pretokenize::PreTokenizer;

use crate::gguf::Metadata;
use crate::model::{Result, RuntimeError};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `LLAMA_TOKEN_TYPE_*`).
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Tokenizer built from GGUF metadata.
pub struct Tokenizer {
    /// Token id -> its bytes (byte-level decoded; control tokens: their text).
    pieces: Vec<Vec<u8>>,
    /// Byte-level token string -> id.
    ids: HashMap<String, u32>,
    /// (left, right) byte-level strings -> merge rank.
    merges: HashMap<(String, String), usize>,
    /// Tokens matched literally in text: (text, id, needs parse_special), longest first.
    specials: Vec<(String, u32, bool)>,
    pre: PreTokenizer,
    byte_to_char: [char; 256],
    bos: Option<u32>,
    add_bos: bool,
    end_of_turn: Vec<u32>,
}

impl Tokenizer {
    pub(crate) fn from_gguf(md: &Metadata) -> Result<Tokenizer> {
        let model = md.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(RuntimeError::Unsupported(format!(
                "tokenizer.ggml.model = {model:?} (only byte-level BPE \"gpt2\" is supported)"
            )));
        }
        let pre_name = md.opt_string("tokenizer.ggml.pre").unwrap_or("default");
        let pre = PreTokenizer::from_gguf_name(pre_name).ok_or_else(|| {
            RuntimeError::Unsupported(format!(
                "tokenizer.ggml.pre = {pre_name:?} is not a known pre-tokenizer"
            ))
        })?;
        let tokens = md.string_array("tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|vs| vs.iter().map(gguf_file::Value::to_i32).collect())
                .map_err(|e| md.bad("tokenizer.ggml.token_type", e))?,
            None => vec![1; tokens.len()],
        };
        let merge_lines = md.string_array("tokenizer.ggml.merges")?;

        let byte_to_char = gpt2_byte_to_char();
        let char_to_byte: HashMap<char, u8> = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();

        let mut ids = HashMap::with_capacity(tokens.len());
        let mut pieces = Vec::with_capacity(tokens.len());
        let mut specials = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            let id = id as u32;
            ids.insert(token.clone(), id);
            let ty = types.get(id as usize).copied().unwrap_or(1);
            if matches!(
                ty,
                TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED | TOKEN_TYPE_UNKNOWN
            ) {
                specials.push((token.clone(), id, ty != TOKEN_TYPE_USER_DEFINED));
                pieces.push(token.as_bytes().to_vec());
            } else {
                // Byte-level: every char stands for one byte; anything else is kept as UTF-8.
                let mut bytes = Vec::with_capacity(token.len());
                for c in token.chars() {
                    match char_to_byte.get(&c) {
                        Some(&b) => bytes.push(b),
                        None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                pieces.push(bytes);
            }
        }
        specials.retain(|(text, _, _)| !text.is_empty());
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));

        let mut merges = HashMap::with_capacity(merge_lines.len());
        for (rank, line) in merge_lines.iter().enumerate() {
            let Some((left, right)) = line.split_once(' ') else {
                return Err(md.bad(
                    "tokenizer.ggml.merges",
                    format!("entry {rank} {line:?} is not \"left right\""),
                ));
            };
            merges.insert((left.to_string(), right.to_string()), rank);
        }

        let token_id = |key: &str| md.opt_u32(key).filter(|&id| (id as usize) < tokens.len());
        let bos = token_id("tokenizer.ggml.bos_token_id");
        let add_bos = md.opt_bool("tokenizer.ggml.add_bos_token").unwrap_or(false) && bos.is_some();
        // End of generation: the EOS/EOT ids plus the usual end-of-turn control tokens, as
        // llama.cpp's `llama_vocab::is_eog` does.
        let mut end_of_turn: Vec<u32> =
            ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
                .iter()
                .filter_map(|k| token_id(k))
                .collect();
        for text in [
            "<|im_end|>",
            "<|eot_id|>",
            "<|end_of_text|>",
            "<|endoftext|>",
            "<end_of_turn>",
            "<|end|>",
        ] {
            if let Some((_, id, _)) = specials.iter().find(|(t, _, _)| t == text) {
                end_of_turn.push(*id);
            }
        }
        end_of_turn.sort_unstable();
        end_of_turn.dedup();

        Ok(Tokenizer {
            pieces,
            ids,
            merges,
            specials,
            pre,
            byte_to_char,
            bos,
            add_bos,
            end_of_turn,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Beginning-of-sequence token, when the model prepends one to raw text.
    pub fn bos_to_add(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    /// Tokens that end a generation (EOS, end of turn).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_turn.contains(&id)
    }

    /// The text of a special token by id, for chat templates (`bos_token`, `eos_token`).
    pub(crate) fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.piece(id)).into_owned()
    }

    /// Token ids of `text`. With `parse_special`, control tokens written in the text
    /// (`<|im_start|>`) become their ids; otherwise they are tokenized as plain text.
    /// No BOS is added.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        let mut rest = text;
        while !rest.is_empty() {
            match self.find_special(rest, parse_special) {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    /// Earliest special token in `text` (longest at that position): (byte offset, length, id).
    fn find_special(&self, text: &str, parse_special: bool) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (special, id, needs_parse_special) in &self.specials {
            if *needs_parse_special && !parse_special {
                continue;
            }
            if let Some(at) = text.find(special.as_str())
                && best.is_none_or(|(b_at, b_len, _)| {
                    at < b_at || (at == b_at && special.len() > b_len)
                })
            {
                best = Some((at, special.len(), *id));
            }
        }
        best
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        for word in self.pre.split(text) {
            let symbols: Vec<String> = word
                .bytes()
                .map(|b| self.byte_to_char[b as usize].to_string())
                .collect();
            for symbol in self.bpe(symbols) {
                match self.ids.get(&symbol) {
                    Some(&id) => out.push(id),
                    // Not in the vocab: one token per byte, as llama.cpp falls back.
                    None => out.extend(
                        symbol
                            .chars()
                            .filter_map(|c| self.ids.get(&c.to_string()).copied()),
                    ),
                }
            }
        }
    }

    /// Merge adjacent symbols by lowest merge rank (leftmost first) until none applies.
    fn bpe(&self, mut symbols: Vec<String>) -> Vec<String> {
        let mut pair = (String::new(), String::new());
        loop {
            let mut best: Option<(usize, usize)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                pair.0.clone_from(&symbols[i]);
                pair.1.clone_from(&symbols[i + 1]);
                if let Some(&rank) = self.merges.get(&pair)
                    && best.is_none_or(|(r, _)| rank < r)
                {
                    best = Some((rank, i));
                }
            }
            let Some((_, i)) = best else { return symbols };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
    }

    /// Bytes of one token.
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Text of `ids` (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.piece(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// GPT-2's reversible byte -> printable char table (`bytes_to_unicode`).
fn gpt2_byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("valid codepoint");
            next += 1;
            c
        };
    }
    table
}
