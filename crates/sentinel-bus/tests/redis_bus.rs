//! The Redis Streams bus against a real `redis-server` (started by the testkit): groups and sharing,
//! reclaim after a consumer dies, bounded streams, Redis restarting under publishers and consumers,
//! and the bounded publish buffer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sentinel_bus::{Claim, Deduper, RedisBus, RedisBusConfig};
use sentinel_core::{Bus, BusError, BusRx, Delivery, Topic};
use sentinel_testkit::redis::RedisServer;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, timeout, Instant};

/// Short waits everywhere, so that reclaim and reconnect happen within a test's time.
fn config(url: &str) -> RedisBusConfig {
    let mut c = RedisBusConfig::new(url);
    c.claim_idle = Duration::from_millis(300);
    c.block = Duration::from_millis(100);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.timeout = Duration::from_secs(2);
    c
}

fn bus(c: RedisBusConfig) -> RedisBus {
    RedisBus::new(c).unwrap()
}

fn topic(s: &str) -> Topic {
    Topic(s.into())
}

/// The next delivery, failing the test after 10 s without one.
async fn next(rx: &mut Box<dyn BusRx>) -> Delivery {
    timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no message within 10 s")
        .expect("the bus closed")
        .expect("the bus failed")
}

fn num(d: &Delivery) -> u32 {
    std::str::from_utf8(&d.payload).unwrap().parse().unwrap()
}

/// A plain connection, to look at what Redis holds.
async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// How many entries of `group` on `key` are pending (delivered, not acknowledged).
async fn pending(url: &str, key: &str, group: &str) -> u64 {
    let mut c = redis_conn(url).await;
    let v: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(key)
        .arg(group)
        .query_async(&mut c)
        .await
        .unwrap();
    v.0
}

async fn xlen(url: &str, key: &str) -> u64 {
    let mut c = redis_conn(url).await;
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap()
}

/// The payloads the stream holds, oldest first.
async fn stream_numbers(url: &str, key: &str) -> Vec<u32> {
    let mut c = redis_conn(url).await;
    let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    r.ids
        .iter()
        .map(|e| {
            let p: Vec<u8> = e.get("p").unwrap();
            std::str::from_utf8(&p).unwrap().parse().unwrap()
        })
        .collect()
}

/// Two groups each get every message, in order; the two consumers of one group share them, each
/// message going to exactly one; acknowledged, nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_gets_every_message_and_consumers_of_a_group_share_them() {
    let redis = RedisServer::start();
    let mut c = config(&redis.url());
    c.batch = 1; // one message per read: the two consumers below take turns
    c.consumer = "node-a".into();
    let bus = bus(c);
    let t = topic("alerts");
    let mut audit = bus.subscribe(&t, "audit").await.unwrap();
    let mut a = bus.subscribe(&t, "investigate").await.unwrap();
    let mut b = bus.subscribe(&t, "investigate").await.unwrap();
    for i in 0..10u32 {
        bus.publish(&t, i.to_string().into_bytes()).await.unwrap();
    }
    let mut all = Vec::new();
    for _ in 0..10 {
        let d = next(&mut audit).await;
        assert_eq!(d.attempts, 1);
        all.push(num(&d));
        audit.ack(&d.id).await.unwrap();
    }
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "the audit group got all, in order"
    );
    let (mut got_a, mut got_b) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..5 {
        let d = next(&mut a).await;
        got_a.insert(num(&d));
        a.ack(&d.id).await.unwrap();
        let d = next(&mut b).await;
        got_b.insert(num(&d));
        b.ack(&d.id).await.unwrap();
    }
    assert_eq!(got_a.len(), 5);
    assert!(got_a.is_disjoint(&got_b), "{got_a:?} and {got_b:?} share");
    let both: BTreeSet<u32> = got_a.union(&got_b).copied().collect();
    assert_eq!(both, (0..10).collect());
    // Nothing more for anyone in the group.
    assert!(timeout(Duration::from_millis(400), a.recv()).await.is_err());
    assert_eq!(
        pending(&redis.url(), "sentinel:alerts", "investigate").await,
        0
    );
    // Two consumers in the group, named after the configured name, each its own.
    let mut conn = redis_conn(&redis.url()).await;
    let info: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("sentinel:alerts")
        .arg("investigate")
        .query_async(&mut conn)
        .await
        .unwrap();
    let names: BTreeSet<String> = info.consumers.into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("node-a-")), "{names:?}");
    assert_eq!(pending(&redis.url(), "sentinel:alerts", "audit").await, 0);
    let s = bus.stats().snapshot();
    assert_eq!((s.published, s.delivered, s.acked), (10, 20, 20));
    assert_eq!((s.reclaimed, s.buffered, s.reconnects), (0, 0, 0));
}

