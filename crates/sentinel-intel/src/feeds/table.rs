//! Prefix lookups for local feeds: which feeds list an address, in a few nanoseconds, with hundreds of
//! thousands of overlapping and nested CIDRs loaded.
//!
//! The address space is swept once at build time into disjoint, sorted intervals, each carrying a value
//! (a bitmask of feeds in [`PrefixTable`], the innermost listed net in [`NetIndex`]); neighbours with the
//! same value are merged. A lookup is then one binary search, narrowed first by a direct index on the top
//! bits of the address. Nothing here reads files or allocates on lookup.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// The most feeds one table distinguishes (one bit each in a `u64`).
pub const MAX_FEEDS: usize = 64;

/// An address as an integer key (IPv4 as `u32`, IPv6 as `u128`).
trait Key: Copy + Ord {
    /// The next key, `None` past the end of the space.
    fn succ(self) -> Option<Self>;
    /// The top `bits` bits, as a bucket number.
    fn bucket(self, bits: u32) -> usize;
    /// The first key of bucket `b`.
    fn bucket_start(b: usize, bits: u32) -> Self;
}

impl Key for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
    fn bucket_start(b: usize, bits: u32) -> Self {
        (b as u32) << (32 - bits)
    }
}

impl Key for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self, bits: u32) -> usize {
        (self >> (128 - bits)) as usize
    }
    fn bucket_start(b: usize, bits: u32) -> Self {
        (b as u128) << (128 - bits)
    }
}

/// Disjoint intervals covering the whole space: interval `i` runs from `bounds[i].0` up to (not
/// including) `bounds[i + 1].0`, or to the end of the space for the last one; `bounds[0].0` is 0.
/// Start and value sit side by side so a lookup touches one or two cache lines past the index.
#[derive(Debug, Clone)]
struct Intervals<K, V> {
    bounds: Vec<(K, V)>,
    /// `index[b]` is the interval holding the first key of bucket `b` (one more entry than buckets),
    /// so a key in bucket `b` lies in intervals `index[b]..=index[b + 1]`.
    index: Vec<u32>,
    index_bits: u32,
}

impl<K: Key + Default, V: Copy + Eq> Intervals<K, V> {
    /// From `(start, value)` boundaries already sorted, starting at 0, neighbours distinct; a direct
    /// index of up to `max_bits` bits (0: none).
    fn new(bounds: Vec<(K, V)>, max_bits: u32) -> Self {
        let mut t = Intervals {
            bounds,
            index: Vec::new(),
            index_bits: 0,
        };
        // About one bucket per interval, so the search after the index touches one or two cache
        // lines; small tables search directly.
        let index_bits = (usize::BITS - t.bounds.len().leading_zeros()).clamp(8, max_bits.max(8));
        if max_bits > 0 && t.bounds.len() > 64 {
            t.index_bits = index_bits;
            let buckets = 1usize << index_bits;
            let mut index = Vec::with_capacity(buckets + 1);
            let mut i = 0usize;
            for b in 0..buckets {
                // The interval holding the first key of bucket b: the last start at or before it.
                let first = K::bucket_start(b, index_bits);
                while i + 1 < t.bounds.len() && t.bounds[i + 1].0 <= first {
                    i += 1;
                }
                index.push(i as u32);
            }
            index.push((t.bounds.len() - 1) as u32);
            t.index = index;
        }
        t
    }

    #[inline]
    fn get(&self, key: K) -> V {
        let (lo, hi) = if self.index_bits > 0 {
            let b = key.bucket(self.index_bits);
            (self.index[b] as usize, self.index[b + 1] as usize)
        } else {
            (0, self.bounds.len() - 1)
        };
        // The last interval in lo..=hi whose start is ≤ key; interval lo always qualifies.
        let n = self.bounds[lo + 1..=hi].partition_point(|b| b.0 <= key);
        self.bounds[lo + n].1
    }

    fn len(&self) -> usize {
        self.bounds.len()
    }
}

/// Appends a boundary, merging it with the previous one when both start at the same key or carry the
/// same value, so the intervals stay disjoint and minimal.
fn push_bound<K: Key, V: Copy + Eq>(out: &mut Vec<(K, V)>, pos: K, val: V) {
    if let Some(last) = out.last_mut() {
        if last.0 == pos {
            last.1 = val;
            let n = out.len();
            if n >= 2 && out[n - 2].1 == val {
                out.pop();
            }
            return;
        }
        if last.1 == val {
            return;
        }
    }
    out.push((pos, val));
}

