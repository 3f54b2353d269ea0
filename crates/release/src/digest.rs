//! sha256 of files, streamed (model files are gigabytes).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::ReleaseError;

/// Hex sha256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String, ReleaseError> {
    let mut file = std::fs::File::open(path).map_err(|e| ReleaseError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|e| ReleaseError::io(path, e))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex sha256 of bytes in memory.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
