//! API key cases of the shared store suite: listing, paging, revoking, and never revoking the last
//! admin key, also when two revocations race.

use crate::case::*;
use sentinel_core::Timestamp;
use sentinel_store::{ApiKeyRow, Revoke, StoreError};

fn key(id: &str, role: &str, expires: Option<i64>) -> ApiKeyRow {
    ApiKeyRow {
        id: id.into(),
        name: format!("key {id}"),
        role: role.into(),
        hash: format!("{:0>64}", id.to_lowercase()),
        created: Timestamp::from_millis(T0),
        expires: expires.map(Timestamp::from_millis),
        revoked_at: None,
    }
}

pub async fn api_keys_are_kept_and_the_last_admin_is_never_revoked(c: Case) {
    let s = &c.store;
    // An admin key that has expired does not count as an admin left.
    let keys = [
        key("K1", "admin", None),
        key("K2", "admin", None),
        key("K3", "viewer", None),
        key("K4", "admin", Some(T0 + 1)),
    ];
    for k in &keys {
        s.insert_api_key(k).await.unwrap();
    }
    assert_eq!(s.api_keys().await.unwrap(), keys.to_vec());
    let dup = ApiKeyRow {
        id: "K9".into(),
        ..keys[0].clone()
    };
    assert!(
        matches!(s.insert_api_key(&dup).await, Err(StoreError::Db(_))),
        "a hash is unique"
    );
    let (page, more) = s.api_keys_page(None, 3).await.unwrap();
    assert_eq!((page, more), (keys[..3].to_vec(), true));
    let (page, more) = s.api_keys_page(Some("K3"), 3).await.unwrap();
    assert_eq!((page, more), (keys[3..].to_vec(), false));

    assert!(s.revoke_api_key("K3").await.unwrap());
    assert!(!s.revoke_api_key("K3").await.unwrap(), "already revoked");
    let ids: Vec<String> = s
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["K1", "K2", "K4"]);
    let all = s.api_keys_all().await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[2].revoked_at.is_some() && all[0].revoked_at.is_none());

    // Two admins revoke each other at once: one wins, the other is refused as the last admin.
    let (a, b) = (s.clone(), s.clone());
    let (ra, rb) = tokio::join!(
        a.revoke_api_key_keeping_an_admin("K1"),
        b.revoke_api_key_keeping_an_admin("K2")
    );
    let mut got = [ra.unwrap(), rb.unwrap()];
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(got, [Revoke::Done, Revoke::LastAdmin]);
    let left: Vec<String> = s
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(
        left.iter().filter(|id| *id == "K1" || *id == "K2").count(),
        1
    );
    assert_eq!(
        s.revoke_api_key_keeping_an_admin("nope").await.unwrap(),
        Revoke::NotFound
    );
    assert_eq!(
        s.revoke_api_key_keeping_an_admin("K4").await.unwrap(),
        Revoke::Done
    );
}
