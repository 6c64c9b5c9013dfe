//! Selecting executions by their key: [`Match`], shared by the scripted backends.

use devramps_core::backend::{ExecutionKey, Unit};

/// Which executions a scripted behaviour applies to: every field left `None` matches
/// anything. When several scripts match a key, the most specific (most fields set) wins, and
/// among equally specific ones the last added.
///
/// ```
/// use devramps_memory::Match;
///
/// // The first attempt of step `deploy` in stage `prod`, in every pipeline and revision.
/// let m = Match::step("deploy").in_stage("prod").attempt(1);
/// # let _ = m;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// Pipeline slug.
    pub pipeline: Option<String>,
    /// Revision.
    pub revision: Option<u64>,
    /// Stage name (empty for shared artifact builds).
    pub stage: Option<String>,
    /// Attempt, from 1.
    pub attempt: Option<u32>,
    /// The key's unit: a step (by its key), a build, validation or mirroring.
    pub unit: Option<Unit>,
}

impl Match {
    /// Matches every execution.
    pub fn any() -> Self {
        Match::default()
    }

    /// Matches the executions of the step whose key (id, else name) is `step`; Terraform
    /// steps included.
    pub fn step(step: impl Into<String>) -> Self {
        Match::unit(Unit::step(step))
    }

    /// Matches the executions of `unit` (a build, validation, mirroring or a step).
    pub fn unit(unit: Unit) -> Self {
        Match {
            unit: Some(unit),
            ..Match::default()
        }
    }

    /// Matches exactly one execution key.
    pub fn key(key: &ExecutionKey) -> Self {
        Match {
            pipeline: Some(key.pipeline.clone()),
            revision: Some(key.revision),
            stage: Some(key.stage.clone()),
            attempt: Some(key.attempt),
            unit: Some(key.unit.clone()),
        }
    }

    /// Narrows to one stage.
    pub fn in_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = Some(stage.into());
        self
    }

    /// Narrows to one attempt.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// Narrows to one revision.
    pub fn revision(mut self, revision: u64) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Narrows to one pipeline.
    pub fn pipeline(mut self, pipeline: impl Into<String>) -> Self {
        self.pipeline = Some(pipeline.into());
        self
    }

    /// Whether `key` is selected.
    pub fn matches(&self, key: &ExecutionKey) -> bool {
        self.pipeline.as_ref().is_none_or(|p| *p == key.pipeline)
            && self.revision.is_none_or(|r| r == key.revision)
            && self.stage.as_ref().is_none_or(|s| *s == key.stage)
            && self.attempt.is_none_or(|a| a == key.attempt)
            && self.unit.as_ref().is_none_or(|u| *u == key.unit)
    }

    fn specificity(&self) -> usize {
        [
            self.pipeline.is_some(),
            self.revision.is_some(),
            self.stage.is_some(),
            self.attempt.is_some(),
            self.unit.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count()
    }
}

/// The value scripted for the most specific [`Match`] of `key` (the last added among ties).
pub(crate) fn lookup<'a, T>(scripts: &'a [(Match, T)], key: &ExecutionKey) -> Option<&'a T> {
    scripts
        .iter()
        .enumerate()
        .filter(|(_, (m, _))| m.matches(key))
        .max_by_key(|(i, (m, _))| (m.specificity(), *i))
        .map(|(_, (_, value))| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stage: &str, attempt: u32, step: &str) -> ExecutionKey {
        ExecutionKey::new("api", 3, stage, attempt, Unit::step(step))
    }

    #[test]
    fn most_specific_then_latest_wins() {
        let scripts = vec![
            (Match::step("deploy"), 1),
            (Match::step("deploy").in_stage("prod").attempt(1), 2),
            (Match::step("deploy").in_stage("prod"), 3),
            (Match::step("deploy").in_stage("prod"), 4),
            (Match::key(&key("prod", 2, "deploy")), 5),
        ];
        assert_eq!(lookup(&scripts, &key("staging", 1, "deploy")), Some(&1));
        assert_eq!(lookup(&scripts, &key("prod", 1, "deploy")), Some(&2));
        assert_eq!(lookup(&scripts, &key("prod", 3, "deploy")), Some(&4));
        assert_eq!(lookup(&scripts, &key("prod", 2, "deploy")), Some(&5));
        assert_eq!(lookup(&scripts, &key("prod", 1, "test")), None);
        assert!(Match::any().matches(&key("x", 9, "y")));
    }
}