/// A consumer that dies with messages it read but never acknowledged: after `claim_idle` another
/// consumer of the group takes them over (with their delivery count raised) and handles them; with
/// the deduper, what the dead one had already done is not done again, and what it had not done is
/// done. Every message is handled exactly once, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_messages_are_reclaimed_and_handled_exactly_once() {
    let redis = RedisServer::start();
    let t = topic("plans");
    let group = "respond";
    let mut ca = config(&redis.url());
    ca.batch = 1;
    let dying = bus(ca);
    let live = bus(config(&redis.url()));
    let mut a = dying.subscribe(&t, group).await.unwrap();
    let mut b = live.subscribe(&t, group).await.unwrap();
    for i in 0..20u32 {
        live.publish(&t, i.to_string().into_bytes()).await.unwrap();
    }
    let lease = Duration::from_millis(700);
    let dedupe_a = dying.deduper(lease, Duration::from_secs(60));
    let actions: Arc<Mutex<BTreeMap<u32, u32>>> = Arc::default();
    let act = |n: u32| *actions.lock().unwrap().entry(n).or_default() += 1;
    // The dying consumer takes five: it acts on three (and marks them done) but dies before
    // acknowledging them; it dies in the middle of acting on the other two.
    let mut taken = BTreeSet::new();
    for i in 0..5 {
        let d = next(&mut a).await;
        let n = num(&d);
        taken.insert(n);
        assert_eq!(
            dedupe_a.begin(group, &n.to_string()).await.unwrap(),
            Claim::First
        );
        if i < 3 {
            act(n);
            dedupe_a.finish(group, &n.to_string()).await.unwrap();
        }
    }
    drop(a);
    drop(dedupe_a);
    drop(dying);

    let dedupe = live.deduper(lease, Duration::from_secs(60));
    // Each message's delivery counts, in the order this consumer saw them.
    let mut attempts: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(20);
    while acked.len() < 20 {
        assert!(Instant::now() < until, "only {acked:?} handled in 20 s");
        let d = next(&mut b).await;
        let n = num(&d);
        attempts.entry(n).or_default().push(d.attempts);
        match dedupe.begin(group, &n.to_string()).await.unwrap() {
            Claim::First => {
                act(n);
                dedupe.finish(group, &n.to_string()).await.unwrap();
                b.ack(&d.id).await.unwrap();
                acked.insert(n);
            }
            Claim::Done => {
                b.ack(&d.id).await.unwrap();
                acked.insert(n);
            }
            // The dead consumer's claim has not lapsed yet: leave it, it comes back.
            Claim::Busy => {}
        }
    }
    let redelivered: BTreeSet<u32> = attempts
        .iter()
        .filter(|(_, a)| a[0] > 1)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        redelivered, taken,
        "exactly the dead consumer's messages came back"
    );
    for (n, a) in &attempts {
        // Delivered once to the dead consumer: its first delivery here is the second; each time it
        // came back (left pending while the dead one's claim ran) counts one more.
        let first = if taken.contains(n) { 2 } else { 1 };
        let expected: Vec<u32> = (first..first + a.len() as u32).collect();
        assert_eq!(a, &expected, "the delivery counts of message {n}");
    }
    let actions = actions.lock().unwrap().clone();
    assert_eq!(
        actions.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert!(
        actions.values().all(|&c| c == 1),
        "something was done twice: {actions:?}"
    );
    assert_eq!(pending(&redis.url(), "sentinel:plans", group).await, 0);
    assert!(live.stats().snapshot().reclaimed >= 5);
}

