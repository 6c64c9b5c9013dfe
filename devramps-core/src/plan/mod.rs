//! Pipeline synthesis (lifecycle rule L3): a definition, a commit and its changed files become a
//! [`Plan`]: expressions resolved except secrets and step outputs, the step order of every
//! stage, and a rebuild-or-reuse decision for every artifact.
//!
//! [`check`] is the full check of a definition (`devramps validate`): the structural checks of
//! [`pipeline::check`](crate::pipeline::check) and the checks of every expression.
//!
//! ```
//! use devramps_core::expr::{Organization, PipelineInfo, Trigger};
//! use devramps_core::plan::{synthesize, Changes, Decision, SynthesisInput};
//!
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/repo/.devramps/api/pipeline.yaml")).unwrap();
//! let definition = devramps_core::plan::parse(&text).unwrap();
//! let input = SynthesisInput {
//!     pipeline: PipelineInfo::from_slug("api"),
//!     organization: Organization::default(),
//!     trigger: Trigger { sha: "c0ffee".repeat(7)[..40].to_owned(), branch: "main".into(), tag: String::new(), revision: 7 },
//!     previous_builds: [("api-image".to_owned(), "b".repeat(40))].into(),
//!     previous_stage_builds: Default::default(),
//!     changes: Changes::since("b".repeat(40), ["/docs/readme.md"]),
//! };
//! let plan = synthesize(&definition, Some(&text), &input).unwrap();
//! assert_eq!(plan.artifacts[0].decision, Decision::Reuse);
//! assert_eq!(plan.stages[1].steps[2].params.to_json()["revision"], 7);
//! ```

mod check;
mod decide;
mod definition;
mod kind;
pub mod naming;
mod order;
mod placement;
mod rebuild;
mod synth;

pub use check::{check, check_value, parse, parse_shared};

pub use kind::StepKind;

pub use rebuild::{Decision, RebuildMatcher, RebuildReason, is_glob};
pub use synth::{
    ArtifactPlan, Changes, DEFAULT_STEP_TIMEOUT_MINUTES, DEFAULT_TEST_TIMEOUT_MINUTES, Plan,
    StagePlan, StepPlan, SynthesisInput, synthesize,
};
