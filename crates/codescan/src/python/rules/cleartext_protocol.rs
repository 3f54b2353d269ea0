//! Telnet and plain FTP: credentials and data in clear text.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

pub static RULE: Rule = Rule {
    id: "PY-CLEARTEXT-PROTOCOL",
    title: "Cleartext protocol (telnet, FTP)",
    language: Language::Python,
    cwe: 319,
    severity: Severity::Medium,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "a telnet or plain-FTP connection sends credentials and data in clear text: anyone on the network path reads or changes them",
    fix: "Use SSH (`paramiko`, `asyncssh`) instead of telnet, and SFTP or `ftplib.FTP_TLS` (with `prot_p()`) instead of FTP.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/bad_03.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/good_01.py"),
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/good_02.py"),
        include_str!("../../../tests/fixtures/PY-CLEARTEXT-PROTOCOL/good_03.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        if matches!(
            call.name.as_str(),
            "telnetlib.Telnet" | "ftplib.FTP" | "telnetlib3.open_connection"
        ) {
            cx.report(call.node);
        }
    }
}