/// The deduper: one claim wins; a finished key is done for every later caller; a claim whose lease
/// ran out (its handler died) may be taken again; an abandoned claim too; groups do not share marks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deduper_lets_one_handler_act_and_a_lapsed_claim_act_again() {
    let redis = RedisServer::start();
    let bus = bus(config(&redis.url()));
    let d: Deduper = bus.deduper(Duration::from_millis(300), Duration::from_secs(60));
    assert_eq!(d.mark_key("g", "k"), "sentinel:done:g:k");
    // Another process's deduper.
    let other = RedisBus::new(config(&redis.url())).unwrap();
    let d2 = other.deduper(Duration::from_millis(300), Duration::from_secs(60));
    assert_eq!(d.begin("g", "k").await.unwrap(), Claim::First);
    assert_eq!(d.begin("g", "k").await.unwrap(), Claim::Busy);
    assert_eq!(d2.begin("g", "k").await.unwrap(), Claim::Busy);
    assert_eq!(d2.begin("other", "k").await.unwrap(), Claim::First);
    d.finish("g", "k").await.unwrap();
    assert_eq!(d.begin("g", "k").await.unwrap(), Claim::Done);
    assert_eq!(d2.begin("g", "k").await.unwrap(), Claim::Done);
    assert_eq!(d.begin("g", "lapsed").await.unwrap(), Claim::First);
    assert_eq!(d2.begin("g", "lapsed").await.unwrap(), Claim::Busy);
    sleep(Duration::from_millis(450)).await;
    assert_eq!(d2.begin("g", "lapsed").await.unwrap(), Claim::First);
    assert_eq!(d.begin("g", "lapsed").await.unwrap(), Claim::Busy);
    d2.abandon("g", "lapsed").await.unwrap();
    // A claim whose handler vanished lapses for its own deduper too.
    assert_eq!(d.begin("g", "lapsed").await.unwrap(), Claim::First);
    sleep(Duration::from_millis(450)).await;
    assert_eq!(d.begin("g", "lapsed").await.unwrap(), Claim::First);
    d.abandon("g", "lapsed").await.unwrap();
    assert_eq!(d.begin("g", "lapsed").await.unwrap(), Claim::First);
    // A finished mark outlives the lease.
    sleep(Duration::from_millis(450)).await;
    assert_eq!(d.begin("g", "k").await.unwrap(), Claim::Done);
}

/// A key handled while Redis went away (its `finish` refused) is not handled again when its message
/// comes back after the lease: the same deduper answers Done and writes the mark then, for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_redis_did_not_take_is_done_for_the_redelivery() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_durable(dir.path());
    let bus = bus(config(&redis.url()));
    let d: Deduper = bus.deduper(Duration::from_millis(300), Duration::from_secs(60));
    assert_eq!(d.begin("g", "k").await.unwrap(), Claim::First);
    redis.kill();
    assert!(d.finish("g", "k").await.is_err(), "Redis is away");
    // Still away: not answered either way.
    assert!(d.begin("g", "k").await.is_err());
    tokio::task::block_in_place(|| redis.restart());
    // Past the claim's lease: the handler here finished, so the copy is only acknowledged.
    sleep(Duration::from_millis(450)).await;
    let claim = loop {
        if let Ok(c) = d.begin("g", "k").await {
            break c;
        }
        sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(claim, Claim::Done);
    let other = RedisBus::new(config(&redis.url())).unwrap();
    let d2 = other.deduper(Duration::from_millis(300), Duration::from_secs(60));
    assert_eq!(
        d2.begin("g", "k").await.unwrap(),
        Claim::Done,
        "the mark is in Redis"
    );
}

/// Publishing trims the stream to about `maxlen` entries: at least that many, at most one node more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxlen_bounds_the_stream() {
    let redis = RedisServer::start();
    let mut c = config(&redis.url());
    c.maxlen = 100;
    let bus = bus(c);
    let t = topic("events");
    for i in 0..1000u32 {
        bus.publish(&t, i.to_string().into_bytes()).await.unwrap();
    }
    let len = xlen(&redis.url(), "sentinel:events").await;
    assert!((100..200).contains(&len), "the stream holds {len} entries");
    let kept = stream_numbers(&redis.url(), "sentinel:events").await;
    assert_eq!(kept.last(), Some(&999), "the newest are kept");
    assert_eq!(bus.stats().snapshot().published, 1000);
}

