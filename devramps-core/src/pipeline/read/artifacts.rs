//! `pipeline.artifacts`: a map keyed by display name.

use super::super::diagnostic::{Code, Diagnostic, Sink};
use super::super::enums::{Architecture, ArtifactType, HostSize};
use super::super::model::{Artifact, ArtifactParams, normalize_id};
use super::super::span::Spanned;
use super::super::value::{Value, ValueKind, ValueMap};
use super::steps::Params;
use super::{Obj, as_string, check_positive_int, check_repo_path, has_expression};

const ARTIFACT_KEYS: &[&str] = &[
    "id",
    "type",
    "architecture",
    "host_size",
    "per_stage",
    "rebuild_when_changed",
    "dependencies",
    "params",
    "envs",
];
const DOCKER_BUILD_PARAMS: &[&str] = &["dockerfile", "build_root", "args", "env"];
const BUNDLE_BUILD_PARAMS: &[&str] = &["build_commands", "file_path", "env"];
const DOCKER_IMPORT_PARAMS: &[&str] = &["source_image_url", "timeout_minutes"];
const BUNDLE_IMPORT_PARAMS: &[&str] = &[
    "source_account",
    "source_region",
    "source_s3_url",
    "timeout_minutes",
];

/// Artifacts that could not be read at all. References to them would only repeat the problem
/// already reported where they are written, so they are not reported as unknown artifacts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Every artifact was read (perhaps with broken parts).
    #[default]
    None,
    /// `artifacts` is missing or is not a map: no artifact is known.
    All,
    /// These entries (display names, and their written or derived ids) are not maps or have no
    /// usable id.
    Named(Vec<String>),
}

impl Unreadable {
    /// Whether a reference to the artifact `name` (as written in an expression) names one
    /// that could not be read.
    pub(crate) fn covers(&self, name: &str) -> bool {
        match self {
            Unreadable::None => false,
            Unreadable::All => true,
            Unreadable::Named(names) => names.iter().any(|n| n == name),
        }
    }
}

/// What [`read_artifacts`] read.
pub(super) struct ReadArtifacts {
    pub(super) artifacts: Vec<Artifact>,
    /// Every artifact was read completely.
    pub(super) complete: bool,
    pub(super) unreadable: Unreadable,
}

pub(super) fn read_artifacts(pipeline: &Obj<'_>, sink: &mut Sink) -> ReadArtifacts {
    let none = || ReadArtifacts {
        artifacts: Vec::new(),
        complete: false,
        unreadable: Unreadable::All,
    };
    let Some(value) = pipeline.required("artifacts", sink) else {
        return none();
    };
    let map = match &value.kind {
        ValueKind::Map(map) => map,
        ValueKind::List(_) => {
            sink.push(
                Diagnostic::new(
                    Code::WrongType,
                    value.span,
                    "`artifacts` must be a map keyed by display name, found a list",
                )
                .with_help(
                    "write `artifacts:` followed by `  API Image:` entries, one key per artifact",
                ),
            );
            return none();
        }
        _ => {
            sink.error(
                Code::WrongType,
                value.span,
                format!(
                    "`artifacts` must be a map keyed by display name, found {}",
                    value.describe()
                ),
            );
            return none();
        }
    };
    let mut artifacts = Vec::with_capacity(map.len());
    let mut complete = true;
    let mut unreadable = Vec::new();
    for (name, body) in map.iter() {
        match read_artifact(name, body, sink) {
            Some((a, ok)) => {
                complete &= ok;
                artifacts.push(a);
            }
            None => {
                complete = false;
                unreadable.push(name.value.clone());
                unreadable.push(normalize_id(&name.value));
                let id = body.as_map().and_then(|m| m.get("id"));
                unreadable.extend(id.and_then(Value::as_str).map(str::to_owned));
            }
        }
    }
    ReadArtifacts {
        artifacts,
        complete,
        unreadable: if unreadable.is_empty() {
            Unreadable::None
        } else {
            Unreadable::Named(unreadable)
        },
    }
}

