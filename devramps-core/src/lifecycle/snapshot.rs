//! Snapshots of a pipeline's state: the fold of its log up to a record, saved so that loading
//! reads the snapshot and the records after it instead of the whole log.
//!
//! A snapshot holds the fold's state and, for each deployment, what it was accepted with (the
//! `deployment_accepted` record's definition text, changed paths and organization, and the
//! previous builds synthesis took), not its plan: a deployment's plan is synthesized again
//! from those when it is first used, which gives the same plan. So loading costs a parse of the
//! definition in force, not a synthesis per deployment, and a snapshot does not depend on the
//! shape of plans. Definition texts and previous builds, mostly the same from one deployment to
//! the next, are stored once each.
//!
//! The JSON carries its format version `v` ([`SNAPSHOT_VERSION`]); a snapshot of another
//! version does not load. Change the version whenever the fold (what a record does to the
//! state) or this format changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::accepted::{Accepted, PlanCell};
use super::state::{Deployment, PipelineState, StageIndex, StageRun, StageRuntime};
use crate::error::{Error, Result};
use crate::expr::{Organization, PipelineInfo};
use crate::pipeline::PipelineDefinition;

/// The format version of the snapshots this release writes, and the only one it reads.
pub const SNAPSHOT_VERSION: u64 = 2;

/// A snapshot as stored (format version 1).
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u64,
    /// `pipeline.slug` and `pipeline.name`.
    slug: String,
    name: String,
    applied: u64,
    /// The distinct definition texts, referred to by index.
    texts: Vec<String>,
    /// The distinct previous builds of deployments, referred to by index.
    previous: Vec<BTreeMap<String, String>>,
    stages: BTreeMap<String, StageRuntime>,
    stage_order: Vec<String>,
    deployments: Vec<WireDeployment>,
    last_revision: u64,
    newest_commit: Option<String>,
    deliveries: BTreeSet<String>,
    /// (artifact id, stage of a per-stage artifact, commit of its last successful build).
    builds: Vec<(String, Option<String>, String)>,
    patch_mode: bool,
    awaiting_approval: BTreeSet<u64>,
    definition_text: Option<usize>,
    last_definition: Option<usize>,
}

/// One deployment in a snapshot.
#[derive(Serialize, Deserialize)]
struct WireDeployment {
    revision: u64,
    commit: String,
    branch: String,
    /// Whether it has a plan (synthesized again on first use).
    planned: bool,
    synthesis_errors: Vec<String>,
    superseded: bool,
    patch: bool,
    stages: Vec<StageRun>,
    tag: String,
    definition: usize,
    changed: BTreeMap<String, Vec<String>>,
    organization: Organization,
    previous: usize,
    approval: Option<(String, Vec<String>)>,
    awaiting: bool,
    /// Absent in snapshots written before it existed.
    #[serde(default)]
    unapproved: bool,
}

/// Gives each distinct value an index, in order of first use.
struct Table<T: Ord + Clone> {
    index: BTreeMap<T, usize>,
    values: Vec<T>,
}

impl<T: Ord + Clone> Table<T> {
    fn new() -> Self {
        Table {
            index: BTreeMap::new(),
            values: Vec::new(),
        }
    }

    fn of(&mut self, value: &T) -> usize {
        if let Some(i) = self.index.get(value) {
            return *i;
        }
        let i = self.values.len();
        self.index.insert(value.clone(), i);
        self.values.push(value.clone());
        i
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::backend("lifecycle", "read a snapshot", message)
}

impl PipelineState {
    /// The state as a snapshot (JSON with format version [`SNAPSHOT_VERSION`]). It synthesizes
    /// no plan.
    pub fn to_snapshot(&self) -> Result<serde_json::Value> {
        let mut texts: Table<Arc<str>> = Table::new();
        let mut previous: Table<Arc<BTreeMap<String, String>>> = Table::new();
        let deployments = self
            .deployments
            .values()
            .map(|d| WireDeployment {
                revision: d.revision,
                commit: d.commit.clone(),
                branch: d.branch.clone(),
                planned: d.plan.exists(),
                synthesis_errors: d.synthesis_errors.clone(),
                superseded: d.superseded,
                patch: d.patch,
                stages: d.stages.clone(),
                tag: d.accepted.tag.clone(),
                definition: texts.of(&d.accepted.definition),
                changed: d.accepted.changed.clone(),
                organization: d.accepted.organization.clone(),
                previous: previous.of(&d.accepted.previous_builds),
                approval: d.approval.clone(),
                awaiting: d.awaiting.is_some(),
                unapproved: d.unapproved,
            })
            .collect();
        let pipeline = self.pipeline_info();
        let wire = Wire {
            v: SNAPSHOT_VERSION,
            slug: pipeline.slug,
            name: pipeline.name,
            applied: self.applied,
            definition_text: self.definition_text.as_ref().map(|t| texts.of(t)),
            last_definition: self.last_definition.as_ref().map(|t| texts.of(t)),
            texts: texts.values.iter().map(|t| t.to_string()).collect(),
            previous: previous.values.iter().map(|p| BTreeMap::clone(p)).collect(),
            stages: self.stages.clone(),
            stage_order: self.stage_order.clone(),
            deployments,
            last_revision: self.last_revision,
            newest_commit: self.newest_commit.clone(),
            deliveries: self.deliveries.clone(),
            builds: self
                .builds
                .iter()
                .map(|((id, stage), commit)| (id.clone(), stage.clone(), commit.clone()))
                .collect(),
            patch_mode: self.patch_mode,
            awaiting_approval: self.awaiting_approval.clone(),
        };
        serde_json::to_value(&wire)
            .map_err(|e| Error::backend("lifecycle", "write a snapshot", e.to_string()))
    }

