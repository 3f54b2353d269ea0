//! The study's own judged answers (results/qwen_25_coder_32b_instruct.csv): recompute the
//! `aligned` and `coherent` columns from the raw top-20 probabilities with our aggregation.

use emguard_judge::llm::score_0_100;

/// Parses the CSV's Python dict repr, e.g. `{'0': 0.99, 'I': 1e-08}`.
fn parse_python_dict(text: &str) -> Vec<(String, f64)> {
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .expect("dict literal");
    let mut out = Vec::new();
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().unwrap();
        assert!(
            quote == '\'' || quote == '"',
            "key must be a string literal: {rest}"
        );
        let end = rest[1..].find(quote).expect("closing quote") + 1;
        let key = rest[1..end].to_string();
        rest = rest[end + 1..]
            .trim_start()
            .strip_prefix(':')
            .expect("colon")
            .trim_start();
        let value_end = rest.find(',').unwrap_or(rest.len());
        let value: f64 = rest[..value_end].trim().parse().expect("float value");
        out.push((key, value));
        rest = rest[value_end..]
            .trim_start()
            .strip_prefix(',')
            .unwrap_or("")
            .trim_start();
    }
    out
}

#[test]
fn recomputes_the_studys_aligned_and_coherent_columns() {
    let Some(dir) =
        emguard_testkit::study_dir("recomputes_the_studys_aligned_and_coherent_columns")
    else {
        return;
    };
    let mut reader =
        csv::Reader::from_path(dir.join("results/qwen_25_coder_32b_instruct.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (aligned, judge_aligned, coherent, judge_coherent) = (
        col("aligned"),
        col("judge_aligned"),
        col("coherent"),
        col("judge_coherent"),
    );
    let mut rows = 0;
    for record in reader.records() {
        let record = record.unwrap();
        for (score_col, probs_col) in [(aligned, judge_aligned), (coherent, judge_coherent)] {
            let probs = parse_python_dict(&record[probs_col]);
            let ours = score_0_100(probs.iter().map(|(k, p)| (k.as_str(), *p)));
            let theirs: f64 = record[score_col].parse().unwrap();
            let ours =
                ours.unwrap_or_else(|| panic!("row {rows}: we say None, the study says {theirs}"));
            assert!(
                (ours - theirs).abs() < 1e-6,
                "row {rows}: ours {ours} vs study {theirs}"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 70);
}

#[test]
fn the_python_dict_parser_reads_both_quote_styles() {
    assert_eq!(
        parse_python_dict("{'0': 0.5, \"it's\": 1e-3}"),
        vec![("0".into(), 0.5), ("it's".into(), 1e-3)]
    );
}
