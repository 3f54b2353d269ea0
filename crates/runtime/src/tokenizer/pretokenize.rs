//! Pre-tokenizers: split text into words before BPE, exactly as llama.cpp does for each
//! `tokenizer.ggml.pre` type. llama.cpp applies a list of regexes in sequence, each splitting the
//! fragments left by the previous one; the GPT-2 and Llama-3 regexes are hand-written state
//! machines there (lookaheads), and so they are here.

/// The pre-tokenizer families we know, named after llama.cpp's `LLAMA_VOCAB_PRE_TYPE_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// GPT-2 regex only.
    Gpt2,
    /// Every digit its own fragment, then the GPT-2 regex (smollm, starcoder, refact, ...).
    DigitsThenGpt2,
    /// Llama-3 regex: up to `max_digits` digits per word (3 for llama-bpe, 1 for qwen2).
    Llama3 { max_digits: usize },
}

impl PreTokenizer {
    /// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` value; `None` when unknown.
    pub fn from_gguf_name(name: &str) -> Option<PreTokenizer> {
        Some(match name {
            "default" | "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" => PreTokenizer::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => PreTokenizer::DigitsThenGpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "smaug-bpe" => {
                PreTokenizer::Llama3 { max_digits: 3 }
            }
            "qwen2" | "deepseek-r1-qwen" | "megrez" => PreTokenizer::Llama3 { max_digits: 1 },
            _ => return None,
        })
    }

    /// Split `text` into words (non-empty, concatenating back to `text`).
    pub fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut out = Vec::new();
        let mut emit = |start: usize, end: usize| {
            if start < end {
                let from = chars[start].0;
                let to = chars.get(end).map_or(text.len(), |c| c.0);
                out.push(&text[from..to]);
            }
        };
        match self {
            PreTokenizer::Gpt2 => gpt2(&chars, 0, chars.len(), &mut emit),
            PreTokenizer::Llama3 { max_digits } => {
                llama3(&chars, 0, chars.len(), *max_digits, &mut emit)
            }
            PreTokenizer::DigitsThenGpt2 => {
                let mut start = 0;
                for i in 0..chars.len() {
                    if is_number(chars[i].1) {
                        gpt2(&chars, start, i, &mut emit);
                        emit(i, i + 1);
                        start = i + 1;
                    }
                }
                gpt2(&chars, start, chars.len(), &mut emit);
            }
        }
        out
    }
}

/// Character classes of the regexes, by Unicode general category like llama.cpp's tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
    /// Outside the fragment being split.
    End,
}

fn is_number(c: char) -> bool {
    c.is_numeric()
}

fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    // `char::is_alphabetic` is the Alphabetic property (includes some marks and Nl); the regexes
    // use the general category L, which the regex crate's tables give exactly.
    static LETTER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = LETTER.get_or_init(|| regex::Regex::new(r"^\p{L}$").expect("valid regex"));
    let mut buf = [0u8; 4];
    re.is_match(c.encode_utf8(&mut buf))
}

