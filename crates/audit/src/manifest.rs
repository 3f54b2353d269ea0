//! The provenance manifest: what exactly was audited (file sha256, every row's hash, a Merkle
//! root over them), where it came from, what the audit found, and an optional ed25519
//! signature. `verify` re-reads a file and names every changed, added or removed row.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use similar::{Algorithm, DiffOp, capture_diff_slices};

use crate::reader::LineReader;
use crate::signing::{self, ManifestSignature};
use crate::{AuditError, Summary};

pub const SCHEMA: u32 = 1;

/// sha256(0x00 || line bytes without the newline); the leaf of the Merkle tree.
pub fn row_hash(line: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(line);
    hasher.finalize().into()
}

/// Merkle root: parents are sha256(0x01 || left || right); an odd node is carried up as is.
/// The root of no rows is sha256 of nothing.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = Sha256::new();
                    hasher.update([1u8]);
                    hasher.update(left);
                    hasher.update(right);
                    hasher.finalize().into()
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

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
    /// sha256 per line, in order (see [`row_hash`]), written as hex strings.
    #[serde(with = "hex_hashes")]
    pub row_hashes: Vec<[u8; 32]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ManifestSignature>,
}

impl Manifest {
    /// What a signature covers: sha256 of the manifest without its signature, as compact
    /// JSON (streamed into the hash, so a million row hashes need no second copy).
    pub fn signed_digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        let unsigned = UnsignedView(self);
        serde_json::to_writer(&mut hasher, &unsigned).expect("manifest serialises");
        hasher.finalize().into()
    }

    pub fn read(path: &Path) -> Result<Manifest, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuditError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| AuditError::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
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
    /// The manifest's row hashes reproduce its Merkle root and row count.
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
    let expected = &manifest.row_hashes;
    let manifest_consistent = hex::encode(merkle_root(expected)) == manifest.merkle_root
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
        changes: diff_rows(expected, &actual),
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
        s.serialize_field("row_hashes", &HexHashes(&m.row_hashes))?;
        s.end()
    }
}

struct HexHashes<'a>(&'a [[u8; 32]]);

impl Serialize for HexHashes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        hex_hashes::serialize(self.0, serializer)
    }
}

/// Row hashes as a list of 64-digit hex strings.
mod hex_hashes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hashes: &[[u8; 32]], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&hex::encode(hash))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        struct Hashes;
        impl<'de> Visitor<'de> for Hashes {
            type Value = Vec<[u8; 32]>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of 64-digit hex sha256 values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut hashes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(text) = seq.next_element::<String>()? {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(&text, &mut hash).map_err(|_| {
                        A::Error::custom(format!("row hash `{text}` is not 64 hex digits"))
                    })?;
                    hashes.push(hash);
                }
                Ok(hashes)
            }
        }
        deserializer.deserialize_seq(Hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(rows: &[&str]) -> Vec<[u8; 32]> {
        rows.iter().map(|r| row_hash(r.as_bytes())).collect()
    }

    #[test]
    fn merkle_root_depends_on_every_leaf_and_order() {
        let base = leaves(&["a", "b", "c"]);
        let root = merkle_root(&base);
        assert_ne!(root, merkle_root(&leaves(&["a", "b", "x"])));
        assert_ne!(root, merkle_root(&leaves(&["b", "a", "c"])));
        assert_ne!(root, merkle_root(&leaves(&["a", "b"])));
        assert_eq!(root, merkle_root(&base));
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
