//! The real SmolLM2-135M-Instruct GGUF, loaded once per test binary.
#![allow(dead_code)] // each test binary uses part of this module

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use emguard_runtime::{
    ChatMessage, GenerateRequest, LoadOptions, MatmulKernel, Model, Prompt, SamplingParams,
};

/// `$EMGUARD_HOME/models/smollm2-135m-instruct/*.gguf` (home defaults to ~/.cache/emguard),
/// where `emguard models pull` puts it.
pub fn smollm2_path() -> PathBuf {
    let home = std::env::var_os("EMGUARD_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/emguard")
        });
    let dir = home.join("models/smollm2-135m-instruct");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `emguard models pull smollm2-135m-instruct`)",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .unwrap_or_else(|| panic!("no .gguf in {}", dir.display()))
}

pub fn model() -> Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(
                Model::load(&smollm2_path(), &LoadOptions::default()).expect("loading SmolLM2"),
            )
        })
        .clone()
}

/// The model on a given Q8_0 kernel (each loaded once per test binary).
pub fn model_on(kernel: MatmulKernel) -> Arc<Model> {
    static MODELS: OnceLock<Mutex<HashMap<MatmulKernel, Arc<Model>>>> = OnceLock::new();
    let mut models = MODELS.get_or_init(Default::default).lock().unwrap();
    models
        .entry(kernel)
        .or_insert_with(|| {
            let options = LoadOptions {
                kernel: Some(kernel),
                ..Default::default()
            };
            Arc::new(Model::load(&smollm2_path(), &options).expect("loading SmolLM2"))
        })
        .clone()
}

pub fn chat(user: &str) -> Prompt {
    Prompt::Chat(vec![ChatMessage::user(user)])
}

pub fn greedy(prompt: Prompt, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt,
        params: SamplingParams {
            temperature: 0.0,
            max_tokens,
            ..Default::default()
        },
    }
}
