//! The manifest's per-row list lives in a sidecar file next to it: 32 raw sha256 bytes per
//! line, in file order (35 MB for a million rows, written while streaming), so the JSON
//! manifest stays small and the audit never holds the list. The manifest records the
//! sidecar's name and sha256; its Merkle root commits to the same hashes.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::AuditError;

/// The sidecar's conventional path for a manifest: `m.json` -> `m.row-hashes`.
pub fn path_for(manifest: &Path) -> PathBuf {
    manifest.with_extension("row-hashes")
}

pub struct Writer {
    out: BufWriter<File>,
    path: PathBuf,
    hasher: Sha256,
}

impl Writer {
    /// Creates (truncates) the sidecar at `path`.
    pub fn create(path: &Path) -> Result<Writer, AuditError> {
        let file = File::create(path).map_err(|e| AuditError::io(path, e))?;
        Ok(Writer {
            out: BufWriter::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
            hasher: Sha256::new(),
        })
    }

    pub fn push(&mut self, hash: &[u8; 32]) -> Result<(), AuditError> {
        self.hasher.update(hash);
        self.out
            .write_all(hash)
            .map_err(|e| AuditError::io(&self.path, e))
    }

    /// Flushes to disk; the sidecar's sha256.
    pub fn finish(mut self) -> Result<[u8; 32], AuditError> {
        self.out
            .flush()
            .and_then(|()| self.out.get_ref().sync_all())
            .map_err(|e| AuditError::io(&self.path, e))?;
        Ok(self.hasher.finalize().into())
    }
}

/// All hashes of a sidecar and its sha256 (verification diffs them in memory).
pub fn read(path: &Path) -> Result<(Vec<[u8; 32]>, [u8; 32]), AuditError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| AuditError::io(path, e))?;
    if bytes.len() % 32 != 0 {
        return Err(AuditError::Manifest {
            path: path.to_path_buf(),
            message: format!(
                "row hashes file is {} bytes, not a multiple of 32",
                bytes.len()
            ),
        });
    }
    let sha256 = Sha256::digest(&bytes).into();
    let hashes = bytes
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().expect("32-byte chunk"))
        .collect();
    Ok((hashes, sha256))
}
