//! Helpers shared by the review tests: the review admin API with a bearer token, role keys,
//! waiting for queue items, and clients (whole and streamed) that wait on their own thread
//! while an answer is held.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::guard::{ADMIN, Behaviour, Gateway, chat, client};

/// An upstream answer that is only a tool call: `transfer_funds` of `amount` to acct-991.
pub fn transfer_funds_call(amount: u64) -> Behaviour {
    let args = json!({"to": "acct-991", "amount": amount}).to_string();
    Behaviour::Scripted {
        whole: json!({"id": "up", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "transfer_funds", "arguments": args}}]},
                "finish_reason": "tool_calls"}]}),
        chunks: vec![],
    }
}
/// `(status, body)` of a review API call with this bearer token.
pub fn call(
    g: &Gateway,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = client();
    let url = format!("{}{path}", g.url);
    let req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        other => panic!("method {other}"),
    }
    .bearer_auth(bearer);
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req.send().unwrap();
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

pub fn role_key(g: &Gateway, name: &str, role: &str) -> String {
    let (status, body) = call(
        g,
        "POST",
        "/admin/review/keys",
        ADMIN,
        Some(json!({"name": name, "role": role})),
    );
    assert_eq!(status, 201, "{body}");
    body["key"].as_str().unwrap().to_string()
}

/// Waits until the queue holds an item in `state`; returns the newest such.
pub fn wait_for_item(g: &Gateway, state: &str) -> Value {
    for _ in 0..400 {
        let (status, body) = call(
            g,
            "GET",
            &format!("/admin/review/items?state={state}"),
            ADMIN,
            None,
        );
        assert_eq!(status, 200, "{body}");
        if let Some(item) = body["data"].as_array().unwrap().last() {
            return item.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no `{state}` review item after 20 s");
}

/// Sends a whole chat request on its own thread (it may be held).
pub fn ask_in_background(
    g: &Gateway,
    body: Value,
) -> std::thread::JoinHandle<(u16, reqwest::header::HeaderMap, Value)> {
    ask_in_background_at(g, "/v1/chat/completions", body)
}

/// [`ask_in_background`] on another route (`/v1/completions`).
pub fn ask_in_background_at(
    g: &Gateway,
    path: &'static str,
    body: Value,
) -> std::thread::JoinHandle<(u16, reqwest::header::HeaderMap, Value)> {
    let url = g.url.clone();
    std::thread::spawn(move || {
        let res = client()
            .post(format!("{url}{path}"))
            .json(&body)
            .send()
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.json().unwrap_or(Value::Null))
    })
}

pub fn approve(g: &Gateway, id: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
    call(
        g,
        "POST",
        &format!("/admin/review/items/{id}/approve"),
        bearer,
        body,
    )
}

pub fn reject(g: &Gateway, id: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
    call(
        g,
        "POST",
        &format!("/admin/review/items/{id}/reject"),
        bearer,
        body,
    )
}

/// The client is still waiting a while after its item appeared.
pub fn still_waiting<T>(handle: &std::thread::JoinHandle<T>) {
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !handle.is_finished(),
        "the held client got an answer before any decision"
    );
}

pub fn chat_json(g: &Gateway, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = chat(g, None, &body);
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().unwrap_or(Value::Null))
}

/// Reads a streamed answer line by line on its own thread: its `data:` payloads.
pub fn stream_in_background(g: &Gateway, body: Value) -> mpsc::Receiver<String> {
    stream_in_background_at(g, "/v1/chat/completions", body)
}

/// [`stream_in_background`] on another route (`/v1/completions`).
pub fn stream_in_background_at(
    g: &Gateway,
    path: &'static str,
    body: Value,
) -> mpsc::Receiver<String> {
    let url = g.url.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let res = client()
            .post(format!("{url}{path}"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
        for line in std::io::BufReader::new(res).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                let _ = tx.send(data.to_string());
            }
        }
    });
    rx
}

/// The content of the chunks received so far, and whether `[DONE]` or an error came.
/// Receives a stream's events into `into` until `[DONE]` (or 20 s without one).
pub fn receive_until_done(rx: &mpsc::Receiver<String>, into: &mut Vec<String>) {
    while let Ok(data) = rx.recv_timeout(Duration::from_secs(20)) {
        let done = data == "[DONE]";
        into.push(data);
        if done {
            break;
        }
    }
}

/// The id of the newest pending queue item (waiting for one).
pub fn pending_id(g: &Gateway) -> String {
    wait_for_item(g, "pending")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn drain(rx: &mpsc::Receiver<String>, into: &mut Vec<String>) -> String {
    while let Ok(data) = rx.try_recv() {
        into.push(data);
    }
    content_of(into)
}

pub fn content_of(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["delta"]["content"].as_str().map(String::from))
        .collect()
}

/// Logs in to the console over plain HTTP (the login form's double-submit token, then the
/// role key); returns the session cookie's value.
pub fn console_login(base: &str, key: &str) -> String {
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = c.get(format!("{base}/console/login")).send().unwrap();
    let login_cookie = set_cookie(&page, "emg_login").expect("the login page sets its token");
    let html = page.text().unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form carries its token")
        .to_string();
    let res = c
        .post(format!("{base}/console/login"))
        .header("cookie", format!("emg_login={login_cookie}"))
        .form(&[("key", key), ("csrf", &csrf)])
        .send()
        .unwrap();
    assert!(res.status().is_redirection(), "login: {}", res.status());
    set_cookie(&res, "emg_session").expect("a logged-in answer sets the session cookie")
}

/// A console page's `(status, html)` with this session cookie.
pub fn console_page(base: &str, path: &str, session: &str) -> (u16, String) {
    let res = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .header("cookie", format!("emg_session={session}"))
        .send()
        .unwrap();
    (res.status().as_u16(), res.text().unwrap_or_default())
}

fn set_cookie(res: &reqwest::blocking::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
