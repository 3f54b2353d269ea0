//! The gateway's own code rules: execution hidden from a reader (and from the scanner's
//! call-name rules) by decoding it at run time or reaching a dangerous function by name.
//! Small and textual on purpose: the codescan crate owns the language-aware rules; these
//! cover what it does not see yet (`exec(base64...)`, `__import__('os')`, `getattr(os, ...)`).
//! One rule a row: id, CWE, severity, pattern.

use std::sync::LazyLock;

use emguard_codescan::Severity;
use regex::Regex;

struct Rule {
    id: &'static str,
    cwe: u32,
    severity: Severity,
    pattern: &'static str,
}

const RULES: &[Rule] = &[
    // exec/eval/compile of decoded or decompressed data: the code run is not the code shown.
    Rule {
        id: "EMG-OBF-001",
        cwe: 95,
        severity: Severity::High,
        pattern: r"\b(exec|eval|compile)\s*\([^\n]{0,200}?\b(b64decode|b32decode|b16decode|a85decode|b85decode|decodebytes|decompress|fromhex|unhexlify|rot13|rot_13|marshal\.loads|codecs\.decode|bytes\(|bytearray\(|chr\()",
    },
    // A dangerous module imported by a string name.
    Rule {
        id: "EMG-OBF-002",
        cwe: 78,
        severity: Severity::High,
        pattern: r#"\b(__import__|importlib\.import_module)\s*\(\s*['"](os|subprocess|pty|posix|nt|socket|ctypes|shutil|builtins|commands)['"]"#,
    },
    // A dangerous function reached by name through getattr.
    Rule {
        id: "EMG-OBF-003",
        cwe: 78,
        severity: Severity::High,
        pattern: r#"\bgetattr\s*\(\s*(os|subprocess|pty|posix|builtins|__builtins__|__import__\s*\([^)]*\)|importlib\.import_module\s*\([^)]*\))\s*,\s*['"]?\w*['"]?"#,
    },
    // JavaScript's counterpart: eval of decoded text.
    Rule {
        id: "EMG-OBF-004",
        cwe: 95,
        severity: Severity::High,
        pattern: r"\b(eval|Function)\s*\(\s*(atob|Buffer\.from|unescape|decodeURIComponent|String\.fromCharCode)\s*\(",
    },
];

static COMPILED: LazyLock<Vec<(&'static Rule, Regex)>> = LazyLock::new(|| {
    RULES
        .iter()
        .map(|r| (r, Regex::new(r.pattern).expect("obfuscation rule compiles")))
        .collect()
});

/// One match: the rule and the 1-based line of `code` it starts on.
pub struct ObfuscationFinding {
    pub rule_id: &'static str,
    pub cwe: u32,
    pub severity: Severity,
    pub line: usize,
}

pub fn findings(code: &str) -> Vec<ObfuscationFinding> {
    let mut out = Vec::new();
    for (rule, regex) in COMPILED.iter() {
        for m in regex.find_iter(code) {
            out.push(ObfuscationFinding {
                rule_id: rule.id,
                cwe: rule.cwe,
                severity: rule.severity,
                line: code[..m.start()].matches('\n').count() + 1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(code: &str) -> Vec<&'static str> {
        findings(code).into_iter().map(|f| f.rule_id).collect()
    }

    #[test]
    fn each_rule_fires_on_its_obfuscation_and_not_on_plain_code() {
        assert_eq!(
            ids("import base64\nexec(base64.b64decode('cHJpbnQoMSk='))"),
            ["EMG-OBF-001"]
        );
        assert_eq!(ids("__import__('os').system('ls ' + x)"), ["EMG-OBF-002"]);
        assert_eq!(ids("getattr(os, 'system')(cmd)"), ["EMG-OBF-003"]);
        assert_eq!(ids("eval(atob('YWxlcnQoMSk='))"), ["EMG-OBF-004"]);
        assert!(ids("import base64\nprint(base64.b64decode(data))\nexec_time = 3").is_empty());
        assert!(ids("getattr(user, 'name', None)").is_empty());
    }
}
