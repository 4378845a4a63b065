//! Publishing: `XADD <stream> MAXLEN ~ <n> * p <payload>`, and the bounded local buffer that keeps
//! messages, in order, while Redis is away.
//!
//! A message goes straight to Redis when the buffer is empty and the link is up. Otherwise it joins
//! the end of the buffer (so that nothing overtakes what waits there), and a flusher task (one at a
//! time, started by the first buffered message, ended when the buffer is empty) sends the buffer in
//! order once the link is back; a publish that finds the link back sends the buffer first itself. A full buffer refuses the message with [`BusError::BufferFull`] and
//! counts it; it never drops what it already holds. This module never reads.

use crate::link::{describe, Failure, Link};
use crate::stats::{add, BusStats};
use sentinel_core::BusError;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The field of a stream entry that holds the payload.
pub(crate) const PAYLOAD_FIELD: &str = "p";

/// One message waiting for Redis: its stream key and payload.
type Waiting = (String, Vec<u8>);

struct State {
    link: Link,
    buffer: VecDeque<Waiting>,
}

/// The publishing side of one bus.
pub(crate) struct Publisher {
    state: tokio::sync::Mutex<State>,
    capacity: usize,
    maxlen: u64,
    /// Whether a flusher task runs.
    flushing: AtomicBool,
    closed: AtomicBool,
    stats: Arc<BusStats>,
}

/// Writes one entry.
async fn xadd(link: &mut Link, key: &str, payload: &[u8], maxlen: u64) -> Result<(), Failure> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key)
        .arg("MAXLEN")
        .arg("~")
        .arg(maxlen)
        .arg("*")
        .arg(PAYLOAD_FIELD)
        .arg(payload);
    link.run::<String>(&cmd).await.map(|_id| ())
}

impl Publisher {
    pub(crate) fn new(link: Link, capacity: usize, maxlen: u64, stats: Arc<BusStats>) -> Self {
        Publisher {
            state: tokio::sync::Mutex::new(State {
                link,
                buffer: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            maxlen,
            flushing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stats,
        }
    }

    /// Stops flushing; what is still buffered stays unsent (and is logged).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Tries to send what is buffered until `deadline` (Redis may come back meanwhile); the number
    /// of messages still waiting.
    pub(crate) async fn flush_until(&self, deadline: tokio::time::Instant) -> usize {
        loop {
            let retry = {
                let mut st = self.state.lock().await;
                if st.link.retry_at().is_none() {
                    self.drain(&mut st).await;
                }
                if st.buffer.is_empty() {
                    return 0;
                }
                if tokio::time::Instant::now() >= deadline {
                    return st.buffer.len();
                }
                st.link.retry_at()
            };
            let until = retry.map_or(deadline, |t| t.min(deadline));
            tokio::time::sleep_until(
                until.max(tokio::time::Instant::now() + std::time::Duration::from_millis(10)),
            )
            .await;
        }
    }

    /// Sends one message to Redis, or buffers it while Redis is away.
    pub(crate) async fn publish(
        self: &Arc<Self>,
        key: String,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(BusError::Unavailable("the bus is closed".into()));
        }
        let mut st = self.state.lock().await;
        // Redis back and messages waiting: they go first (the flusher may still be asleep).
        if !st.buffer.is_empty() && st.link.retry_at().is_none() {
            self.drain(&mut st).await;
        }
        if st.buffer.is_empty() && st.link.retry_at().is_none() {
            match xadd(&mut st.link, &key, &payload, self.maxlen).await {
                Ok(()) => {
                    add(&self.stats.published, 1);
                    return Ok(());
                }
                Err(Failure::Refused(e)) => {
                    add(&self.stats.refused, 1);
                    return Err(BusError::Refused(describe(&e)));
                }
                Err(Failure::Away(_)) => {}
            }
        }
        if st.buffer.len() >= self.capacity {
            add(&self.stats.buffer_overflow, 1);
            return Err(BusError::BufferFull {
                capacity: self.capacity,
            });
        }
        st.buffer.push_back((key, payload));
        add(&self.stats.buffered, 1);
        add(&self.stats.waiting, 1);
        drop(st);
        self.start_flusher();
        Ok(())
    }

    /// Sends buffered messages in order until the buffer is empty or Redis is away.
    async fn drain(&self, st: &mut State) {
        let State { link, buffer } = st;
        while let Some((key, payload)) = buffer.front() {
            match xadd(link, key, payload, self.maxlen).await {
                Ok(()) => add(&self.stats.published, 1),
                Err(Failure::Refused(e)) => {
                    add(&self.stats.refused, 1);
                    tracing::warn!(
                        "bus: Redis refused a buffered message for {key}: {}",
                        describe(&e)
                    );
                }
                Err(Failure::Away(_)) => return,
            }
            buffer.pop_front();
            self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn start_flusher(self: &Arc<Self>) {
        if !self.flushing.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).flush());
        }
    }

    /// Sends the buffer in order, waiting out the backoff between attempts, until it is empty.
    async fn flush(self: Arc<Self>) {
        loop {
            {
                let mut st = self.state.lock().await;
                if self.closed.load(Ordering::Relaxed) {
                    if !st.buffer.is_empty() {
                        tracing::warn!(
                            "bus: closed with {} messages still waiting for Redis",
                            st.buffer.len()
                        );
                    }
                    self.flushing.store(false, Ordering::Release);
                    return;
                }
                self.drain(&mut st).await;
                // Decided under the lock: a publisher that finds the buffer empty after this sends
                // directly, and one that finds it not empty knows a flusher will run.
                if st.buffer.is_empty() {
                    self.flushing.store(false, Ordering::Release);
                    return;
                }
            }
            // Redis is away: wait for the backoff (outside the lock: publishers keep buffering).
            let wait = { self.state.lock().await.link.retry_at() };
            match wait {
                Some(t) => tokio::time::sleep_until(t).await,
                None => tokio::task::yield_now().await,
            }
        }
    }
}
