//! `emguard generate`: sample answers to one prompt from a local GGUF model.

use std::process::ExitCode;

use anyhow::Context;
use emguard_runtime::{ChatMessage, GenerateRequest, LoadOptions, Model, Prompt, SamplingParams};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The user message (rendered with the model's chat template).
    pub prompt: String,
    /// Model name (e.g. smollm2-135m-instruct) or path to a .gguf file.
    #[arg(long, default_value = emguard_models::DEFAULT_LLM)]
    pub model: String,
    /// System message; without one the template's default applies.
    #[arg(long)]
    pub system: Option<String>,
    /// Answers to sample.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub n: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Nucleus sampling: keep the most likely tokens holding this much probability.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Answer i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Treat the prompt as raw text, not a chat message.
    #[arg(long)]
    pub raw: bool,
    /// Print one JSON object per answer (text, tokens, finish_reason, ...).
    #[arg(long)]
    pub json: bool,
    /// Keep the GGUF's quantization even where it has no fast kernel.
    #[arg(long)]
    pub no_requantize: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = emguard_models::resolve(&args.model)
        .with_context(|| format!("finding model {:?}", args.model))?;
    let model = Model::load(
        &path,
        &LoadOptions {
            no_requantize: args.no_requantize,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", path.display()))?;
    let prompt = if args.raw {
        Prompt::Text(args.prompt)
    } else {
        let mut messages = Vec::new();
        messages.extend(args.system.map(ChatMessage::system));
        messages.push(ChatMessage::user(args.prompt));
        Prompt::Chat(messages)
    };
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        stop: args.stop,
        seed: args.seed,
        n: args.n,
        ..SamplingParams::default()
    };
    let answers = model
        .generate(&[GenerateRequest { prompt, params }])?
        .remove(0);
    for (i, answer) in answers.iter().enumerate() {
        if args.json {
            println!("{}", serde_json::to_string(answer)?);
        } else {
            if answers.len() > 1 {
                println!(
                    "--- answer {i} ({:?}, {} tokens)",
                    answer.finish_reason,
                    answer.tokens.len()
                );
            }
            println!("{}", answer.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}
