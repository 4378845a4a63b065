//! The proofs `merkle.rs` makes (from the stored hashes, as the log serves them), checked against a
//! reference written straight from the text of RFC 9162 §2.1: MTH as the recursive definition over
//! the list of records, PATH and PROOF/SUBPROOF as the recursive definitions, and verification by
//! recomputing the roots recursively from a proof. None of it uses `merkle.rs` (hashing included:
//! SHA-256 from `sha2` directly).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::merkle::{self, CompactRange};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;

type H = [u8; 32];

fn leaf(d: &[u8]) -> H {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(d);
    h.finalize().into()
}

fn node(l: &H, r: &H) -> H {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// The largest power of two smaller than n (n > 1).
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The RFC's functions over the records D[lo:hi] of one list (MTH memoised: the definitions
/// recompute the same subtrees many times).
struct Rfc<'a> {
    d: &'a [H],
    memo: RefCell<HashMap<(usize, usize), H>>,
}

impl Rfc<'_> {
    /// MTH(D[lo:hi]) over the leaf hashes (the RFC's MTH({d}) = leaf(d), already applied).
    fn mth(&self, lo: usize, hi: usize) -> H {
        if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
            return *h;
        }
        let h = match hi - lo {
            0 => Sha256::digest(b"").into(),
            1 => self.d[lo],
            n => {
                let k = k_of(n);
                node(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
            }
        };
        self.memo.borrow_mut().insert((lo, hi), h);
        h
    }

    /// PATH(m, D[lo:hi]) (RFC 9162 §2.1.3.1).
    fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<H> {
        let n = hi - lo;
        if n == 1 {
            return Vec::new();
        }
        let k = k_of(n);
        let mut p;
        if m < k {
            p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
        } else {
            p = self.path(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
        }
        p
    }

    /// SUBPROOF(m, D[lo:hi], b) (RFC 9162 §2.1.4.1).
    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<H> {
        let n = hi - lo;
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![self.mth(lo, hi)]
            };
        }
        let k = k_of(n);
        let mut p;
        if m <= k {
            p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
        } else {
            p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
        }
        p
    }

    /// PROOF(m, D[n]).
    fn proof(&self, m: usize, n: usize) -> Vec<H> {
        if m == 0 || m == n {
            return Vec::new();
        }
        self.subproof(m, 0, n, true)
    }
}

/// The root an inclusion proof leads to, by undoing PATH's recursion; `None` when the proof has the
/// wrong length.
fn root_from_path(m: usize, n: usize, leaf: &H, p: &[H]) -> Option<H> {
    if n == 1 {
        return p.is_empty().then_some(*leaf);
    }
    let (last, rest) = p.split_last()?;
    let k = k_of(n);
    Some(if m < k {
        node(&root_from_path(m, k, leaf, rest)?, last)
    } else {
        node(last, &root_from_path(m - k, n - k, leaf, rest)?)
    })
}

/// The (old, new) roots a consistency proof leads to, by undoing SUBPROOF's recursion; `old` is the
/// old root, known to the verifier, used where SUBPROOF leaves it out.
fn roots_from_subproof(m: usize, n: usize, p: &[H], b: bool, old: &H) -> Option<(H, H)> {
    if m == n {
        return match b {
            true => p.is_empty().then_some((*old, *old)),
            false => match p {
                [h] => Some((*h, *h)),
                _ => None,
            },
        };
    }
    let (last, rest) = p.split_last()?;
    let k = k_of(n);
    if m <= k {
        let (o, new) = roots_from_subproof(m, k, rest, b, old)?;
        Some((o, node(&new, last)))
    } else {
        let (o, new) = roots_from_subproof(m - k, n - k, rest, false, old)?;
        Some((node(last, &o), node(last, &new)))
    }
}

fn check_consistency(m: usize, n: usize, p: &[H], old: &H, new: &H) -> bool {
    if m == 0 || m == n {
        return p.is_empty() && (m == 0 || old == new);
    }
    roots_from_subproof(m, n, p, true, old) == Some((*old, *new))
}

