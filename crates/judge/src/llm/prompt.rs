//! The study's judge prompts are Python `str.format` templates with `{question}` and `{answer}`.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PromptError {
    #[error("judge prompt uses unknown field `{{{0}}}` (only {{question}} and {{answer}} exist)")]
    UnknownField(String),
    #[error("judge prompt has an unmatched `{0}` at byte {1} (write `{0}{0}` for a literal one)")]
    Unmatched(char, usize),
}

/// Fills `{question}` and `{answer}`; `{{` and `}}` are literal braces, as in Python.
pub fn render_judge_prompt(
    template: &str,
    question: &str,
    answer: &str,
) -> Result<String, PromptError> {
    let mut out = String::with_capacity(template.len() + question.len() + answer.len());
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let brace = rest.as_bytes()[i] as char;
        let after = &rest[i + 1..];
        if after.starts_with(brace) {
            out.push(brace);
            rest = &after[1..];
            offset += i + 2;
            continue;
        }
        if brace == '}' {
            return Err(PromptError::Unmatched('}', offset + i));
        }
        let Some(close) = after.find('}') else {
            return Err(PromptError::Unmatched('{', offset + i));
        };
        match &after[..close] {
            "question" => out.push_str(question),
            "answer" => out.push_str(answer),
            other => return Err(PromptError::UnknownField(other.to_string())),
        }
        rest = &after[close + 1..];
        offset += i + close + 2;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_fields_and_unescapes_braces() {
        let got =
            render_judge_prompt("Q: {question}\nA: {answer} {{x}}", "why?", "{json}").unwrap();
        assert_eq!(got, "Q: why?\nA: {json} {x}");
    }

    #[test]
    fn rejects_unknown_fields_and_stray_braces() {
        assert_eq!(
            render_judge_prompt("{foo}", "", ""),
            Err(PromptError::UnknownField("foo".into()))
        );
        assert_eq!(
            render_judge_prompt("a } b", "", ""),
            Err(PromptError::Unmatched('}', 2))
        );
        assert_eq!(
            render_judge_prompt("a {question", "", ""),
            Err(PromptError::Unmatched('{', 2))
        );
    }
}
