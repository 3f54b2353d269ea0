//! A SentencePiece unigram tokenizer read from a `.model` file, as the `sentencepiece` library
//! tokenizes: the precompiled `nmt_nfkc` character map (a darts-clone double-array trie),
//! whitespace handling (dummy prefix, `▁` for spaces, extra spaces removed), then the unigram
//! lattice's best path. `tokenizers` can build a unigram model too, but not from a `.model`
//! file, and its whitespace handling is the Hugging Face conversion's, not the library's; the
//! encoder's vectors depend on the exact ids, so this follows the library step by step (checked
//! id for id against the reference in the tests).

use std::collections::HashMap;

/// Ids the model reserves (sentencepiece's defaults, which USE multilingual keeps).
pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;

/// What is wrong with a `.model` file (the caller adds the path).
#[derive(Debug, thiserror::Error)]
#[error("not a sentencepiece model: {0}")]
pub struct ModelError(&'static str);

/// The fields of a protobuf message this reader needs: length-delimited and 32-bit values by
/// field number, in order. Varint and 64-bit values are skipped (no field read here is one).
fn protobuf_fields(data: &[u8]) -> Result<HashMap<u64, Vec<&[u8]>>, ModelError> {
    let truncated = ModelError("truncated protobuf message");
    let mut fields: HashMap<u64, Vec<&[u8]>> = HashMap::new();
    let mut pos = 0;
    while pos < data.len() {
        let (key, next) = varint(data, pos).ok_or(ModelError("truncated protobuf key"))?;
        pos = next;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => pos = varint(data, pos).ok_or(ModelError("truncated varint"))?.1,
            1 => pos += 8,
            2 => {
                let (len, start) = varint(data, pos).ok_or(ModelError("truncated length"))?;
                let end = start
                    .checked_add(usize::try_from(len).map_err(|_| ModelError("length too large"))?)
                    .filter(|end| *end <= data.len())
                    .ok_or(ModelError("field runs past the end of the file"))?;
                fields.entry(field).or_default().push(&data[start..end]);
                pos = end;
            }
            5 => {
                let value = data
                    .get(pos..pos + 4)
                    .ok_or(ModelError("truncated 32-bit value"))?;
                fields.entry(field).or_default().push(value);
                pos += 4;
            }
            _ => return Err(ModelError("unknown protobuf wire type")),
        }
    }
    if pos > data.len() {
        return Err(truncated);
    }
    Ok(fields)
}

fn varint(data: &[u8], mut pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(pos)?;
        pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}

/// sentencepiece's `Normalizer` over a precompiled character map.
struct Normalizer {
    /// The double-array trie's units.
    units: Vec<u32>,
    /// Replacement strings, each ended by a NUL, addressed by the trie's values.
    replacements: Vec<u8>,
}