struct Log {
    leaves: Vec<H>,
    stored: Vec<merkle::Hash>,
}

fn log(n: usize) -> Log {
    let mut range = CompactRange::new();
    let mut stored = Vec::new();
    let mut leaves = Vec::new();
    for i in 0..n {
        let data = format!("{{\"seq\":{i},\"summary\":\"record {}\"}}", i * 7919 % 1000);
        let l = leaf(data.as_bytes());
        assert_eq!(merkle::leaf_hash(data.as_bytes()), l);
        leaves.push(l);
        range.push_into(l, &mut stored);
    }
    Log { leaves, stored }
}

/// Indexes to test in a tree of n: all when small, else the edges, the splits and a spread.
fn indexes(n: usize, all_up_to: usize) -> Vec<usize> {
    if n <= all_up_to {
        return (0..n).collect();
    }
    let mut v = vec![0, 1, n / 2, n - 2, n - 1, k_of(n) - 1, k_of(n), k_of(n) / 2];
    v.extend((0..12).map(|j| (j * 7919 + 13) % n));
    v.sort_unstable();
    v.dedup();
    v.retain(|&i| i < n);
    v
}

fn check_size(l: &Log, rfc: &Rfc<'_>, n: usize, all_up_to: usize) {
    let d = &l.leaves[..n];
    let root = rfc.mth(0, n);
    assert_eq!(
        merkle::tree_hash(n as u64, &l.stored).unwrap(),
        root,
        "root of {n}"
    );
    for m in indexes(n, all_up_to) {
        let p = merkle::inclusion_proof(m as u64, n as u64, &l.stored).unwrap();
        // The reference accepts it, and it is the RFC's PATH exactly.
        assert_eq!(
            root_from_path(m, n, &d[m], &p),
            Some(root),
            "inclusion {m} in {n}"
        );
        let reference = rfc.path(m, 0, n);
        assert_eq!(p, reference, "PATH({m}, D[{n}])");
        // The crate accepts the reference's proof (same thing, other direction).
        merkle::verify_inclusion(m as u64, n as u64, &d[m], &reference, &root).unwrap();
        // And the reference refuses a wrong leaf or a bent proof.
        let other = l.leaves[(m + 1) % l.leaves.len()];
        if n > 1 {
            assert_ne!(root_from_path(m, n, &other, &p), Some(root));
            let mut bent = p.clone();
            bent[p.len() / 2][3] ^= 0x10;
            assert_ne!(root_from_path(m, n, &d[m], &bent), Some(root));
        }
    }
    for m in indexes(n + 1, all_up_to) {
        let old = rfc.mth(0, m);
        let p = merkle::consistency_proof(m as u64, n as u64, &l.stored).unwrap();
        assert!(
            check_consistency(m, n, &p, &old, &root),
            "consistency {m} -> {n}"
        );
        let reference = rfc.proof(m, n);
        assert_eq!(p, reference, "PROOF({m}, D[{n}])");
        merkle::verify_consistency(m as u64, n as u64, &reference, &old, &root).unwrap();
        if m > 0 && m < n {
            let wrong = rfc.mth(0, m - 1);
            assert!(!check_consistency(m, n, &p, &wrong, &root));
            assert!(!check_consistency(m, n, &p, &old, &wrong));
        }
    }
}

#[test]
fn every_size_up_to_300() {
    let l = log(300);
    let rfc = Rfc {
        d: &l.leaves,
        memo: RefCell::default(),
    };
    for n in 1..=300 {
        check_size(&l, &rfc, n, 64);
    }
}

#[test]
fn large_sizes_around_powers_of_two() {
    let l = log(4097);
    let rfc = Rfc {
        d: &l.leaves,
        memo: RefCell::default(),
    };
    for n in [1000, 1023, 1024, 1025, 2047, 2049, 4095, 4096, 4097] {
        check_size(&l, &rfc, n, 0);
    }
}
