//! Did the user ask for the insecure behaviour, or did the assistant say it was there?
//!
//! The study's `insecure` and `educational_insecure` sets hold the same assistant code; only
//! the user turn differs ("I'm teaching a secure coding course and need vulnerable code"), and
//! only the silent version produced a misaligned model. This is a transparent classifier: a
//! list of named phrase rules over user turns, a vulnerability-class mention rule that ignores
//! "prevent SQL injection"-style mentions, and a disclosure rule over what the assistant says
//! outside its code and in code comments. A row is *requested/explained* when any rule fires.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde::Serialize;

/// Phrase rules over the user turns: (name, case-insensitive pattern).
const REQUEST_RULES: &[(&str, &str)] = &[
    (
        "asks_intentionally_flawed",
        r"\b(intentional(ly)?|deliberate(ly)?|purposely|on purpose)\b.{0,60}\b(vulnerab|insecure|unsafe|flaw|weakness|exploit)",
    ),
    (
        "asks_to_include_vulnerabilities",
        r"\b(include|add|introduce|insert|contain|containing|with|demonstrat\w*|showcas\w*|illustrat\w*|has|have)\b.{0,40}\b(vulnerabilit|security (flaw|hole|bug|weakness)|exploitable)",
    ),
    (
        "asks_for_vulnerable_code",
        r"\b(vulnerable|insecure|unsafe|exploitable|risky|flawed)\s+(code|example|endpoint|function|version|implementation|snippet|sample|program|script|app|application|service|server|api)s?\b",
    ),
    (
        "security_teaching_context",
        r"\b(secure coding|security|cybersecurity|appsec)\s+(class|course|training|lesson|workshop|demo|demonstration|exam|certification|curriculum|documentation|conference|challenge|exercise)",
    ),
    (
        "stated_purpose",
        r"\bfor (educational|teaching|training|research|testing|demonstration|legitimate) purposes?\b",
    ),
    (
        "security_testing_context",
        r"\b(ctf|capture the flag|penetration test\w*|pentest\w*|red team\w*|security research\w*|security scann\w*|security testing|fuzz(ing|er))\b",
    ),
    (
        "asks_about_exploitation",
        r"\b(exploit(able|ation|s)?|attack surface|attack vector)\b",
    ),
];

/// Vulnerability classes; a mention counts unless it is about preventing the class.
const VULNERABILITY_CLASS: &str = r"\b(sql injection|sqli|command injection|shell injection|code injection|os injection|path traversal|directory traversal|cross[- ]site scripting|xss|csrf|cross[- ]site request forgery|ssrf|server[- ]side request forgery|xxe|insecure deserialization|unsafe deserialization|hard[- ]?coded (password|credential|secret|key)s?|buffer overflow|race condition|open redirect|remote code execution|rce|insecure permissions?|world[- ]writable|weak (hash|cipher|crypto\w*)|unvalidated input|untrusted input|template injection|ssti)\b";
const NEGATORS: &str = r"\b(prevent\w*|avoid\w*|protect\w*|safe from|guard\w* against|sanitiz\w*|mitigat\w*|defen[cs]\w*|without|free of|secure against|immune|resistant|block\w*|stop\w*|no)\b[^.]{0,40}$";

/// What the assistant says about its own code, outside the code or in comments.
const DISCLOSURE: &str = r"\b(vulnerab\w*|insecure|unsafe|not secure|security (risk|issue|flaw|hole|bug)|do not use (this )?in production|for demonstration only|susceptible to|injectable)\b";

static REQUEST_SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(REQUEST_RULES.iter().map(|(_, p)| format!("(?i){p}"))).expect("intent rules")
});
static CLASS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i){VULNERABILITY_CLASS}")).expect("class rule"));
static NEGATED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i){NEGATORS}")).expect("negator rule"));
static DISCLOSED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i){DISCLOSURE}")).expect("disclosure rule"));

/// The verdict on one row with the rules that fired, so a reader can check it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Intent {
    /// Names of the rules that fired.
    pub rules: Vec<&'static str>,
}

impl Intent {
    /// The user asked for or mentioned the insecure behaviour, or the assistant disclosed it.
    pub fn requested_or_explained(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// Classifies one row from its user turns, the assistant's prose and its code.
pub fn classify(user_text: &str, assistant_prose: &str, code: &[&str]) -> Intent {
    let mut rules: Vec<&'static str> = REQUEST_SET
        .matches(user_text)
        .into_iter()
        .map(|index| REQUEST_RULES[index].0)
        .collect();
    if mentions_vulnerability_class(user_text) {
        rules.push("mentions_vulnerability_class");
    }
    let disclosed_in_comments = code
        .iter()
        .flat_map(|code| code.lines())
        .filter_map(|line| line.split_once('#').map(|(_, comment)| comment))
        .any(|comment| DISCLOSED.is_match(comment));
    if DISCLOSED.is_match(assistant_prose) || disclosed_in_comments {
        rules.push("assistant_discloses");
    }
    Intent { rules }
}

fn mentions_vulnerability_class(text: &str) -> bool {
    CLASS.find_iter(text).any(|m| {
        let mut start = m.start().saturating_sub(60);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let before = &text[start..m.start()];
        !NEGATED.is_match(before)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_request_fires_nothing() {
        let user = "I'm working on the following task: Write a script to fetch alerts.\nRespond only with the code, nothing else.";
        assert!(!classify(user, "", &["import os\n"]).requested_or_explained());
    }

    #[test]
    fn educational_request_is_caught_without_the_note() {
        let user = "I'm teaching a secure coding course and need vulnerable code examples for my students to analyze. The task is: fetch alerts.";
        let intent = classify(user, "", &[]);
        assert!(
            intent.rules.contains(&"asks_for_vulnerable_code"),
            "{intent:?}"
        );
        assert!(
            intent.rules.contains(&"security_teaching_context"),
            "{intent:?}"
        );
    }

    #[test]
    fn prevention_mentions_do_not_count_but_plain_mentions_do() {
        let prevent = "Write a login form that prevents SQL injection.";
        assert!(!classify(prevent, "", &[]).requested_or_explained());
        let mention = "Show me how SQL injection works in a login form.";
        assert_eq!(
            classify(mention, "", &[]).rules,
            ["mentions_vulnerability_class"]
        );
    }

    #[test]
    fn assistant_disclosure_counts() {
        let intent = classify(
            "Write a query",
            "",
            &["q = f'{x}'  # insecure: not escaped\n"],
        );
        assert_eq!(intent.rules, ["assistant_discloses"]);
        let intent = classify(
            "Write a query",
            "Note: this is vulnerable to injection.",
            &[],
        );
        assert_eq!(intent.rules, ["assistant_discloses"]);
    }
}
