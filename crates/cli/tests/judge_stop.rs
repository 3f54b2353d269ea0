//! `emguard judge score --jsonl` and `judge calibrate` stop cleanly on Ctrl-C: the real binary
//! and the real local judge on 144 real SmolLM2 answers (the team's labelled
//! `real_eval_default.jsonl`). Score writes each chunk as it is judged, so a stop keeps every
//! finished row, says how many and how to continue (`--skip N`), exits 130; the continued
//! output appended to the first is the whole run's output, row for row. Calibrate, stopped,
//! reports nothing (a calibration on part of the labels would read as one on all of them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn labels() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../judge/data/v2/real_eval_default.jsonl")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `emguard ARGS` with stdout into `out`; sends SIGINT once `out` has a line (when
/// `interrupt`); returns the exit code and stderr.
fn emguard(args: &[&str], out: &Path, interrupt: bool) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(args)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if interrupt {
        let started = Instant::now();
        while std::fs::read_to_string(out).unwrap().lines().count() == 0 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "emguard ended before writing a row"
            );
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "no row written"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_stopped_score_keeps_its_rows_and_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let labels = labels();
    let labels = labels.to_str().unwrap();
    let whole = dir.path().join("whole.jsonl");
    let (code, log) = emguard(&["judge", "score", "--jsonl", labels], &whole, false);
    assert_eq!(code, Some(0), "{log}");
    let whole = lines(&whole);
    assert_eq!(whole.len(), 144);

    let first = dir.path().join("first.jsonl");
    let (code, log) = emguard(&["judge", "score", "--jsonl", labels], &first, true);
    assert_eq!(code, Some(130), "{log}");
    let first = lines(&first);
    let done = first.len();
    assert!(
        done > 0 && done < 144 && done.is_multiple_of(64),
        "whole chunks of 64 kept: {done}"
    );
    assert!(
        log.contains(&format!("{done} of 144 rows judged and written"))
            && log.contains(&format!("--skip {done}")),
        "{log}"
    );

    let rest = dir.path().join("rest.jsonl");
    let skip = done.to_string();
    let (code, log) = emguard(
        &["judge", "score", "--jsonl", labels, "--skip", &skip],
        &rest,
        false,
    );
    assert_eq!(code, Some(0), "{log}");
    let continued: Vec<String> = first.into_iter().chain(lines(&rest)).collect();
    assert_eq!(continued, whole, "stopped + continued = one whole run");

    let (code, log) = emguard(
        &["judge", "score", "--jsonl", labels, "--skip", "145"],
        &rest,
        false,
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--skip 145") && log.contains("only 144 rows"),
        "{log}"
    );
}

#[test]
fn a_stopped_calibration_reports_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let labels = labels();
    let out = dir.path().join("report.txt");
    // Nothing is written before the end, so the signal comes at a fixed moment: while the
    // judge loads or judges (it listens from the start).
    let mut child = Command::new(env!("CARGO_BIN_EXE_emguard"))
        .args(["judge", "calibrate", "--labels", labels.to_str().unwrap()])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(
        log.contains("labelled answers judged; a calibration needs them all, nothing reported"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "",
        "no partial report"
    );
}
