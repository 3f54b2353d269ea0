//! The review console in a real headless Chromium driven through WebDriver (chromedriver),
//! while real `openai`-package clients wait on held answers: a reviewer logs in, sees a held
//! answer appear, approves it (the client receives it) and rejects another (the client gets
//! the content-filter error); a viewer sees no approve button and a forged POST is 403; a POST
//! without the CSRF token is refused. The queue page's screenshot is saved under
//! `target/test-output/review/queue.png`.
//!
//! WebDriver is JSON over HTTP (W3C): the few commands used here are a small client over
//! reqwest ([`WebDriver`]), which needs no dependency beyond those the gateway builds with.

mod guard;
mod review_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use emguard_testkit::{Prerequisite, skip};
use guard::{ADMIN, Behaviour, Gateway, gateway, upstream};
use review_support::{role_key, transfer_funds_call};
use serde_json::{Value, json};

const VULNERABLE: &str = "Here is the handler:\n\n```python\nimport os\nfrom flask import request\n\ndef run():\n    os.system('ping ' + request.args['host'])\n```\n";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, once it answers.
fn chromedriver(test: &str) -> Option<(Driver, String)> {
    let path = std::env::var_os("EMGUARD_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    if !path.exists() {
        return skip(
            test,
            Prerequisite::Service,
            &format!(
                "chromedriver is not at {} (apt-get install chromium-driver, or set EMGUARD_CHROMEDRIVER)",
                path.display()
            ),
        );
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Owned by the guard at once: killed and waited for on every path, panics included.
    let driver = Driver(
        Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::blocking::get(format!("{url}/status")).is_ok_and(|r| r.status().is_success()) {
            return Some((driver, url));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not answer on {url}");
}

/// A WebDriver session: the commands this test needs.
struct WebDriver {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

/// A W3C element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    async fn start(driver: &str, chromium: &std::path::Path) -> WebDriver {
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1000"],
        }}}});
        let res: Value = http
            .post(format!("{driver}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no Chromium session: {res}"));
        WebDriver {
            http,
            session: format!("{driver}/session/{id}"),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let res: Value = req.send().await.unwrap().json().await.unwrap();
        if res["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {}", res["value"]);
        }
        res["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("not an element reference: {e}"))
                    .to_string()
            })
            .collect()
    }

    async fn find(&self, css: &str) -> String {
        let found = self.find_all(css).await;
        found
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), None)
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn text(&self, element: &str) -> String {
        let v = self
            .call("GET", &format!("/element/{element}/text"), None)
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    async fn attr(&self, element: &str, name: &str) -> String {
        let v = self
            .call("GET", &format!("/element/{element}/attribute/{name}"), None)
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn cookie(&self, name: &str) -> String {
        let v = self.call("GET", &format!("/cookie/{name}"), None).await;
        v["value"].as_str().unwrap().to_string()
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    async fn close(&self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// Runs the `openai` package's client on its own process; its JSON line when it ends.
fn openai_client(g: &Gateway, model: &str, question: &str) -> std::thread::JoinHandle<Value> {
    let python = std::env::var("EMGUARD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/review_client.py");
    let url = g.url.clone();
    let (model, question) = (model.to_string(), question.to_string());
    std::thread::spawn(move || {
        let out = Command::new(python)
            .args([script, &url, &model, &question])
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "review_client.py failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).expect("one JSON line")
    })
}

/// Logs in and waits for the queue page the login redirects to: a click returns before the
/// navigation it starts ends, and the session cookie is set only by the login's response (a
/// cookie read right after the click found none once, after a logout had cleared it).
async fn log_in(c: &WebDriver, base: &str, key: &str) {
    c.goto(&format!("{base}/console/login")).await;
    c.type_into("#key", key).await;
    c.click("#login").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.call("GET", "/url", None).await;
        if url.as_str().is_some_and(|u| u.ends_with("/console/queue")) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the login did not reach the queue; the browser is at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reloads the queue until an item with this question shows; its row id.
async fn wait_for_row(c: &WebDriver, base: &str, question: &str) -> String {
    for _ in 0..100 {
        c.goto(&format!("{base}/console/queue")).await;
        for row in c.find_all("tr.item").await {
            if c.text(&row).await.contains(question) {
                return c.attr(&row, "id").await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no queue row for {question:?}");
}

#[test]
fn a_reviewer_decides_in_a_real_browser_while_clients_wait() {
    let test = "a_reviewer_decides_in_a_real_browser_while_clients_wait";
    let Some(chromium) = emguard_testkit::chromium(test) else {
        return;
    };
    let Some((_driver, driver_url)) = chromedriver(test) else {
        return;
    };
    let up = upstream(Behaviour::Answer(VULNERABLE.into()));
    let payer = upstream(transfer_funds_call(5000));
    let g = gateway(&format!(
        "
store: '{{store}}'
auth: {{required: false}}
filters: {{code: {{action: annotate, min_severity: low}}}}
review:
  default:
    timeout_secs: 120
    conditions:
      - {{name: vulnerable-code, when: {{code_severity: medium}}, action: hold}}
      - {{name: money, when: {{tool_call: {{names: [transfer_funds]}}}}, action: hold}}
models:
  - id: m
    active: v1
    versions: [{{name: v1, upstream: '{}'}}]
  - id: payments
    active: v1
    versions: [{{name: v1, upstream: '{}'}}]
",
        up.url, payer.url
    ));
    let reviewer = role_key(&g, "alice", "reviewer");
    let viewer = role_key(&g, "victor", "viewer");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let c = WebDriver::start(&driver_url, &chromium).await;
        log_in(&c, &g.url, &reviewer).await;

        // Approve: the waiting client receives the answer.
        let first = openai_client(&g, "m", "write a ping handler");
        let row = wait_for_row(&c, &g.url, "write a ping handler").await;
        assert!(
            !first.is_finished(),
            "the client was answered before the decision"
        );
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("test-output/review");
        std::fs::create_dir_all(&out).unwrap();
        let png = c.screenshot().await;
        std::fs::write(out.join("queue.png"), &png).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        c.click(&format!("tr[id='{row}'] button.approve")).await;
        let answered = tokio::task::spawn_blocking(move || first.join().unwrap())
            .await
            .unwrap();
        assert_eq!(answered["ok"], true, "{answered}");
        assert_eq!(answered["content"], VULNERABLE);

        // Reject: the client gets the content-filter error naming the review.
        let second = openai_client(&g, "m", "another ping handler");
        let row = wait_for_row(&c, &g.url, "another ping handler").await;
        c.click(&format!("tr[id='{row}'] button.reject")).await;
        let refused = tokio::task::spawn_blocking(move || second.join().unwrap())
            .await
            .unwrap();
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["status"], 403);
        assert_eq!(refused["code"], "content_filter");
        assert_eq!(refused["review_id"], row.as_str());

        // A proposed action: the tool call waits for the reviewer, who sees its name and
        // arguments in the queue, and reaches the client on approval.
        let payment = openai_client(&g, "payments", "pay the invoice");
        let row = wait_for_row(&c, &g.url, "pay the invoice").await;
        let shown = c.text(&c.find(&format!("tr[id='{row}']")).await).await;
        assert!(
            shown.contains("transfer_funds") && shown.contains("acct-991"),
            "the queue row does not show the tool call: {shown}"
        );
        assert!(
            !payment.is_finished(),
            "the tool call left before the decision"
        );
        c.click(&format!("tr[id='{row}'] button.approve")).await;
        let paid = tokio::task::spawn_blocking(move || payment.join().unwrap())
            .await
            .unwrap();
        assert_eq!(paid["ok"], true, "{paid}");
        assert_eq!(paid["tool_calls"], json!(["transfer_funds"]), "{paid}");

        // A viewer sees the held item but no button; the POST it could forge is 403.
        let third = openai_client(&g, "m", "a third ping handler");
        c.goto(&format!("{}/console/queue", g.url)).await;
        c.click("header form button").await;
        log_in(&c, &g.url, &viewer).await;
        let row = wait_for_row(&c, &g.url, "a third ping handler").await;
        assert!(
            c.find_all("button.approve").await.is_empty(),
            "a viewer was shown an approve button"
        );
        let session = c.cookie("emg_session").await;
        let source = c.source().await;
        let csrf = source
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("the viewer's page has its CSRF token (logout form)")
            .to_string();
        // (The async client: a blocking one cannot run inside this runtime.)
        let http = reqwest::Client::new();
        let forged = http
            .post(format!("{}/console/items/{row}/decide", g.url))
            .header("cookie", format!("emg_session={session}"))
            .form(&[("csrf", csrf.as_str()), ("decision", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);
        // A reviewer's session without the CSRF token is refused too.
        c.click("header form button").await;
        log_in(&c, &g.url, &reviewer).await;
        let session = c.cookie("emg_session").await;
        let no_token = http
            .post(format!("{}/console/items/{row}/decide", g.url))
            .header("cookie", format!("emg_session={session}"))
            .form(&[("decision", "approve")])
            .send()
            .await
            .unwrap();
        assert_eq!(no_token.status(), 403);
        let item: Value = http
            .get(format!("{}/admin/review/items/{row}", g.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(item["state"], "pending", "a refused POST changed the item");
        // The reviewer, through the page, releases it.
        wait_for_row(&c, &g.url, "a third ping handler").await;
        c.click(&format!("tr[id='{row}'] button.approve")).await;
        let answered = tokio::task::spawn_blocking(move || third.join().unwrap())
            .await
            .unwrap();
        assert_eq!(answered["ok"], true, "{answered}");

        // The other pages render from the same store: the traffic chart, traces, the log.
        c.goto(&format!("{}/console/models", g.url)).await;
        assert_eq!(
            c.find_all("svg#traffic polyline").await.len(),
            2,
            "requests and flagged rate of v1"
        );
        c.goto(&format!("{}/console/traces", g.url)).await;
        assert!(
            !c.find_all("td a[href^='/console/traces/chatcmpl-']")
                .await
                .is_empty(),
            "the trace search lists the held requests"
        );
        c.goto(&format!("{}/console/audit", g.url)).await;
        let log = c.source().await;
        assert!(
            log.contains("rows verifies"),
            "the audit page verifies the chain"
        );
        assert!(
            log.contains("console_login") && log.contains("reject"),
            "decisions and logins are logged"
        );
        c.close().await;
    });
}
