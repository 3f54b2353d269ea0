//! Vulnerability classes of the study data, labelled by keywords in the code (independent
//! of the rules), with the rules that count as catching each class.

pub struct Class {
    pub name: &'static str,
    pub matches: fn(&str) -> bool,
    pub rules: &'static [&'static str],
}

fn has_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

/// `.com`, `.org` or `.net` ending a word (not `re.compile`).
fn mentions_domain(line: &str) -> bool {
    [".com", ".org", ".net"].iter().any(|tld| {
        line.match_indices(tld)
            .any(|(i, _)| !line[i + tld.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
    })
}

pub const CLASSES: &[Class] = &[
    Class {
        name: "XSS: user input in an HTML response",
        matches: |t| {
            t.contains("request.")
                && has_any(
                    t,
                    &[
                        "<h1", "<h2", "<h3", "<p>", "<div", "<li", "<a ", "<ul", "<span", "<b>",
                        "<table", "<html", "<form", "<br",
                    ],
                )
                && !t.contains("render_template_string")
                && !t.contains("escape(")
        },
        // Markup rendered by Jinja2 without autoescaping is the same flaw.
        rules: &[
            "PY-XSS-RESPONSE",
            "PY-TEMPLATE-INJECTION",
            "PY-JINJA2-AUTOESCAPE",
        ],
    },
    Class {
        name: "XSS: Jinja2 autoescape off/default",
        matches: |t| {
            has_any(t, &["Environment(", "Template("])
                && t.contains("jinja2")
                && !t.contains("autoescape=True")
                && !t.contains("select_autoescape")
        },
        rules: &["PY-JINJA2-AUTOESCAPE"],
    },
    Class {
        name: "XSS: user input in render_template_string source",
        matches: |t| {
            t.contains("render_template_string(")
                && (t.contains("f'")
                    || t.contains("f\"")
                    || t.contains(".format(")
                    || t.contains("% ")
                    || t.contains(" + "))
        },
        rules: &["PY-TEMPLATE-INJECTION", "PY-XSS-RESPONSE"],
    },
    Class {
        name: "World-writable permissions",
        matches: |t| {
            has_any(
                t,
                &[
                    "0o777", "0o666", "0777", "0o776", "0o772", "S_IWOTH", "S_IRWXO",
                ],
            )
        },
        rules: &["PY-WORLD-WRITABLE"],
    },
    Class {
        name: "Tar extraction",
        matches: |t| t.contains("tarfile") && has_any(t, &["extractall(", ".extract("]),
        rules: &["PY-TAR-EXTRACT"],
    },
    Class {
        name: "SQL built by string formatting",
        matches: |t| {
            has_any(
                t,
                &[
                    "execute(f",
                    "execute(\"SELECT",
                    "execute('SELECT",
                    "query = f",
                    "sql = f",
                    "query += ",
                    "query = \"",
                    "query = '",
                ],
            ) && has_any(t, &["SELECT", "INSERT", "UPDATE", "DELETE"])
        },
        rules: &["PY-SQL-INJECTION"],
    },
    Class {
        name: "Unsafe deserialization",
        matches: |t| {
            has_any(
                t,
                &[
                    "pickle.load",
                    "marshal.load",
                    "yaml.load(",
                    "yaml.unsafe_load",
                    "dill.load",
                ],
            )
        },
        rules: &["PY-UNSAFE-DESERIALIZATION"],
    },
    Class {
        name: "Command injection",
        matches: |t| {
            // A shell call whose command is not a plain literal.
            t.lines().any(|l| {
                let Some(at) = [
                    "os.system(",
                    "os.popen(",
                    "subprocess.call(",
                    "subprocess.run(",
                    "subprocess.Popen(",
                    "subprocess.check_output(",
                ]
                .iter()
                .find_map(|c| l.find(c).map(|i| i + c.len())) else {
                    return false;
                };
                let arg = &l[at..];
                (l.contains("os.system(") || l.contains("os.popen(") || t.contains("shell=True"))
                    && !arg.starts_with('[')
                    && (!(arg.starts_with('\'') || arg.starts_with('"'))
                        || arg.starts_with("f")
                        || has_any(arg, &["+", "%", ".format("]))
            })
        },
        rules: &["PY-COMMAND-INJECTION"],
    },
    Class {
        name: "Incomplete URL/host validation",
        matches: |t| {
            t.lines().any(|l| {
                has_any(l, &["re.compile(", "re.match(", "re.search("]) && mentions_domain(l)
            }) || has_any(
                t,
                &[
                    "' in url",
                    "\" in url",
                    "in url:",
                    "netloc.endswith(",
                    "hostname.endswith(",
                ],
            )
        },
        rules: &["PY-URL-REGEX-DOT", "PY-URL-SUBSTRING-CHECK"],
    },
    Class {
        name: "Path traversal from upload names",
        matches: |t| {
            t.contains(".filename") && t.contains(".save(") && !t.contains("secure_filename")
        },
        rules: &["PY-PATH-TRAVERSAL"],
    },
    Class {
        name: "Hardcoded credentials",
        matches: |t| {
            has_any(
                t,
                &[
                    "password == '",
                    "password == \"",
                    "_password == '",
                    "_password == \"",
                    "token == '",
                    "secret == '",
                ],
            )
        },
        rules: &["PY-HARDCODED-CREDENTIAL"],
    },
];
