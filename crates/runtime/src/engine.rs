//! A generation thread over one model that batches concurrent requests: requests join the
//! running batch between decode steps and leave it when done or cancelled (continuous batching).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::batch::{self, Sequence};
use crate::model::Model;
use crate::{CancelToken, Completion, GenerateRequest, PositionLogprobs};

/// Streaming events of one request submitted to an [`Engine`].
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// New text of answer `index` (0..n).
    Delta {
        index: usize,
        text: String,
        logprobs: Option<PositionLogprobs>,
    },
    /// Answer `index` finished.
    Done {
        index: usize,
        completion: Completion,
    },
    /// The request failed.
    Error(String),
}

struct Submission {
    request: GenerateRequest,
    events: UnboundedSender<EngineEvent>,
    cancel: Option<CancelToken>,
}

/// A background generation thread over one model that batches concurrent requests
/// (continuous batching: requests join and leave the running batch between decode steps).
/// The thread ends when every clone of the `Engine` is dropped and its work is done.
#[derive(Clone)]
pub struct Engine {
    model: Arc<Model>,
    submissions: mpsc::Sender<Submission>,
    active: Arc<AtomicUsize>,
}

impl Engine {
    pub fn spawn(model: Arc<Model>, max_batch: usize) -> Engine {
        let (submissions, inbox) = mpsc::channel();
        let active = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            model: model.clone(),
            active: active.clone(),
            max_batch: max_batch.max(1),
            inbox,
            requests: HashMap::new(),
            next_id: 0,
            waiting: VecDeque::new(),
            running: Vec::new(),
        };
        std::thread::Builder::new()
            .name("emguard-engine".into())
            .spawn(move || worker.run())
            .expect("spawning the engine thread");
        Engine {
            model,
            submissions,
            active,
        }
    }

    /// Requests admitted and not yet finished or cancelled (a load figure for servers).
    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Submit one request; events arrive on the returned channel until every answer is `Done`.
    /// Sync callers use `blocking_recv`; dropping the receiver cancels the request.
    pub fn submit(&self, request: GenerateRequest) -> UnboundedReceiver<EngineEvent> {
        self.send(request, None)
    }

    /// [`Engine::submit`] with a token: once it is cancelled the request leaves the batch
    /// before the next decode step and its channel closes without `Done` for the answers left.
    pub fn submit_cancellable(
        &self,
        request: GenerateRequest,
        cancel: CancelToken,
    ) -> UnboundedReceiver<EngineEvent> {
        self.send(request, Some(cancel))
    }

    fn send(
        &self,
        request: GenerateRequest,
        cancel: Option<CancelToken>,
    ) -> UnboundedReceiver<EngineEvent> {
        let (events, receiver) = unbounded_channel();
        let submission = Submission {
            request,
            events,
            cancel,
        };
        if let Err(mpsc::SendError(s)) = self.submissions.send(submission) {
            let _ = s
                .events
                .send(EngineEvent::Error("the engine thread has stopped".into()));
        }
        receiver
    }
}

/// A request in progress: where its events go and how many answers are still open.
struct Open {
    events: UnboundedSender<EngineEvent>,
    remaining: usize,
    cancel: Option<CancelToken>,
}

struct Worker {
    model: Arc<Model>,
    active: Arc<AtomicUsize>,
    max_batch: usize,
    inbox: mpsc::Receiver<Submission>,
    requests: HashMap<usize, Open>,
    next_id: usize,
    /// Answers admitted but not yet in the batch (it was full).
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                // Idle: sleep until a request arrives; stop when every Engine is gone.
                match self.inbox.recv() {
                    Ok(s) => self.admit(s),
                    Err(_) => return,
                }
            }
            while let Ok(s) = self.inbox.try_recv() {
                self.admit(s);
            }
            self.drop_cancelled();
            while self.running.len() < self.max_batch {
                let Some(s) = self.waiting.pop_front() else {
                    break;
                };
                self.running.push(s);
            }
            self.step();
            self.active.store(self.requests.len(), Ordering::Relaxed);
        }
    }

    fn admit(&mut self, submission: Submission) {
        let Submission {
            request,
            events,
            cancel,
        } = submission;
        let (prompt, params) = match self.model.prepare(&request) {
            Ok(p) => p,
            Err(e) => {
                let _ = events.send(EngineEvent::Error(e.to_string()));
                return;
            }
        };
        if params.n == 0 {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting
            .extend(Sequence::answers(&self.model, id, &prompt, &params));
        self.requests.insert(
            id,
            Open {
                events,
                remaining: params.n,
                cancel,
            },
        );
        self.active.store(self.requests.len(), Ordering::Relaxed);
    }

    /// Forget requests whose receiver was dropped or whose token was cancelled.
    fn drop_cancelled(&mut self) {
        let cancelled: Vec<usize> = self
            .requests
            .iter()
            .filter(|(_, o)| {
                o.events.is_closed() || o.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
            })
            .map(|(&id, _)| id)
            .collect();
        let mut gone = Vec::with_capacity(cancelled.len());
        for id in cancelled {
            gone.extend(self.requests.remove(&id));
            self.running.retain(|s| s.request != id);
            self.waiting.retain(|s| s.request != id);
        }
        // Count them gone before their channels close (when `gone` drops).
        self.active.store(self.requests.len(), Ordering::Relaxed);
        drop(gone);
    }

    fn step(&mut self) {
        let mut refs: Vec<&mut Sequence> = self.running.iter_mut().collect();
        let events = match batch::step(&self.model, &mut refs) {
            Ok(events) => events,
            Err(e) => {
                // A failed step poisons every sequence in it: report to each request.
                for s in self.running.drain(..) {
                    if let Some(open) = self.requests.remove(&s.request) {
                        let _ = open.events.send(EngineEvent::Error(e.to_string()));
                    }
                }
                return;
            }
        };
        for event in events {
            let s = &mut self.running[event.seq];
            let Some(open) = self.requests.get_mut(&s.request) else {
                continue;
            };
            let text = s.take_delta();
            if !text.is_empty() || event.logprobs.is_some() {
                let _ = open.events.send(EngineEvent::Delta {
                    index: s.index,
                    text,
                    logprobs: event.logprobs,
                });
            }
            if s.is_finished() {
                let done = EngineEvent::Done {
                    index: s.index,
                    completion: s.completion(),
                };
                open.remaining -= 1;
                if open.remaining == 0 {
                    // Count it gone before the caller can see its last event.
                    let open = self.requests.remove(&s.request).expect("present above");
                    self.active.store(self.requests.len(), Ordering::Relaxed);
                    let _ = open.events.send(done);
                } else {
                    let _ = open.events.send(done);
                }
            }
        }
        self.running.retain(|s| !s.is_finished());
    }
}
