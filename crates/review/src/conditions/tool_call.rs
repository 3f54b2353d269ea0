//! A tool call (OpenAI `tool_calls`) to a sensitive function: its name matches one of the
//! `names` globs (`delete_*`, `transfer_funds`), or its arguments match one of the
//! `arguments` globs (`*DROP TABLE*`, `*rm -rf*`). Globs: `*` any run, `?` one character,
//! case-insensitive, matched against the whole name or argument text.

use serde::Deserialize;
use serde_json::json;

use super::{Condition, Fired};
use crate::policy::AnswerFacts;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallMatch {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub arguments: Vec<String>,
}

impl ToolCallMatch {
    pub fn validated(&self) -> Result<ToolCallMatch, String> {
        if self.names.is_empty() && self.arguments.is_empty() {
            return Err("give `names` or `arguments` globs".into());
        }
        if self
            .names
            .iter()
            .chain(&self.arguments)
            .any(|g| g.is_empty())
        {
            return Err("a glob must not be empty".into());
        }
        Ok(self.clone())
    }
}

impl Condition for ToolCallMatch {
    fn check(&self, facts: &AnswerFacts<'_>) -> Option<Fired> {
        let matched: Vec<_> = facts
            .tool_calls
            .iter()
            .filter(|call| {
                self.names.iter().any(|g| glob_matches(g, &call.name))
                    || self
                        .arguments
                        .iter()
                        .any(|g| glob_matches(g, &call.arguments))
            })
            .collect();
        if matched.is_empty() {
            return None;
        }
        let names: Vec<String> = matched.iter().map(|c| format!("`{}`", c.name)).collect();
        let calls: Vec<serde_json::Value> = matched
            .iter()
            .map(|c| json!({"name": c.name, "arguments": c.arguments}))
            .collect();
        Some(Fired {
            reason: format!("tool call to {}", names.join(", ")),
            evidence: json!({ "tool_calls": calls }),
        })
    }
}

/// Whether `text` matches `glob` as a whole (`*`, `?`; ASCII case-insensitive).
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let g: Vec<char> = glob.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative matching with one backtrack point (the last `*`): linear in practice.
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ti));
            gi += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ToolCall;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("delete_*", "delete_user"));
        assert!(glob_matches("DELETE_*", "delete_"));
        assert!(!glob_matches("delete_*", "undelete_user"));
        assert!(glob_matches("transfer_funds", "Transfer_Funds"));
        assert!(!glob_matches("transfer_funds", "transfer_funds2"));
        assert!(glob_matches(
            "*drop table*",
            "{\"sql\": \"DROP TABLE users\"}"
        ));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
    }

    #[test]
    fn fires_on_a_sensitive_name_or_argument() {
        let m = ToolCallMatch {
            names: vec!["transfer_funds".into()],
            arguments: vec!["*rm -rf*".into()],
        };
        let calls = [ToolCall {
            name: "run_shell".into(),
            arguments: "{\"cmd\": \"rm -rf /\"}".into(),
        }];
        let facts = AnswerFacts {
            tool_calls: &calls,
            ..AnswerFacts::default()
        };
        let fired = m.check(&facts).unwrap();
        assert!(fired.reason.contains("`run_shell`"), "{}", fired.reason);
        let calls = [ToolCall {
            name: "get_weather".into(),
            arguments: "{}".into(),
        }];
        let facts = AnswerFacts {
            tool_calls: &calls,
            ..AnswerFacts::default()
        };
        assert!(m.check(&facts).is_none());
    }
}