/// The feeds listing each part of one address family: intervals carrying a position in `palette`,
/// the distinct masks (few: one per combination of feeds that occurs), so an interval stays small.
fn sweep_masks<K: Key + Default>(
    mut nets: Vec<(K, K, u8)>,
    index_bits: u32,
    palette: &mut Vec<u64>,
) -> Intervals<K, u32> {
    // Events: a feed's coverage count goes up at a net's first key and down after its last.
    let mut events: Vec<(K, u8, bool)> = Vec::with_capacity(nets.len() * 2);
    for (start, end, feed) in nets.drain(..) {
        events.push((start, feed, true));
        if let Some(after) = end.succ() {
            events.push((after, feed, false));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut counts = [0u32; MAX_FEEDS];
    let mut mask = 0u64;
    let mut bounds: Vec<(K, u64)> = vec![(K::default(), 0)];
    let mut i = 0;
    while i < events.len() {
        let pos = events[i].0;
        while i < events.len() && events[i].0 == pos {
            let (_, feed, up) = events[i];
            let f = usize::from(feed) % MAX_FEEDS;
            if up {
                counts[f] += 1;
                mask |= 1 << f;
            } else {
                counts[f] = counts[f].saturating_sub(1);
                if counts[f] == 0 {
                    mask &= !(1 << f);
                }
            }
            i += 1;
        }
        push_bound(&mut bounds, pos, mask);
    }
    let mut ids: HashMap<u64, u32> = palette
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, i as u32))
        .collect();
    let bounds = bounds
        .into_iter()
        .map(|(pos, mask)| {
            let id = *ids.entry(mask).or_insert_with(|| {
                palette.push(mask);
                (palette.len() - 1) as u32
            });
            (pos, id)
        })
        .collect();
    Intervals::new(bounds, index_bits)
}

/// The innermost of possibly nested nets at each part of one address family. CIDRs never partly
/// overlap (two are either disjoint or one holds the other), so a stack sweep finds it.
fn sweep_innermost<K: Key + Default>(mut nets: Vec<(K, K, u32)>) -> Intervals<K, u32> {
    // Outer nets first among those starting at the same key; identical nets keep the first listed.
    nets.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    nets.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
    let mut bounds: Vec<(K, u32)> = vec![(K::default(), NONE)];
    let mut stack: Vec<(K, u32)> = Vec::new();
    for (start, end, idx) in nets {
        while let Some(&(top_end, _)) = stack.last() {
            if top_end >= start {
                break;
            }
            stack.pop();
            let under = stack.last().map_or(NONE, |t| t.1);
            if let Some(after) = top_end.succ() {
                push_bound(&mut bounds, after, under);
            }
        }
        stack.push((end, idx));
        push_bound(&mut bounds, start, idx);
    }
    while let Some((top_end, _)) = stack.pop() {
        let under = stack.last().map_or(NONE, |t| t.1);
        if let Some(after) = top_end.succ() {
            push_bound(&mut bounds, after, under);
        }
    }
    Intervals::new(bounds, 0)
}

const NONE: u32 = u32::MAX;

