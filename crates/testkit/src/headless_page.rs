//! A report page loaded offline in headless Chromium, and the page's own self-check read back.
//!
//! emguard's HTML reports end with a script that writes what the browser laid out into
//! `<pre id="self-check">` (JSON with `expected_figures` and `errors`, and whatever else the
//! report counts) and `figures rendered: N/M` into `<p id="render-check">`. [`load`] runs the
//! page with `--dump-dom`; [`self_check`] accepts the page only when Chromium logged no console
//! message, the self-check ran without script errors and every expected figure was drawn.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one page load may take before Chromium counts as hung.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);

/// Loads a page in headless Chromium with a fresh profile and no network services; returns
/// the DOM after its scripts ran and the console messages Chromium logged.
pub fn load(chromium: &Path, page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().expect("a Chromium profile folder");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Chromium starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).expect("Chromium's output");
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("Chromium's status") {
            break status;
        }
        if started.elapsed() > LOAD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish loading {} in time", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (dom, log) = (
        stdout.join().expect("stdout"),
        stderr.join().expect("stderr"),
    );
    assert!(status.success(), "Chromium failed ({status}):\n{log}");
    let console = log
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (dom, console)
}

/// The text of the element with this id (entities `&lt;`, `&gt;`, `&amp;` decoded).
pub fn text_of(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let open = start + dom[start..].find('>')? + 1;
    let close = open + dom[open..].find("</")?;
    Some(
        dom[open..close]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The self-check of a loaded page, or why the page failed it.
pub fn self_check(dom: &str, console: &[String]) -> Result<Value, String> {
    if !console.is_empty() {
        return Err(format!("console messages:\n{}", console.join("\n")));
    }
    let json = text_of(dom, "self-check")
        .filter(|t| !t.is_empty())
        .ok_or("the self-check did not run")?;
    let check: Value = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    let errors = check["errors"]
        .as_array()
        .ok_or("no `errors` in the self-check")?;
    if !errors.is_empty() {
        return Err(format!("script errors: {errors:?}"));
    }
    let line = text_of(dom, "render-check").unwrap_or_default();
    let expected = format!("figures rendered: {0}/{0}", check["expected_figures"]);
    if line != expected {
        return Err(format!("`{line}`, expected `{expected}`: {check}"));
    }
    Ok(check)
}