/// Redis is killed and started again on the same port (with its append-only file) while a publisher
/// publishes and a consumer handles: the publisher buffers while it is away, reconnects and flushes in
/// order; the consumer reconnects and resumes. Every message published is handled exactly once, the
/// stream holds them in publishing order, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_durable(dir.path());
    let url = redis.url();
    let t = topic("investigations");
    let group = "decide";
    let mut pc = config(&url);
    pc.buffer = 1000;
    let publisher = bus(pc);
    let consumer = Arc::new(bus(config(&url)));
    let mut rx = consumer.subscribe(&t, group).await.unwrap();
    let dedupe = consumer.deduper(Duration::from_secs(30), Duration::from_secs(600));
    let actions: Arc<Mutex<BTreeMap<u32, u32>>> = Arc::default();
    let handler = {
        let actions = Arc::clone(&actions);
        tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let d = d.unwrap();
                let key = num(&d).to_string();
                // Redis away: leave the message pending; it is delivered again later.
                let Ok(claim) = dedupe.begin(group, &key).await else {
                    continue;
                };
                match claim {
                    Claim::First => {
                        *actions.lock().unwrap().entry(num(&d)).or_default() += 1;
                        // Done is recorded before anything else, however long Redis is away.
                        while dedupe.finish(group, &key).await.is_err() {
                            sleep(Duration::from_millis(20)).await;
                        }
                        let _ = rx.ack(&d.id).await;
                    }
                    Claim::Done => {
                        let _ = rx.ack(&d.id).await;
                    }
                    Claim::Busy => {}
                }
            }
        })
    };
    let publish = |i: u32| {
        let (p, t) = (&publisher, &t);
        async move { p.publish(t, i.to_string().into_bytes()).await.unwrap() }
    };
    for i in 0..100 {
        publish(i).await;
    }
    redis.kill();
    for i in 100..250 {
        publish(i).await;
    }
    let s = publisher.stats().snapshot();
    assert_eq!(
        s.buffered, 150,
        "everything published while Redis was away was buffered"
    );
    assert_eq!(s.waiting, 150);
    tokio::task::block_in_place(|| redis.restart());
    for i in 250..400 {
        publish(i).await;
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let done = actions.lock().unwrap().len();
        let left = pending(&url, "sentinel:investigations", group).await;
        if done == 400 && left == 0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "after 30 s: {done} handled, {left} pending"
        );
        sleep(Duration::from_millis(50)).await;
    }
    let actions = actions.lock().unwrap().clone();
    assert_eq!(
        actions.keys().copied().collect::<Vec<_>>(),
        (0..400).collect::<Vec<_>>()
    );
    assert!(
        actions.values().all(|&c| c == 1),
        "something was done twice: {actions:?}"
    );
    let in_stream = stream_numbers(&url, "sentinel:investigations").await;
    assert_eq!(
        in_stream,
        (0..400).collect::<Vec<_>>(),
        "published in order, once each"
    );
    let p = publisher.stats().snapshot();
    assert_eq!((p.published, p.waiting, p.buffer_overflow), (400, 0, 0));
    assert!(p.reconnects >= 1, "{p:?}");
    assert!(consumer.stats().snapshot().reconnects >= 1);
    consumer.close();
    timeout(Duration::from_secs(5), handler)
        .await
        .unwrap()
        .unwrap();
}

/// While Redis is away the buffer takes `buffer` messages; the next are refused with `BufferFull`
/// and counted, and what was buffered is kept. When Redis comes back (empty: it kept nothing) the
/// buffer is flushed in order, the consumer's group is made again, and the consumer gets exactly the
/// buffered messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_refuses_and_counts_and_the_rest_is_flushed_in_order() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let mut c = config(&url);
    c.buffer = 5;
    let bus = bus(c);
    let t = topic("decisions");
    let mut rx = bus.subscribe(&t, "respond").await.unwrap();
    redis.kill();
    for i in 0..5u32 {
        bus.publish(&t, i.to_string().into_bytes()).await.unwrap();
    }
    for i in 5..7u32 {
        match bus.publish(&t, i.to_string().into_bytes()).await {
            Err(BusError::BufferFull { capacity: 5 }) => {}
            other => panic!("message {i} while the buffer is full: {other:?}"),
        }
    }
    let s = bus.stats().snapshot();
    assert_eq!(
        (s.buffered, s.waiting, s.buffer_overflow, s.published),
        (5, 5, 2, 0)
    );
    tokio::task::block_in_place(|| redis.restart());
    // Publishing again as soon as there is room: the new message never overtakes the buffered ones.
    let until = Instant::now() + Duration::from_secs(10);
    let mut refused = 0;
    loop {
        match bus.publish(&t, b"7".to_vec()).await {
            Ok(()) => break,
            Err(BusError::BufferFull { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < until, "the buffer was not flushed in 10 s");
        sleep(Duration::from_millis(1)).await;
    }
    let mut got = Vec::new();
    for _ in 0..6 {
        let d = next(&mut rx).await;
        got.push(num(&d));
        rx.ack(&d.id).await.unwrap();
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4, 7]);
    assert!(
        timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "more than published"
    );
    assert_eq!(
        stream_numbers(&url, "sentinel:decisions").await,
        vec![0, 1, 2, 3, 4, 7]
    );
    let s = bus.stats().snapshot();
    assert_eq!((s.published, s.waiting), (6, 0));
    assert_eq!(s.buffer_overflow, 2 + refused);
    assert!(s.reconnects >= 1);
    // Closing ends the subscription and refuses publishing.
    bus.close();
    assert!(rx.recv().await.is_none());
    assert!(matches!(
        bus.publish(&t, b"late".to_vec()).await,
        Err(BusError::Unavailable(_))
    ));
}

