//! The GGUF's own chat template (`tokenizer.chat_template`, Jinja as written for Hugging Face
//! transformers), rendered with minijinja plus what HF templates rely on: Python string methods
//! (`.strip()`, `.startswith()`...), `raise_exception`, `strftime_now`, `bos_token`/`eos_token`.

use minijinja::{Environment, Error, ErrorKind, context};

use crate::ChatMessage;
use crate::model::{Result, RuntimeError};

pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const TEMPLATE_NAME: &str = "chat_template";

impl ChatTemplate {
    pub fn new(source: &str, bos_token: String, eos_token: String) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |format: String| -> String {
            // Templates use it to print today's date; a fixed date keeps renders reproducible.
            format
                .replace("%Y", "2026")
                .replace("%m", "01")
                .replace("%d", "01")
                .replace("%B", "January")
                .replace("%b", "Jan")
        });
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| {
                RuntimeError::Template(format!("tokenizer.chat_template does not parse: {e:#}"))
            })?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(TEMPLATE_NAME).expect("added in new");
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| {
                RuntimeError::Template(format!("rendering tokenizer.chat_template failed: {e:#}"))
            })
    }
}

/// ChatML, for GGUFs that carry no template.
pub(crate) const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
