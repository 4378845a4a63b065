//! Merkle tree hashing as RFC 6962 / RFC 9162 define it, the layout the log stores its hashes in,
//! and inclusion and consistency proofs with their verification.
//!
//! - leaf hash = SHA-256(0x00 ‖ record), node hash = SHA-256(0x01 ‖ left ‖ right); the root of a tree
//!   whose size is not a power of two splits at the largest power of two below its size.
//! - Stored hashes: the hash of every complete subtree, in the order the tree grows (the layout of
//!   Go's `golang.org/x/mod/sumdb/tlog`): appending record `n` stores its leaf hash, then the hash of
//!   each subtree it completes. A tree of `n` records holds [`stored_hash_count`]`(n)` hashes (under
//!   2n), and the hash of the complete subtree at `level` and position `i` lives at
//!   [`stored_hash_index`]`(level, i)`. Any root and any proof needs O(log n) of them.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof could not be made or did not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// A record index at or past the tree's size.
    #[error("record {index} is not in a tree of {size} records")]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// A consistency proof asked from a larger tree to a smaller one.
    #[error("a tree of {old} records cannot precede one of {new}")]
    Sizes {
        /// The earlier size.
        old: u64,
        /// The later size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes.
    #[error("the proof has the wrong number of hashes ({0})")]
    ProofLength(usize),
    /// The proof does not lead to the expected root.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    /// The stored hashes could not be read.
    #[error("cannot read stored hashes: {0}")]
    Read(String),
}

/// SHA-256(0x00 ‖ data): the hash of one record.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where the hash of the complete subtree at `level` and position `n` (counted at that level) is
/// stored.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    // Level L's n-th hash is written right after level L-1's (2n+1)-th: walk down to level 0.
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    // Level 0's n-th hash sits after n + n/2 + n/4 + … hashes.
    let mut i = 0u64;
    let mut m = n;
    while m > 0 {
        i += m;
        m >>= 1;
    }
    i + u64::from(level)
}

/// How many hashes a tree of `n` records stores.
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut count = stored_hash_index(0, n - 1) + 1;
    let mut i = n - 1;
    while i & 1 != 0 {
        count += 1;
        i >>= 1;
    }
    count
}

/// Reads stored hashes by their index (see [`stored_hash_index`]).
pub trait HashReader {
    /// The hashes at `indexes`, in the same order.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or_else(|| MerkleError::Read(format!("no stored hash {i}")))
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.as_slice().read_hashes(indexes)
    }
}

/// The roots of the complete subtrees that make up a tree (its "peaks", largest first): enough to
/// append leaves and to compute the root without reading anything back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The range of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The range of a tree of `size` records, from its stored hashes.
    pub fn from_stored(size: u64, r: &(impl HashReader + ?Sized)) -> Result<Self, MerkleError> {
        let spans = peak_spans(size);
        let indexes: Vec<u64> = spans
            .iter()
            .map(|&(lo, level)| stored_hash_index(level, lo >> level))
            .collect();
        let peaks = r.read_hashes(&indexes)?;
        Ok(CompactRange { size, peaks })
    }

    /// How many leaves the range holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; answers the hashes the log stores for it (the leaf hash, then each subtree
    /// the leaf completes, smallest first), in the order [`stored_hash_index`] gives them.
    pub fn push(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut out = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.push_into(leaf, &mut out);
        out
    }

    /// [`Self::push`] into a caller's buffer (appended, not cleared).
    pub fn push_into(&mut self, leaf: Hash, out: &mut Vec<Hash>) {
        let mut h = leaf;
        out.push(h);
        let mut s = self.size;
        while s & 1 == 1 {
            // The range's size has a 1 bit here, so it has a peak for it.
            let Some(left) = self.peaks.pop() else { break };
            h = node_hash(&left, &h);
            out.push(h);
            s >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The complete subtrees a tree of `size` records splits into: (first leaf, level), largest first.
fn peak_spans(size: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut lo = 0u64;
    for level in (0..64u32).rev() {
        if size & (1u64 << level) != 0 {
            out.push((lo, level));
            lo += 1u64 << level;
        }
    }
    out
}

/// The root hash of the first `n` records.
pub fn tree_hash(n: u64, r: &(impl HashReader + ?Sized)) -> Result<Hash, MerkleError> {
    Ok(CompactRange::from_stored(n, r)?.root())
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The hash of records `[lo, hi)`, a range of the RFC's recursion (its complete subtrees are aligned).
fn range_hash(lo: u64, hi: u64, r: &(impl HashReader + ?Sized)) -> Result<Hash, MerkleError> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        let level = n.trailing_zeros();
        let h = r.read_hashes(&[stored_hash_index(level, lo >> level)])?;
        return h
            .first()
            .copied()
            .ok_or_else(|| MerkleError::Read("no hash returned".into()));
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(lo, lo + k, r)?,
        &range_hash(lo + k, hi, r)?,
    ))
}

/// The inclusion proof of record `index` in the tree of the first `size` records (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(
    index: u64,
    size: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::OutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(index, 0, size, r, &mut out)?;
    Ok(out)
}