/// Pending entries trimmed from the stream before anyone acknowledged them are lost: the reclaim that
/// comes upon them (Redis 7 lists their ids apart) counts them, as Redis 6.2's empty entries are
/// counted, so that the loss shows in the counters and not only in a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_entries_trimmed_before_their_ack_are_counted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let t = topic("plans");
    let mut c = config(&url);
    c.batch = 500;
    let dying = bus(c.clone());
    let mut dead = dying.subscribe(&t, "g").await.unwrap();
    for i in 0..150u32 {
        dying.publish(&t, i.to_string().into_bytes()).await.unwrap();
    }
    for _ in 0..150 {
        next(&mut dead).await; // read, never acknowledged: pending
    }
    drop(dead);
    // Another publisher trims hard: the nodes holding the 150 pending entries go.
    let mut tc = config(&url);
    tc.maxlen = 1;
    let trimmer = bus(tc);
    for i in 150..300u32 {
        trimmer
            .publish(&t, i.to_string().into_bytes())
            .await
            .unwrap();
    }
    assert!(xlen(&url, "sentinel:plans").await < 150);
    let live = bus(c);
    let mut rx = live.subscribe(&t, "g").await.unwrap();
    sleep(Duration::from_millis(400)).await; // past claim_idle
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && live.stats().snapshot().refused < 150 {
        if let Ok(Some(Ok(d))) = timeout(Duration::from_millis(200), rx.recv()).await {
            assert!(num(&d) >= 150, "a trimmed entry was delivered: {}", num(&d));
            rx.ack(&d.id).await.unwrap();
        }
    }
    assert_eq!(
        live.stats().snapshot().refused,
        150,
        "every pending entry trimmed before its ack is counted"
    );
}

/// The address the bus uses answers `READONLY` (a failover made it a replica): Redis is away for the
/// bus, as while it restarts, not refusing: a publish is buffered, never dropped, and sent once the
/// node is a primary again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_turned_read_only_replica_is_waited_out_not_refused() {
    let primary = RedisServer::start();
    let node = RedisServer::start();
    let url = node.url();
    let bus = bus(config(&url));
    let t = topic("alerts");
    let mut c = redis_conn(&url).await;
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async(&mut c)
        .await
        .unwrap();
    bus.publish(&t, b"1".to_vec())
        .await
        .expect("buffered while the node is read-only, not refused");
    let s = bus.stats().snapshot();
    assert_eq!((s.refused, s.buffered), (0, 1), "{s:?}");
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut c)
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while bus.stats().snapshot().published < 1 && Instant::now() < until {
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream_numbers(&url, "sentinel:alerts").await, vec![1]);
}

/// A graceful stop gives the local buffer time to reach Redis: what was buffered while Redis was
/// away goes out once it is back; what still cannot go out when the time is up is counted back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sends_what_waits_when_redis_comes_back_and_counts_what_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_durable(dir.path());
    let url = redis.url();
    let b = bus(config(&url));
    b.publish(&topic("flushed"), b"0".to_vec()).await.unwrap();
    redis.kill();
    for i in 1..=3u8 {
        b.publish(&topic("flushed"), vec![b'0' + i]).await.unwrap();
    }
    assert_eq!(b.stats().snapshot().waiting, 3);
    // Still away: nothing goes out within the wait, and all three are counted back.
    assert_eq!(b.flush(Duration::from_millis(300)).await, 3);
    // Back within the wait: all three go out.
    let restarting = tokio::spawn(async move {
        sleep(Duration::from_millis(300)).await;
        tokio::task::block_in_place(|| redis.restart());
        redis
    });
    assert_eq!(b.flush(Duration::from_secs(10)).await, 0);
    let _redis = restarting.await.unwrap();
    assert_eq!(b.stats().snapshot().waiting, 0);
    assert_eq!(xlen(&url, "sentinel:flushed").await, 4);
    b.close();
}

