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
        let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
            .args(["serve", "--port", "0"])
            .args(args)
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