/// Reads an artifact; `false` when its type or a required parameter is missing or invalid (the
/// artifact is then kept with placeholders so that checks across artifacts, such as unique ids,
/// still run). `None` when it has no usable id or is not a map.
fn read_artifact(
    name: &Spanned<String>,
    value: &Value,
    sink: &mut Sink,
) -> Option<(Artifact, bool)> {
    let what = format!("artifact `{}`", name.value);
    let obj = Obj::new(value, what.clone(), sink)?;
    obj.check_keys(ARTIFACT_KEYS, sink);
    let id = match obj.optional_str("id", sink) {
        Some(id) if id.value.is_empty() => {
            sink.push(
                Diagnostic::new(
                    Code::InvalidArtifactId,
                    id.span,
                    format!("the id of artifact `{}` is empty", name.value),
                )
                .with_help(format!(
                    "remove `id` to use the id derived from the name (`{}`), or write one",
                    normalize_id(&name.value)
                )),
            );
            Some((id, true))
        }
        Some(id) => {
            // Kept as written (DevRamps' guide writes `frontend_bundle`); only AWS resource
            // names normalize it (`plan::naming`), so it needs a letter or digit to keep there.
            let mut bytes = id.value.bytes();
            let usable = bytes
                .clone()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && bytes.any(|b| b.is_ascii_alphanumeric());
            if !usable {
                let fixed = normalize_id(&id.value);
                sink.push(
                    Diagnostic::new(
                        Code::InvalidArtifactId,
                        id.span,
                        format!(
                            "artifact id `{}` may only use letters, digits, `-` and `_`, with at \
                             least one letter or digit",
                            id.value
                        ),
                    )
                    .with_help(if fixed.is_empty() {
                        "use letters or digits".to_owned()
                    } else {
                        format!("try `{fixed}`")
                    }),
                );
            }
            Some((id, true))
        }
        None => {
            let derived = normalize_id(&name.value);
            if derived.is_empty() {
                sink.push(
                    Diagnostic::new(
                        Code::InvalidArtifactId,
                        name.span,
                        format!("artifact name `{}` gives an empty id", name.value),
                    )
                    .with_help("use a name with letters or digits, or set `id`"),
                );
                None
            } else {
                Some((Spanned::new(derived, name.span), false))
            }
        }
    };
    let artifact_type = obj.required_enum::<ArtifactType>("type", sink);
    let rebuild_when_changed = obj.optional_str_list("rebuild_when_changed", sink);
    for path in rebuild_when_changed.iter().flatten() {
        check_repo_path(path, "`rebuild_when_changed` entry", sink);
    }
    let params = obj.optional_map("params", sink);
    let params_span = obj.map.entry("params").map_or(obj.span, |(k, _)| k.span);
    let typed = artifact_type.as_ref().and_then(|t| {
        read_params(
            t.value,
            &Params {
                map: &params,
                owner: format!("{what} ({})", t.value),
                span: params_span,
            },
            sink,
        )
    });
    let architecture = obj.optional_enum::<Architecture>("architecture", sink);
    let host_size = obj.optional_enum::<HostSize>("host_size", sink);
    let per_stage = obj.optional_bool("per_stage", sink);
    let dependencies = obj.optional_str_list("dependencies", sink);
    let envs = obj.optional_map("envs", sink);
    let (id, id_written) = id?;
    let ok = artifact_type.is_some() && typed.is_some();
    let artifact = Artifact {
        name: name.clone(),
        id,
        id_written,
        artifact_type: artifact_type
            .unwrap_or_else(|| Spanned::unspanned(ArtifactType::DockerBuild)),
        architecture,
        host_size: host_size.unwrap_or_else(|| Spanned::unspanned(HostSize::Small)),
        per_stage: per_stage.unwrap_or_else(|| Spanned::unspanned(false)),
        rebuild_when_changed,
        dependencies: dependencies.unwrap_or_default(),
        envs,
        typed: typed.unwrap_or_else(|| ArtifactParams::DockerBuild {
            dockerfile: Value::unspanned(ValueKind::Null),
            build_root: None,
            args: Vec::new(),
            env: ValueMap::default(),
        }),
        params,
        span: value.span,
    };
    Some((artifact, ok))
}

