//! The store writer's metrics, as the store names them: a [`prometheus_client`] collector over the
//! writer's own counters, read at each scrape (nothing is copied on a timer).
//!
//! The names are part of Sentinel's documented `/metrics`: `sentinel_store_batch_records` (histogram of
//! records per committed transaction), `sentinel_store_batch_records_max`,
//! `sentinel_store_failed_batches_total` and `sentinel_store_records_dropped_total`.

use crate::writer::{WriterMonitor, BATCH_BUCKETS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

impl WriterMonitor {
    /// Registers the writer's metrics with `registry`; they are read from the writer at each scrape.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for WriterMonitor {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sizes = self.batch_sizes();
        let stats = self.stats();
        // The monitor keeps cumulative counts; the encoder wants each bucket's own.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = BATCH_BUCKETS
            .iter()
            .zip(&sizes.buckets)
            .map(|(bound, (_, cumulative))| {
                let own = cumulative.saturating_sub(below);
                below = *cumulative;
                (*bound as f64, own)
            })
            .collect();
        encoder
            .encode_descriptor(
                "sentinel_store_batch_records",
                "Records per committed store transaction (group commit).",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(sizes.sum as f64, sizes.count, &buckets, None)?;
        let max = ConstGauge::new(sizes.max);
        max.encode(encoder.encode_descriptor(
            "sentinel_store_batch_records_max",
            "The most records committed in one store transaction.",
            None,
            max.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "sentinel_store_failed_batches",
                "Store transactions that failed and were retried record by record.",
                stats.failed_batches,
            ),
            (
                "sentinel_store_records_dropped",
                "Records the store could not write even on their own (each logged; an acknowledged \
                 one was reported to its client).",
                stats.dropped,
            ),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}
