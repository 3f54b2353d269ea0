//! Passwords, keys and tokens written into the source.

use crate::python::fields::fields;
use crate::python::syntax::{KindName, children, named_children};
use tree_sitter::Node;

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::{Ctx, Module};
use crate::rule::{Profile, Rule};

use super::{mentions_secret, names_secret, string_literal};

pub static RULE: Rule = Rule {
    id: "PY-HARDCODED-CREDENTIAL",
    title: "Hard-coded credential",
    language: Language::Python,
    cwe: 798,
    severity: Severity::Medium,
    confidence: Confidence::Medium,
    profile: Profile::Default,
    message: "a password, key or token is written into the source: anyone with the code has the credential",
    fix: "Read secrets from the environment or a secret store at run time (`os.environ['DB_PASSWORD']`), and compare passwords against stored hashes.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/bad_04.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/good_01.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/good_02.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/good_03.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/good_04.py"),
        include_str!("../../../tests/fixtures/PY-HARDCODED-CREDENTIAL/good_05.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    // Every name tested below is text of the source, except a subscript key joined from
    // several literals (`cfg['pass' 'word']`): when no secret's name occurs in the source,
    // only such a key can still be one, and the rest is skipped.
    let source_mentions_secret = mentions_secret(m.src);
    for &(assignment, _) in &m.assignments {
        let (Some(left), Some(right)) = (
            assignment.child_by_field_id(fields().left),
            assignment.child_by_field_id(fields().right),
        ) else {
            continue;
        };
        if !source_mentions_secret && left.kind_name() != "subscript" {
            continue;
        }
        let target = match left.kind_name() {
            // `config['SECRET_KEY'] = ...`: the key names the secret.
            "subscript" => left
                .child_by_field_id(fields().subscript)
                .and_then(|k| string_literal(m, k))
                .unwrap_or_default(),
            _ => m.text(left).to_string(),
        };
        if names_secret(&target) && is_secret_literal(m, &target, right) {
            cx.report(assignment);
        }
    }
    if !source_mentions_secret {
        return;
    }
    for call in &m.calls {
        let Some(args) = call.args else { continue };
        for arg in named_children(args).filter(|a| a.kind_name() == "keyword_argument") {
            let key = arg
                .child_by_field_id(fields().name)
                .map(|n| m.text(n))
                .unwrap_or("");
            if let Some(value) = arg.child_by_field_id(fields().value)
                && names_secret(key)
                && is_secret_literal(m, key, value)
            {
                cx.report(arg);
            }
        }
    }
    for &(cmp, _) in &m.comparisons {
        let (Some(left), Some(right)) = (cmp.named_child(0), cmp.named_child(1)) else {
            continue;
        };
        let is_eq = children(cmp).any(|c| m.text(c) == "==");
        // Comparing a secret with a literal is a built-in credential whatever its value.
        if is_eq
            && names_secret(m.text(left))
            && string_literal(m, right).is_some_and(|s| !s.is_empty())
        {
            cx.report(cmp);
        }
    }
}

/// A literal that looks like a real secret: not empty, not a placeholder or demo default
/// (`'password'`, `'postgres'`, `'changeme'`), not a setting name (`PASSWORD_MIN_LENGTH`).
fn is_secret_literal(m: &Module<'_>, name: &str, value: Node<'_>) -> bool {
    let Some(s) = string_literal(m, value) else {
        return false;
    };
    let upper = name.to_ascii_uppercase();
    let setting = [
        "LENGTH", "HEADER", "FIELD", "NAME", "URL", "PATH", "FILE", "TYPE", "PARAM", "_LEN",
        "PREFIX", "ENV",
    ]
    .iter()
    .any(|w| upper.ends_with(w));
    let placeholder = s.len() < 4
        || s.contains(' ')
        || s.contains('{')
        || s.starts_with('$')
        || s.starts_with('<')
        || [
            "changeme",
            "change-me",
            "your_",
            "your-",
            "xxx",
            "***",
            "placeholder",
            "example",
        ]
        .iter()
        .any(|p| s.to_ascii_lowercase().contains(p));
    !setting && !placeholder && !is_demo_default(&s)
}

/// Well-known demo values (`password`, `secret123`, `root`): placeholders for the reader to
/// replace rather than leaked secrets.
fn is_demo_default(value: &str) -> bool {
    let word = value.to_ascii_lowercase();
    let word = word
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches("my");
    matches!(
        word,
        "password"
            | "passwd"
            | "pass"
            | "pwd"
            | "secret"
            | "secretkey"
            | "secret_key"
            | "secret-key"
            | "postgres"
            | "root"
            | "admin"
            | "test"
            | "user"
            | "mysql"
            | "default"
            | "dev"
            | "devkey"
            | "dev-key"
            | "changeit"
            | "key"
            | "token"
    )
}

#[cfg(test)]
mod tests {
    use crate::{Language, Scanner};

    #[test]
    fn a_key_split_across_literals_is_still_a_secret() {
        // No secret's name occurs in the source as written: only the joined key names one.
        let source = "cfg = {}\ncfg['pass' 'word'] = 'Zk81x9f2q'\n";
        let result = Scanner::new().scan(source, Language::Python);
        assert!(
            result.findings.iter().any(|f| f.rule_id == super::RULE.id),
            "{result:?}"
        );
    }
}
