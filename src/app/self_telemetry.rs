//! Sends the receiver's own metrics into the export pipeline every `telemetry.interval`, so
//! they share the targets' exporters, queue and retries.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::pipeline::ExportItem;
use crate::clock::unix_nanos_now;
use crate::telemetry::self_metrics::{self, SelfResource};
use crate::telemetry::Telemetry;

/// Emits until `stop` turns true or the pipeline is gone. The first emission comes one
/// interval after the start, when there is something to report.
pub async fn run(
    telemetry: Arc<Telemetry>,
    resource: SelfResource,
    interval: Duration,
    tx: mpsc::Sender<ExportItem>,
    mut stop: watch::Receiver<bool>,
) {
    let start = tokio::time::Instant::now() + interval;
    let mut ticker = tokio::time::interval_at(start, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let metrics = self_metrics::build(&telemetry, &resource, unix_nanos_now());
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    sent = tx.send(ExportItem::SelfTelemetry(metrics)) => {
                        if sent.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn emits_every_interval_until_stopped() {
        let telemetry = Arc::new(Telemetry::default());
        telemetry.polls.register("web");
        let (tx, mut rx) = mpsc::channel(8);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            telemetry,
            SelfResource::with_instance_id("h"),
            Duration::from_millis(5),
            tx,
            stop_rx,
        ));
        for _ in 0..3 {
            match rx.recv().await {
                Some(ExportItem::SelfTelemetry(rm)) => assert!(!rm.scope_metrics.is_empty()),
                other => panic!("{other:?}"),
            }
        }
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "the sender is dropped on stop");
    }
}
