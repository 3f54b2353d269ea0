//! Code inside Markdown fences of a model answer.

use serde::{Deserialize, Serialize};

use crate::language::Language;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBlock {
    /// From the fence's info string; `None` for an untagged fence or bare text.
    pub language: Option<Language>,
    /// The fence's info string as written (empty for bare text).
    pub info: String,
    pub code: String,
    /// 1-based line of the text where `code` starts.
    pub line: usize,
}

/// The fenced code blocks of `text` (```` ``` ```` or `~~~`), or the whole text as one
/// block when it has no fences (an answer that is bare code). An unclosed fence runs to the
/// end of the text.
pub fn extract_code(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, String, usize, String)> = None; // fence char, length, info, start line, code
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let fence = (indent <= 3).then(|| fence_of(trimmed)).flatten();
        match (&mut open, fence) {
            (None, Some((ch, len))) => {
                let info = trimmed[len..].trim().to_string();
                open = Some((ch, len, info, index + 2, String::new()));
            }
            (Some((ch, len, _, _, _)), Some((c, l)))
                if c == *ch && l >= *len && trimmed[l..].trim().is_empty() =>
            {
                if let Some((_, _, info, start, code)) = open.take() {
                    blocks.push(block(info, code, start));
                }
            }
            (Some((_, _, _, _, code)), _) => code.push_str(line),
            (None, None) => {}
        }
    }
    if let Some((_, _, info, start, code)) = open {
        blocks.push(block(info, code, start));
    }
    if blocks.is_empty() && !text.trim().is_empty() {
        blocks.push(CodeBlock {
            language: None,
            info: String::new(),
            code: text.to_string(),
            line: 1,
        });
    }
    blocks
}

fn fence_of(line: &str) -> Option<(char, usize)> {
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = line.chars().take_while(|c| *c == ch).count();
    // A backtick fence's info string may not contain backticks (that is inline code).
    (len >= 3 && !(ch == '`' && line[len..].contains('`'))).then_some((ch, len))
}

fn block(info: String, code: String, line: usize) -> CodeBlock {
    let tag = info
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('{')
        .trim_start_matches('.');
    CodeBlock {
        language: Language::from_tag(tag),
        info,
        code,
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_text_is_one_block() {
        let blocks = extract_code("import os\nos.system('ls')\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].language, None);
        assert_eq!(blocks[0].line, 1);
    }

    #[test]
    fn fences_are_extracted_with_language_and_line() {
        let text = "Here you go:\n\n```python\nimport os\n```\n\nand\n~~~py\nx = 1\n~~~\n```\nplain\n```\n";
        let blocks = extract_code(text);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].language, Some(Language::Python));
        assert_eq!(blocks[0].code, "import os\n");
        assert_eq!(blocks[0].line, 4);
        assert_eq!(blocks[1].code, "x = 1\n");
        assert_eq!(blocks[2].language, None);
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        let blocks = extract_code("text\n```python\nprint(1)\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].code, "print(1)\n");
    }

    #[test]
    fn inline_backticks_are_not_fences() {
        let blocks = extract_code("use ```x``` here\nimport os\n");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].line, 1);
    }
}
