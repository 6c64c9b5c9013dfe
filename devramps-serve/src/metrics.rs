//! Prometheus metrics (text exposition format 0.0.4): webhook deliveries by result, step
//! durations, and (computed when scraped) stage-deployments by state.
//!
//! [`Metrics`] is also an [`Observer`] of the engine: give it to
//! [`EngineConfig::with_observer`](devramps_core::engine::EngineConfig::with_observer) so it
//! sees the steps this instance drives, and wakes the event streams when records are appended.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use devramps_core::engine::{Appended, Observer};
use devramps_core::lifecycle::{Event, PipelineState, StepState};
use jiff::Timestamp;
use tokio::sync::Notify;

/// The upper bounds of the step-duration histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

/// The counters and histograms of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    appended: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Webhook deliveries by result (`accepted`, `duplicate`, `bad_signature`, ...).
    webhooks: BTreeMap<&'static str, u64>,
    /// When each running step started, by (pipeline, revision, stage, step).
    started: BTreeMap<(String, u64, String, String), Timestamp>,
    /// Step durations by (pipeline, stage, step, final state).
    durations: BTreeMap<(String, String, String, &'static str), Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

impl Metrics {
    /// No counts yet.
    pub fn new() -> Self {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one webhook delivery with its `result`.
    pub fn webhook(&self, result: &'static str) {
        *self.lock().webhooks.entry(result).or_default() += 1;
    }

    /// Woken after every append this instance observes (the event streams wait on it).
    pub fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }

    /// The exposition text: the counters, and the stage-deployments of `states` by state.
    pub fn render(&self, states: &[(String, PipelineState)]) -> String {
        let inner = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP devramps_webhook_deliveries_total Webhook deliveries by result.\n\
             # TYPE devramps_webhook_deliveries_total counter\n",
        );
        for (result, n) in &inner.webhooks {
            let _ = writeln!(
                out,
                "devramps_webhook_deliveries_total{{result=\"{result}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP devramps_step_duration_seconds Durations of the steps this server drove, \
             from RUNNING to their end.\n# TYPE devramps_step_duration_seconds histogram\n",
        );
        for ((pipeline, stage, step, state), h) in &inner.durations {
            let labels = format!(
                "pipeline=\"{}\",stage=\"{}\",step=\"{}\",state=\"{state}\"",
                escape(pipeline),
                escape(stage),
                escape(step)
            );
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "devramps_step_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "devramps_step_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "devramps_step_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "devramps_step_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        drop(inner);
        out.push_str(
            "# HELP devramps_stage_deployments Stage-deployments by pipeline, stage and state.\n\
             # TYPE devramps_stage_deployments gauge\n",
        );
        for (pipeline, state) in states {
            let mut counts: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
            for d in state.deployments.values() {
                for run in &d.stages {
                    *counts.entry((&run.name, run.state.as_str())).or_default() += 1;
                }
            }
            for ((stage, state), n) in counts {
                let _ = writeln!(
                    out,
                    "devramps_stage_deployments{{pipeline=\"{}\",stage=\"{}\",state=\"{state}\"}} {n}",
                    escape(pipeline),
                    escape(stage)
                );
            }
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Observer for Metrics {
    fn appended(&self, append: &Appended<'_>) {
        {
            let mut inner = self.lock();
            for record in append.records {
                let Event::StepState {
                    revision,
                    stage,
                    step,
                    state,
                    ..
                } = &record.event
                else {
                    continue;
                };
                let key = (
                    append.pipeline.to_owned(),
                    *revision,
                    stage.clone(),
                    step.clone(),
                );
                if *state == StepState::Running {
                    inner.started.entry(key).or_insert(record.at);
                } else if state.is_terminal()
                    && let Some(start) = inner.started.remove(&key)
                {
                    let seconds = record.at.duration_since(start).as_secs_f64().max(0.0);
                    let (pipeline, _, stage, step) = key;
                    inner
                        .durations
                        .entry((pipeline, stage, step, state.as_str()))
                        .or_default()
                        .observe(seconds);
                }
            }
        }
        self.appended.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_bucket_cumulatively() {
        let mut h = Histogram::default();
        h.observe(0.3);
        h.observe(7.0);
        assert_eq!(h.counts[0], 0);
        assert_eq!(h.counts[1], 1, "0.3 <= 0.5");
        assert_eq!(h.counts[4], 2, "both <= 10");
        assert_eq!(h.count, 2);
        assert!((h.sum - 7.3).abs() < 1e-9);
    }

    #[test]
    fn webhook_results_are_counted_with_escaped_labels() {
        let m = Metrics::new();
        m.webhook("accepted");
        m.webhook("accepted");
        m.webhook("bad_signature");
        let text = m.render(&[]);
        assert!(text.contains("devramps_webhook_deliveries_total{result=\"accepted\"} 2"));
        assert!(text.contains("{result=\"bad_signature\"} 1"));
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
