//! The provenance manifest: what exactly was audited (file sha256, a Merkle root over every
//! row's hash, the row hashes themselves in a sidecar file), where it came from, what the audit
//! found, and an optional ed25519 signature. `verify` re-reads a file and names every changed,
//! added or removed row.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use similar::{Algorithm, DiffOp, capture_diff_slices};

pub use crate::merkle::{merkle_root, row_hash};
use crate::reader::LineReader;
use crate::row_hashes;
use crate::signing::{self, ManifestSignature};
use crate::{AuditError, Summary};

/// 2: row hashes moved from an inline list to a sidecar file ([`RowHashesFile`]).
pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name as given to the audit (not used for verification).
    pub name: String,
    /// sha256 of the stored bytes (the compressed bytes for .gz).
    pub sha256: String,
    pub bytes: u64,
    pub gzip: bool,
    pub format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub tool: String,
    /// RFC 3339 UTC time of the audit.
    pub created: String,
    pub file: FileRecord,
    pub source: Option<String>,
    pub license: Option<String>,
    /// Lines in the file, bad rows included (every line is hashed).
    pub row_count: u64,
    pub merkle_root: String,
    pub summary: Summary,
    /// The sidecar with the sha256 of every line, in order (see [`row_hash`]); `None` when the
    /// audit was run without one (the library's choice; the CLI always writes it).
    pub row_hashes: Option<RowHashesFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowHashesFile {
    /// File name of the sidecar, in the manifest's directory (a bare name, no folders).
    pub file: String,
    /// sha256 of the sidecar's bytes (the signature covers it through this field).
    pub sha256: String,
    /// Where the sidecar is on disk: set by the audit that wrote it or by [`Manifest::read`].
    #[serde(skip)]
    pub path: PathBuf,
}

