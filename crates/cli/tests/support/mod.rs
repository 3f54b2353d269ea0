//! Shared by the CLI tests that need a running `emguard serve`.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The real `emguard serve` binary on a free port; killed when dropped, passed or not.
pub struct Server {
    child: Child,
    /// The OpenAI base URL it printed, e.g. `http://127.0.0.1:41234/v1`.
    pub base_url: String,
}

impl Server {
    /// Starts the server with the default model and waits for its address line.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `emguard serve --port 0 ARGS...` and waits for its address line.
    pub fn start_with(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// [`Server::start_with`] with these environment variables set (the admin token).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
            .args(["serve", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base_url = loop {
            let line = lines
                .next()
                .expect("serve prints its address before anything else ends")
                .unwrap();
            if let Some(rest) = line.strip_prefix("emguard serve: listening on ") {
                break rest.split(' ').next().unwrap().to_owned();
            }
        };
        Server { child, base_url }
    }

    /// Kills the process at once (SIGKILL): nothing is flushed, no handler runs.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends SIGTERM (what orchestrators send) and waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `gateway.yaml` in `dir`: model `m` served by the local SmolLM2 (batches of 8), no
/// auth, traces in `gateway.db` beside it with the `traces:` settings `traces` (YAML flow map,
/// e.g. `{durable: true}`, or `{}`). Returns (config, store).
pub fn local_smollm2_config(
    dir: &std::path::Path,
    traces: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let store = dir.join("gateway.db");
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "store: '{}'\nauth: {{required: false}}\ntraces: {traces}\nmodels:\n  - id: m\n    active: v1\n    versions: [{{name: v1, local: smollm2-135m-instruct, max_batch: 8}}]\n",
            store.display()
        ),
    )
    .unwrap();
    (config, store)
}

/// Eight clients asking model `m` for two tokens in a loop until stopped; the ids of the
/// answers they received are kept (requests cut off by a server stop fail and do not count).
pub struct ChatLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl ChatLoad {
    pub fn start(base_url: &str) -> ChatLoad {
        use std::sync::atomic::Ordering;
        let url = format!("{base_url}/chat/completions");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients = (0..8)
            .map(|i| {
                let (url, received, stop) = (url.clone(), received.clone(), stop.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let body = serde_json::json!({"model": "m", "max_tokens": 2, "seed": n,
                            "messages": [{"role": "user", "content": format!("client {i} request {n}")}]});
                        let Ok(res) = client.post(&url).json(&body).send() else {
                            continue;
                        };
                        if res.status() != 200 {
                            continue;
                        }
                        if let Ok(answer) = res.json::<serde_json::Value>() {
                            let id = answer["id"].as_str().unwrap().to_string();
                            received.lock().unwrap().push(id);
                        }
                    }
                })
            })
            .collect();
        ChatLoad {
            stop,
            received,
            clients,
        }
    }

    /// Waits until `n` answers were received or `limit` passed; returns how many there are.
    pub fn wait_for(&self, n: usize, limit: std::time::Duration) -> usize {
        let started = std::time::Instant::now();
        loop {
            let count = self.received.lock().unwrap().len();
            if count >= n || started.elapsed() > limit {
                return count;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the clients; the ids of every answer they received.
    pub fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        self.received.lock().unwrap().clone()
    }
}

/// The ids of every trace in the gateway store at `store`.
pub fn trace_ids(store: &std::path::Path) -> std::collections::HashSet<String> {
    let store = emguard_store::gateway::GatewayStore::open(store.to_str().unwrap()).unwrap();
    store
        .traces(&emguard_store::gateway::TraceQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

/// A running `emguard` command (e.g. `eval`) whose stderr lines arrive on a channel, so a test
/// can follow its progress, signal it and collect everything it said.
pub struct Running {
    child: Child,
    stderr: std::sync::mpsc::Receiver<String>,
    lines: Vec<String>,
    /// How long to wait for a line or the exit before failing the test.
    deadline: std::time::Duration,
}

impl Running {
    pub fn start(args: &[&str], deadline: std::time::Duration) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, stderr) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Running {
            child,
            stderr,
            lines: Vec::new(),
            deadline,
        }
    }

    /// The next stderr line; fails the test when none comes within the deadline.
    pub fn next_line(&mut self) -> String {
        let line = self.stderr.recv_timeout(self.deadline).unwrap_or_else(|_| {
            panic!(
                "emguard printed nothing for {:?}:\n{}",
                self.deadline,
                self.lines.join("\n")
            )
        });
        self.lines.push(line.clone());
        line
    }

    /// The run id from eval's `run ID in STORE` line.
    pub fn run_id(&mut self) -> String {
        loop {
            if let Some(rest) = self.next_line().strip_prefix("run ") {
                return rest.split(' ').next().unwrap().to_string();
            }
        }
    }

    /// Sends signal `name` (`INT`, `TERM`, `KILL`) to the process; when it was sent.
    pub fn signal(&self, name: &str) -> std::time::Instant {
        let sent = std::time::Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
        sent
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Everything it printed on stderr so far.
    pub fn log(&mut self) -> String {
        self.lines.extend(self.stderr.try_iter());
        self.lines.join("\n")
    }

    /// Waits for the exit (failing the test past the deadline): the status, when it ended,
    /// stdout and the whole stderr.
    pub fn wait(mut self) -> (std::process::ExitStatus, std::time::Instant, String, String) {
        use std::io::Read;
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > self.deadline {
                let _ = self.child.kill();
                panic!("emguard did not finish:\n{}", self.lines.join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let ended = std::time::Instant::now();
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        self.lines.extend(self.stderr.iter());
        (status, ended, stdout, self.lines.join("\n"))
    }
}
