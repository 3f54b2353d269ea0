//! How far a run is, for whoever shows it: a bar on a terminal, a plain line every few
//! seconds otherwise (a user who pipes the output still sees the run working).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Counts shared by the runner (which adds to them) and the display (which reads them).
#[derive(Clone)]
pub struct RunProgress {
    counts: Arc<Counts>,
    bar: ProgressBar,
}

struct Counts {
    total: AtomicU64,
    /// Judged items of the run, stored by any process.
    judged: AtomicU64,
    /// Judged when this process started (they do not count towards its rate).
    judged_at_start: AtomicU64,
    /// Answers this process generated.
    generated: AtomicU64,
    started: Instant,
}

impl RunProgress {
    /// Counts only, shown by nothing (tests, library use, or [`RunProgress::line`]).
    pub fn hidden() -> Self {
        Self::with_bar(ProgressBar::hidden())
    }

    /// Counts shown on a terminal bar: answers generated and judged, rate and ETA.
    pub fn terminal() -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} judged, {msg} ({per_sec}, ETA {eta})",
            )
            .expect("valid template"),
        );
        Self::with_bar(bar)
    }

    fn with_bar(bar: ProgressBar) -> Self {
        Self {
            counts: Arc::new(Counts {
                total: AtomicU64::new(0),
                judged: AtomicU64::new(0),
                judged_at_start: AtomicU64::new(0),
                generated: AtomicU64::new(0),
                started: Instant::now(),
            }),
            bar,
        }
    }

    /// The run's size and what was already judged when this process started.
    pub fn start(&self, total: u64, judged: u64) {
        let c = &self.counts;
        c.total.store(total, Ordering::Relaxed);
        c.judged.store(judged, Ordering::Relaxed);
        c.judged_at_start.store(judged, Ordering::Relaxed);
        self.bar.set_length(total);
        self.bar.set_position(judged);
        self.bar.reset_eta();
        self.bar.set_message("0 answers generated");
    }

    pub fn generated(&self, n: u64) {
        let all = self.counts.generated.fetch_add(n, Ordering::Relaxed) + n;
        self.bar.set_message(format!("{all} answers generated"));
    }

    pub fn judged(&self, n: u64) {
        self.counts.judged.fetch_add(n, Ordering::Relaxed);
        self.bar.inc(n);
    }

    /// Another process's work seen in the store (a shared run).
    pub fn set_judged(&self, judged: u64) {
        self.counts.judged.fetch_max(judged, Ordering::Relaxed);
        self.bar.set_position(judged);
    }

    pub fn finish(&self) {
        self.bar.finish();
    }

    pub fn abandon(&self) {
        self.bar.abandon();
    }

    /// Runs `f` with the bar out of the way (log lines).
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.bar.suspend(f)
    }

    /// `progress: 40/144 judged, 42 answers generated, 3.1 judged/s, ETA 34s`.
    pub fn line(&self) -> String {
        let c = &self.counts;
        let (total, judged) = (
            c.total.load(Ordering::Relaxed),
            c.judged.load(Ordering::Relaxed),
        );
        let mine = judged.saturating_sub(c.judged_at_start.load(Ordering::Relaxed));
        let elapsed = c.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            mine as f64 / elapsed
        } else {
            0.0
        };
        let eta = if judged >= total {
            "done".to_string()
        } else if rate > 0.0 {
            format_duration(Duration::from_secs_f64((total - judged) as f64 / rate))
        } else {
            "unknown".to_string()
        };
        format!(
            "progress: {judged}/{total} judged, {} answers generated, {rate:.1} judged/s, ETA {eta}",
            c.generated.load(Ordering::Relaxed)
        )
    }

    /// Writes [`Self::line`] to stderr every `every` until the returned task is aborted
    /// (used when stderr is not a terminal and the bar draws nothing).
    pub fn spawn_lines(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", me.line());
            }
        })
    }
}

/// `1h02m03s`, `4m05s`, `6s`.
fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_this_process_and_estimates_the_rest() {
        let p = RunProgress::hidden();
        p.start(100, 20);
        assert!(
            p.line().ends_with("0.0 judged/s, ETA unknown"),
            "{}",
            p.line()
        );
        p.generated(3);
        p.judged(5);
        let line = p.line();
        assert!(
            line.starts_with("progress: 25/100 judged, 3 answers generated, "),
            "{line}"
        );
        p.judged(75);
        assert!(p.line().ends_with("ETA done"), "{}", p.line());
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
    }
}
