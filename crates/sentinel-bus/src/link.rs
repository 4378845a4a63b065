//! One connection to Redis, made again after it is lost, with capped exponential backoff between
//! attempts; and the line between "Redis is away" (wait and retry) and "Redis said no" (give up).
//!
//! Every part of the bus that talks to Redis (the publisher, each subscription, the deduper) owns a
//! link of its own, so that a blocking read never holds up a publish. A link never retries a command
//! itself: it reports [`Failure::Away`] and lets its owner decide (buffer, wait, or report).

use crate::config::Backoff;
use crate::stats::{add, BusStats};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, RedisError};
use sentinel_core::BusError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a command did not go through.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Redis is unreachable, restarting or too slow: the connection was dropped, try again later.
    Away(String),
    /// Redis answered with an error that retrying will not mend.
    Refused(RedisError),
}

impl Failure {
    /// The same, as the seam's error.
    pub(crate) fn into_bus_error(self) -> BusError {
        match self {
            Failure::Away(m) => BusError::Unavailable(m),
            Failure::Refused(e) => BusError::Refused(describe(&e)),
        }
    }
}

/// Whether an error means the connection is unusable or Redis is not serving yet. `READONLY` is one:
/// the address now leads to a replica (a failover moved the primary), and connecting again later
/// reaches the new primary once the name or proxy points there.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::MasterDown
                | ErrorKind::ReadOnly
        )
}

/// An error in one line, without the URL (it may hold a password).
pub(crate) fn describe(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => e.to_string(),
    }
}

/// A connection to Redis that is made on first use and again after it is lost.
pub(crate) struct Link {
    client: Client,
    settings: AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
    backoff: Backoff,
    /// No connection attempt before this.
    not_before: Option<Instant>,
    /// Set once a connection was lost or refused: the next one made counts as a reconnect.
    broken: bool,
    stats: Arc<BusStats>,
}

impl Link {
    /// A link whose commands may take `response` before Redis counts as away.
    pub(crate) fn new(
        client: Client,
        connect: Duration,
        response: Duration,
        backoff: Backoff,
        stats: Arc<BusStats>,
    ) -> Self {
        Link {
            client,
            settings: AsyncConnectionConfig::new()
                .set_connection_timeout(connect)
                .set_response_timeout(response),
            conn: None,
            backoff,
            not_before: None,
            broken: false,
            stats,
        }
    }

    /// When the next connection attempt may be made; `None` when connected or allowed now.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        match (&self.conn, self.not_before) {
            (None, Some(t)) if t > Instant::now() => Some(t),
            _ => None,
        }
    }

    /// Waits until a connection attempt is allowed again.
    pub(crate) async fn wait(&self) {
        if let Some(t) = self.retry_at() {
            tokio::time::sleep_until(t).await;
        }
    }

    /// The connection, made now if there is none and the backoff allows it.
    async fn conn(&mut self) -> Result<MultiplexedConnection, Failure> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        if let Some(t) = self.retry_at() {
            let left = t.saturating_duration_since(Instant::now());
            return Err(Failure::Away(format!(
                "Redis is away; next attempt in {} ms",
                left.as_millis()
            )));
        }
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.settings)
            .await
        {
            Ok(c) => {
                if self.broken {
                    add(&self.stats.reconnects, 1);
                    tracing::info!("bus: connected to Redis again");
                }
                self.broken = false;
                self.backoff.reset();
                self.not_before = None;
                self.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let msg = format!("cannot connect to Redis: {}", describe(&e));
                self.lost(&msg);
                Err(Failure::Away(msg))
            }
        }
    }

    /// Drops the connection; the next attempt waits for the backoff.
    fn lost(&mut self, why: &str) {
        if self.conn.take().is_some() || !self.broken {
            tracing::warn!("bus: Redis link lost: {why}");
        }
        self.broken = true;
        self.not_before = Some(Instant::now() + self.backoff.next_wait());
    }

    /// Runs one command.
    pub(crate) async fn run<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, Failure> {
        let mut conn = self.conn().await?;
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if is_transient(&e) => {
                let msg = describe(&e);
                self.lost(&msg);
                Err(Failure::Away(msg))
            }
            Err(e) => Err(Failure::Refused(e)),
        }
    }
}