    /// The state of the pipeline `slug` saved by [`PipelineState::to_snapshot`]. Fails on a
    /// snapshot of another version or pipeline, or one that does not decode.
    pub fn from_snapshot(slug: &str, snapshot: &serde_json::Value) -> Result<PipelineState> {
        let version = snapshot.get("v").and_then(serde_json::Value::as_u64);
        if version != Some(SNAPSHOT_VERSION) {
            return Err(invalid(format!(
                "the snapshot has format version {}, this release reads {SNAPSHOT_VERSION}",
                snapshot
                    .get("v")
                    .map_or("(none)".to_owned(), ToString::to_string)
            )));
        }
        let wire =
            Wire::deserialize(snapshot).map_err(|e| invalid(format!("it does not decode: {e}")))?;
        if wire.slug != slug {
            return Err(invalid(format!(
                "it is a snapshot of `{}`, not of `{slug}`",
                wire.slug
            )));
        }
        let texts: Vec<Arc<str>> = wire.texts.iter().map(|t| Arc::from(t.as_str())).collect();
        let text = |i: usize| {
            texts
                .get(i)
                .cloned()
                .ok_or_else(|| invalid(format!("definition text {i} is missing")))
        };
        let parse = |text: &str| -> Result<Arc<PipelineDefinition>> {
            crate::pipeline::parse(text)
                .map(Arc::new)
                .map_err(|_| invalid("a definition it holds does not parse"))
        };
        let previous: Vec<Arc<BTreeMap<String, String>>> =
            wire.previous.into_iter().map(Arc::new).collect();
        let pipeline = Arc::new(PipelineInfo {
            name: wire.name,
            slug: wire.slug,
        });
        let mut deployments = BTreeMap::new();
        for d in wire.deployments {
            let definition = text(d.definition)?;
            let awaiting = if d.awaiting {
                Some(parse(&definition)?)
            } else {
                None
            };
            let accepted = Accepted {
                tag: d.tag,
                definition,
                changed: d.changed,
                organization: d.organization,
                pipeline: pipeline.clone(),
                previous_builds: previous.get(d.previous).cloned().ok_or_else(|| {
                    invalid(format!("previous builds {} are missing", d.previous))
                })?,
            };
            let plan = if d.planned {
                PlanCell::later()
            } else {
                PlanCell::ready(None)
            };
            deployments.insert(
                d.revision,
                Deployment {
                    revision: d.revision,
                    commit: d.commit,
                    branch: d.branch,
                    plan,
                    synthesis_errors: d.synthesis_errors,
                    superseded: d.superseded,
                    patch: d.patch,
                    stages: d.stages,
                    accepted: Arc::new(accepted),
                    approval: d.approval,
                    awaiting,
                    unapproved: d.unapproved,
                },
            );
        }
        let definition_text = wire.definition_text.map(text).transpose()?;
        let definition = definition_text.as_deref().map(parse).transpose()?;
        let index = StageIndex::build(&wire.stage_order, &wire.stages);
        Ok(PipelineState {
            pipeline: Some(PipelineInfo::clone(&pipeline)),
            stages: wire.stages,
            stage_order: wire.stage_order,
            deployments,
            last_revision: wire.last_revision,
            newest_commit: wire.newest_commit,
            deliveries: wire.deliveries,
            builds: wire
                .builds
                .into_iter()
                .map(|(id, stage, commit)| ((id, stage), commit))
                .collect(),
            applied: wire.applied,
            patch_mode: wire.patch_mode,
            awaiting_approval: wire.awaiting_approval,
            definition,
            last_definition: wire.last_definition.map(text).transpose()?,
            definition_text,
            index,
        })
    }
}
