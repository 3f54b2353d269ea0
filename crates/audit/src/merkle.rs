//! Row hashes and the Merkle root over them. [`merkle_root`] is the definition (level by
//! level); [`MerkleBuilder`] computes the same root while streaming, keeping O(log n) hashes
//! (one perfect subtree per set bit of the row count), so a 1 GB audit holds no per-row list.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
                [left, right] => parent(left, right),
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

fn parent(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The streaming form of [`merkle_root`]. Carrying odd nodes up makes the tree of n leaves
/// the perfect trees of n's binary digits, largest first, joined from the right: the node
/// covering leaves [a, n) at each level is the root of those leaves alone. So the builder
/// keeps the perfect subtrees completed so far (heights strictly decreasing) and joins them
/// right to left at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleBuilder {
    /// (height, root) of each completed perfect subtree, left to right.
    #[serde(with = "peaks_hex")]
    peaks: Vec<(u32, [u8; 32])>,
    leaves: u64,
}

impl MerkleBuilder {
    pub fn push(&mut self, leaf: [u8; 32]) {
        self.leaves += 1;
        let mut node = (0, leaf);
        while let Some(&(height, left)) = self.peaks.last() {
            if height != node.0 {
                break;
            }
            self.peaks.pop();
            node = (height + 1, parent(&left, &node.1));
        }
        self.peaks.push(node);
    }

    pub fn leaves(&self) -> u64 {
        self.leaves
    }

    pub fn root(&self) -> [u8; 32] {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut root)) = peaks.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in peaks {
            root = parent(left, &root);
        }
        root
    }
}

/// Peaks as `[height, "hex"]` pairs (checkpoints are JSON-headed).
mod peaks_hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        peaks: &[(u32, [u8; 32])],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let hex: Vec<(u32, String)> = peaks.iter().map(|(h, p)| (*h, hex::encode(p))).collect();
        hex.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(u32, [u8; 32])>, D::Error> {
        let hex = Vec::<(u32, String)>::deserialize(deserializer)?;
        hex.into_iter()
            .map(|(height, text)| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&text, &mut hash)
                    .map_err(|_| serde::de::Error::custom("a Merkle peak is not 64 hex digits"))?;
                Ok((height, hash))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| row_hash(format!("row {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn merkle_root_depends_on_every_leaf_and_order() {
        let base: Vec<_> = ["a", "b", "c"].map(|r| row_hash(r.as_bytes())).into();
        let root = merkle_root(&base);
        let other: Vec<_> = ["a", "b", "x"].map(|r| row_hash(r.as_bytes())).into();
        let swapped: Vec<_> = ["b", "a", "c"].map(|r| row_hash(r.as_bytes())).into();
        assert_ne!(root, merkle_root(&other));
        assert_ne!(root, merkle_root(&swapped));
        assert_ne!(root, merkle_root(&base[..2]));
        assert_eq!(root, merkle_root(&base));
    }

    #[test]
    fn streaming_root_equals_the_level_by_level_definition() {
        let sizes = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000, 1024, 1025,
        ];
        for n in sizes {
            let all = leaves(n);
            let mut builder = MerkleBuilder::default();
            for leaf in &all {
                builder.push(*leaf);
            }
            assert_eq!(builder.leaves(), n as u64);
            assert_eq!(builder.root(), merkle_root(&all), "{n} leaves");
            // O(log n) state: one peak per set bit of n.
            assert_eq!(builder.peaks.len(), n.count_ones() as usize, "{n} leaves");
        }
        // Three leaves by hand: H(H(a, b), c).
        let three = leaves(3);
        assert_eq!(
            merkle_root(&three),
            parent(&parent(&three[0], &three[1]), &three[2])
        );
    }

    #[test]
    fn builder_state_round_trips_through_json() {
        let mut builder = MerkleBuilder::default();
        for leaf in leaves(11) {
            builder.push(leaf);
        }
        let text = serde_json::to_string(&builder).unwrap();
        let back: MerkleBuilder = serde_json::from_str(&text).unwrap();
        assert_eq!(back, builder);
        assert_eq!(back.root(), builder.root());
    }
}