impl Manifest {
    /// What a signature covers: sha256 of the manifest without its signature, as compact JSON.
    pub fn signed_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let unsigned = UnsignedView(self);
        serde_json::to_writer(&mut hasher, &unsigned).expect("manifest serialises");
        hasher.finalize().into()
    }

    pub fn read(path: &Path) -> Result<Manifest, AuditError> {
        let invalid = |message: String| AuditError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        #[derive(Deserialize)]
        struct SchemaOnly {
            schema: u32,
        }
        let schema = serde_json::from_str::<SchemaOnly>(&text)
            .map_err(|e| invalid(e.to_string()))?
            .schema;
        if schema != SCHEMA {
            return Err(invalid(format!(
                "schema {schema}; this version reads schema {SCHEMA} (audit the file again)"
            )));
        }
        let mut manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let Some(row_hashes) = &mut manifest.row_hashes else {
            return Err(invalid(
                "no row_hashes file: it cannot name changed rows".into(),
            ));
        };
        let name = &row_hashes.file;
        if name.is_empty() || Path::new(name).file_name() != Some(name.as_ref()) {
            return Err(invalid(format!(
                "row_hashes.file `{name}` must be a bare file name next to the manifest"
            )));
        }
        row_hashes.path = path.parent().unwrap_or(Path::new("")).join(name);
        Ok(manifest)
    }

    pub fn write(&self, path: &Path) -> Result<(), AuditError> {
        use std::io::Write;
        let file = std::fs::File::create(path).map_err(|e| AuditError::io(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer_pretty(&mut out, self)
            .map_err(std::io::Error::from)
            .and_then(|()| out.flush())
            .map_err(|e| AuditError::io(path, e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Changed,
    Added,
    Removed,
}

/// One row that differs; line numbers are 1-based, in the manifest's file and the new file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowChange {
    pub kind: ChangeKind,
    pub manifest_line: Option<u64>,
    pub file_line: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub file_sha256_matches: bool,
    /// The row hashes sidecar has the manifest's sha256 and reproduces its Merkle root and
    /// row count.
    pub manifest_consistent: bool,
    pub changes: Vec<RowChange>,
    /// `None`: unsigned or no key given; `Some(false)`: the signature does not verify.
    pub signature_valid: Option<bool>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.file_sha256_matches
            && self.manifest_consistent
            && self.changes.is_empty()
            && self.signature_valid != Some(false)
    }
}

/// Checks `file` against `manifest`; with `public_key`, the signature must verify with it.
pub fn verify(
    manifest: &Manifest,
    file: &Path,
    public_key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Verification, AuditError> {
    let Some(record) = &manifest.row_hashes else {
        return Err(AuditError::Manifest {
            path: PathBuf::from(&manifest.file.name),
            message: "the manifest has no row hashes file".into(),
        });
    };
    let (expected, sidecar_sha256) = row_hashes::read(&record.path)?;
    let manifest_consistent = hex::encode(sidecar_sha256) == record.sha256
        && hex::encode(merkle_root(&expected)) == manifest.merkle_root
        && expected.len() as u64 == manifest.row_count;

    let mut reader = LineReader::open(file).map_err(|e| AuditError::io(file, e))?;
    let mut actual = Vec::new();
    let mut line = Vec::new();
    while reader
        .next_line(&mut line)
        .map_err(|e| AuditError::io(file, e))?
        .is_some()
    {
        actual.push(row_hash(&line));
    }
    let file_sha256 = reader.finish().map_err(|e| AuditError::io(file, e))?;

    let signature_valid = match (&manifest.signature, public_key) {
        (Some(signature), Some(key)) => Some(signing::verify(manifest, signature, key)),
        (None, Some(_)) => Some(false),
        (_, None) => None,
    };
    Ok(Verification {
        file_sha256_matches: hex::encode(file_sha256) == manifest.file.sha256,
        manifest_consistent,
        changes: diff_rows(&expected, &actual),
        signature_valid,
    })
}

/// Aligns the two hash sequences (Myers diff) so an inserted row is "added", not "every row
/// after it changed". A replaced run pairs up as changed rows; the surplus is added/removed.
fn diff_rows(expected: &[[u8; 32]], actual: &[[u8; 32]]) -> Vec<RowChange> {
    let mut changes = Vec::new();
    let line = |index: usize| Some(index as u64 + 1);
    for op in capture_diff_slices(Algorithm::Myers, expected, actual) {
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                changes.extend((old_index..old_index + old_len).map(|i| RowChange {
                    kind: ChangeKind::Removed,
                    manifest_line: line(i),
                    file_line: None,
                }));
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                changes.extend((new_index..new_index + new_len).map(|i| RowChange {
                    kind: ChangeKind::Added,
                    manifest_line: None,
                    file_line: line(i),
                }));
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                let paired = old_len.min(new_len);
                changes.extend((0..paired).map(|k| RowChange {
                    kind: ChangeKind::Changed,
                    manifest_line: line(old_index + k),
                    file_line: line(new_index + k),
                }));
                changes.extend((paired..old_len).map(|k| RowChange {
                    kind: ChangeKind::Removed,
                    manifest_line: line(old_index + k),
                    file_line: None,
                }));
                changes.extend((paired..new_len).map(|k| RowChange {
                    kind: ChangeKind::Added,
                    manifest_line: None,
                    file_line: line(new_index + k),
                }));
            }
        }
    }
    changes
}

/// The manifest without its signature field, for hashing.
struct UnsignedView<'a>(&'a Manifest);

impl Serialize for UnsignedView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let m = self.0;
        let mut s = serializer.serialize_struct("Manifest", 10)?;
        s.serialize_field("schema", &m.schema)?;
        s.serialize_field("tool", &m.tool)?;
        s.serialize_field("created", &m.created)?;
        s.serialize_field("file", &m.file)?;
        s.serialize_field("source", &m.source)?;
        s.serialize_field("license", &m.license)?;
        s.serialize_field("row_count", &m.row_count)?;
        s.serialize_field("merkle_root", &m.merkle_root)?;
        s.serialize_field("summary", &m.summary)?;
        s.serialize_field("row_hashes", &m.row_hashes)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(rows: &[&str]) -> Vec<[u8; 32]> {
        rows.iter().map(|r| row_hash(r.as_bytes())).collect()
    }

    #[test]
    fn diff_names_changed_added_and_removed_rows() {
        let old = leaves(&["a", "b", "c", "d", "e"]);
        let new = leaves(&["a", "B", "c", "new", "d"]);
        let changes = diff_rows(&old, &new);
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.kind, c.manifest_line, c.file_line))
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Changed, Some(2), Some(2)),
                (ChangeKind::Added, None, Some(4)),
                (ChangeKind::Removed, Some(5), None),
            ]
        );
    }
}
