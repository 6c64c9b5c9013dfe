//! The answer of `GET /api/v1/pipelines/{slug}`, kept per pipeline and brought up to date
//! with the records appended since: each record changes at most the deployment it names (its
//! `revision`), so only those deployments' entries are made again, and the answer is the
//! kept entries put together. The cost of an answer is the new records and the deployments
//! they touch, plus copying the answer; not a fold of the history, nor every deployment made
//! and serialized again.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use devramps_core::backend::StoredEvent;
use devramps_core::lifecycle::{PipelineState, Record};
use serde::Serialize;

/// One pipeline's answer and what it is made of.
#[derive(Debug)]
pub(crate) struct Summary {
    /// The fold of the log up to the answer (`applied`: the last sequence number it shows).
    state: PipelineState,
    /// Each deployment's entry of `deployments`, serialized, by revision.
    deployments: BTreeMap<u64, Vec<u8>>,
    /// Each deployment's entries of `approvals`, serialized, by revision (most are empty).
    approvals: BTreeMap<u64, Vec<Vec<u8>>>,
    /// The `stages` section, serialized.
    stages: Vec<u8>,
    /// The answer.
    body: Bytes,
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot serialize the state: {e}"))
}

impl Summary {
    /// The answer for `state` (every deployment made).
    pub(crate) fn new(slug: &str, state: PipelineState) -> Result<Summary, String> {
        let mut summary = Summary {
            state,
            deployments: BTreeMap::new(),
            approvals: BTreeMap::new(),
            stages: Vec::new(),
            body: Bytes::new(),
        };
        let revisions: Vec<u64> = summary.state.deployments.keys().copied().collect();
        for revision in revisions {
            summary.remake(revision)?;
        }
        summary.stages = json(&devramps_sim::stage_summaries(&summary.state))?;
        summary.body = summary.assemble(slug)?;
        Ok(summary)
    }

    /// The last sequence number the answer shows.
    pub(crate) fn applied(&self) -> u64 {
        self.state.applied
    }

    /// The answer.
    pub(crate) fn body(&self) -> Bytes {
        self.body.clone()
    }

    /// Brings the answer up to date with `events`, the records after [`Summary::applied`] in
    /// order. An error (a gap, a record this version cannot read) leaves the summary to be
    /// made again from the engine's state.
    pub(crate) fn advance(&mut self, slug: &str, events: Vec<StoredEvent>) -> Result<(), String> {
        let mut touched = BTreeSet::new();
        for event in events {
            let expected = self.state.applied + 1;
            if event.seq != expected {
                return Err(format!("record {expected} missing (got {})", event.seq));
            }
            if let Some(revision) = event.payload.get("revision").and_then(|r| r.as_u64()) {
                touched.insert(revision);
            }
            let record = Record::from_stored(slug, event).map_err(|e| e.to_string())?;
            self.state.apply(&record);
        }
        let stages = json(&devramps_sim::stage_summaries(&self.state))?;
        if touched.is_empty() && stages == self.stages {
            // Nothing the answer shows changed (a push ignored, a refusal, ...).
            return Ok(());
        }
        self.stages = stages;
        for revision in touched {
            self.remake(revision)?;
        }
        self.body = self.assemble(slug)?;
        Ok(())
    }

    /// Makes the entries of deployment `revision` again (drops them when it is gone).
    fn remake(&mut self, revision: u64) -> Result<(), String> {
        let Some(d) = self.state.deployments.get(&revision) else {
            self.deployments.remove(&revision);
            self.approvals.remove(&revision);
            return Ok(());
        };
        let entry = json(&devramps_sim::deployment_report(d))?;
        let approvals = devramps_sim::deployment_approvals(d)
            .iter()
            .map(json)
            .collect::<Result<Vec<_>, _>>()?;
        self.deployments.insert(revision, entry);
        if approvals.is_empty() {
            self.approvals.remove(&revision);
        } else {
            self.approvals.insert(revision, approvals);
        }
        Ok(())
    }

    /// `{"slug", "stages", "deployments", "approvals"}` from the kept entries (the bytes
    /// `serde_json` gives for the whole).
    fn assemble(&self, slug: &str) -> Result<Bytes, String> {
        let size: usize = self.deployments.values().map(|d| d.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 1024);
        out.extend_from_slice(b"{\"slug\":");
        out.extend(json(&slug)?);
        out.extend_from_slice(b",\"stages\":");
        out.extend_from_slice(&self.stages);
        out.extend_from_slice(b",\"deployments\":");
        join(&mut out, self.deployments.values());
        out.extend_from_slice(b",\"approvals\":");
        join(&mut out, self.approvals.values().flatten());
        out.push(b'}');
        Ok(Bytes::from(out))
    }
}

/// `[a,b,...]` of serialized values.
fn join<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a Vec<u8>>) {
    out.push(b'[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
}
