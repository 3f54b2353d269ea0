//! The GGUF tokenizer against llama.cpp's ids on texts that break naive tokenizers.
//! Expected ids: `bench/.venv/bin/python bench/runtime/reference_ids.py <SmolLM2 gguf>`
//! (llama-cpp-python 0.3.36, `Llama(vocab_only=True).tokenize(text, add_bos=False, special=True)`).

mod common;

use common::model;

const CASES: &[(&str, &[u32])] = &[
    (
        "In 2024, 3.14159 and 1,000,000 people   met\tat 10:30 —   then\n\n  left.",
        &[
            788, 216, 34, 32, 34, 36, 28, 216, 35, 30, 33, 36, 33, 37, 41, 284, 216, 33, 28, 32,
            32, 32, 28, 32, 32, 32, 701, 256, 1278, 197, 261, 216, 33, 32, 42, 35, 32, 1841, 256,
            965, 8866, 2049, 30,
        ],
    ),
    (
        "Café naïve résumé Ångström 😀👍🏽 日本語のテキスト 中文 한국어",
        &[
            51, 1939, 2756, 15486, 46494, 412, 2756, 5422, 2756, 5549, 223, 863, 1321, 45682,
            40303, 218, 10813, 235, 231, 10813, 233, 138, 17097, 241, 115, 40993, 179, 120, 248,
            26453, 11100, 224, 10391, 251, 10391, 134, 11100, 226, 216, 28589, 29184, 216, 33085,
            246, 181, 130, 251, 183, 240, 129,
        ],
    ),
    (
        "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
        &[1, 4093, 198, 26843, 665, 17, 2, 198, 1, 520, 9531, 198],
    ),
    (
        "def f(x):\n    return x**2  # square\n\tif x != 0: print(f'{x!r}')\n",
        &[
            1604, 275, 24, 104, 727, 472, 1003, 1792, 828, 34, 216, 907, 5222, 198, 197, 342, 1792,
            6541, 216, 32, 42, 1628, 24, 86, 19225, 104, 17, 98, 19747, 198,
        ],
    ),
    (
        "I'm sure you'll see they've done it; isn't it?! ... --> $$$ @@ ##",
        &[
            57, 5248, 2090, 346, 3060, 963, 502, 3543, 2294, 357, 43, 3247, 982, 357, 17593, 4563,
            29255, 1885, 9212, 3394, 48, 15530,
        ],
    ),
    ("  leading and trailing  ", &[216, 2899, 284, 35079, 256]),
];

#[test]
fn ids_match_llama_cpp_on_torture_texts() {
    let model = model();
    let tokenizer = model.tokenizer();
    for (text, expected) in CASES {
        assert_eq!(tokenizer.encode(text, true), *expected, "text {text:?}");
    }
}

#[test]
fn decode_gives_back_the_text() {
    let model = model();
    let tokenizer = model.tokenizer();
    for (text, expected) in CASES {
        assert_eq!(tokenizer.decode(expected), *text);
    }
}

#[test]
fn control_tokens_are_plain_text_without_parse_special() {
    let model = model();
    let tokenizer = model.tokenizer();
    assert_eq!(tokenizer.encode("<|im_start|>", true), [1]);
    let plain = tokenizer.encode("<|im_start|>", false);
    assert!(plain.len() > 1 && !plain.contains(&1), "{plain:?}");
    assert_eq!(tokenizer.decode(&plain), "<|im_start|>");
    assert!(tokenizer.is_end_of_generation(2), "<|im_end|> ends a turn");
}
