//! Streaming a dataset line by line: plain or gzip (detected by magic bytes, not by name),
//! hashing the stored bytes on the way for the manifest, with a byte count for progress.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Lines of one dataset file, numbered from 1, with `\n` / `\r\n` stripped.
pub struct LineReader {
    lines: Box<dyn BufRead + Send>,
    hasher: Arc<std::sync::Mutex<Sha256>>,
    bytes_read: Arc<AtomicU64>,
    line_number: u64,
    pub compressed: bool,
}

impl LineReader {
    pub fn open(path: &Path) -> io::Result<LineReader> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 2];
        let compressed = file.read(&mut magic)? == 2 && magic == GZIP_MAGIC;
        drop(file);
        let hasher = Arc::new(std::sync::Mutex::new(Sha256::new()));
        let bytes_read = Arc::new(AtomicU64::new(0));
        let stored = BufReader::with_capacity(
            1 << 16,
            HashingReader {
                inner: File::open(path)?,
                hasher: hasher.clone(),
                bytes_read: bytes_read.clone(),
            },
        );
        let lines: Box<dyn BufRead + Send> = if compressed {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::bufread::MultiGzDecoder::new(stored),
            ))
        } else {
            Box::new(stored)
        };
        Ok(LineReader {
            lines,
            hasher,
            bytes_read,
            line_number: 0,
            compressed,
        })
    }

    /// Reads the next line into `buf` (cleared first); its 1-based number, or `None` at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        buf.clear();
        if self.lines.read_until(b'\n', buf)? == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        self.line_number += 1;
        Ok(Some(self.line_number))
    }

    /// Bytes of the stored file read so far (compressed bytes for gzip).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// sha256 of the stored file; call after the last line was read.
    pub fn finish(mut self) -> io::Result<[u8; 32]> {
        // Read whatever trails the last gzip member so the hash covers the whole file.
        io::copy(&mut self.lines, &mut io::sink())?;
        drop(self.lines);
        let hasher = std::mem::take(&mut *self.hasher.lock().expect("hasher lock"));
        Ok(hasher.finalize().into())
    }
}

struct HashingReader {
    inner: File,
    hasher: Arc<std::sync::Mutex<Sha256>>,
    bytes_read: Arc<AtomicU64>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.lock().expect("hasher lock").update(&buf[..n]);
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