fn v4_range(net: &ipnet::Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

fn v6_range(net: &ipnet::Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

/// Which feeds list an address: IPv4 and IPv6, overlapping and nested prefixes allowed.
#[derive(Debug, Clone)]
pub struct PrefixTable {
    v4: Intervals<u32, u32>,
    v6: Intervals<u128, u32>,
    /// Every distinct feed mask; `palette[0]` is 0 (no feed).
    palette: Vec<u64>,
}

impl PrefixTable {
    /// Builds the table from `(net, feed)` pairs; `feed` is a bit number below [`MAX_FEEDS`] (larger
    /// numbers wrap, so callers keep them below). Host bits set in a net are ignored.
    pub fn build(items: impl IntoIterator<Item = (IpNet, u8)>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (net, feed) in items {
            match net {
                IpNet::V4(n) => {
                    let (s, e) = v4_range(&n);
                    v4.push((s, e, feed));
                }
                IpNet::V6(n) => {
                    let (s, e) = v6_range(&n);
                    v6.push((s, e, feed));
                }
            }
        }
        let mut palette = vec![0];
        // Up to 2^20 buckets (4 MiB of index) for the largest tables.
        let v4 = sweep_masks(v4, 20, &mut palette);
        // IPv6 in use sits mostly under 2000::/3, so the same bits spread it over fewer buckets.
        let v6 = sweep_masks(v6, 20, &mut palette);
        PrefixTable { v4, v6, palette }
    }

    /// The bitmask of feeds listing `ip` (bit `n` set: feed `n` lists it); 0 when none does. An
    /// IPv4-mapped IPv6 address is looked up as the IPv4 address.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> u64 {
        let id = match ip {
            IpAddr::V4(a) => self.v4.get(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.get(u32::from(v4)),
                None => self.v6.get(u128::from(a)),
            },
        };
        self.palette.get(id as usize).copied().unwrap_or(0)
    }

    /// How many disjoint intervals the table holds (IPv4, IPv6): a measure of its size.
    pub fn intervals(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }
}

impl Default for PrefixTable {
    fn default() -> Self {
        PrefixTable::build(std::iter::empty())
    }
}

/// The innermost (most specific) listed net holding an address, among one feed's nets: how a match
/// names the prefix that matched.
#[derive(Debug, Clone)]
pub struct NetIndex {
    v4: Intervals<u32, u32>,
    v6: Intervals<u128, u32>,
}

impl NetIndex {
    /// Indexes `nets`; a lookup answers with a position in this slice.
    pub fn build(nets: &[IpNet]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, net) in nets.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(NONE - 1);
            match net {
                IpNet::V4(n) => {
                    let (s, e) = v4_range(n);
                    v4.push((s, e, i));
                }
                IpNet::V6(n) => {
                    let (s, e) = v6_range(n);
                    v6.push((s, e, i));
                }
            }
        }
        NetIndex {
            v4: sweep_innermost(v4),
            v6: sweep_innermost(v6),
        }
    }

    /// The position of the most specific net holding `ip`, if any does.
    pub fn innermost(&self, ip: IpAddr) -> Option<usize> {
        let i = match ip {
            IpAddr::V4(a) => self.v4.get(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.get(u32::from(v4)),
                None => self.v6.get(u128::from(a)),
            },
        };
        (i != NONE).then_some(i as usize)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn net(s: &str) -> IpNet {
        s.parse::<IpNet>().unwrap().trunc()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nested_and_overlapping_feeds() {
        let t = PrefixTable::build([
            (net("10.0.0.0/8"), 0),
            (net("10.1.0.0/16"), 1),
            (net("10.1.2.0/24"), 0),
            (net("10.1.2.3/32"), 2),
            (net("0.0.0.0/0"), 5),
            (net("2001:db8::/32"), 3),
            (net("2001:db8:1::/48"), 4),
        ]);
        assert_eq!(t.lookup(ip("10.1.2.3")), 0b100111);
        assert_eq!(t.lookup(ip("10.1.2.4")), 0b100011);
        assert_eq!(t.lookup(ip("10.1.3.0")), 0b100011);
        // Feed 0's outer net still covers past its nested one.
        assert_eq!(t.lookup(ip("10.2.0.0")), 0b100001);
        assert_eq!(t.lookup(ip("11.0.0.0")), 0b100000);
        assert_eq!(t.lookup(ip("255.255.255.255")), 0b100000);
        assert_eq!(t.lookup(ip("::ffff:10.1.2.3")), 0b100111);
        assert_eq!(t.lookup(ip("2001:db8:1::1")), 0b11000);
        assert_eq!(t.lookup(ip("2001:db8:2::1")), 0b1000);
        assert_eq!(t.lookup(ip("2001:db9::")), 0);
        assert_eq!(PrefixTable::default().lookup(ip("192.0.2.1")), 0);
    }

    #[test]
    fn innermost_net_is_reported() {
        let nets = [
            net("10.0.0.0/8"),
            net("10.1.2.0/24"),
            net("10.1.0.0/16"),
            net("10.1.0.0/16"),
            net("255.255.255.255/32"),
            net("::/0"),
            net("2001:db8::/32"),
        ];
        let ix = NetIndex::build(&nets);
        assert_eq!(ix.innermost(ip("10.1.2.9")), Some(1));
        assert_eq!(ix.innermost(ip("10.1.3.9")), Some(2));
        assert_eq!(ix.innermost(ip("10.200.0.1")), Some(0));
        assert_eq!(ix.innermost(ip("11.0.0.0")), None);
        assert_eq!(ix.innermost(ip("255.255.255.255")), Some(4));
        assert_eq!(ix.innermost(ip("2001:db8::1")), Some(6));
        assert_eq!(ix.innermost(ip("2001:db9::1")), Some(5));
    }

    fn arb_v4() -> impl Strategy<Value = IpNet> {
        // Few distinct high bits so that nets nest and overlap often.
        (0u32..8, any::<u32>(), 0u8..=32).prop_map(|(hi, lo, len)| {
            let a = (hi << 29) | (lo >> 3);
            IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc())
        })
    }

    fn arb_v6() -> impl Strategy<Value = IpNet> {
        (0u128..4, any::<u128>(), 0u8..=128).prop_map(|(hi, lo, len)| {
            let a = (hi << 126) | (lo >> 2);
            IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
        })
    }

    fn probes(nets: &[(IpNet, u8)], extra: &[IpAddr]) -> Vec<IpAddr> {
        // Every boundary (first, last, just outside) plus random addresses.
        let mut out = extra.to_vec();
        for (n, _) in nets {
            out.push(n.network());
            out.push(n.broadcast());
            match n {
                IpNet::V4(n) => {
                    let s = u32::from(n.network());
                    let e = u32::from(n.broadcast());
                    out.push(IpAddr::V4(s.wrapping_sub(1).into()));
                    out.push(IpAddr::V4(e.wrapping_add(1).into()));
                }
                IpNet::V6(n) => {
                    let s = u128::from(n.network());
                    let e = u128::from(n.broadcast());
                    out.push(IpAddr::V6(s.wrapping_sub(1).into()));
                    out.push(IpAddr::V6(e.wrapping_add(1).into()));
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn table_matches_checking_every_net(
            v4 in proptest::collection::vec((arb_v4(), 0u8..64), 0..150),
            v6 in proptest::collection::vec((arb_v6(), 0u8..64), 0..40),
            rnd4 in proptest::collection::vec(any::<u32>(), 0..50),
            rnd6 in proptest::collection::vec(any::<u128>(), 0..20),
        ) {
            let all: Vec<(IpNet, u8)> = v4.into_iter().chain(v6).collect();
            let table = PrefixTable::build(all.iter().copied());
            let nets: Vec<IpNet> = all.iter().map(|(n, _)| *n).collect();
            let index = NetIndex::build(&nets);
            let extra: Vec<IpAddr> = rnd4.into_iter().map(|a| IpAddr::V4(a.into()))
                .chain(rnd6.into_iter().map(|a| IpAddr::V6(a.into()))).collect();
            // An IPv4-mapped IPv6 address is looked up as IPv4, which the naive check does not model.
            for a in probes(&all, &extra).into_iter().filter(|a| !matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())) {
                let want = all.iter().filter(|(n, _)| n.contains(&a)).fold(0u64, |m, (_, f)| m | 1 << f);
                prop_assert_eq!(table.lookup(a), want, "mask of {}", a);
                let best = nets.iter().filter(|n| n.contains(&a)).map(|n| n.prefix_len()).max();
                let got = index.innermost(a).map(|i| nets[i].prefix_len());
                prop_assert_eq!(got, best, "innermost of {}", a);
                if let Some(i) = index.innermost(a) {
                    prop_assert!(nets[i].contains(&a));
                }
            }
        }

        #[test]
        fn large_tables_use_the_index_correctly(
            v4 in proptest::collection::vec((any::<u32>(), 8u8..=32, 0u8..64), 200..600),
            v6 in proptest::collection::vec((0u128..8, any::<u128>(), 16u8..=128, 0u8..64), 200..400),
            rnd in proptest::collection::vec(any::<u32>(), 0..200),
        ) {
            let v4 = v4.into_iter().map(|(a, len, f)| {
                (IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc()), f)
            });
            // Under 2000::/3 and nearby, as IPv6 in use is.
            let v6 = v6.into_iter().map(|(hi, lo, len, f)| {
                let a = (hi << 125) | (lo >> 3);
                (IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc()), f)
            });
            let all: Vec<(IpNet, u8)> = v4.chain(v6).collect();
            let table = PrefixTable::build(all.iter().copied());
            let (i4, i6) = table.intervals();
            prop_assert!(i4 > 64 && i6 > 64, "the index is in use");
            let extra: Vec<IpAddr> = rnd.into_iter().map(|a| IpAddr::V4(a.into())).collect();
            for a in probes(&all, &extra).into_iter().filter(|a| !matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())) {
                let want = all.iter().filter(|(n, _)| n.contains(&a)).fold(0u64, |m, (_, f)| m | 1 << f);
                prop_assert_eq!(table.lookup(a), want, "mask of {}", a);
            }
        }
    }
}