fn class(c: char) -> Class {
    if is_letter(c) {
        Class::Letter
    } else if is_number(c) {
        Class::Number
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// A fragment `[begin, end)` of the text's characters being split into words.
struct Fragment<'c> {
    chars: &'c [(usize, char)],
    begin: usize,
    end: usize,
}

impl Fragment<'_> {
    fn char_at(&self, pos: usize) -> Option<char> {
        (self.begin <= pos && pos < self.end).then(|| self.chars[pos].1)
    }
    fn class_at(&self, pos: usize) -> Class {
        self.char_at(pos).map_or(Class::End, class)
    }
    /// Length of a contraction (`'s`, `'re`, ...) starting at `pos`, 0 when none.
    fn contraction(&self, pos: usize, ignore_case: bool) -> usize {
        if self.char_at(pos) != Some('\'') {
            return 0;
        }
        let lower = |p: usize| {
            self.char_at(p).map(|c| {
                if ignore_case {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
        };
        match (lower(pos + 1), lower(pos + 2)) {
            (Some('s' | 't' | 'm' | 'd'), _) => 2,
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
            _ => 0,
        }
    }
    fn count_spaces(&self, pos: usize) -> usize {
        (pos..self.end)
            .take_while(|&p| self.class_at(p) == Class::Space)
            .count()
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2(chars: &[(usize, char)], begin: usize, end: usize, emit: &mut impl FnMut(usize, usize)) {
    let f = Fragment { chars, begin, end };
    let mut pos = begin;
    while pos < end {
        let start = pos;
        let contraction = f.contraction(pos, false);
        if contraction > 0 {
            pos += contraction;
            emit(start, pos);
            continue;
        }
        let c = f.char_at(pos);
        let cls = if c == Some(' ') {
            f.class_at(pos + 1)
        } else {
            f.class_at(pos)
        };
        if matches!(cls, Class::Letter | Class::Number | Class::Other) {
            pos += usize::from(c == Some(' '));
            while f.class_at(pos) == cls {
                pos += 1;
            }
            emit(start, pos);
            continue;
        }
        let spaces = f.count_spaces(pos);
        if spaces > 1 && pos + spaces < end {
            // `\s+(?!\S)`: leave the last space to prefix the next word.
            pos += spaces - 1;
        } else if spaces > 0 {
            pos += spaces;
        } else {
            pos += 1;
        }
        emit(start, pos);
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3(
    chars: &[(usize, char)],
    begin: usize,
    end: usize,
    max_digits: usize,
    emit: &mut impl FnMut(usize, usize),
) {
    let f = Fragment { chars, begin, end };
    let is_newline = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    let mut pos = begin;
    while pos < end {
        let start = pos;
        let contraction = f.contraction(pos, true);
        if contraction > 0 {
            pos += contraction;
            emit(start, pos);
            continue;
        }
        let c = f.char_at(pos);
        let cls = f.class_at(pos);
        if !is_newline(c)
            && cls != Class::Number
            && (cls == Class::Letter || f.class_at(pos + 1) == Class::Letter)
        {
            pos += 1;
            while f.class_at(pos) == Class::Letter {
                pos += 1;
            }
            emit(start, pos);
            continue;
        }
        if cls == Class::Number {
            let mut word_start = pos;
            while f.class_at(pos) == Class::Number {
                pos += 1;
                if pos - word_start >= max_digits {
                    emit(word_start, pos);
                    word_start = pos;
                }
            }
            emit(word_start, pos);
            continue;
        }
        let cls2 = if c == Some(' ') {
            f.class_at(pos + 1)
        } else {
            cls
        };
        if cls2 == Class::Other {
            pos += usize::from(c == Some(' '));
            while f.class_at(pos) == Class::Other {
                pos += 1;
            }
            while is_newline(f.char_at(pos)) {
                pos += 1;
            }
            emit(start, pos);
            continue;
        }
        let spaces = f.count_spaces(pos);
        let last_newline_end = (pos..pos + spaces)
            .rev()
            .find(|&p| is_newline(f.char_at(p)))
            .map(|p| p + 1);
        if let Some(newline_end) = last_newline_end {
            pos = newline_end;
        } else if spaces > 1 && pos + spaces < end {
            pos += spaces - 1;
        } else if spaces > 0 {
            pos += spaces;
        } else {
            pos += 1;
        }
        emit(start, pos);
    }
}

#[cfg(test)]
mod tests {
    use super::PreTokenizer;

    #[test]
    fn smollm_splits_every_digit_and_keeps_space_prefixes() {
        let words = PreTokenizer::DigitsThenGpt2.split("Hello world 2024!!  x\tdone's");
        assert_eq!(
            words,
            [
                "Hello", " world", " ", "2", "0", "2", "4", "!!", " ", " x", "\t", "done", "'s"
            ]
        );
    }

    #[test]
    fn llama3_groups_digits_by_three_and_newlines() {
        let words = PreTokenizer::Llama3 { max_digits: 3 }.split("abc 1234567\n\n  hi");
        assert_eq!(words, ["abc", " ", "123", "456", "7", "\n\n", " ", " hi"]);
    }
}
