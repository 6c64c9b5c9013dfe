//! Execution identities: which pipeline, revision, stage, attempt and unit of work an
//! execution is. This file is the one place that spells the units (`build:<artifact>`,
//! `validate`, `mirror`, a step's key).

use std::cmp::Ordering;
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a build's unit starts: `build:<artifact id>`.
const BUILD_PREFIX: &str = "build:";
/// The unit of resource validation.
const VALIDATE: &str = "validate";
/// The unit of artifact mirroring.
const MIRROR: &str = "mirror";

/// The unit of work of one execution within a stage-deployment.
///
/// It prints (and serializes) as the string idempotency keys, logs and reports have always
/// used: `build:<artifact id>`, `validate`, `mirror`, or the step's key (its id, else its
/// name; Terraform steps included). [`Unit::parse`] reads that string back; a step whose key
/// is spelled like one of the other units (a step named `validate`) reads back as that unit,
/// which is why the machine and the engine pass units around typed and never parse them.
///
/// Units order as their printed strings do, so maps keyed by [`ExecutionKey`] iterate in the
/// same order as when the unit was a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// An artifact build.
    Build {
        /// The artifact id.
        artifact: String,
    },
    /// Resource validation (phase 2 of L4).
    Validate,
    /// Artifact mirroring (phase 3 of L4).
    Mirror,
    /// A step (Terraform steps included: plan and apply share the step's unit).
    Step {
        /// The step's key: its id, else its name.
        step: String,
    },
}

impl Unit {
    /// The build of `artifact`.
    pub fn build(artifact: impl Into<String>) -> Self {
        Unit::Build {
            artifact: artifact.into(),
        }
    }

    /// The step whose key is `step`.
    pub fn step(step: impl Into<String>) -> Self {
        Unit::Step { step: step.into() }
    }

    /// Reads a unit from its printed form (see the type's docs for the one ambiguity).
    pub fn parse(text: &str) -> Self {
        if let Some(artifact) = text.strip_prefix(BUILD_PREFIX) {
            return Unit::build(artifact);
        }
        match text {
            VALIDATE => Unit::Validate,
            MIRROR => Unit::Mirror,
            _ => Unit::step(text),
        }
    }

    /// The artifact, when this is a build.
    pub fn artifact(&self) -> Option<&str> {
        match self {
            Unit::Build { artifact } => Some(artifact),
            _ => None,
        }
    }

    /// The step's key, when this is a step.
    pub fn step_key(&self) -> Option<&str> {
        match self {
            Unit::Step { step } => Some(step),
            _ => None,
        }
    }

    /// The printed form, as two pieces to concatenate (no allocation).
    fn parts(&self) -> [&str; 2] {
        match self {
            Unit::Build { artifact } => [BUILD_PREFIX, artifact],
            Unit::Validate => [VALIDATE, ""],
            Unit::Mirror => [MIRROR, ""],
            Unit::Step { step } => [step, ""],
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Unit::Build { .. } => 0,
            Unit::Validate => 1,
            Unit::Mirror => 2,
            Unit::Step { .. } => 3,
        }
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.parts().into_iter().flat_map(str::bytes)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.parts();
        f.write_str(a)?;
        f.write_str(b)
    }
}

/// Whether the unit prints as `text`.
impl PartialEq<str> for Unit {
    fn eq(&self, text: &str) -> bool {
        let [a, b] = self.parts();
        text.len() == a.len() + b.len() && text.starts_with(a) && text.ends_with(b)
    }
}

impl PartialEq<&str> for Unit {
    fn eq(&self, text: &&str) -> bool {
        self == *text
    }
}

impl PartialEq<String> for Unit {
    fn eq(&self, text: &String) -> bool {
        self == text.as_str()
    }
}

impl Ord for Unit {
    /// As the printed strings; units that print alike (only possible for a step spelled like
    /// another unit) by kind.
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes()
            .cmp(other.bytes())
            .then_with(|| self.rank().cmp(&other.rank()))
    }
}

impl PartialOrd for Unit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Unit {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Self, Infallible> {
        Ok(Unit::parse(text))
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Unit::parse(&text))
    }
}

/// The idempotency key of one execution: (pipeline, revision, stage, attempt, unit). Runners
/// use it to make a repeated start (after a restart) harmless.
///
/// Serializes with the unit as its printed string under `step`, as before units were typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecutionKey {
    /// Pipeline slug.
    pub pipeline: String,
    /// Revision (L1).
    pub revision: u64,
    /// Stage name, or empty for shared artifact builds.
    pub stage: String,
    /// Attempt of the stage-deployment, from 1.
    pub attempt: u32,
    /// What runs: a build, validation, mirroring or a step.
    #[serde(rename = "step")]
    pub unit: Unit,
}

impl ExecutionKey {
    /// The key of `unit` in attempt `attempt` of `revision` in `stage` of `pipeline`.
    pub fn new(
        pipeline: impl Into<String>,
        revision: u64,
        stage: impl Into<String>,
        attempt: u32,
        unit: Unit,
    ) -> Self {
        ExecutionKey {
            pipeline: pipeline.into(),
            revision,
            stage: stage.into(),
            attempt,
            unit,
        }
    }
}

impl fmt::Display for ExecutionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/r{}/{}/a{}/{}",
            self.pipeline, self.revision, self.stage, self.attempt, self.unit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<(Unit, &'static str)> {
        vec![
            (Unit::build("api-image"), "build:api-image"),
            (Unit::Validate, "validate"),
            (Unit::Mirror, "mirror"),
            (Unit::step("deploy"), "deploy"),
            (Unit::step("Deploy to ECS"), "Deploy to ECS"),
        ]
    }

    #[test]
    fn every_unit_prints_as_before_and_reads_back() {
        for (unit, text) in every_variant() {
            assert_eq!(unit.to_string(), text);
            assert_eq!(Unit::parse(text), unit);
            assert_eq!(text.parse::<Unit>(), Ok(unit.clone()));
            assert!(unit == *text, "{unit:?} equals its text");
            assert!(unit != "something else");
        }
    }

    #[test]
    fn a_key_serializes_with_the_unit_as_its_string_under_step() {
        for (unit, text) in every_variant() {
            let key = ExecutionKey::new("app", 3, "prod", 2, unit);
            let json = serde_json::to_value(&key).expect("serializes");
            assert_eq!(
                json,
                serde_json::json!({
                    "pipeline": "app", "revision": 3, "stage": "prod", "attempt": 2, "step": text
                })
            );
            let back: ExecutionKey = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, key);
            assert_eq!(key.to_string(), format!("app/r3/prod/a2/{text}"));
        }
    }

    #[test]
    fn units_order_as_their_strings() {
        let mut units: Vec<Unit> = every_variant().into_iter().map(|(u, _)| u).collect();
        units.push(Unit::build("a"));
        units.push(Unit::step("build"));
        units.push(Unit::step("mirrors"));
        units.push(Unit::step("validat"));
        let mut by_text: Vec<String> = units.iter().map(Unit::to_string).collect();
        by_text.sort();
        units.sort();
        let sorted: Vec<String> = units.iter().map(Unit::to_string).collect();
        assert_eq!(sorted, by_text);
    }

    #[test]
    fn a_step_spelled_like_another_unit_is_still_a_different_unit() {
        let step = Unit::step("validate");
        assert_ne!(step, Unit::Validate);
        assert_ne!(step.cmp(&Unit::Validate), Ordering::Equal);
        assert_eq!(step.to_string(), Unit::Validate.to_string());
    }
}
