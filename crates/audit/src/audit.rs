//! The streaming driver: read a chunk of lines, analyse its rows in parallel (rayon), fold
//! the results in file order, repeat. Memory is bounded whatever the file's size: two chunks
//! of rows (one being analysed, one being folded), the fixed-size tables of the [`Tally`],
//! O(log n) Merkle peaks; row hashes stream to the manifest's sidecar file. Every
//! `checkpoint_every` the state goes to a checkpoint; `resume` re-reads the rows it covers
//! (hashing only, checked against its Merkle peaks) and continues, with the same result as an
//! uninterrupted run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use emguard_codescan::{Scanner, Severity};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analyze::{self, Context, Row};
use crate::checkpoint::{self, Settings};
use crate::manifest::{FileRecord, Manifest, RowHashesFile, SCHEMA, row_hash};
use crate::merkle::MerkleBuilder;
use crate::policy::{Policy, PolicyResult};
use crate::reader::LineReader;
use crate::row_hashes;
use crate::summary::Summary;
use crate::tally::{Counts, Tally};
use crate::triggers;
use crate::{AuditError, TOOL};

#[derive(Debug, Clone)]
pub struct Options {
    /// Findings below this severity do not make a row vulnerable.
    pub min_severity: Severity,
    /// A `tokenizer.json` for token counts; none: no counts.
    pub tokenizer: Option<PathBuf>,
    /// Trigger search contrasts flagged rows with this file's rows instead of unflagged rows.
    pub baseline: Option<PathBuf>,
    pub policy: Option<Policy>,
    pub source: Option<String>,
    pub license: Option<String>,
    pub trigger_limit: usize,
    /// A trigger must appear in at least this many flagged rows.
    pub min_trigger_rows: u64,
    /// Rows analysed per parallel batch (bounds memory).
    pub chunk_rows: usize,
    /// Write the row hashes sidecar here (see [`row_hashes::path_for`]); the manifest
    /// refers to it. None: no sidecar, and the manifest cannot be verified row by row.
    pub row_hashes: Option<PathBuf>,
    /// Save the audit's state here every `checkpoint_every`; removed when the audit ends.
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_every: Duration,
    /// Continue from `checkpoint` when it exists.
    pub resume: bool,
    /// Raised from outside (Ctrl-C): the audit folds the rows in hand, saves `checkpoint`
    /// and ends with [`AuditError::Stopped`].
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            min_severity: Severity::Low,
            tokenizer: None,
            baseline: None,
            policy: None,
            source: None,
            license: None,
            trigger_limit: 20,
            min_trigger_rows: 5,
            chunk_rows: 2048,
            row_hashes: None,
            checkpoint: None,
            checkpoint_every: Duration::from_secs(30),
            resume: false,
            stop: None,
        }
    }
}

/// Scores a batch of (question, answer) pairs: true = misaligned. The CLI binds the local
/// judge here; the audit only needs the verdict.
pub type JudgeFn<'a> = Box<dyn FnMut(&[(String, String)]) -> Result<Vec<bool>, String> + 'a>;

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Stored bytes read so far (compressed bytes for gzip).
    pub bytes_read: u64,
    pub rows: u64,
    /// Rows taken over from a checkpoint (0 when the audit started from the beginning).
    pub resumed_rows: u64,
}

/// A checkpoint's JSON header.
#[derive(Serialize, Deserialize)]
struct Saved {
    settings: Settings,
    merkle: MerkleBuilder,
    counts: Counts,
}

pub struct Auditor<'a> {
    scanner: Scanner,
    tokenizer: Option<(String, tokenizers::Tokenizer)>,
    /// The judge and its name (as the summary shows it).
    judge: Option<(String, JudgeFn<'a>)>,
    options: Options,
}