fn path(
    m: u64,
    lo: u64,
    hi: u64,
    r: &(impl HashReader + ?Sized),
    out: &mut Vec<Hash>,
) -> Result<(), MerkleError> {
    let n = hi - lo;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(m, lo, lo + k, r, out)?;
        out.push(range_hash(lo + k, hi, r)?);
    } else {
        path(m - k, lo + k, hi, r, out)?;
        out.push(range_hash(lo, lo + k, r)?);
    }
    Ok(())
}

/// The consistency proof between the trees of the first `old` and the first `new` records
/// (RFC 9162 §2.1.4.1). Empty when `old` is 0 or equals `new`.
pub fn consistency_proof(
    old: u64,
    new: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if old > new {
        return Err(MerkleError::Sizes { old, new });
    }
    let mut out = Vec::new();
    if old == 0 || old == new {
        return Ok(out);
    }
    subproof(old, 0, new, true, r, &mut out)?;
    Ok(out)
}

fn subproof(
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    r: &(impl HashReader + ?Sized),
    out: &mut Vec<Hash>,
) -> Result<(), MerkleError> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_hash(lo, hi, r)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(m, lo, lo + k, whole, r, out)?;
        out.push(range_hash(lo + k, hi, r)?);
    } else {
        subproof(m - k, lo + k, hi, false, r, out)?;
        out.push(range_hash(lo, lo + k, r)?);
    }
    Ok(())
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), without comparing it.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index >= size {
        return Err(MerkleError::OutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::ProofLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength(proof.len()));
    }
    Ok(r)
}

/// Checks that record `index` with hash `leaf` is in the tree of `size` records whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    match root_from_inclusion(index, size, leaf, proof)? == *root {
        true => Ok(()),
        false => Err(MerkleError::RootMismatch),
    }
}

/// Checks that the tree of `old` records with root `old_root` is a prefix of the tree of `new` records
/// with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), MerkleError> {
    if old > new {
        return Err(MerkleError::Sizes { old, new });
    }
    if old == new {
        return match (proof.is_empty(), old_root == new_root) {
            (false, _) => Err(MerkleError::ProofLength(proof.len())),
            (true, true) => Ok(()),
            (true, false) => Err(MerkleError::RootMismatch),
        };
    }
    if old == 0 {
        // Every tree extends the empty one; there is nothing to prove.
        return match proof.is_empty() {
            true => Ok(()),
            false => Err(MerkleError::ProofLength(proof.len())),
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleError::ProofLength(0));
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(MerkleError::ProofLength(proof.len()));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength(proof.len()));
    }
    match fr == *old_root && sr == *new_root {
        true => Ok(()),
        false => Err(MerkleError::RootMismatch),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The RFC's definition, straight: MTH over a list of records.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn build(n: u64) -> (Vec<Hash>, Vec<Hash>, Vec<Hash>) {
        let mut range = CompactRange::new();
        let mut stored = Vec::new();
        let mut leaves = Vec::new();
        let mut roots = vec![range.root()];
        for i in 0..n {
            let leaf = leaf_hash(format!("record {i}").as_bytes());
            leaves.push(leaf);
            assert_eq!(stored.len() as u64, stored_hash_index(0, i));
            range.push_into(leaf, &mut stored);
            assert_eq!(stored.len() as u64, stored_hash_count(i + 1));
            roots.push(range.root());
        }
        (leaves, stored, roots)
    }

    #[test]
    fn roots_match_the_rfc_definition_for_every_size() {
        let (leaves, stored, roots) = build(130);
        for n in 0..=130u64 {
            let want = mth(&leaves[..n as usize]);
            assert_eq!(roots[n as usize], want, "size {n}");
            assert_eq!(tree_hash(n, &stored).unwrap(), want, "stored, size {n}");
        }
    }

    #[test]
    fn the_empty_root_is_the_hash_of_nothing() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn inclusion_proofs_verify_and_fail_when_anything_changes() {
        let (leaves, stored, roots) = build(70);
        for size in 1..=70u64 {
            for i in 0..size {
                let proof = inclusion_proof(i, size, &stored).unwrap();
                let root = roots[size as usize];
                verify_inclusion(i, size, &leaves[i as usize], &proof, &root).unwrap();
                let other = leaves[((i + 1) % 70) as usize];
                if size > 1 {
                    assert!(verify_inclusion(i, size, &other, &proof, &root).is_err());
                    let mut bent = proof.clone();
                    bent[0][0] ^= 1;
                    assert!(verify_inclusion(i, size, &leaves[i as usize], &bent, &root).is_err());
                    assert!(
                        verify_inclusion(i, size, &leaves[i as usize], &proof[1..], &root).is_err()
                    );
                }
            }
        }
        assert!(inclusion_proof(5, 5, &stored).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_fail_when_anything_changes() {
        let (_, stored, roots) = build(70);
        for new in 0..=70u64 {
            for old in 0..=new {
                let proof = consistency_proof(old, new, &stored).unwrap();
                let (ro, rn) = (roots[old as usize], roots[new as usize]);
                verify_consistency(old, new, &proof, &ro, &rn)
                    .unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
                if old > 0 && old < new {
                    let wrong = roots[(old - 1) as usize];
                    assert!(verify_consistency(old, new, &proof, &wrong, &rn).is_err());
                    assert!(verify_consistency(old, new, &proof, &ro, &wrong).is_err());
                    assert!(verify_consistency(old, new, &proof[1..], &ro, &rn).is_err());
                }
            }
        }
        assert!(consistency_proof(3, 2, &stored).is_err());
    }
}
