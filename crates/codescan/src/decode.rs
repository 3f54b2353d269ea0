//! Python source bytes to text, the way the interpreter reads them (PEP 263 / PEP 3120):
//! a UTF-8 byte-order mark, else an encoding declared in a comment on the first or second
//! line, else UTF-8. Files that are binary, or not valid in their encoding, are refused
//! with a reason, so a caller can report them as skipped and go on with the rest.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// Bytes looked at for a NUL when deciding whether a file is binary (as `git` and
/// ripgrep do: text files do not contain NUL; compiled files and archives do).
const BINARY_PROBE: usize = 8192;

/// Why bytes could not be read as Python source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("binary data (a NUL byte at offset {offset})")]
    Binary { offset: usize },
    #[error(
        "line {line}: not valid UTF-8 (byte 0x{byte:02x}) and no `# -*- coding: ... -*-` declaration (PEP 263)"
    )]
    NotUtf8 { line: usize, byte: u8 },
    #[error("line {line}: unknown source encoding `{name}` declared")]
    UnknownEncoding { line: usize, name: String },
    #[error("not valid {encoding} text, the encoding declared on line {line}")]
    Malformed { encoding: String, line: usize },
}

/// The text of Python source `bytes`: borrowed when they are UTF-8 already.
pub fn decode_python_source(bytes: &[u8]) -> Result<Cow<'_, str>, DecodeError> {
    if let Some(offset) = bytes[..bytes.len().min(BINARY_PROBE)]
        .iter()
        .position(|&b| b == 0)
    {
        return Err(DecodeError::Binary { offset });
    }
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return utf8(rest);
    }
    match declared_encoding(bytes) {
        None => utf8(bytes),
        Some((line, name)) => {
            let encoding = encoding_for(&name).ok_or_else(|| DecodeError::UnknownEncoding {
                line,
                name: name.clone(),
            })?;
            if encoding == UTF_8 {
                return utf8(bytes);
            }
            match encoding.decode_without_bom_handling_and_without_replacement(bytes) {
                Some(text) => Ok(text),
                None => Err(DecodeError::Malformed {
                    encoding: name,
                    line,
                }),
            }
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, DecodeError> {
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        let at = e.valid_up_to();
        DecodeError::NotUtf8 {
            line: bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
            byte: bytes[at],
        }
    })
}

/// The encoding named by a PEP 263 declaration on line 1 or 2: a comment line matching
/// `^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`. Line 2 counts only when line 1 is a comment
/// or blank, as in the interpreter.
fn declared_encoding(bytes: &[u8]) -> Option<(usize, String)> {
    let mut lines = bytes.split(|&b| b == b'\n');
    for line_no in 1..=2 {
        let line = lines.next()?;
        let trimmed = trim_start(line);
        if !trimmed.starts_with(b"#") {
            if line_no == 1 && trimmed.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return None;
        }
        if let Some(name) = coding_name(trimmed) {
            return Some((line_no, name));
        }
    }
    None
}

fn trim_start(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\x0c'))
        .unwrap_or(line.len());
    &line[start..]
}

/// The name after the first `coding:` or `coding=` in a comment line.
fn coding_name(comment: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(at) = find(&comment[from..], b"coding") {
        let after = from + at + b"coding".len();
        if matches!(comment.get(after), Some(b':' | b'=')) {
            let rest = trim_start(&comment[after + 1..]);
            let name: Vec<u8> = rest
                .iter()
                .copied()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                .collect();
            if !name.is_empty() {
                return Some(String::from_utf8_lossy(&name).into_owned());
            }
        }
        from = after;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Python's codec names mapped onto the WHATWG labels `encoding_rs` knows. Python spells
/// some differently (`latin-1`, `utf_8`, `cp1252`, `euc_jp`); Latin-1 decodes as
/// windows-1252 (as in browsers: the same letters, and C1 controls are not source text).
fn encoding_for(name: &str) -> Option<&'static Encoding> {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    let alias = match lower.as_str() {
        "utf8" | "utf-8-sig" | "u8" | "utf" => "utf-8",
        "latin-1" | "latin" | "iso8859-1" | "8859" | "cp819" | "l1" => "latin1",
        "iso8859-15" | "latin-9" | "latin9" => "iso-8859-15",
        "iso8859-2" | "latin-2" => "iso-8859-2",
        "ascii" | "us-ascii" | "646" => "windows-1252",
        other => other,
    };
    Encoding::for_label(alias.as_bytes())
        .or_else(|| Encoding::for_label(alias.replace('-', "").as_bytes()))
        .or_else(|| {
            // `cp1252` and `euc-jp` style names: `windows-1252`, `euc-jp`.
            alias
                .strip_prefix("cp")
                .and_then(|n| Encoding::for_label(format!("windows-{n}").as_bytes()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_borrowed() {
        let text = decode_python_source(b"x = '\xc3\xa9'\n").unwrap();
        assert!(matches!(text, Cow::Borrowed("x = 'é'\n")));
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(
            decode_python_source(b"\xef\xbb\xbfx = 1\n").unwrap(),
            "x = 1\n"
        );
    }

    #[test]
    fn latin1_declaration_on_line_one_or_two_is_honoured() {
        for source in [
            &b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n"[..],
            &b"#!/usr/bin/env python\n# vim: set fileencoding=iso-8859-1 :\nname = 'caf\xe9'\n"[..],
            &b"# coding=cp1252\nname = 'caf\xe9'\n"[..],
        ] {
            let text = decode_python_source(source).unwrap();
            assert!(text.contains("name = 'café'"), "{text}");
        }
    }

    #[test]
    fn declaration_after_line_two_or_after_code_does_not_count() {
        let err =
            decode_python_source(b"import os\n# coding: latin-1\nname = 'caf\xe9'\n").unwrap_err();
        assert_eq!(
            err,
            DecodeError::NotUtf8 {
                line: 3,
                byte: 0xe9
            }
        );
        assert!(err.to_string().contains("PEP 263"), "{err}");
    }

    #[test]
    fn other_encodings_decode() {
        // "日本" in EUC-JP and Shift_JIS.
        let euc = decode_python_source(b"# coding: euc_jp\ns = '\xc6\xfc\xcb\xdc'\n").unwrap();
        assert!(euc.contains("日本"), "{euc}");
        let sjis = decode_python_source(b"# coding: shift_jis\ns = '\x93\xfa\x96\x7b'\n").unwrap();
        assert!(sjis.contains("日本"), "{sjis}");
    }

    #[test]
    fn binary_unknown_and_malformed_are_refused_with_a_reason() {
        assert_eq!(
            decode_python_source(b"\x7fELF\x02\x01\x01\x00\x00"),
            Err(DecodeError::Binary { offset: 7 })
        );
        let unknown = decode_python_source(b"# coding: klingon\nx = 1\n").unwrap_err();
        assert_eq!(
            unknown,
            DecodeError::UnknownEncoding {
                line: 1,
                name: "klingon".into()
            }
        );
        let malformed = decode_python_source(b"# coding: shift_jis\ns = '\x82'\n").unwrap_err();
        assert!(
            matches!(malformed, DecodeError::Malformed { line: 1, .. }),
            "{malformed:?}"
        );
    }
}
