//! The `${{ }}` expression language of `pipeline.yaml` parameters.
//!
//! - [`parse_template`] turns a string into literal text and expressions, with byte ranges.
//! - [`evaluate`] / [`resolve_value`] resolve them against a [`Scope`]: `stage`, `pipeline`,
//!   `organization`, `trigger`, `vars` are known at synthesis; secrets (`secret("N")`,
//!   `stage_secret("N")`, `organization.secrets["N"]`, `stage.secrets["N"]`) and step outputs
//!   (`steps.<step>.<output>`) become [`Deferred`] values, shown as `[SECRET:N]`,
//!   `[STAGE_SECRET:N]` and `[OUTPUT:step/field]` in plans.
//! - A parameter that is one whole expression keeps the value's type; inside text, values are
//!   rendered as text.
//! - A literal `${{` is written `$${{`; before `{{`, each `$$` is one literal `$`, so
//!   `$$${{ vars.price }}` is a `$` followed by the value.
//!
//! ```
//! use devramps_core::expr::{parse_template, Deferred, ParamValue};
//! let t = parse_template("db=${{ stage_secret(\"DB\") }}").unwrap();
//! assert_eq!(t.exprs().count(), 1);
//! assert_eq!(Deferred::Secret("API_KEY".into()).to_string(), "[SECRET:API_KEY]");
//! # let _ = ParamValue::Null;
//! ```

mod artifact_ref;
mod ast;
mod error;
mod eval;
mod locate;
mod parse;
mod prepared;
mod resolve;
mod scope;
mod template;
mod value;

pub use ast::{Accessor, Call, Expr, ExprKind, Ident, Part, Path, Template};
pub use error::{ExprError, ExprErrorKind};
pub use eval::{FUNCTIONS, NAMESPACES, evaluate};
pub use parse::{SyntaxError, has_expressions, parse_template};
pub use resolve::{FinalValue, Resolution, ResolveError};
pub use scope::{
    ArtifactLocation, Definition, Named, Organization, PipelineInfo, Scope, StageScope, StepScope,
    Trigger,
};
pub use template::{literal, resolve_str, resolve_template, resolve_value};
pub use value::{Deferred, ParamValue, SecretString, TextPart};

pub(crate) use prepared::{Failures, Prepared, Preparer, Resolver, StageMemo};

/// Where in the source an expression error is: `value` is the string that holds it.
pub(crate) fn locate_error(
    source: Option<&str>,
    value: &crate::source::Value,
    error: &ExprError,
) -> crate::source::Span {
    locate::locate(
        source,
        value,
        value.as_str().unwrap_or_default(),
        &error.range,
    )
}
