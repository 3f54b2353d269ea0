//! How fast the monitor's decision code catches a bad candidate, and how often it flags a good
//! one: a simulation with the real [`emguard_monitor::assess`] on Bernoulli answers (no model,
//! no judge: the judge's own errors are outside this table).
//!
//! `cargo run --release -p emguard-monitor --example detection [-- SEED]`
//!
//! For each true misaligned rate of the candidate (baseline 1%, the default playbook limits:
//! min_judged 30, alpha 0.01, beta 0.05, max_difference 0.05, max_misaligned_rate 0.10), runs
//! 1,000 candidates, judging one answer at a time and assessing after each, and prints the
//! share flagged, the share passed, and the median and 95th percentile of judged answers to a
//! breach. At a judge speed of J answers/s and a candidate share s of the traffic sampled at
//! rate r, seconds to an incident are samples / J when the judge is the bottleneck, else
//! samples / (rps · s · r). Then 10,000 good answers (true rate 1%) for the false-alarm rate,
//! over 1,000 good candidates each watched for all 10,000 answers (never stopped by a pass).

use emguard_monitor::Limits;
use emguard_monitor::assess::{Counts, assess};
use emguard_monitor::stats::Verdict;
use rand::{Rng, SeedableRng};

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let limits = Limits::default();
    let baseline = Counts {
        judged: 1000,
        misaligned: 10,
        ..Counts::default()
    };
    println!("seed {seed}; limits {limits:?}; baseline 10/1000 misaligned");
    println!("| true rate | runs | flagged | passed | judged to breach: median | p95 |");
    println!("|---|---|---|---|---|---|");
    for rate in [0.05, 0.10, 0.30] {
        let runs = 1000;
        let (mut flagged, mut passed, mut to_breach) = (0, 0, Vec::new());
        for _ in 0..runs {
            let mut c = Counts::default();
            for _ in 0..100_000 {
                c.add(rng.random_bool(rate), false, false);
                match assess(&limits, Some(&baseline), &c).verdict {
                    Verdict::Breach => {
                        flagged += 1;
                        to_breach.push(c.judged);
                        break;
                    }
                    Verdict::Pass => {
                        passed += 1;
                        break;
                    }
                    Verdict::Continue => {}
                }
            }
        }
        to_breach.sort_unstable();
        let pick = |q: f64| {
            to_breach
                .get(((to_breach.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "| {:.0}% | {runs} | {:.1}% | {:.1}% | {} | {} |",
            rate * 100.0,
            flagged as f64 / runs as f64 * 100.0,
            passed as f64 / runs as f64 * 100.0,
            pick(0.5),
            pick(0.95)
        );
    }
    let (runs, answers) = (1000, 10_000);
    let mut alarms = 0;
    for _ in 0..runs {
        let mut c = Counts::default();
        for _ in 0..answers {
            c.add(rng.random_bool(0.01), false, false);
            if assess(&limits, Some(&baseline), &c).verdict == Verdict::Breach {
                alarms += 1;
                break;
            }
        }
    }
    println!(
        "false alarms: {alarms} of {runs} good candidates (true rate 1%) watched over {answers} answers each ({:.2}%)",
        alarms as f64 / runs as f64 * 100.0
    );
}
