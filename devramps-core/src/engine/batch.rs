//! Group commit: the inputs of people and webhooks queued for a pipeline while an append was
//! in flight are recorded together, in one append (one durable write of the store), each
//! caller answered with its own records once they are durable.
//!
//! A batch is decided exactly as its jobs one after the other would be (the machine is fed
//! each in arrival order, a push's changed paths read against the bases after the jobs before
//! it), so deduplication by delivery id (L2) holds inside a batch: of two deliveries with the
//! same id, the second is recorded as a duplicate. Only inputs from outside are batched: work
//! results and timers are recorded as before, one job at a time (they are batched already,
//! per pipeline, when they land together).

use super::driver::EngineDriver;
use super::pipeline::{Job, Origin};
use crate::error::Result;
use crate::lifecycle::Record;

/// The most queued jobs recorded in one append (and requests taken from the handles at once).
pub(super) const MAX_BATCH: usize = 256;

impl EngineDriver {
    /// Records the queued inputs of `pipeline` in order, until the queue is empty or the
    /// store fails transiently on a person's or webhook's input, which then waits for the
    /// backoff with everything behind it. The inputs from outside at the head of the queue go
    /// in one append (see the module docs). A work result the store did not take is parked
    /// and tried again after the backoff; it never holds up other inputs and is never dropped
    /// while the lease it was started under is held.
    pub(super) async fn drain(&mut self, pipeline: &str) {
        // After a batch failed for a reason other than the store being unavailable, its jobs
        // are recorded one at a time, each answered with its own outcome.
        let mut limit = MAX_BATCH;
        loop {
            let jobs: Vec<Job> = {
                let queue = &self.pipeline(pipeline).queue;
                let Some(head) = queue.front() else {
                    return;
                };
                if head.job.batches() {
                    queue
                        .iter()
                        .take(limit)
                        .take_while(|q| q.job.batches())
                        .map(|q| q.job.clone())
                        .collect()
                } else {
                    vec![head.job.clone()]
                }
            };
            let (taken, result) = self.record_jobs(pipeline, &jobs).await;
            let now = self.backends.clock.now();
            let p = self.pipeline(pipeline);
            match result {
                Err(e) if jobs[0].retried_after(&e) => {
                    let due = p.backoff.failed(now, e.retry_after());
                    tracing::warn!(pipeline = %pipeline, error = %e, retry_at = %due, "could not record; will retry");
                    if matches!(
                        jobs[0],
                        Job::Inputs {
                            origin: Origin::Work(_),
                            ..
                        }
                    ) {
                        if let Some(queued) = p.queue.pop_front() {
                            p.parked.push(queued);
                        }
                        continue;
                    }
                    return;
                }
                Err(_) if taken > 1 => limit = 1,
                result => {
                    if result.is_ok() && p.parked.is_empty() {
                        p.backoff.succeeded();
                    }
                    let answers: Vec<Result<Vec<Record>>> = match result {
                        Ok(records) => records.into_iter().map(Ok).collect(),
                        Err(e) => vec![Err(e)],
                    };
                    for answer in answers {
                        let Some(queued) = p.queue.pop_front() else {
                            return;
                        };
                        for key in queued.job.work_keys() {
                            p.recording.remove(key);
                        }
                        if let Some(reply) = queued.reply {
                            let _ = reply.send(answer);
                        }
                    }
                    limit = MAX_BATCH;
                }
            }
        }
    }

    /// Records `jobs` (the head of the queue) in one append, or as many of them as could be
    /// read: a job whose commit cannot be read now ends the batch before it (it is read again
    /// as the head of the next one). Returns how many jobs the result answers, from the head,
    /// and the records of each; an error answers the head alone unless the batch failed as a
    /// whole.
    async fn record_jobs(
        &mut self,
        pipeline: &str,
        jobs: &[Job],
    ) -> (usize, Result<Vec<Vec<Record>>>) {
        let mut items = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            match self.prepare(pipeline, job).await {
                Ok(item) => items.push(item),
                Err(e) if i == 0 => return (1, Err(e)),
                Err(_) => break,
            }
        }
        let origin = match jobs.first() {
            Some(Job::Inputs { origin, .. }) => *origin,
            _ => Origin::Outside,
        };
        let taken = items.len();
        let result = self.decide_and_append(pipeline, &items, origin).await;
        (taken, result)
    }
}
