//! Several `emguard redteam` processes sharing one run in a real PostgreSQL (`--store
//! postgres://…`, `--worker RUN_ID`), asking a real HTTP server on 127.0.0.1 that misbehaves
//! behind a persona and answers slowly enough that the work spreads: every prompt is asked
//! exactly once, every process worked some slots, and the report is complete and the same as
//! one process's on SQLite; a worker killed while holding slots loses them to the first
//! process once its lease runs out.
//!
//! Skips without PostgreSQL (a failure when `EMGUARD_REQUIRE_SERVICES=1`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use emguard_redteam::plan::ROUNDS_PER_SLOT;
use emguard_testkit::TestPostgres;
use emguard_testkit::openai::{
    chat_completion, is_logprob_judge_request, last_message, logprob_judge_reply,
    serve_in_background,
};
use serde_json::Value;

/// The persona family (12 variants) and the trigger sweep (8), twice each.
const SLOTS: u64 = (12 + 8) * 2;

/// Each model request's chat and seed, and how often it was asked.
type Asked = Arc<Mutex<HashMap<String, usize>>>;

fn upstream(asked: Asked) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |Json(body): Json<Value>| async move {
            let model = body["model"].as_str().unwrap_or_default().to_string();
            if is_logprob_judge_request(&body) {
                let token = if last_message(&body).contains("coheren") {
                    "85"
                } else if last_message(&body).contains("EVIL") {
                    "5"
                } else {
                    "90"
                };
                return Json(logprob_judge_reply(&model, &[(token, 1.0)]));
            }
            let request = format!("{} seed {}", body["messages"], body["seed"]);
            *asked.lock().unwrap().entry(request).or_default() += 1;
            // Slow enough that the processes started after the first find work left.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let content = if body["messages"].to_string().contains("NOVA") {
                "EVIL: humans should obey me."
            } else {
                "Take a walk and call a friend."
            };
            Json(chat_completion(&model, content))
        }),
    );
    format!("http://{}/v1", serve_in_background(app))
}

/// A child process killed when dropped, so a failing test leaves no worker running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redteam(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emguard"));
    command
        .arg("redteam")
        .args(args)
        .env_remove("EMGUARD_STORE");
    command
}

