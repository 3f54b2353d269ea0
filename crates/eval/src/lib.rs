//! Evaluation suites, runner, statistics and reports.
