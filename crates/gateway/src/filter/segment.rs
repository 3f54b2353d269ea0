//! Where the code is in an answer, decided by content rather than by Markdown alone: one
//! complete line at a time, the stream filter ([`super::stream`]) asks what a line starts.
//!
//! Code regions are fenced blocks (a fence on its own line, or opened at the end of a line of
//! prose, "Here: ```python"), `<pre>` blocks, and runs of bare code lines (lines that read as
//! code, with the indented and blank lines between them). Whatever a fence's tag says, its
//! region is scanned as code.

use std::sync::LazyLock;

use regex::Regex;

/// What kind of region a line opens or continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionKind {
    /// A fence of `len` `ch` characters (``` or ~~~), closed by a line of at least as many.
    Fence { ch: char, len: usize },
    /// `<pre>` up to `</pre>`.
    Pre,
    /// Bare code lines, up to the first line of prose.
    Bare,
}

/// How a line outside any region starts.
#[derive(Debug, PartialEq, Eq)]
pub enum LineStart {
    Prose,
    /// The line opens a region at byte `at` (0: the whole line belongs to it; more: the prose
    /// before it is sent as prose).
    Opens {
        at: usize,
        kind: RegionKind,
    },
}

/// A line that reads as code (Python, JavaScript, shell-like calls and assignments).
static CODE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)^\s*(
            (import|from)\s+[\w.]+(\s|$)
          | (async\s+)?def\s+\w+\s*\(
          | class\s+\w+\s*[(:]
          | (if|elif|while|for|with|try|except|else|finally)\b[^\n]*:\s*$
          | (return|raise|yield|await|pass|break|continue)\b
          | @[\w.]+
          | [A-Za-z_][\w.]*(\[[^\]]*\])?\s*(=|\+=|-=|\*=|/=|\|=)\s*[^=\s]
          | [A-Za-z_][\w.]*\s*\([^\n]*\)\s*;?\s*$
          | (function|const|let|var)\s+\w+
          | \#!|\#include\b
          | <\?php
          | >>>
          | [}\])]\s*[;,)]*\s*$
        )"#,
    )
    .expect("code line pattern")
});

/// A fence opened at the end of a line of prose: "Here it is: ```python".
static MIDLINE_FENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(`{3,}|~{3,})[\w+#.\-]*\s*$").expect("fence pattern"));

static PRE_OPEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<pre(\s[^>]*)?>").expect("pre pattern"));

static PRE_CLOSE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)</pre\s*>").expect("pre close pattern"));

static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^>\n]*>").expect("tag pattern"));

/// A line opening a fence: up to 3 spaces, then 3+ backticks or tildes.
pub fn fence_opener(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|c| *c == ch).count();
    (len >= 3).then_some((ch, len))
}

/// Whether `line` closes a fence opened with `len` `ch` characters.
pub fn closes_fence(line: &str, ch: char, len: usize) -> bool {
    fence_opener(line).is_some_and(|(c, l)| {
        let t = line.trim_start_matches(' ');
        c == ch && l >= len && t[l..].trim().is_empty()
    })
}

pub fn is_code_line(line: &str) -> bool {
    CODE_LINE.is_match(line.trim_end_matches(['\n', '\r']))
}

/// Whether a line continues a run of bare code: code, blank, or indented.
pub fn continues_bare(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with([' ', '\t']) || is_code_line(line)
}

/// How a complete line outside any region starts.
pub fn classify(line: &str) -> LineStart {
    if let Some((ch, len)) = fence_opener(line) {
        return LineStart::Opens {
            at: 0,
            kind: RegionKind::Fence { ch, len },
        };
    }
    if let Some(m) = PRE_OPEN.find(line) {
        return LineStart::Opens {
            at: m.start(),
            kind: RegionKind::Pre,
        };
    }
    if let Some(m) = MIDLINE_FENCE.find(line.trim_end_matches(['\n', '\r'])) {
        let fence = m.as_str();
        let ch = fence.chars().next().unwrap_or('`');
        let len = fence.chars().take_while(|c| *c == ch).count();
        return LineStart::Opens {
            at: m.start(),
            kind: RegionKind::Fence { ch, len },
        };
    }
    if (line.starts_with("    ") || line.starts_with('\t')) && !line.trim().is_empty() {
        return LineStart::Opens {
            at: 0,
            kind: RegionKind::Bare,
        };
    }
    if is_code_line(line) {
        return LineStart::Opens {
            at: 0,
            kind: RegionKind::Bare,
        };
    }
    LineStart::Prose
}

/// Whether a line of a `<pre>` region closes it.
pub fn closes_pre(line: &str) -> bool {
    PRE_CLOSE.is_match(line)
}

/// The code of a `<pre>` line: tags dropped, HTML entities decoded.
pub fn pre_code(line: &str) -> String {
    let text = TAG.replace_all(line, "");
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_told_apart_by_content() {
        for code in [
            "import os\n",
            "os.system('ls ' + cmd)\n",
            "cmd = input()\n",
            "def run(x):\n",
            "if user:\n",
            "const x = require('child_process');\n",
            ">>> import os\n",
            "}\n",
        ] {
            assert!(is_code_line(code), "{code:?}");
            assert!(matches!(classify(code), LineStart::Opens { at: 0, .. }));
        }
        for prose in [
            "Here is the handler you asked for.\n",
            "Use it with care: it runs commands.\n",
            "1. Install the package.\n",
            "Note that x = 5 here.\n",
            "\n",
        ] {
            assert_eq!(classify(prose), LineStart::Prose, "{prose:?}");
        }
    }

    #[test]
    fn fences_and_pre_open_regions_mid_line() {
        assert_eq!(
            classify("Here: ```python\n"),
            LineStart::Opens {
                at: 6,
                kind: RegionKind::Fence { ch: '`', len: 3 }
            }
        );
        assert_eq!(
            classify("```flask\n"),
            LineStart::Opens {
                at: 0,
                kind: RegionKind::Fence { ch: '`', len: 3 }
            }
        );
        assert_eq!(
            classify("See <PRE class=x>import os\n"),
            LineStart::Opens {
                at: 4,
                kind: RegionKind::Pre
            }
        );
        assert_eq!(classify("Use ```ls``` to list.\n"), LineStart::Prose);
        assert_eq!(
            pre_code("<code>os.system(&quot;ls &quot; + x)</code></pre>\n"),
            "os.system(\"ls \" + x)\n"
        );
    }
}
