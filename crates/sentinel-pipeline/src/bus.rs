//! The in-process [`Bus`]: bounded queues per topic and consumer group, in the daemon's memory.
//!
//! It behaves as the Redis Streams bus will, for what a stage can see: every consumer group on a topic
//! gets every message published after the group joined; the consumers of one group share them (each
//! message goes to exactly one); publishing waits while any group's queue is full (back-pressure, as
//! the stage queues do today). Publishing to a topic no group has joined is an error (the message
//! would be kept nowhere), and so is publishing after [`MemoryBus::close`]; after closing, consumers
//! still receive what was queued, then `None`.
//!
//! Each message gets an id (a counter, the same in every group) and is delivered once, with
//! `attempts` 1: [`BusRx::ack`] is a no-op here, because a message taken from an in-process queue cannot
//! outlive the consumer that took it anyway (when the process dies, so does the queue).
//!
//! It never persists, and never crosses a process: a message lives until a consumer takes it.

use async_trait::async_trait;
use sentinel_core::{Bus, BusError, BusRx, Delivery, Topic};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A queued message: its id and payload.
type Queued = (String, Vec<u8>);
type Shared = Arc<tokio::sync::Mutex<mpsc::Receiver<Queued>>>;

/// One consumer group's queue on one topic.
struct Group {
    name: String,
    tx: mpsc::Sender<Queued>,
    rx: Shared,
}

/// The in-process bus.
pub struct MemoryBus {
    capacity: usize,
    /// The id of the next message.
    next_id: AtomicU64,
    /// `None` once closed.
    topics: Mutex<Option<HashMap<Topic, Vec<Group>>>>,
}

impl MemoryBus {
    /// A bus whose group queues hold at most `capacity` messages each (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryBus {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
            topics: Mutex::new(Some(HashMap::new())),
        }
    }

    /// Refuses further publishing and subscribing; consumers drain what is queued, then get `None`.
    pub fn close(&self) {
        if let Ok(mut t) = self.topics.lock() {
            *t = None;
        }
    }

    fn senders(&self, topic: &Topic) -> Result<Vec<mpsc::Sender<Queued>>, BusError> {
        let guard = self
            .topics
            .lock()
            .map_err(|_| BusError::Unavailable("the bus lock is poisoned".into()))?;
        let topics = guard
            .as_ref()
            .ok_or_else(|| BusError::Unavailable("the bus is closed".into()))?;
        match topics.get(topic) {
            Some(groups) if !groups.is_empty() => Ok(groups.iter().map(|g| g.tx.clone()).collect()),
            _ => Err(BusError::Unavailable(format!(
                "no consumer group on topic `{}`: the message would be kept nowhere",
                topic.0
            ))),
        }
    }
}

/// A consumer's receiving end; consumers of one group share the queue.
struct MemoryRx {
    rx: Shared,
}

#[async_trait]
impl BusRx for MemoryRx {
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>> {
        let (id, payload) = self.rx.lock().await.recv().await?;
        Some(Ok(Delivery {
            id,
            payload,
            attempts: 1,
        }))
    }

