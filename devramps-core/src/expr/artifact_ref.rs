//! `stage.artifacts[...]` and `pipeline.pre_mirror_artifacts[...]`: an artifact named by its
//! display name or id, then one of its location fields.

use super::ast::{Accessor, Ident};
use super::error::{ExprError, ExprErrorKind};
use super::eval::scalar;
use super::scope::{ArtifactLocation, Named, Scope};
use super::value::ParamValue;

/// Evaluates `<object>[<artifact>]...` where `object` (an accessor, `artifacts` or
/// `pre_mirror_artifacts`) is written at `at` and `path` spells it (`stage.artifacts`):
/// `rest` starts at the artifact. `location` gives where the found artifact is, or an error.
pub(super) fn eval_artifact<'s>(
    at: &Ident,
    rest: &[Accessor],
    path: &str,
    scope: &Scope<'s>,
    location: impl FnOnce(Named<'s>, &Ident) -> Result<&'s ArtifactLocation, ExprError>,
) -> Result<ParamValue, ExprError> {
    let Some((which, rest)) = rest.split_first() else {
        return Err(ExprError::new(
            ExprErrorKind::UnknownProperty,
            at.range.clone(),
            format!("`{path}` needs an artifact: `{path}[\"Name\"].image_url`"),
        ));
    };
    let key = which.key();
    let definition = scope.definition;
    let Some(artifact) = definition.artifact(&key.name) else {
        let names: Vec<&str> = definition.artifact_names();
        return Err(ExprError::new(
            ExprErrorKind::UnknownArtifact,
            key.range.clone(),
            format!("unknown artifact `{}`", key.name),
        )
        .suggest(&key.name, &names));
    };
    let location = location(artifact, key)?;
    match rest.split_first() {
        None => Ok(ParamValue::map(ArtifactLocation::FIELDS.iter().map(|f| {
            (*f, ParamValue::from(location.field(f).unwrap_or_default()))
        }))),
        Some((f, rest)) => {
            let k = f.key();
            let Some(value) = location.field(&k.name) else {
                return Err(ExprError::new(
                    ExprErrorKind::UnknownProperty,
                    k.range.clone(),
                    format!("artifact `{}` has no property `{}`", artifact.name, k.name),
                )
                .suggest(&k.name, ArtifactLocation::FIELDS));
            };
            scalar(
                ParamValue::from(value),
                rest,
                format_args!("{path}[\"{}\"].{}", artifact.name, k.name),
            )
        }
    }
}