fn read_params(t: ArtifactType, p: &Params<'_>, sink: &mut Sink) -> Option<ArtifactParams> {
    let path = |v: &Value, what: &str, sink: &mut Sink| {
        if let Some(s) = as_string(v, what, sink) {
            check_repo_path(&s, what, sink);
        }
    };
    match t {
        ArtifactType::DockerBuild => {
            p.check_known(DOCKER_BUILD_PARAMS, sink);
            let dockerfile = p.required_string("dockerfile", sink);
            if let Some(d) = dockerfile {
                path(d, "`dockerfile`", sink);
            }
            let build_root = p
                .optional("build_root")
                .and_then(|v| p.string_like("build_root", v, sink));
            if let Some(b) = build_root {
                path(b, "`build_root`", sink);
            }
            let args = match p.optional("args") {
                None => Vec::new(),
                Some(Value {
                    kind: ValueKind::List(items),
                    ..
                }) => {
                    for arg in items {
                        check_build_arg(arg, &p.owner, sink);
                    }
                    items.clone()
                }
                Some(v) => {
                    sink.error(
                        Code::WrongType,
                        v.span,
                        format!("parameter `args` of {} must be a list of `KEY=VALUE` strings, found {}", p.owner, v.describe()),
                    );
                    Vec::new()
                }
            };
            Some(ArtifactParams::DockerBuild {
                dockerfile: dockerfile?.clone(),
                build_root: build_root.cloned(),
                args,
                env: p.map("env", sink),
            })
        }
        ArtifactType::BundleBuild => {
            p.check_known(BUNDLE_BUILD_PARAMS, sink);
            let build_commands = p.required_string("build_commands", sink);
            let file_path = p.required_string("file_path", sink);
            if let Some(f) = file_path {
                path(f, "`file_path`", sink);
            }
            Some(ArtifactParams::BundleBuild {
                build_commands: build_commands?.clone(),
                file_path: file_path?.clone(),
                env: p.map("env", sink),
            })
        }
        ArtifactType::DockerImport => {
            p.check_known(DOCKER_IMPORT_PARAMS, sink);
            let url = p.required_string("source_image_url", sink);
            if let Some(u) = url {
                check_image_url(u, &p.owner, sink);
            }
            let timeout_minutes = p.optional("timeout_minutes");
            if let Some(t) = timeout_minutes {
                check_positive_int(t, &format!("`timeout_minutes` of {}", p.owner), sink);
            }
            Some(ArtifactParams::DockerImport {
                source_image_url: url?.clone(),
                timeout_minutes: timeout_minutes.cloned(),
            })
        }
        ArtifactType::BundleImport => {
            p.check_known(BUNDLE_IMPORT_PARAMS, sink);
            let account = p.required("source_account", sink);
            if let Some(a) = account {
                super::document::read_account_id(a, &p.owner, sink);
            }
            let region = p.required_string("source_region", sink);
            if let Some(r) = region.and_then(|r| as_string(r, "", sink))
                && !has_expression(&Value::unspanned(ValueKind::String(r.value.clone())))
            {
                super::document::check_region(&r, &p.owner, sink);
            }
            let url = p.required_string("source_s3_url", sink);
            if let Some(u) = url
                && let Some(s) = u.as_str()
                && !has_expression(u)
                && !s.starts_with("s3://")
            {
                sink.push(
                    Diagnostic::new(
                        Code::InvalidImportSource,
                        u.span,
                        format!(
                            "`source_s3_url` of {} must be an `s3://bucket/key` URL, found `{s}`",
                            p.owner
                        ),
                    )
                    .with_help("for example s3://my-bucket/builds/app.zip"),
                );
            }
            let timeout_minutes = p.optional("timeout_minutes");
            if let Some(t) = timeout_minutes {
                check_positive_int(t, &format!("`timeout_minutes` of {}", p.owner), sink);
            }
            Some(ArtifactParams::BundleImport {
                source_account: account?.clone(),
                source_region: region?.clone(),
                source_s3_url: url?.clone(),
                timeout_minutes: timeout_minutes.cloned(),
            })
        }
    }
}

fn check_build_arg(arg: &Value, owner: &str, sink: &mut Sink) {
    let ok = match &arg.kind {
        ValueKind::String(s) => s.split_once('=').is_some_and(|(k, _)| !k.is_empty()),
        _ => false,
    };
    if !ok {
        sink.push(
            Diagnostic::new(
                Code::InvalidBuildArg,
                arg.span,
                format!("build argument `{arg}` of {owner} is not `KEY=VALUE`"),
            )
            .with_help("write build arguments as strings such as NODE_ENV=production"),
        );
    }
}

/// Docker imports name their source account in the URL: `<12 digits>.dkr.ecr.<region>...`.
fn check_image_url(url: &Value, owner: &str, sink: &mut Sink) {
    let Some(s) = url.as_str() else { return };
    if has_expression(url) {
        return;
    }
    let account = s.split('.').next().unwrap_or_default();
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && s[12..].starts_with(".dkr.ecr.");
    if !ok {
        sink.push(
            Diagnostic::new(
                Code::InvalidImportSource,
                url.span,
                format!("`source_image_url` of {owner} must be an ECR image URL, found `{s}`"),
            )
            .with_help("for example 123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag"),
        );
    }
}
