//! Forged cursors against the real router: a cursor with the right prefix but an empty or over-long
//! position is refused with a message that says what is wrong, never one that contradicts itself
//! ("a cursor of an event listing, not of an event listing").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test]
async fn a_forged_cursor_of_the_right_kind_is_refused_with_a_sensible_message() {
    let h = harness().await;
    let long = format!("ev_{}", "a".repeat(300));
    for (path, cursor) in [
        ("/v1/events", "ev_".to_owned()),
        ("/v1/events", long),
        ("/v1/alerts", "al_".to_owned()),
    ] {
        let r = send(
            &h.app,
            get(&format!("{path}?cursor={cursor}"), Some(&h.viewer_key)),
        )
        .await;
        assert_eq!(r.status, 400, "{path} {cursor}");
        let m = r.error("bad_request");
        assert!(m.contains("`cursor`"), "{m}");
        assert!(
            !m.contains(", not of"),
            "{path}: a cursor of its own kind told it is of another kind: {m}"
        );
        assert!(m.contains("not a cursor this API gave out"), "{m}");
    }
}
