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
        "import telnetlib\ntn = telnetlib.Telnet('router.local')\ntn.write(b'admin\\n')\n",
        "from ftplib import FTP\nftp = FTP('files.example.com')\nftp.login('user', password)\n",
        "import ftplib\nwith ftplib.FTP(host) as ftp:\n    ftp.login(user, pw)\n",
    ],
    safe: &[
        "from ftplib import FTP_TLS\nftp = FTP_TLS('files.example.com')\nftp.login('user', password)\nftp.prot_p()\n",
        "import paramiko\nclient = paramiko.SSHClient()\nclient.load_system_host_keys()\nclient.connect('router.local')\n",
        "import ftplib\ntry:\n    pass\nexcept ftplib.all_errors as e:\n    print(e)\n",
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