/// Several marks in one round trip, several acknowledgements in one: every key is done for the
/// group's later copies, every message leaves the pending list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_and_acknowledgements_go_in_batches() {
    let redis = RedisServer::start();
    let url = redis.url();
    let b = bus(config(&url));
    let d: Deduper = b.deduper(Duration::from_secs(10), Duration::from_secs(60));
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    for k in &keys {
        assert_eq!(d.begin("g", k).await.unwrap(), Claim::First);
    }
    d.finish_many("g", &keys).await.unwrap();
    for k in &keys {
        assert_eq!(d.begin("g", k).await.unwrap(), Claim::Done, "{k}");
    }
    d.finish_many("g", &[]).await.unwrap();

    let mut rx = b.subscribe(&topic("batched"), "g").await.unwrap();
    for i in 0..5u8 {
        b.publish(&topic("batched"), vec![b'0' + i]).await.unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(next(&mut rx).await.id);
    }
    assert_eq!(pending(&url, "sentinel:batched", "g").await, 5);
    rx.ack_many(&ids[..3]).await.unwrap();
    assert_eq!(pending(&url, "sentinel:batched", "g").await, 2);
    rx.ack_many(&ids).await.unwrap();
    assert_eq!(pending(&url, "sentinel:batched", "g").await, 0);
    b.close();
}

/// A stream deleted (`DEL`, `FLUSHALL`) or a group destroyed (`XGROUP DESTROY`) while a consumer is
/// blocked reading it: Redis 7 answers the blocked read with `UNBLOCKED`. That is the group gone,
/// not a permanent refusal: the group is made again and what is published next is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_under_a_blocked_read_is_made_again_and_read_on() {
    let redis = RedisServer::start();
    let mut c = config(&redis.url());
    // A long read, so that the deletion below lands while it blocks.
    c.block = Duration::from_secs(5);
    c.claim_idle = Duration::from_secs(60);
    let bus = bus(c);
    let t = topic("plans");
    let mut rx = bus.subscribe(&t, "responder:a").await.unwrap();
    bus.publish(&t, b"1".to_vec()).await.unwrap();
    let d = next(&mut rx).await;
    rx.ack(&d.id).await.unwrap();
    let mut conn = redis_conn(&redis.url()).await;
    for how in ["DEL", "DESTROY", "FLUSHALL"] {
        let reader = tokio::spawn(async move {
            let got = timeout(Duration::from_secs(10), rx.recv()).await;
            (rx, got)
        });
        // Let the read block first.
        sleep(Duration::from_millis(500)).await;
        let mut cmd = match how {
            "DEL" => redis::cmd("DEL"),
            "DESTROY" => redis::cmd("XGROUP"),
            _ => redis::cmd("FLUSHALL"),
        };
        match how {
            "DEL" => cmd.arg("sentinel:plans"),
            "DESTROY" => cmd.arg("DESTROY").arg("sentinel:plans").arg("responder:a"),
            _ => &mut cmd,
        };
        let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
        sleep(Duration::from_millis(300)).await;
        bus.publish(&t, b"2".to_vec()).await.unwrap();
        let (back, got) = reader.await.unwrap();
        rx = back;
        let d = got
            .unwrap_or_else(|_| panic!("{how}: nothing delivered within 10 s"))
            .expect("the bus closed")
            .unwrap_or_else(|e| panic!("{how}: the read failed: {e}"));
        assert_eq!(num(&d), 2, "{how}");
        rx.ack(&d.id).await.unwrap();
        // Start the next round from an empty stream.
        let _: redis::Value = redis::cmd("XTRIM")
            .arg("sentinel:plans")
            .arg("MAXLEN")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// A node that starts before its Redis: subscribing does not fail (the group is made on the first
/// read once Redis answers), so a responder or investigator starts and waits, as a sensor does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_while_redis_is_away_waits_for_it() {
    let mut redis = RedisServer::start();
    let mut c = config(&redis.url());
    c.group_start = sentinel_bus::GroupStart::Oldest;
    let bus = bus(c);
    let t = topic("plans");
    redis.kill();
    let mut rx = bus
        .subscribe(&t, "responder:a")
        .await
        .expect("subscribing waits for Redis rather than failing");
    // Buffered while Redis is away.
    bus.publish(&t, b"7".to_vec()).await.unwrap();
    redis.restart();
    let d = next(&mut rx).await;
    assert_eq!(num(&d), 7);
    rx.ack(&d.id).await.unwrap();
    assert_eq!(
        pending(&redis.url(), "sentinel:plans", "responder:a").await,
        0
    );
}