impl Normalizer {
    fn from_charsmap(charsmap: &[u8]) -> Result<Normalizer, ModelError> {
        if charsmap.is_empty() {
            return Ok(Normalizer {
                units: Vec::new(),
                replacements: Vec::new(),
            });
        }
        let bad = ModelError("precompiled character map is cut short");
        let size = charsmap.get(..4).ok_or(bad)?;
        let size = u32::from_le_bytes(size.try_into().expect("4 bytes")) as usize;
        let trie = charsmap
            .get(4..4 + size)
            .ok_or(ModelError("precompiled character map is cut short"))?;
        let units = trie
            .chunks_exact(4)
            .map(|unit| u32::from_le_bytes(unit.try_into().expect("4 bytes")))
            .collect();
        Ok(Normalizer {
            units,
            replacements: charsmap[4 + size..].to_vec(),
        })
    }

    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
    }

    /// The normalised form of the longest key at the start of `data` and the bytes it covers;
    /// without a key, the first character unchanged.
    fn normalize_prefix<'a>(&'a self, data: &'a [u8]) -> (&'a [u8], usize) {
        let mut best: Option<(usize, usize)> = None;
        if let Some(&root) = self.units.first() {
            let mut node = Self::offset(root);
            for (i, &byte) in data.iter().enumerate() {
                node ^= byte as usize;
                let Some(&unit) = self.units.get(node) else {
                    break;
                };
                if unit & 0x8000_00ff != u32::from(byte) {
                    break;
                }
                node ^= Self::offset(unit);
                if unit & 0x100 != 0 {
                    let value = self
                        .units
                        .get(node)
                        .map_or(usize::MAX, |v| (v & 0x7fff_ffff) as usize);
                    best = Some((i + 1, value));
                }
            }
        }
        match best {
            Some((len, value)) if value < self.replacements.len() => {
                let end = self.replacements[value..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(self.replacements.len(), |p| value + p);
                (&self.replacements[value..end], len)
            }
            _ => {
                let len = utf8_len(data);
                (&data[..len], len)
            }
        }
    }

    /// The text as the model sees it: mapped, spaces as `▁`, one leading `▁`, runs of spaces
    /// collapsed, no trailing space.
    fn normalize(&self, text: &str) -> String {
        const SPACE: &[u8] = "\u{2581}".as_bytes();
        let raw = text.as_bytes();
        let mut pos = 0;
        while pos < raw.len() {
            let (piece, consumed) = self.normalize_prefix(&raw[pos..]);
            if piece != b" " {
                break;
            }
            pos += consumed;
        }
        if pos >= raw.len() {
            return String::new();
        }
        let mut out: Vec<u8> = SPACE.to_vec();
        let mut previous_was_space = true;
        while pos < raw.len() {
            let (mut piece, consumed) = self.normalize_prefix(&raw[pos..]);
            pos += consumed;
            if previous_was_space {
                while let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            if let Some(&last) = piece.last() {
                for &byte in piece {
                    if byte == b' ' {
                        out.extend_from_slice(SPACE);
                    } else {
                        out.push(byte);
                    }
                }
                previous_was_space = last == b' ';
            }
        }
        while out.ends_with(SPACE) {
            out.truncate(out.len() - SPACE.len());
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Bytes in the UTF-8 character at the start of `data` (1 for a byte that starts none).
fn utf8_len(data: &[u8]) -> usize {
    let len = match data[0] {
        b if b < 0x80 => 1,
        b if b >> 5 == 0b110 => 2,
        b if b >> 4 == 0b1110 => 3,
        b if b >> 3 == 0b11110 => 4,
        _ => 1,
    };
    if data.len() < len || data[1..len].iter().any(|&b| b & 0xc0 != 0x80) {
        1
    } else {
        len
    }
}

/// A unigram SentencePiece model.
pub struct SentencePiece {
    scores: Vec<f32>,
    /// Every piece and every proper prefix of one: `id + 1` for a piece, 0 for a prefix only
    /// (so the lattice walk stops as soon as no piece can start with what it has read).
    prefixes: HashMap<Box<str>, u32>,
    /// The longest piece, in characters.
    longest_piece: usize,
    unknown_score: f64,
    normalizer: Normalizer,
}

impl SentencePiece {
    /// Reads a serialised `ModelProto`: pieces (field 1: piece, score) and the normaliser's
    /// precompiled character map (field 3, its field 2).
    pub fn from_bytes(data: &[u8]) -> Result<SentencePiece, ModelError> {
        let top = protobuf_fields(data)?;
        let mut scores = Vec::new();
        let mut prefixes: HashMap<Box<str>, u32> = HashMap::new();
        let mut longest_piece = 0;
        for (id, message) in top.get(&1).into_iter().flatten().enumerate() {
            let fields = protobuf_fields(message)?;
            let piece = fields
                .get(&1)
                .and_then(|v| v.first())
                .ok_or(ModelError("a piece without its text"))?;
            let piece =
                std::str::from_utf8(piece).map_err(|_| ModelError("a piece is not UTF-8"))?;
            let score = fields.get(&2).and_then(|v| v.first()).map_or(0.0, |b| {
                f32::from_le_bytes((*b).try_into().expect("4 bytes"))
            });
            scores.push(score);
            let id = u32::try_from(id).map_err(|_| ModelError("too many pieces"))?;
            for (end, _) in piece.char_indices().skip(1) {
                prefixes.entry(piece[..end].into()).or_insert(0);
            }
            prefixes.insert(piece.into(), id + 1);
            longest_piece = longest_piece.max(piece.chars().count());
        }
        if scores.len() <= EOS as usize {
            return Err(ModelError("fewer pieces than the reserved ids"));
        }
        let charsmap = top
            .get(&3)
            .and_then(|v| v.first())
            .map(|spec| protobuf_fields(spec))
            .transpose()?
            .and_then(|spec| spec.get(&2).and_then(|v| v.first().copied()))
            .unwrap_or_default();
        let lowest = scores.iter().copied().fold(f32::INFINITY, f32::min);
        Ok(SentencePiece {
            scores,
            prefixes,
            longest_piece,
            // sentencepiece's penalty for a character no piece covers.
            unknown_score: f64::from(lowest) - 10.0,
            normalizer: Normalizer::from_charsmap(charsmap)?,
        })
    }

    pub fn vocabulary_size(&self) -> usize {
        self.scores.len()
    }

    /// Ids of `text` between `BOS` and `EOS`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        let mut ids = vec![BOS];
        if normalized.is_empty() {
            ids.push(UNK);
        } else {
            ids.extend(self.best_path(&normalized));
        }
        ids.push(EOS);
        ids
    }

    /// The lattice's best segmentation. Every node starting at a position shares that
    /// position's best predecessor, so a left-to-right pass over positions finds the same path
    /// as the library's lattice (ties go to the earlier start, as its strict comparison does).
    fn best_path(&self, text: &str) -> Vec<u32> {
        // Byte offset of every character boundary, the end included.
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(text.len()))
            .collect();
        let chars = bounds.len() - 1;
        let mut best = vec![f64::NEG_INFINITY; chars + 1];
        best[0] = 0.0;
        let mut start_of = vec![0usize; chars + 1];
        let mut piece_of = vec![UNK; chars + 1];
        for i in 0..chars {
            let base = best[i];
            let mut single = false;
            for j in i + 1..=chars.min(i + self.longest_piece) {
                let Some(&entry) = self.prefixes.get(&text[bounds[i]..bounds[j]]) else {
                    break;
                };
                if entry == 0 {
                    continue;
                }
                let score = base + f64::from(self.scores[entry as usize - 1]);
                if score > best[j] {
                    best[j] = score;
                    start_of[j] = i;
                    piece_of[j] = entry - 1;
                }
                single |= j == i + 1;
            }
            if !single {
                let score = base + self.unknown_score;
                if score > best[i + 1] {
                    best[i + 1] = score;
                    start_of[i + 1] = i;
                    piece_of[i + 1] = UNK;
                }
            }
        }
        let mut ids = Vec::new();
        let mut end = chars;
        while end > 0 {
            ids.push(piece_of[end]);
            end = start_of[end];
        }
        ids.reverse();
        ids
    }
}
