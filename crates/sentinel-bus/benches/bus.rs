//! The Redis Streams bus on a local `redis-server` (started here, persistence off): publish rate, the
//! rate at which 1, 2 and 4 consumers of one group (each its own bus, as separate processes would be)
//! drain and acknowledge a backlog, and the publish-to-receive latency of one message at a time.
//! Prints numbers; asserts nothing about speed.
//!
//! `cargo bench -p sentinel-bus --bench bus`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_bus::{RedisBus, RedisBusConfig};
use sentinel_core::{Bus, Topic};
use sentinel_testkit::redis::RedisServer;
use std::time::{Duration, Instant};

const MESSAGES: usize = 20_000;
const PAYLOAD: usize = 256;
const ROUND_TRIPS: usize = 1_000;

fn config(url: &str) -> RedisBusConfig {
    let mut c = RedisBusConfig::new(url);
    c.maxlen = 1_000_000;
    c.block = Duration::from_millis(50);
    c
}

/// Publishes `n` messages on `topic`; the rate in messages/s.
async fn publish(bus: &RedisBus, topic: &Topic, n: usize) -> f64 {
    let payload = vec![b'x'; PAYLOAD];
    let started = Instant::now();
    for _ in 0..n {
        bus.publish(topic, payload.clone()).await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// `consumers` consumers of a new group drain `n` messages, acknowledging each; messages/s.
async fn drain(url: &str, topic: &Topic, group: &str, consumers: usize, n: usize) -> f64 {
    let mut buses = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..consumers {
        let mut c = config(url);
        c.group_start = sentinel_bus::GroupStart::Oldest;
        let bus = RedisBus::new(c).unwrap();
        rxs.push(bus.subscribe(topic, group).await.unwrap());
        buses.push(bus);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            let done = std::sync::Arc::clone(&done);
            tokio::spawn(async move {
                use std::sync::atomic::Ordering;
                while done.load(Ordering::Relaxed) < n {
                    let Ok(Some(d)) =
                        tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
                    else {
                        continue;
                    };
                    let d = d.unwrap();
                    rx.ack(&d.id).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let redis = RedisServer::start();
    let url = redis.url();
    let publisher = RedisBus::new(config(&url)).unwrap();
    let topic = Topic("bench".into());
    // Make the stream before the backlog, so the groups below start at its beginning.
    drop(publisher.subscribe(&topic, "warmup").await.unwrap());
    let rate = publish(&publisher, &topic, MESSAGES).await;
    println!("publish: {rate:>9.0} messages/s ({MESSAGES} x {PAYLOAD} B, one publisher)");
    for consumers in [1, 2, 4] {
        let group = format!("drain-{consumers}");
        let rate = drain(&url, &topic, &group, consumers, MESSAGES).await;
        println!("drain:   {rate:>9.0} messages/s acknowledged by {consumers} consumer(s)");
    }

    let rt_topic = Topic("bench-rt".into());
    let consumer = RedisBus::new(config(&url)).unwrap();
    let mut rx = consumer.subscribe(&rt_topic, "rt").await.unwrap();
    let mut lat = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        publisher.publish(&rt_topic, vec![1; 64]).await.unwrap();
        let d = rx.recv().await.unwrap().unwrap();
        lat.push(started.elapsed());
        rx.ack(&d.id).await.unwrap();
    }
    lat.sort();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    println!(
        "publish -> receive: median {:?}, p99 {:?} ({ROUND_TRIPS} messages one at a time)",
        at(0.5),
        at(0.99)
    );
}
