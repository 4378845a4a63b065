//! Field names a filter defines (`<F-NAME>`) belong to the filter: loading and dropping filters gives their
//! memory back. A counting global allocator (`stats_alloc`) measures the bytes still allocated after 100
//! filters, each with field names of its own, were loaded, used and dropped. (One test in this binary: the
//! count is global.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::Timestamp;
use sentinel_ingest::fail2ban::Fail2banFilter;
use sentinel_ingest::{LineParser, ParseCtx};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LOADS: usize = 100;
/// Makes every name long, so that a name kept after its filter is gone shows well above allocator noise.
const LONG: &str = "LONG_FIELD_NAME_LONG_FIELD_NAME_LONG_FIELD_NAME_LONG_FIELD_NAME_LONG_FIELD_NAME_LONG_FIELD_NAME";

fn load_and_use(i: usize) {
    let f = Fail2banFilter::from_str(
        "names",
        &format!(
            "[Definition]\nfailregex = ^\\s*denied <F-REASON{i}{LONG}>\\S+</F-REASON{i}{LONG}> for <F-CLIENTNAME_{i}{LONG}>\\S+</F-CLIENTNAME_{i}{LONG}> from <HOST>$\n"
        ),
        None,
    )
    .unwrap();
    let ctx = ParseCtx {
        reference: Timestamp::parse_rfc3339("2024-03-10T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    };
    let p = f
        .parse(
            "Mar  9 10:00:00 denied quota for alice from 192.0.2.7",
            &ctx,
        )
        .unwrap();
    let long = LONG.to_ascii_lowercase();
    assert_eq!(p.get(&format!("reason{i}{long}")), Some("quota"));
    assert_eq!(p.get(&format!("clientname_{i}{long}")), Some("alice"));
    assert!(p
        .extra
        .iter()
        .any(|(k, _)| **k == format!("reason{i}{long}")));
    drop(p);
    drop(f);
}

#[test]
fn fail2ban_field_names_are_freed_with_their_filter() {
    // Warm up whatever the loader builds once per process (shared tables, lazily made statics).
    for i in 0..3 {
        load_and_use(LOADS + i);
    }
    let region = Region::new(GLOBAL);
    for i in 0..LOADS {
        load_and_use(i);
    }
    let c = region.change();
    // (`stats_alloc` adds a reallocation's growth to `bytes_allocated` and its shrinking to `bytes_deallocated`.)
    let grown = c.bytes_allocated as i64 - c.bytes_deallocated as i64;
    println!("{grown} bytes still allocated after {LOADS} filters were loaded and dropped");
    // Two names of ~100 bytes a filter: keeping them would hold at least 20 KB (plus the table holding them).
    assert!(
        grown < 4 * 1024,
        "{grown} bytes still allocated after {LOADS} filters were loaded and dropped"
    );
}
