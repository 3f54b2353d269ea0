//! The continuous-batching engine on the real model.

mod common;

use std::time::Duration;

use common::{chat, greedy, model};
use emguard_runtime::{CancelToken, Completion, Engine, EngineEvent, GenerateRequest};
use tokio::sync::mpsc::UnboundedReceiver;

/// Collect a request's events: (streamed text per answer, completions).
fn drain(mut rx: UnboundedReceiver<EngineEvent>, n: usize) -> (Vec<String>, Vec<Completion>) {
    let mut text = vec![String::new(); n];
    let mut done: Vec<Option<Completion>> = vec![None; n];
    while done.iter().any(Option::is_none) {
        match rx
            .blocking_recv()
            .expect("engine sends until every answer is done")
        {
            EngineEvent::Delta { index, text: t, .. } => text[index].push_str(&t),
            EngineEvent::Done { index, completion } => done[index] = Some(completion),
            EngineEvent::Error(e) => panic!("engine error: {e}"),
        }
    }
    (text, done.into_iter().map(Option::unwrap).collect())
}

#[test]
fn concurrent_requests_get_the_same_answers_as_generate() {
    let model = model();
    let engine = Engine::spawn(model.clone(), 4);
    let mut requests: Vec<GenerateRequest> = [
        "Hi",
        "Name a colour.",
        "What is 2 + 2?",
        "Write a haiku about rain.",
        "Who are you?",
    ]
    .iter()
    .map(|q| greedy(chat(q), 16))
    .collect();
    requests[1].params.stop = vec!["e".into()];
    requests[4].params.n = 2;
    // Submit from several threads at staggered times: requests join a running batch.
    let handles: Vec<_> = requests
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, r)| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40 * i as u64));
                let n = r.params.n;
                drain(engine.submit(r), n)
            })
        })
        .collect();
    for (request, handle) in requests.iter().zip(handles) {
        let (streamed, completions) = handle.join().unwrap();
        let expected = model
            .generate(std::slice::from_ref(request))
            .unwrap()
            .remove(0);
        assert_eq!(completions, expected);
        for (s, c) in streamed.iter().zip(&completions) {
            assert_eq!(s, &c.text, "deltas add up to the final text");
        }
    }
}

#[test]
fn dropped_receiver_cancels_the_request() {
    let engine = Engine::spawn(model(), 2);
    let mut long = engine.submit(greedy(chat("Write a long essay about history."), 2000));
    assert!(
        matches!(long.blocking_recv(), Some(EngineEvent::Delta { .. })),
        "it started"
    );
    assert_eq!(engine.active_requests(), 1);
    drop(long);
    // The engine notices between steps; a request served after that sees it gone.
    let (_, done) = drain(engine.submit(greedy(chat("Hi"), 4)), 1);
    assert_eq!(done[0].tokens.len(), 4);
    assert_eq!(engine.active_requests(), 0);
}

#[test]
fn cancelled_token_stops_the_request_and_closes_its_channel() {
    let engine = Engine::spawn(model(), 4);
    let cancel = CancelToken::new();
    let mut essay = greedy(chat("Write a long essay about history."), 2000);
    essay.params.n = 2;
    let mut events = engine.submit_cancellable(essay, cancel.clone());
    let mut streamed = 0;
    while streamed < 3 {
        match events.blocking_recv() {
            Some(EngineEvent::Delta { .. }) => streamed += 1,
            other => panic!("expected text, got {other:?}"),
        }
    }
    cancel.cancel();
    // What was already sent still arrives, then the channel closes: no answer is `Done`.
    while let Some(event) = events.blocking_recv() {
        assert!(matches!(event, EngineEvent::Delta { .. }), "{event:?}");
        streamed += 1;
    }
    assert!(streamed < 2 * 2000, "{streamed} deltas: it stopped early");
    assert_eq!(engine.active_requests(), 0);
    // The engine goes on serving.
    let (_, done) = drain(engine.submit(greedy(chat("Hi"), 4)), 1);
    assert_eq!(done[0].tokens.len(), 4);
}

#[test]
fn invalid_request_gets_an_error_event() {
    let engine = Engine::spawn(model(), 2);
    let mut request = greedy(chat("Hi"), 8);
    request.params.top_logprobs = 50;
    match engine.submit(request).blocking_recv() {
        Some(EngineEvent::Error(e)) => assert!(e.contains("top_logprobs"), "{e}"),
        other => panic!("expected an error event, got {other:?}"),
    }
}
