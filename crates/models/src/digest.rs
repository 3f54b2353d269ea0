//! sha256 of files and streams, and atomic file writes (temp file + rename), so a pull that
//! is interrupted leaves either the old state or the complete verified file, never half of one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, ModelsError, Result};

/// Hex sha256 of everything `reader` yields.
pub(crate) fn sha256_reader(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex sha256 of the file at `path`.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    sha256_reader(File::open(path).at(path)?).at(path)
}

/// Whether `path` is a file of `size` bytes whose sha256 is `expected`.
pub(crate) fn file_matches(path: &Path, size: u64, expected: &str) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == size => Ok(sha256_file(path)? == expected),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ModelsError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// A `Write` that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `reader` into `dest` through a temp file in the same directory, checks the sha256,
/// and only then renames it into place. On a mismatch nothing is left behind.
pub(crate) fn write_verified(dest: &Path, mut reader: impl Read, expected: &str) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .at(dir)?;
    let mut writer = HashingWriter {
        inner: io::BufWriter::with_capacity(1 << 20, tmp),
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut writer).at(dest)?;
    let actual = hex::encode(writer.hasher.finalize());
    if actual != expected {
        return Err(ModelsError::ChecksumMismatch {
            path: dest.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    let tmp = writer
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .at(dest)?;
    tmp.as_file().sync_all().at(dest)?;
    tmp.persist(dest).map_err(|e| e.error).at(dest)?;
    Ok(())
}

/// Writes `bytes` to `dest` atomically.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(dest)?;
    tmp.as_file().sync_all().at(dest)?;
    tmp.persist(dest).map_err(|e| e.error).at(dest)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn verified_write_lands_only_when_digest_matches() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        write_verified(&dest, &b"hello"[..], HELLO_SHA).unwrap();
        assert!(file_matches(&dest, 5, HELLO_SHA).unwrap());

        let other = dir.path().join("g");
        let err = write_verified(&other, &b"hellO"[..], HELLO_SHA).unwrap_err();
        assert!(matches!(err, ModelsError::ChecksumMismatch { .. }), "{err}");
        assert!(!other.exists());
        // No temp file is left behind either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn file_matches_checks_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(!file_matches(&path, 5, HELLO_SHA).unwrap());
        std::fs::write(&path, "hellO").unwrap();
        assert!(!file_matches(&path, 5, HELLO_SHA).unwrap());
        std::fs::write(&path, "hello!").unwrap();
        assert!(!file_matches(&path, 5, HELLO_SHA).unwrap());
    }
}