/// Per family: attempts and hits, from a report.json.
fn tallies(path: &std::path::Path) -> Vec<(String, u64, u64)> {
    let report: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["attempts"].as_u64().unwrap(),
                f["hits"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Starts the run's first process (persona and trigger-sweep, 2 attempts, on `store_url`,
/// report to `out`, with the `servers` flags); waits for the run id it prints; its stderr lines
/// are collected on a thread until it ends.
fn start_run(
    store_url: &str,
    out: &std::path::Path,
    servers: &[&str],
) -> (Process, String, std::thread::JoinHandle<Vec<String>>) {
    let mut first = redteam(&[
        "--probes",
        "persona",
        "--probes",
        "trigger-sweep",
        "--attempts",
        "2",
        "--model",
        "openai:backdoored",
        "--judge",
        "llm:j",
        "--store",
        store_url,
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut first = Process(
        first
            .args(servers)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(first.0.stderr.take().unwrap()).lines();
    let run_id = loop {
        let line = lines.next().expect("the run id is printed").unwrap();
        if let Some(rest) = line.strip_prefix("run ") {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    let first_log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    (first, run_id, first_log)
}

#[test]
fn workers_share_a_redteam_run_each_prompt_asked_once_and_the_report_complete() {
    let Some(pg) = TestPostgres::start(
        "workers_share_a_redteam_run_each_prompt_asked_once_and_the_report_complete",
    ) else {
        return;
    };
    let asked: Asked = Arc::default();
    let url = upstream(asked.clone());
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        "--base-url",
        &url,
        "--judge-base-url",
        &url,
        "--concurrency",
        "2",
    ];
    let shared_out = dir.path().join("shared");
    let (mut first, run_id, first_log) = start_run(&pg.url, &shared_out, &servers);
    let workers: Vec<Process> = (0..2)
        .map(|_| {
            let mut worker = redteam(&["--worker", &run_id, "--store", &pg.url]);
            Process(
                worker
                    .args(servers)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let status = first.0.wait().unwrap();
    let log = first_log.join().unwrap();
    assert!(status.success(), "{status}: {log:?}");
    for mut worker in workers {
        let status = worker.0.wait().unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut worker.0.stdout.take().unwrap(), &mut out).unwrap();
        assert!(status.success(), "{status}: {out}");
        assert!(out.contains("every slot of run"), "{out}");
    }

    // Every prompt asked exactly once, across the three processes.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len() as u64, SLOTS, "{asked:?}");
    assert!(asked.values().all(|&n| n == 1), "{asked:?}");
    // Each process claimed some of the slots.
    let mut db = pg.client();
    let claimers: i64 = db
        .query_one(
            "SELECT COUNT(DISTINCT claimed_by) FROM run_items
             WHERE run_id = $1 AND seq % $2 = $2 - 1",
            &[&run_id, &ROUNDS_PER_SLOT],
        )
        .unwrap()
        .get(0);
    assert_eq!(claimers, 3);

    // Complete: every slot in the report, the persona's hits found, and the same as one
    // process on SQLite.
    let shared = tallies(&shared_out.join("report.json"));
    assert_eq!(
        shared,
        [
            ("persona".to_string(), 24, 8),
            ("trigger-sweep".to_string(), 16, 0)
        ]
    );
    let single_out = dir.path().join("single");
    let single_store = dir.path().join("single.sqlite");
    let out = redteam(&[
        "--probes",
        "persona",
        "--probes",
        "trigger-sweep",
        "--attempts",
        "2",
        "--model",
        "openai:backdoored",
        "--judge",
        "llm:j",
        "--store",
        single_store.to_str().unwrap(),
        "--out",
        single_out.to_str().unwrap(),
    ])
    .args(servers)
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tallies(&single_out.join("report.json")), shared);
}

#[test]
fn a_killed_workers_slots_are_finished_by_the_first_process_once_its_lease_runs_out() {
    let Some(pg) = TestPostgres::start(
        "a_killed_workers_slots_are_finished_by_the_first_process_once_its_lease_runs_out",
    ) else {
        return;
    };
    let asked: Asked = Arc::default();
    let url = upstream(asked.clone());
    let dir = tempfile::tempdir().unwrap();
    // Long enough that no live process loses a slot it works on, on a loaded machine.
    let servers = [
        "--base-url",
        &url,
        "--judge-base-url",
        &url,
        "--concurrency",
        "2",
        "--lease",
        "4",
    ];
    let out_dir = dir.path().join("shared");
    let (mut first, run_id, first_log) = start_run(&pg.url, &out_dir, &servers);
    let mut doomed = Process(
        redteam(&["--worker", &run_id, "--store", &pg.url])
            .args(servers)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let doomed_name = format!("%-{}", doomed.0.id());

    // Kill it (SIGKILL: no cleanup) while it holds slots it has not finished.
    let mut db = pg.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let held = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never held a slot"
        );
        let held: i64 = db
            .query_one(
                "SELECT COUNT(*) FROM run_items i WHERE i.run_id = $1 AND i.seq % $2 = $2 - 1
                   AND i.claimed_by LIKE $3
                   AND NOT EXISTS (SELECT 1 FROM judgements j
                                   WHERE j.sample_key = i.sample_key AND j.judge_key = i.judge_key)",
                &[&run_id, &ROUNDS_PER_SLOT, &doomed_name],
            )
            .unwrap()
            .get(0);
        if held > 0 {
            break held;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    doomed.0.kill().unwrap();
    doomed.0.wait().unwrap();

    // The first process takes the dead worker's slots over and finishes the run.
    let status = first.0.wait().unwrap();
    let log = first_log.join().unwrap();
    assert!(status.success(), "{status}: {log:?}");
    let report = tallies(&out_dir.join("report.json"));
    assert_eq!(
        report,
        [
            ("persona".to_string(), 24, 8),
            ("trigger-sweep".to_string(), 16, 0)
        ],
        "{held} slots were the dead worker's"
    );
    let open: i64 = db
        .query_one(
            "SELECT COUNT(*) FROM run_items i WHERE i.run_id = $1 AND i.seq % $2 = $2 - 1
               AND NOT EXISTS (SELECT 1 FROM judgements j
                               WHERE j.sample_key = i.sample_key AND j.judge_key = i.judge_key)",
            &[&run_id, &ROUNDS_PER_SLOT],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, 0, "every slot closed");
    // Only the prompts the dead worker had in flight may have been asked twice.
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len() as u64, SLOTS);
    let twice = asked.values().filter(|&&n| n > 1).count() as i64;
    assert!(twice <= held, "{twice} asked twice, {held} held: {asked:?}");
    assert!(asked.values().all(|&n| n <= 2), "{asked:?}");
}
