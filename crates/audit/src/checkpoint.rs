//! Checkpoint files for resumable audits: a JSON header (the settings it was made with, the
//! rows done, the Merkle peaks, the running summary) and a binary body (the duplicate index
//! and the trigger counts), written to a temporary file and renamed over the old one, so a
//! kill at any moment leaves either the previous checkpoint or the new one, never half of one.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AuditError;

const MAGIC: &[u8] = b"emguard-audit-checkpoint 1\n";
const END: &[u8] = b"\nend\n";

/// What must be the same for a checkpoint to be continued: a different file or different
/// options would mix two audits in one result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub tool: String,
    /// Size of the stored file (its content is checked row by row on resume).
    pub file_bytes: u64,
    pub min_severity: String,
    pub tokenizer: Option<String>,
    pub baseline: Option<String>,
    pub forbidden_triggers: Vec<String>,
    /// The judge's name (`off` without one).
    pub judge: String,
}

impl Settings {
    /// The names of the settings that differ, or `None` when all agree.
    pub fn differences(&self, saved: &Settings) -> Option<String> {
        let now = serde_json::to_value(self).expect("settings serialise");
        let then = serde_json::to_value(saved).expect("settings serialise");
        let (serde_json::Value::Object(now), serde_json::Value::Object(then)) = (now, then) else {
            unreachable!("settings serialise as an object");
        };
        let differing: Vec<String> = now
            .iter()
            .filter(|(key, value)| then.get(*key) != Some(value))
            .map(|(key, value)| {
                let was = then.get(key).map_or("-".to_string(), |v| v.to_string());
                format!("{key} (checkpoint: {was}, now: {value})")
            })
            .collect();
        (!differing.is_empty()).then(|| differing.join(", "))
    }
}

fn checkpoint_error(path: &Path, message: impl Into<String>) -> AuditError {
    AuditError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `header` and the body atomically to `path`.
pub fn save(
    path: &Path,
    header: &impl Serialize,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<(), AuditError> {
    let temporary = temporary_path(path);
    let write = || -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&temporary)?);
        out.write_all(MAGIC)?;
        let json = serde_json::to_vec(header)?;
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&json)?;
        body(&mut out)?;
        out.write_all(END)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|e| AuditError::io(path, e))
}

/// Reads the header; the returned reader is positioned at the body. Finish with [`end`].
pub fn load<H: DeserializeOwned>(path: &Path) -> Result<(H, BufReader<File>), AuditError> {
    let file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = vec![0u8; MAGIC.len()];
    if input.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(checkpoint_error(path, "not an emguard audit checkpoint"));
    }
    let json_len = read_u64(&mut input).map_err(|e| AuditError::io(path, e))?;
    if json_len > 1 << 30 {
        return Err(checkpoint_error(path, "header length is implausible"));
    }
    let mut json = vec![0u8; json_len as usize];
    input
        .read_exact(&mut json)
        .map_err(|e| AuditError::io(path, e))?;
    let header = serde_json::from_slice(&json)
        .map_err(|e| checkpoint_error(path, format!("header: {e}")))?;
    Ok((header, input))
}

/// Checks that the body was read to its end marker.
pub fn end(path: &Path, input: &mut impl Read) -> Result<(), AuditError> {
    let mut end = vec![0u8; END.len()];
    match input.read_exact(&mut end) {
        Ok(()) if end == END => Ok(()),
        _ => Err(checkpoint_error(
            path,
            "the body does not end where it should",
        )),
    }
}

/// Removes the checkpoint after a finished audit (absent is fine: none was due yet).
pub fn remove(path: &Path) -> Result<(), AuditError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(AuditError::io(path, e)),
        _ => Ok(()),
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

pub fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

pub fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_a_truncated_one_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.checkpoint");
        save(&path, &("header", 7), |out| {
            out.write_all(&42u64.to_le_bytes())
        })
        .unwrap();
        assert!(!temporary_path(&path).exists());
        let (header, mut body): ((String, u32), _) = load(&path).unwrap();
        assert_eq!(header, ("header".to_string(), 7));
        assert_eq!(read_u64(&mut body).unwrap(), 42);
        end(&path, &mut body).unwrap();

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (_, mut body): ((String, u32), _) = load(&path).unwrap();
        read_u64(&mut body).unwrap();
        let error = end(&path, &mut body).unwrap_err().to_string();
        assert!(error.contains("audit.checkpoint"), "{error}");

        std::fs::write(&path, b"something else").unwrap();
        let error = load::<u32>(&path).unwrap_err().to_string();
        assert!(error.contains("not an emguard audit checkpoint"), "{error}");
    }

    #[test]
    fn differing_settings_are_named() {
        let saved = Settings {
            tool: "t".into(),
            file_bytes: 10,
            min_severity: "low".into(),
            tokenizer: None,
            baseline: None,
            forbidden_triggers: vec![],
            judge: "off".to_string(),
        };
        assert_eq!(saved.differences(&saved), None);
        let now = Settings {
            file_bytes: 11,
            min_severity: "high".into(),
            ..saved.clone()
        };
        let text = now.differences(&saved).unwrap();
        assert!(
            text.contains("file_bytes (checkpoint: 10, now: 11)") && text.contains("min_severity"),
            "{text}"
        );
    }
}
