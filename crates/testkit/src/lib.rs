//! The real parts emguard's tests run against, found or started here so that every test crate
//! does it the same way:
//! - [`study_dir`]: the study's MIT-licensed data (`../shared/datasets/em-paper`);
//! - [`TestPostgres`]: a PostgreSQL database of a test's own;
//! - [`RedisServer`]: a redis-server on a free port;
//! - [`chromium`]: a headless browser binary; [`headless_page`]: a report loaded in it and
//!   its self-check read back;
//! - [`openai`]: scripted OpenAI-compatible servers on 127.0.0.1 standing in for upstream models
//!   and judges.
//!
//! A user's fresh clone may lack any of them: then the test prints `SKIP <test>: <why>` and
//! returns. CI sets `EMGUARD_REQUIRE_SHARED=1` (data) and `EMGUARD_REQUIRE_SERVICES=1`
//! (servers and browser), which turn each skip into a failure, so a missing install step
//! cannot hide behind a green run.

pub mod headless_page;
pub mod openai;
mod postgres;
mod redis;

pub use postgres::TestPostgres;
pub use redis::RedisServer;

use std::path::PathBuf;

/// What a missing prerequisite is, and the variable that makes it required.
#[derive(Debug, Clone, Copy)]
pub enum Prerequisite {
    /// The study's data; required when `EMGUARD_REQUIRE_SHARED=1`.
    StudyData,
    /// A server or program installed with apt-get; required when `EMGUARD_REQUIRE_SERVICES=1`.
    Service,
}

impl Prerequisite {
    fn required_by(self) -> &'static str {
        match self {
            Prerequisite::StudyData => "EMGUARD_REQUIRE_SHARED",
            Prerequisite::Service => "EMGUARD_REQUIRE_SERVICES",
        }
    }
}

/// Reports a missing prerequisite: prints `SKIP {test}: {why}` and returns `None`, or panics
/// when the prerequisite's variable is `1`.
pub fn skip<T>(test: &str, missing: Prerequisite, why: &str) -> Option<T> {
    let var = missing.required_by();
    if std::env::var(var).as_deref() == Ok("1") {
        panic!("{test}: {why}, and {var}=1 requires it");
    }
    eprintln!("SKIP {test}: {why}");
    None
}

/// The study's data folder: `$EMGUARD_SHARED_DIR/datasets/em-paper`, else
/// `../shared/datasets/em-paper` next to the workspace (the product's own rule, see
/// `emguard_eval::builtin::study_dir`). `None` after [`skip`] when it has no `README.md`.
pub fn study_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("EMGUARD_SHARED_DIR")
        .map(|d| PathBuf::from(d).join("datasets/em-paper"))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/em-paper")
        });
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    skip(
        test,
        Prerequisite::StudyData,
        &format!(
            "the study's data is not at {} (set EMGUARD_SHARED_DIR to the folder holding datasets/em-paper)",
            dir.display()
        ),
    )
}

/// A Chromium binary: `$EMGUARD_CHROMIUM`, else `/usr/bin/chromium`. `None` after [`skip`]
/// when it does not exist.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("EMGUARD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    skip(
        test,
        Prerequisite::Service,
        &format!(
            "Chromium is not at {} (apt-get install chromium, or set EMGUARD_CHROMIUM)",
            path.display()
        ),
    )
}
