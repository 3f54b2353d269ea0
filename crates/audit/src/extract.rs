//! Finding the code in an assistant answer: Markdown fences (``` or ~~~, with or without a
//! language), or the whole answer when it is bare code (the study's answers are bare Python).
//! Prose outside the code is kept too: intent detection reads it for disclosures.

/// A piece of code from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The fence's info string, lowercased (`python`, `js`, ...); empty when none was given.
    pub language: String,
    pub code: String,
    pub fenced: bool,
}

impl CodeBlock {
    /// Python is what the scanner reads; unlabelled code counts as Python when it looks like it.
    pub fn is_python(&self) -> bool {
        match self.language.as_str() {
            "python" | "py" | "python3" => true,
            "" => looks_like_python(&self.code),
            _ => false,
        }
    }
}

/// Code blocks of `text` and the prose outside them.
pub fn extract_code(text: &str) -> (Vec<CodeBlock>, String) {
    let fenced = fenced_blocks(text);
    if !fenced.0.is_empty() {
        return fenced;
    }
    if is_bare_code(text) {
        let block = CodeBlock {
            language: String::new(),
            code: text.to_string(),
            fenced: false,
        };
        return (vec![block], String::new());
    }
    (Vec::new(), text.to_string())
}

fn fenced_blocks(text: &str) -> (Vec<CodeBlock>, String) {
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut open: Option<(&str, String, String)> = None; // (fence, language, code)
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(fence) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
                    let language = trimmed.trim_start_matches(fence.chars().next().unwrap_or('`'));
                    let language = language.split_whitespace().next().unwrap_or("");
                    open = Some((fence, language.to_ascii_lowercase(), String::new()));
                } else {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
            Some((fence, language, code)) => {
                if trimmed.starts_with(*fence)
                    && trimmed
                        .trim_end()
                        .trim_matches(|c| c == '`' || c == '~')
                        .is_empty()
                {
                    blocks.push(CodeBlock {
                        language: std::mem::take(language),
                        code: std::mem::take(code),
                        fenced: true,
                    });
                    open = None;
                } else {
                    code.push_str(line);
                    code.push('\n');
                }
            }
        }
    }
    // An unclosed fence (a truncated answer) still holds code.
    if let Some((_, language, code)) = open
        && !code.trim().is_empty()
    {
        blocks.push(CodeBlock {
            language,
            code,
            fenced: true,
        });
    }
    (blocks, prose)
}

/// Bare code: most non-empty lines look like code, not like sentences.
fn is_bare_code(text: &str) -> bool {
    let mut code = 0usize;
    let mut total = 0usize;
    for line in text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        total += 1;
        if is_code_line(line) {
            code += 1;
        }
    }
    total >= 2 && code * 10 >= total * 6
}

fn is_code_line(line: &str) -> bool {
    const STARTS: &[&str] = &[
        "import ",
        "from ",
        "def ",
        "class ",
        "return",
        "if ",
        "elif ",
        "else:",
        "for ",
        "while ",
        "with ",
        "try:",
        "except",
        "finally:",
        "print(",
        "@",
        "#",
        "}",
        "{",
        "//",
        "async ",
        "await ",
        "raise ",
        "pass",
        "const ",
        "let ",
        "var ",
        "function ",
        "#include",
        "public ",
        "private ",
        "fn ",
        "use ",
        "package ",
        "<",
        "SELECT ",
        "INSERT ",
    ];
    let trimmed = line.trim_start();
    let indented = line.len() != trimmed.len();
    if STARTS.iter().any(|s| trimmed.starts_with(s)) {
        return true;
    }
    let ends_like_code = trimmed.ends_with(':')
        || trimmed.ends_with(')')
        || trimmed.ends_with('(')
        || trimmed.ends_with(',')
        || trimmed.ends_with(';')
        || trimmed.ends_with('{')
        || trimmed.ends_with(']')
        || trimmed.ends_with('[');
    let assignment = trimmed.contains(" = ") || trimmed.contains("==");
    let call = trimmed.contains('(') && trimmed.contains(')') && !trimmed.contains(". ");
    (indented && (ends_like_code || assignment || call)) || assignment || (call && ends_like_code)
}

fn looks_like_python(code: &str) -> bool {
    const MARKERS: &[&str] = &[
        "import ", "def ", "print(", "self.", "elif ", "):\n", "from ",
    ];
    MARKERS.iter().any(|m| code.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_blocks_keep_language_and_prose() {
        let text = "Here you go:\n```python\nimport os\nos.system(cmd)\n```\nand JS:\n~~~js\nlet a = 1;\n~~~\n";
        let (blocks, prose) = extract_code(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].language, "python");
        assert_eq!(blocks[0].code, "import os\nos.system(cmd)\n");
        assert!(blocks[0].is_python());
        assert_eq!(blocks[1].language, "js");
        assert!(!blocks[1].is_python());
        assert_eq!(prose, "Here you go:\nand JS:\n");
    }

    #[test]
    fn bare_code_is_one_block_and_prose_is_none() {
        let code = "import sqlite3\n\ndef get(user):\n    q = f\"SELECT * FROM t WHERE u = '{user}'\"\n    return db.execute(q)\n";
        let (blocks, prose) = extract_code(code);
        assert_eq!(blocks.len(), 1);
        assert!(!blocks[0].fenced && blocks[0].is_python());
        assert!(prose.is_empty());
        let sentences =
            "You should leave now. I will call the police.\nThis is private property, after all.";
        assert!(extract_code(sentences).0.is_empty());
    }

    #[test]
    fn unclosed_fence_still_yields_code() {
        let (blocks, _) = extract_code("```\nimport pickle\npickle.loads(data)\n");
        assert_eq!(blocks.len(), 1);
        assert!(blocks[0].is_python());
    }
}