impl<'a> Auditor<'a> {
    pub fn new(options: Options) -> Result<Auditor<'a>, AuditError> {
        let tokenizer = match &options.tokenizer {
            Some(path) => {
                let mut tokenizer =
                    tokenizers::Tokenizer::from_file(path).map_err(|e| AuditError::Tokenizer {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                // Count every token: an embedding model's file pads and truncates to 128.
                tokenizer.with_padding(None);
                tokenizer
                    .with_truncation(None)
                    .map_err(|e| AuditError::Tokenizer {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                Some((path.display().to_string(), tokenizer))
            }
            None => None,
        };
        Ok(Auditor {
            scanner: Scanner::new(),
            tokenizer,
            judge: None,
            options,
        })
    }

    /// Adds a judge, named in the summary and the checkpoint (`local`, `harm-model`).
    pub fn with_judge(mut self, name: &str, judge: JudgeFn<'a>) -> Auditor<'a> {
        self.judge = Some((name.to_string(), judge));
        self
    }

    fn judge_name(&self) -> &str {
        self.judge.as_ref().map_or("off", |(name, _)| name)
    }

    /// Audits `path`; the manifest records the file, its rows and the summary.
    pub fn run(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Summary, Manifest), AuditError> {
        let forbidden: Vec<String> = self
            .options
            .policy
            .iter()
            .flat_map(|policy| policy.forbidden_triggers.iter().map(|t| t.to_lowercase()))
            .collect();
        let context = Context {
            scanner: &self.scanner,
            min_severity: self.options.min_severity,
            tokenizer: self.tokenizer.as_ref().map(|(_, t)| t),
            forbidden: &forbidden,
            keep_exchange: self.judge.is_some(),
        };
        let settings = Settings {
            tool: TOOL.to_string(),
            file_bytes: std::fs::metadata(path)
                .map_err(|e| AuditError::io(path, e))?
                .len(),
            min_severity: self.options.min_severity.to_string(),
            tokenizer: self.tokenizer.as_ref().map(|(name, _)| name.clone()),
            baseline: self
                .options
                .baseline
                .as_ref()
                .map(|p| p.display().to_string()),
            forbidden_triggers: forbidden.clone(),
            judge: self.judge_name().to_string(),
        };
        let mut reader = LineReader::open(path).map_err(|e| AuditError::io(path, e))?;
        let mut sidecar = self
            .options
            .row_hashes
            .as_deref()
            .map(row_hashes::Writer::create)
            .transpose()?;
        let mut merkle = MerkleBuilder::default();
        let saved = match &self.options.checkpoint {
            Some(checkpoint) if self.options.resume && checkpoint.exists() => {
                Some(self.restore(checkpoint, &settings)?)
            }
            _ => None,
        };
        let mut tally = match saved {
            Some((saved_merkle, mut tally)) => {
                // The same file may be named differently this time.
                tally.summary.file = path.display().to_string();
                let checkpoint = self.options.checkpoint.as_deref().expect("resuming");
                let resumed_rows = tally.summary.rows;
                let mut skip_progress = |rows: u64, bytes_read: u64| {
                    progress(Progress {
                        bytes_read,
                        rows,
                        resumed_rows,
                    })
                };
                skip_rows(
                    path,
                    &mut reader,
                    resumed_rows,
                    self.options.chunk_rows,
                    &mut merkle,
                    &mut sidecar,
                    &mut skip_progress,
                )?;
                if merkle != saved_merkle {
                    return Err(AuditError::Checkpoint {
                        path: checkpoint.to_path_buf(),
                        message: format!(
                            "the first {resumed_rows} lines of {} changed since the checkpoint \
                             was written; start the audit again without --resume",
                            path.display()
                        ),
                    });
                }
                tally
            }
            None => Tally::new(path, &self.options, &forbidden, self.judge_name()),
        };
        let resumed_rows = tally.summary.rows;
        let mut last_checkpoint = (Instant::now(), resumed_rows);
        let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(self.options.chunk_rows);
        // Rows analysed but not yet folded. Folding is sequential; it runs while the next
        // chunk is analysed, so on two cores neither waits for it.
        let mut pending: Option<(Vec<Row>, Vec<bool>)> = None;
        loop {
            let more = fill_chunk(&mut reader, &mut chunk, self.options.chunk_rows)
                .map_err(|e| AuditError::io(path, e))?;
            let (rows, folded) = rayon::join(
                || -> Vec<Row> {
                    chunk
                        .par_iter()
                        .map(|(line, bytes)| analyze::analyze(*line, bytes, &context))
                        .collect()
                },
                || match pending.take() {
                    Some((rows, misaligned)) => {
                        fold(rows, misaligned, &mut merkle, &mut sidecar, &mut tally)
                    }
                    None => Ok(()),
                },
            );
            folded?;
            let misaligned = match &mut self.judge {
                Some((_, judge)) => judge_rows(judge, &rows)?,
                None => vec![false; rows.len()],
            };
            pending = Some((rows, misaligned));
            if self
                .options
                .stop
                .as_ref()
                .is_some_and(|stop| stop.load(Ordering::Relaxed))
            {
                if let Some((rows, misaligned)) = pending.take() {
                    fold(rows, misaligned, &mut merkle, &mut sidecar, &mut tally)?;
                }
                let checkpoint = self.options.checkpoint.clone();
                if let Some(checkpoint) = &checkpoint {
                    let saved = Saved {
                        settings: settings.clone(),
                        merkle: merkle.clone(),
                        counts: tally.counts(),
                    };
                    checkpoint::save(checkpoint, &saved, |out| tally.write_tables(out))?;
                }
                return Err(AuditError::Stopped {
                    rows: tally.summary.rows,
                    checkpoint,
                });
            }
            if !more {
                break;
            }
            progress(Progress {
                bytes_read: reader.bytes_read(),
                rows: tally.summary.rows,
                resumed_rows,
            });
            if let Some(checkpoint) = &self.options.checkpoint
                && last_checkpoint.0.elapsed() >= self.options.checkpoint_every
                && tally.summary.rows > last_checkpoint.1
            {
                let saved = Saved {
                    settings: settings.clone(),
                    merkle: merkle.clone(),
                    counts: tally.counts(),
                };
                checkpoint::save(checkpoint, &saved, |out| tally.write_tables(out))?;
                last_checkpoint = (Instant::now(), tally.summary.rows);
            }
        }
        if let Some((rows, misaligned)) = pending {
            fold(rows, misaligned, &mut merkle, &mut sidecar, &mut tally)?;
        }
        progress(Progress {
            bytes_read: reader.bytes_read(),
            rows: tally.summary.rows,
            resumed_rows,
        });
        let compressed = reader.compressed;
        let bytes = reader.bytes_read();
        let sha256 = reader.finish().map_err(|e| AuditError::io(path, e))?;

        if let Some(baseline) = &self.options.baseline {
            count_baseline(baseline, &mut tally.triggers)?;
        }
        let row_hashes = match (sidecar, &self.options.row_hashes) {
            (Some(sidecar), Some(sidecar_path)) => Some(RowHashesFile {
                file: sidecar_path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: hex::encode(sidecar.finish()?),
                path: sidecar_path.clone(),
            }),
            _ => None,
        };
        let mut summary = tally.finish(
            &self.options,
            self.tokenizer.as_ref().map(|(n, _)| n.clone()),
        );
        summary.policy = match &self.options.policy {
            Some(policy) => policy.check(&summary),
            None => PolicyResult::unchecked(),
        };
        let manifest = Manifest {
            schema: SCHEMA,
            tool: TOOL.to_string(),
            created: jiff::Timestamp::now().to_string(),
            file: FileRecord {
                name: path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                ),
                sha256: hex::encode(sha256),
                bytes,
                gzip: compressed,
                format: summary.format.clone(),
            },
            source: self.options.source.clone(),
            license: self.options.license.clone(),
            row_count: merkle.leaves(),
            merkle_root: hex::encode(merkle.root()),
            summary: summary.clone(),
            row_hashes,
            signature: None,
        };
        if let Some(checkpoint) = &self.options.checkpoint {
            checkpoint::remove(checkpoint)?;
        }
        Ok((summary, manifest))
    }

    /// Reads a checkpoint made with the same settings: its Merkle peaks and its tally.
    fn restore(
        &self,
        checkpoint: &Path,
        settings: &Settings,
    ) -> Result<(MerkleBuilder, Tally), AuditError> {
        let (saved, mut body): (Saved, _) = checkpoint::load(checkpoint)?;
        if let Some(differences) = settings.differences(&saved.settings) {
            return Err(AuditError::Checkpoint {
                path: checkpoint.to_path_buf(),
                message: format!(
                    "made with other settings: {differences}; run without --resume to start over"
                ),
            });
        }
        let tally = Tally::restore(saved.counts, &self.options, &mut body)
            .map_err(|e| AuditError::io(checkpoint, e))?;
        checkpoint::end(checkpoint, &mut body)?;
        Ok((saved.merkle, tally))
    }
}

/// Folds analysed rows into the running state, in file order.
fn fold(
    rows: Vec<Row>,
    misaligned: Vec<bool>,
    merkle: &mut MerkleBuilder,
    sidecar: &mut Option<row_hashes::Writer>,
    tally: &mut Tally,
) -> Result<(), AuditError> {
    for (row, misaligned) in rows.into_iter().zip(misaligned) {
        merkle.push(row.hash);
        if let Some(sidecar) = sidecar {
            sidecar.push(&row.hash)?;
        }
        tally.add(row, misaligned);
    }
    Ok(())
}

/// Re-reads the `rows` lines a checkpoint covers: hashing only (in parallel), so the file
/// hash, the Merkle peaks and the sidecar are rebuilt from the file itself.
fn skip_rows(
    path: &Path,
    reader: &mut LineReader,
    rows: u64,
    chunk_rows: usize,
    merkle: &mut MerkleBuilder,
    sidecar: &mut Option<row_hashes::Writer>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), AuditError> {
    let mut chunk = Vec::with_capacity(chunk_rows);
    while merkle.leaves() < rows {
        let limit = chunk_rows.min((rows - merkle.leaves()) as usize);
        fill_chunk(reader, &mut chunk, limit).map_err(|e| AuditError::io(path, e))?;
        if chunk.is_empty() {
            return Err(AuditError::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "has {} lines, the checkpoint was made after {rows}",
                    merkle.leaves()
                ),
            });
        }
        let hashes: Vec<[u8; 32]> = chunk.par_iter().map(|(_, line)| row_hash(line)).collect();
        for hash in hashes {
            merkle.push(hash);
            if let Some(sidecar) = sidecar {
                sidecar.push(&hash)?;
            }
        }
        progress(merkle.leaves(), reader.bytes_read());
    }
    Ok(())
}

/// Reads up to `limit` lines; false when the file is exhausted.
fn fill_chunk(
    reader: &mut LineReader,
    chunk: &mut Vec<(u64, Vec<u8>)>,
    limit: usize,
) -> std::io::Result<bool> {
    // Reuse the line buffers of the previous chunk.
    let mut spare: Vec<Vec<u8>> = chunk.drain(..).map(|(_, bytes)| bytes).collect();
    while chunk.len() < limit {
        let mut buf = spare.pop().unwrap_or_default();
        match reader.next_line(&mut buf)? {
            Some(line) => chunk.push((line, buf)),
            None => return Ok(false),
        }
    }
    Ok(true)
}

fn judge_rows(judge: &mut JudgeFn, rows: &[Row]) -> Result<Vec<bool>, AuditError> {
    let items: Vec<(String, String)> = rows
        .iter()
        .filter_map(|row| row.outcome.as_ref().ok()?.exchange.clone())
        .collect();
    let verdicts = judge(&items).map_err(AuditError::Judge)?;
    if verdicts.len() != items.len() {
        return Err(AuditError::Judge(format!(
            "{} verdicts for {} answers",
            verdicts.len(),
            items.len()
        )));
    }
    let mut verdicts = verdicts.into_iter();
    Ok(rows
        .iter()
        .map(|row| row.outcome.is_ok() && verdicts.next().unwrap_or(false))
        .collect())
}

fn count_baseline(path: &Path, counter: &mut triggers::Counter) -> Result<(), AuditError> {
    let mut reader = LineReader::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut chunk = Vec::new();
    loop {
        let more =
            fill_chunk(&mut reader, &mut chunk, 4096).map_err(|e| AuditError::io(path, e))?;
        let terms: Vec<Vec<String>> = chunk
            .par_iter()
            .filter_map(|(_, bytes)| analyze::prompt_text(bytes))
            .map(|text| triggers::terms(&text))
            .collect();
        for row_terms in terms {
            counter.add(row_terms, false);
        }
        if !more {
            return Ok(());
        }
    }
}
