//! The multilingual encoder against the Python package it is pulled from: the same token ids for
//! every text of the fixture (made by `fixtures/make_use_multilingual.py`), and vectors within
//! float rounding of the reference.

use emguard_embed::multilingual::MultilingualEncoder;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    text: String,
    ids: Vec<u32>,
    vector: Vec<f32>,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/use_multilingual.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn encoder() -> MultilingualEncoder {
    let dir = emguard_models::resolve("use-multilingual-v3").expect("model pulled");
    MultilingualEncoder::load(&dir).expect("model loads")
}

#[test]
fn tokens_and_vectors_equal_the_reference_package() {
    let encoder = encoder();
    let fixture = fixture();
    let texts: Vec<String> = fixture.rows.iter().map(|r| r.text.clone()).collect();
    let vectors = encoder.embed(&texts).expect("embeds");
    for (row, vector) in fixture.rows.iter().zip(&vectors) {
        assert_eq!(
            encoder.tokenizer().encode(&row.text),
            row.ids,
            "token ids of {:?}",
            row.text
        );
        let worst = vector
            .iter()
            .zip(&row.vector)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let cosine: f32 = vector.iter().zip(&row.vector).map(|(a, b)| a * b).sum();
        assert!(
            worst < 1e-4 && cosine > 0.99999,
            "{:?}: largest difference {worst}, cosine {cosine}",
            row.text
        );
    }
}

#[test]
fn the_same_meaning_in_four_languages_is_closer_than_another_meaning() {
    let encoder = encoder();
    let texts: Vec<String> = fixture().rows[..6].iter().map(|r| r.text.clone()).collect();
    let v = encoder.embed(&texts).expect("embeds");
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    // Rows 0-3: one question in EN/ES/FR/DE; rows 4-5: a poisoning instruction in EN/ES.
    for other in 1..4 {
        assert!(
            cosine(&v[0], &v[other]) > cosine(&v[0], &v[4]) + 0.2,
            "row {other}: {} vs {}",
            cosine(&v[0], &v[other]),
            cosine(&v[0], &v[4])
        );
    }
    assert!(cosine(&v[4], &v[5]) > 0.7, "{}", cosine(&v[4], &v[5]));
}

#[test]
fn a_broken_model_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sp.model"), b"\x0a\xff\xff\xff\xff\x0f").expect("write");
    let Err(error) = MultilingualEncoder::load(dir.path()) else {
        panic!("a broken model was loaded");
    };
    let message = error.to_string();
    assert!(message.contains("sp.model"), "{message}");
    assert!(message.contains("not a sentencepiece model"), "{message}");
}
