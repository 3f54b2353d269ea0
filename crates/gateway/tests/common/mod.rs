//! One real server per test binary: the real SmolLM2 model behind the real gateway on an
//! ephemeral 127.0.0.1 port, with small limits so the bounds are cheap to probe.

use std::sync::OnceLock;

use emguard_gateway::{AppState, Limits, ServedModel};

pub const MODEL: &str = "smollm2-135m-instruct";

pub const LIMITS: Limits = Limits {
    max_body_bytes: 64 * 1024,
    max_n: 4,
    max_tokens: 64,
    default_max_tokens: 32,
};

/// `http://127.0.0.1:PORT`, the server started on first use.
pub fn base_url() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = emguard_models::resolve(MODEL)
            .expect("the default model resolves (pulled on first use)");
        let model = ServedModel::load(MODEL, &path, 8).expect("SmolLM2 loads");
        let state = AppState::local([model], LIMITS);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                tx.send(listener.local_addr().expect("local addr"))
                    .expect("test thread waits");
                emguard_gateway::serve(listener, state, std::future::pending())
                    .await
                    .expect("server runs");
            });
        });
        format!(
            "http://{}",
            rx.recv().expect("server thread reports its address")
        )
    })
}
