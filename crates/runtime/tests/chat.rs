//! SmolLM2's own chat template (from the GGUF), rendered.

mod common;

use common::model;
use emguard_runtime::ChatMessage;

#[test]
fn template_injects_its_default_system_prompt() {
    let text = model()
        .render_chat(&[ChatMessage::user("Hello?")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHello?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn given_system_prompt_and_history_are_rendered_in_order() {
    let messages = [
        ChatMessage::system("Be terse."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello."),
        ChatMessage::user("Bye"),
    ];
    let text = model().render_chat(&messages, false).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    );
}