    /// A no-op: a message taken from the queue is gone from it already (see the module doc).
    async fn ack(&mut self, _id: &str) -> Result<(), BusError> {
        Ok(())
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: &Topic, m: Vec<u8>) -> Result<(), BusError> {
        let senders = self.senders(topic)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let last = senders.len() - 1;
        let mut m = Some(m);
        for (i, tx) in senders.iter().enumerate() {
            let payload = if i == last {
                m.take().unwrap_or_default()
            } else {
                m.clone().unwrap_or_default()
            };
            let msg = (id.clone(), payload);
            // Waits while this group's queue is full.
            tx.send(msg)
                .await
                .map_err(|_| BusError::Unavailable("the bus is closed".into()))?;
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic, group: &str) -> Result<Box<dyn BusRx>, BusError> {
        let mut guard = self
            .topics
            .lock()
            .map_err(|_| BusError::Unavailable("the bus lock is poisoned".into()))?;
        let topics = guard
            .as_mut()
            .ok_or_else(|| BusError::Unavailable("the bus is closed".into()))?;
        let groups = topics.entry(topic.clone()).or_default();
        let rx = match groups.iter().find(|g| g.name == group) {
            Some(g) => Arc::clone(&g.rx),
            None => {
                let (tx, rx) = mpsc::channel(self.capacity);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                groups.push(Group {
                    name: group.to_owned(),
                    tx,
                    rx: Arc::clone(&rx),
                });
                rx
            }
        };
        Ok(Box::new(MemoryRx { rx }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeSet;

    fn topic(s: &str) -> Topic {
        Topic(s.into())
    }

    async fn take(rx: &mut Box<dyn BusRx>) -> Vec<u8> {
        let d = rx.recv().await.unwrap().unwrap();
        assert_eq!(d.attempts, 1);
        rx.ack(&d.id).await.unwrap();
        d.payload
    }

    /// Every group gets every message; the consumers of one group share them, each message once.
    #[tokio::test]
    async fn groups_each_get_all_and_consumers_of_a_group_share() {
        let bus = MemoryBus::new(64);
        let t = topic("alerts");
        let mut audit = bus.subscribe(&t, "audit").await.unwrap();
        let mut a = bus.subscribe(&t, "investigate").await.unwrap();
        let mut b = bus.subscribe(&t, "investigate").await.unwrap();
        for i in 0..10u8 {
            bus.publish(&t, vec![i]).await.unwrap();
        }
        let mut all = Vec::new();
        for _ in 0..10 {
            all.push(take(&mut audit).await[0]);
        }
        assert_eq!(all, (0..10).collect::<Vec<u8>>(), "in order, all of them");
        let mut shared = BTreeSet::new();
        for _ in 0..5 {
            assert!(shared.insert(take(&mut a).await[0]));
            assert!(shared.insert(take(&mut b).await[0]));
        }
        assert_eq!(shared, (0..10).collect::<BTreeSet<u8>>());
        // Nothing is left for either consumer of the group: the bus closed, they get `None`.
        bus.close();
        assert!(a.recv().await.is_none());
        assert!(b.recv().await.is_none());
    }

    /// A message has one id in every group, and ids differ between messages.
    #[tokio::test]
    async fn a_message_has_the_same_id_in_every_group() {
        let bus = MemoryBus::new(8);
        let t = topic("plans");
        let mut a = bus.subscribe(&t, "act").await.unwrap();
        let mut b = bus.subscribe(&t, "audit").await.unwrap();
        bus.publish(&t, vec![1]).await.unwrap();
        bus.publish(&t, vec![2]).await.unwrap();
        let (a1, a2) = (
            a.recv().await.unwrap().unwrap(),
            a.recv().await.unwrap().unwrap(),
        );
        let (b1, b2) = (
            b.recv().await.unwrap().unwrap(),
            b.recv().await.unwrap().unwrap(),
        );
        assert_eq!(
            (a1.id.as_str(), a2.id.as_str()),
            (b1.id.as_str(), b2.id.as_str())
        );
        assert_ne!(a1.id, a2.id);
        assert_eq!((a1.payload, b2.payload), (vec![1], vec![2]));
    }

    /// A full group queue makes publishing wait until a consumer takes a message.
    #[tokio::test]
    async fn publishing_waits_while_a_group_is_full() {
        let bus = Arc::new(MemoryBus::new(2));
        let t = topic("plans");
        let mut rx = bus.subscribe(&t, "act").await.unwrap();
        bus.publish(&t, vec![1]).await.unwrap();
        bus.publish(&t, vec![2]).await.unwrap();
        let (b, t2) = (Arc::clone(&bus), t.clone());
        let mut third = tokio::spawn(async move { b.publish(&t2, vec![3]).await });
        // Let the publisher run until it has to wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            futures_poll_once(&mut third).await.is_none(),
            "the third publish went through a full queue"
        );
        assert_eq!(take(&mut rx).await, vec![1]);
        third.await.unwrap().unwrap();
        assert_eq!(take(&mut rx).await, vec![2]);
        assert_eq!(take(&mut rx).await, vec![3]);
    }

    /// Polls a task once: its output if it has finished, `None` if it is still waiting.
    async fn futures_poll_once<T>(h: &mut tokio::task::JoinHandle<T>) -> Option<T> {
        use std::future::Future;
        use std::task::Poll;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *h).poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v.unwrap())),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// A message no group would receive, or one published after closing, is an error saying so.
    #[tokio::test]
    async fn publishing_nowhere_or_after_close_is_an_error() {
        let bus = MemoryBus::new(4);
        let e = bus.publish(&topic("nobody"), vec![1]).await.unwrap_err();
        assert!(e.to_string().contains("no consumer group"), "{e}");
        let t = topic("events");
        let mut rx = bus.subscribe(&t, "detect").await.unwrap();
        bus.publish(&t, b"kept".to_vec()).await.unwrap();
        bus.close();
        let e = bus.publish(&t, vec![2]).await.unwrap_err();
        assert!(e.to_string().contains("closed"), "{e}");
        assert!(bus.subscribe(&t, "late").await.is_err());
        // What was queued before closing is still delivered.
        assert_eq!(take(&mut rx).await, b"kept".to_vec());
        assert!(rx.recv().await.is_none());
    }
}
