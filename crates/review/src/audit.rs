//! The audit log: every decision and admin action, one row each, append-only. Each row's
//! hash covers its fields and the previous row's hash, so a row edited in place breaks its
//! own hash (and, if its hash was recomputed, the next row's link), and a deleted row leaves a
//! gap in the numbers and a broken link. [`verify`] names each such row.
//!
//! What a chain alone cannot show: rows cut from its end. Compare the row count with what you
//! expect (the verify command prints the last row and its hash: keep it elsewhere to compare).

use emguard_store::review::AuditRow;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a row's content and its link.
pub fn row_hash(row: &AuditRow) -> String {
    let content = serde_json::json!([
        row.seq,
        row.time,
        row.actor,
        row.action,
        row.item_id,
        row.detail,
        row.prev_hash
    ]);
    hex::encode(Sha256::digest(content.to_string().as_bytes()))
}

/// The row after `last` (`None`: the first), with its link and hash.
pub fn next_row(
    last: Option<&AuditRow>,
    time: f64,
    actor: &str,
    action: &str,
    item_id: Option<&str>,
    detail: &serde_json::Value,
) -> AuditRow {
    let mut row = AuditRow {
        seq: last.map_or(1, |l| l.seq + 1),
        time,
        actor: actor.to_string(),
        action: action.to_string(),
        item_id: item_id.map(str::to_string),
        detail: detail.to_string(),
        prev_hash: last.map_or_else(|| GENESIS.to_string(), |l| l.hash.clone()),
        hash: String::new(),
    };
    row.hash = row_hash(&row);
    row
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// Rows `from..=to` are missing (deleted).
    Missing { from: i64, to: i64 },
    /// The row's content no longer matches its hash.
    Edited { seq: i64 },
    /// The row's link names a hash that is not the previous row's: the previous row was
    /// changed and its hash recomputed, or rows were replaced.
    Relinked { seq: i64, previous: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Missing { from, to } if from == to => {
                write!(f, "row {from} is missing (deleted)")
            }
            Break::Missing { from, to } => write!(f, "rows {from} to {to} are missing (deleted)"),
            Break::Edited { seq } => {
                write!(
                    f,
                    "row {seq} was edited (its content does not match its hash)"
                )
            }
            Break::Relinked { seq, previous } => write!(
                f,
                "row {previous} was changed: row {seq} links to a different hash"
            ),
        }
    }
}

/// Checks rows read in `seq` order, a page at a time: feed every row to [`Verifier::row`].
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    pub rows: u64,
    pub breaks: Vec<Break>,
    /// The last row's seq and hash.
    pub head: Option<(i64, String)>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            rows: 0,
            breaks: Vec::new(),
            head: None,
        }
    }
}

impl Verifier {
    pub fn row(&mut self, row: &AuditRow) {
        self.rows += 1;
        let gap = row.seq > self.expected_seq;
        if gap {
            self.breaks.push(Break::Missing {
                from: self.expected_seq,
                to: row.seq - 1,
            });
        } else if row.prev_hash != self.prev_hash {
            self.breaks.push(Break::Relinked {
                seq: row.seq,
                previous: row.seq - 1,
            });
        }
        if row_hash(row) != row.hash {
            self.breaks.push(Break::Edited { seq: row.seq });
        }
        self.expected_seq = row.seq + 1;
        self.prev_hash = row.hash.clone();
        self.head = Some((row.seq, row.hash.clone()));
    }
}

/// All breaks in `rows` (in `seq` order).
pub fn verify(rows: &[AuditRow]) -> Vec<Break> {
    let mut v = Verifier::default();
    for r in rows {
        v.row(r);
    }
    v.breaks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: usize) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for i in 0..n {
            let row = next_row(
                rows.last(),
                1000.0 + i as f64,
                "alice (rk_1)",
                "approve",
                Some(&format!("rev_{i}")),
                &json!({"reason": "fine"}),
            );
            rows.push(row);
        }
        rows
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify(&chain(5)).is_empty());
    }

    #[test]
    fn an_edited_row_is_named() {
        let mut rows = chain(5);
        rows[2].actor = "mallory".into();
        assert_eq!(verify(&rows), vec![Break::Edited { seq: 3 }]);
        // Recomputing its hash moves the break to the next row's link.
        rows[2].hash = row_hash(&rows[2]);
        let breaks = verify(&rows);
        assert_eq!(
            breaks,
            vec![Break::Relinked {
                seq: 4,
                previous: 3
            }]
        );
        assert_eq!(
            breaks[0].to_string(),
            "row 3 was changed: row 4 links to a different hash"
        );
    }

    #[test]
    fn a_deleted_row_is_named() {
        let mut rows = chain(5);
        rows.remove(1);
        let breaks = verify(&rows);
        assert_eq!(breaks, vec![Break::Missing { from: 2, to: 2 }]);
        assert_eq!(breaks[0].to_string(), "row 2 is missing (deleted)");
    }
}
