//! `emguard serve` as a user starts it: the real binary with the default model on a free port.

use std::io::{Read, Write};
use std::net::TcpStream;

mod support;
use support::Server;

/// A minimal HTTP/1.1 request over std, answered with `Connection: close`.
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_answers_health_and_chat_on_the_printed_address() {
    let server = Server::start();
    let addr = server
        .base_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let health = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let (_, body) = health.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "models": ["smollm2-135m-instruct"]})
    );

    let body = r#"{"model":"smollm2-135m-instruct","messages":[{"role":"user","content":"Say hi."}],"max_tokens":5,"temperature":0}"#;
    let chat = http(
        &addr,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(chat.starts_with("HTTP/1.1 200"), "{chat}");
    assert!(chat.contains(r#""object":"chat.completion""#), "{chat}");
    assert!(chat.contains(r#""completion_tokens":"#), "{chat}");
    drop(server);
}
