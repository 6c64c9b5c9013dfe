//! `check` never panics, never hangs, and always explains a rejection.
//!
//! Every input, however broken, must give back a [`Checked`] in which:
//!
//! - a missing definition comes with at least one error (and a definition with none);
//! - every diagnostic points into the text: line and column are at least 1, the byte range
//!   `offset..offset + len` lies inside the text and starts and ends on character boundaries
//!   (so renderers can slice the source with it).
//!
//! Inputs: arbitrary strings, YAML-ish character soup, the shared example pipelines with random
//! mutations, and pipeline-shaped documents generated from the schema's keys with random values
//! (where `check` must also be deterministic). Hostile inputs (alias bombs, very deep nesting,
//! very wide documents) are plain tests that must finish quickly with an error.
//!
//! The property tests run 256 cases each, which fits the CI budget. To search harder:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p devramps-core --test no_panic --release
//! ```

use std::time::{Duration, Instant};

use devramps_core::pipeline::{Checked, Diagnostic};
use devramps_core::plan::check;
#[path = "support/mutate.rs"]
mod mutate;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{
    FileFailurePersistence, TestCaseError, TestRunner, contextualize_config,
};

/// The shared example pipelines, relative to this crate.
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/pipelines/"
);

/// The example pipelines the mutation test starts from.
const FIXTURE_FILES: &[&str] = &["api.yaml", "minimal.yaml"];

/// Cases per property in CI; `PROPTEST_CASES` overrides it.
const CASES: u32 = 256;

/// The longest one ordinary input may take to check (a generous bound: it only catches hangs
/// and runaway work, in debug builds on a busy machine).
const SLOW: Duration = Duration::from_secs(10);

/// 256 cases (`PROPTEST_CASES` overrides it); a failing input is saved beside this file in
/// `no_panic.proptest-regressions` and tried first on the next run.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Checks `text` and asserts the invariants every result must hold.
fn checked_with_invariants(text: &str) -> Result<Checked, TestCaseError> {
    let start = Instant::now();
    let checked = check(text);
    let elapsed = start.elapsed();
    prop_assert!(
        elapsed < SLOW,
        "check took {elapsed:?} on {} bytes: {text:?}",
        text.len()
    );
    let has_error = checked.diagnostics.iter().any(Diagnostic::is_error);
    if checked.definition.is_none() {
        prop_assert!(
            has_error,
            "no definition but no error either: {:?}\ninput: {text:?}",
            checked.diagnostics
        );
    } else {
        prop_assert!(
            !has_error,
            "a definition despite errors: {:?}\ninput: {text:?}",
            checked.diagnostics
        );
    }
    for d in &checked.diagnostics {
        let span = d.span;
        prop_assert!(
            span.line >= 1 && span.column >= 1,
            "diagnostic without a position: {d:?}\ninput: {text:?}"
        );
        let end = span.offset.checked_add(span.len);
        prop_assert!(
            end.is_some_and(|end| end <= text.len()),
            "span past the end of the text ({} bytes): {d:?}\ninput: {text:?}",
            text.len()
        );
        prop_assert!(
            text.is_char_boundary(span.offset),
            "span starts inside a character: {d:?}\ninput: {text:?}"
        );
        prop_assert!(
            text.is_char_boundary(span.offset + span.len),
            "span ends inside a character: {d:?}\ninput: {text:?}"
        );
    }
    Ok(checked)
}

/// Reads one of the shared example pipelines.
fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Arbitrary strings.

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_strings_do_not_panic(text in any::<String>()) {
        checked_with_invariants(&text)?;
    }

    #[test]
    fn yaml_like_strings_do_not_panic(
        text in "[a-z:\\-\\[\\]{}\"' \n\t#&*!|>0-9.$]{0,200}"
    ) {
        checked_with_invariants(&text)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Mutated example pipelines.

fn mutated_fixture() -> impl Strategy<Value = String> {
    let texts: Vec<String> = FIXTURE_FILES.iter().map(|f| fixture(f)).collect();
    mutate::mutated(texts, mutate::TOKENS.to_vec())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_examples_do_not_panic(text in mutated_fixture()) {
        checked_with_invariants(&text)?;
    }
}

#[test]
fn unmutated_examples_are_valid() {
    for name in FIXTURE_FILES {
        let text = fixture(name);
        let checked = check(&text);
        assert!(
            checked.definition.is_some(),
            "{name} should be valid: {:?}",
            checked.diagnostics
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pipeline-shaped documents.

/// How a string scalar is written.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// Plain when that is safe, else double-quoted.
    Plain,
    /// `'...'`.
    Single,
    /// `"..."` with the usual escapes.
    Double,
    /// `"..."` with every non-ASCII character escaped (`\u00e9`), so that the string and its
    /// source spelling differ.
    Escaped,
    /// A literal block scalar (`|-`), when the value is on its own line.
    Literal,
}

/// A YAML node to render.
#[derive(Clone, Debug)]
enum Node {
    /// Written as is (a plain scalar from a list of known values).
    Raw(&'static str),
    /// A string, written in a style.
    Str(String, Style),
    /// A mapping; `true` for flow style.
    Map(Vec<(String, Node)>, bool),
    /// A sequence; `true` for flow style.
    List(Vec<Node>, bool),
}

/// Every key the schema knows, in any place.
const KEYS: &[&str] = &[
    "version",
    "pipeline",
    "cloud_provider",
    "pipeline_updates_require_approval",
    "tracks",
    "stage_defaults",
    "stages",
    "steps",
    "artifacts",
    "notifications",
    "ephemeral_environments",
    "infrastructure_provider",
    "deployment_time_window",
    "infrastructure",
    "name",
    "account_id",
    "region",
    "vars",
    "skip",
    "auto_rollback_alarm_name",
    "id",
    "type",
    "params",
    "goes_after",
    "architecture",
    "host_size",
    "per_stage",
    "rebuild_when_changed",
    "dependencies",
    "envs",
    "slack",
    "channel",
    "events",
    "triggers",
    "release",
    "on_release",
    "on",
    "target_branches",
    "after_idle_hours",
];

/// Parameter names of the built-in step and artifact types.
const PARAM_KEYS: &[&str] = &[
    "requires_approval",
    "source",
    "variables",
    "timeout",
    "cluster_name",
    "service_name",
    "reference_task_definition",
    "image_url",
    "duration_minutes",
    "testCommand",
    "workingDirectory",
    "environmentVariables",
    "testType",
    "dockerfile",
    "build_root",
    "args",
    "env",
    "build_commands",
    "file_path",
    "source_image_url",
    "timeout_minutes",
    "source_account",
    "source_region",
    "source_s3_url",
    "target",
];

/// Scalars that mean something somewhere in the schema (and some near misses).
const VALUES: &[&str] = &[
    "AWS",
    "aws",
    "GCP",
    "ALWAYS",
    "NEVER",
    "DESTRUCTIVE_CHANGES_ONLY",
    "always",
    "NONE",
    "PACIFIC_WORKING_HOURS",
    "PACIFIC_WORKING_HOURS_REDUCED",
    "EVENINGS",
    "\"1.0.0\"",
    "1.0.0",
    "2.0.0",
    "1",
    "0",
    "-5",
    "30",
    "1.5",
    ".nan",
    "1e400",
    "99999999999999999999999",
    "true",
    "false",
    "yes",
    "null",
    "~",
    "\"\"",
    "\"111111111111\"",
    "111111111111",
    "\"12345\"",
    "us-east-1",
    "eu-west-2",
    "US-EAST-1",
    "mars-1",
    "main",
    "staging",
    "prod",
    "Prod",
    "qa-1",
    "infra",
    "deploy",
    "Deploy",
    "Infra",
    "Bake",
    "DEVRAMPS:ECS:DEPLOY",
    "DEVRAMPS:TERRAFORM:SYNTHESIZE",
    "DEVRAMPS:APPROVAL:BAKE",
    "DEVRAMPS:APPROVAL:TEST",
    "DEVRAMPS:LAMBDA:DEPLOY",
    "DEVRAMPS:MIRROR:ECR",
    "DEVRAMPS:NOPE:NOPE",
    "DEVRAMPS:DOCKER:BUILD",
    "DEVRAMPS:DOCKER:IMPORT",
    "DEVRAMPS:BUNDLE:BUILD",
    "DEVRAMPS:BUNDLE:IMPORT",
    "CUSTOM:SCRIPT:DEPLOY",
    "CUSTOM:",
    "custom:script",
    "linux/amd64",
    "linux/arm64",
    "small",
    "large",
    "huge",
    "/Dockerfile",
    "/services/api",
    "/services/**/*.rs",
    "services/api",
    "./web",
    "NODE_ENV=production",
    "=x",
    "s3://bucket/key.zip",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag",
    "pull_request",
    "api",
    "timeout",
    "pr_closed",
    "deploy_main",
    "stage_failed",
    "approval_required",
    "\"#deploys\"",
    "feat-*",
];

/// Expression-bearing strings, valid and broken.
const EXPRESSIONS: &[&str] = &[
    "${{ vars.env }}",
    "${{ vars.replicas }}",
    "${{ vars.missing }}",
    "${{ stage.name }}",
    "${{ stage.region }}",
    "${{ stage.nope }}",
    "${{ stage.artifacts[\"API Image\"].image_url }}",
    "${{ stage.artifacts[\"Nope\"].image_url }}",
    "${{ stage.artifacts.api.s3_url }}",
    "${{ stage.artifacts }}",
    "${{ stage.secrets[\"DB\"] }}",
    "${{ steps.infra.cluster }}",
    "${{ steps.Deploy.url }}",
    "${{ steps.infra }}",
    "${{ steps.nope.x }}",
    "${{ secret(\"API_KEY\") }}",
    "${{ secret(API_KEY) }}",
    "${{ secret(\"\") }}",
    "${{ stage_secret(\"DB\") }}",
    "${{ nope(\"x\") }}",
    "${{ trigger.revision }}",
    "${{ trigger.sha }}",
    "${{ organization.slug }}-${{ pipeline.slug }}-${{ stage.name }}",
    "${{ organization.secrets[\"X\"] }}",
    "${{ foo.bar }}",
    "${{",
    "${{ }}",
    "${{ vars. }}",
    "${{ vars.env",
    "${{ vars.env }} }}",
    "${{ \"unterminated }}",
    "${{ stage.artifacts[\"é\"].image_url }}",
    "é ${{ vars.ü }} ü",
    "日本 ${{ vars.日本 }}",
    "💥${{ steps.💥.x }}",
    "$${{ literal }}",
    "a\tb ${{ vars.x }}",
    "line one\n${{ vars.two }}\nline three",
];

/// Display names of artifacts, as map keys.
const ARTIFACT_NAMES: &[&str] = &["API Image", "Web Bundle", "api", "é", "---", "Api Image"];

/// Names of variables.
const VAR_NAMES: &[&str] = &["env", "replicas", "x", "two", "ü", "日本"];

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        4 => Just(Style::Plain),
        1 => Just(Style::Single),
        2 => Just(Style::Double),
        1 => Just(Style::Escaped),
        1 => Just(Style::Literal),
    ]
}

/// A scalar: a known value, an expression, or a random string or number.
fn leaf() -> BoxedStrategy<Node> {
    prop_oneof![
        4 => select(VALUES).prop_map(Node::Raw),
        3 => (select(EXPRESSIONS), style()).prop_map(|(e, s)| Node::Str(e.to_owned(), s)),
        1 => ("[ -~]{0,16}", style()).prop_map(|(t, s)| Node::Str(t, s)),
        1 => ("\\PC{0,8}", style()).prop_map(|(t, s)| Node::Str(t, s)),
        1 => any::<i64>().prop_map(|n| Node::Str(n.to_string(), Style::Plain)),
    ]
    .boxed()
}

/// A key: mostly one the schema knows.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(KEYS).prop_map(str::to_owned),
        2 => select(PARAM_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_ é]{1,10}",
    ]
    .boxed()
}

/// Any small YAML value built from known keys and scalars.
fn any_value() -> BoxedStrategy<Node> {
    leaf()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                (
                    prop::collection::vec((key(), inner.clone()), 0..5),
                    any::<bool>()
                )
                    .prop_map(|(e, flow)| Node::Map(e, flow)),
                (prop::collection::vec(inner, 0..5), any::<bool>())
                    .prop_map(|(items, flow)| Node::List(items, flow)),
            ]
        })
        .boxed()
}

/// Mostly `typed`, sometimes anything (a wrong type).
fn or_any(typed: impl Strategy<Value = Node> + 'static) -> BoxedStrategy<Node> {
    prop_oneof![20 => typed, 1 => any_value()].boxed()
}

/// Mostly one of the `valid` values of a field, sometimes any scalar, sometimes anything.
fn pick(valid: &'static [&'static str]) -> BoxedStrategy<Node> {
    prop_oneof![
        30 => select(valid).prop_map(Node::Raw),
        1 => leaf(),
        1 => any_value(),
    ]
    .boxed()
}

/// Mostly one of the `valid` strings of a field, in any style.
fn pick_str(valid: &'static [&'static str]) -> BoxedStrategy<Node> {
    prop_oneof![
        30 => (select(valid), style()).prop_map(|(v, s)| Node::Str(v.to_owned(), s)),
        1 => leaf(),
        1 => any_value(),
    ]
    .boxed()
}

/// An optional entry of an object.
type Entry = BoxedStrategy<Option<(String, Node)>>;

fn entry(key: &'static str, present: f64, value: BoxedStrategy<Node>) -> Entry {
    prop::option::weighted(present, value.prop_map(move |v| (key.to_owned(), v))).boxed()
}

/// An object with some of `entries`, in shuffled order now and then, sometimes with an
/// unknown (or repeated) key, sometimes in flow style.
fn object(entries: Vec<Entry>) -> BoxedStrategy<Node> {
    let extra = entry("", 0.03, any_value())
        .prop_flat_map(|e| key().prop_map(move |k| e.clone().map(|(_, v)| (k, v))));
    (entries, extra, any::<bool>(), prop::bool::weighted(0.1))
        .prop_flat_map(|(entries, extra, shuffle, flow)| {
            let mut entries: Vec<(String, Node)> = entries.into_iter().flatten().collect();
            entries.extend(extra);
            let n = entries.len();
            let order: BoxedStrategy<Vec<usize>> = if shuffle {
                Just((0..n).collect::<Vec<_>>()).prop_shuffle().boxed()
            } else {
                Just((0..n).collect()).boxed()
            };
            order.prop_map(move |order| {
                Node::Map(order.iter().map(|&i| entries[i].clone()).collect(), flow)
            })
        })
        .boxed()
}

fn list_of(item: BoxedStrategy<Node>, min: usize, max: usize) -> BoxedStrategy<Node> {
    (
        prop::collection::vec(item, min..=max),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(items, flow)| Node::List(items, flow))
        .boxed()
}

fn map_of(
    keys: BoxedStrategy<String>,
    value: BoxedStrategy<Node>,
    max: usize,
) -> BoxedStrategy<Node> {
    (
        prop::collection::vec((keys, value), 0..=max),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(e, flow)| Node::Map(e, flow))
        .boxed()
}

fn keys_from(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        20 => select(keys).prop_map(str::to_owned),
        1 => key(),
    ]
    .boxed()
}

/// Step names and ids, as `goes_after` and `skip` entries and expressions use them.
const STEP_NAMES: &[&str] = &["Deploy", "Infra", "Bake", "Migrate", "Deploy API"];
const STEP_IDS: &[&str] = &["deploy", "infra", "bake", "migrate", "api"];
const STEP_REFS: &[&str] = &[
    "Deploy", "Infra", "Bake", "Migrate", "deploy", "infra", "bake", "migrate",
];

/// Expressions that are valid in step parameters of every stage generated below.
const GOOD_EXPRESSIONS: &[&str] = &[
    "${{ stage.name }}",
    "${{ stage.region }}",
    "${{ stage.account_id }}",
    "${{ trigger.revision }}",
    "${{ trigger.sha }}",
    "${{ pipeline.slug }}",
    "${{ organization.slug }}-${{ pipeline.slug }}-${{ stage.name }}",
    "${{ secret(\"API_KEY\") }}",
    "${{ stage_secret(\"DB\") }}",
    "${{ organization.secrets[\"X\"] }}",
    "api-${{ stage.name }}.example.com",
    "é ${{ stage.name }} ü",
    "日本 ${{ trigger.branch }}",
    "$${{ literal }}",
    "plain text",
    "/path/to/file",
];

fn step_refs() -> BoxedStrategy<Node> {
    or_any(list_of(pick(STEP_REFS), 0, 3))
}

fn vars() -> BoxedStrategy<Node> {
    or_any(map_of(keys_from(VAR_NAMES), leaf(), 4))
}

fn param_value() -> BoxedStrategy<Node> {
    prop_oneof![
        12 => pick_str(GOOD_EXPRESSIONS),
        3 => (select(EXPRESSIONS), style()).prop_map(|(e, s)| Node::Str(e.to_owned(), s)),
        2 => leaf(),
        1 => map_of(keys_from(VAR_NAMES), pick_str(GOOD_EXPRESSIONS), 3),
        1 => list_of(pick_str(GOOD_EXPRESSIONS), 0, 3),
    ]
    .boxed()
}

fn params() -> BoxedStrategy<Node> {
    or_any(map_of(keys_from(PARAM_KEYS), param_value(), 4))
}

fn stage() -> BoxedStrategy<Node> {
    object(vec![
        entry("name", 0.97, pick(&["staging", "prod", "qa-1", "dev"])),
        entry(
            "account_id",
            0.97,
            pick(&["\"111111111111\"", "\"222222222222\"", "'333333333333'"]),
        ),
        entry(
            "region",
            0.97,
            pick(&["us-east-1", "eu-west-2", "ap-southeast-2"]),
        ),
        entry(
            "deployment_time_window",
            0.3,
            pick(&[
                "NONE",
                "PACIFIC_WORKING_HOURS",
                "PACIFIC_WORKING_HOURS_REDUCED",
            ]),
        ),
        entry("vars", 0.4, vars()),
        entry("skip", 0.2, step_refs()),
        entry("auto_rollback_alarm_name", 0.1, pick(&["api-5xx"])),
    ])
}

fn step() -> BoxedStrategy<Node> {
    object(vec![
        entry("name", 0.97, pick(STEP_NAMES)),
        entry("id", 0.4, pick(STEP_IDS)),
        entry(
            "type",
            0.97,
            prop_oneof![
                6 => pick(&["CUSTOM:SCRIPT:DEPLOY", "CUSTOM:DB:MIGRATE", "CUSTOM:X.Y-z_1"]),
                1 => pick(&[
                    "DEVRAMPS:ECS:DEPLOY",
                    "DEVRAMPS:TERRAFORM:SYNTHESIZE",
                    "DEVRAMPS:APPROVAL:BAKE",
                    "DEVRAMPS:APPROVAL:TEST",
                    "DEVRAMPS:LAMBDA:DEPLOY",
                ]),
            ]
            .boxed(),
        ),
        entry("goes_after", 0.3, step_refs()),
        entry("params", 0.8, params()),
    ])
}

fn artifact() -> BoxedStrategy<Node> {
    object(vec![
        entry("id", 0.3, pick(&["api", "web", "Bad Id"])),
        entry(
            "type",
            0.97,
            pick(&[
                "DEVRAMPS:DOCKER:BUILD",
                "DEVRAMPS:DOCKER:IMPORT",
                "DEVRAMPS:BUNDLE:BUILD",
                "DEVRAMPS:BUNDLE:IMPORT",
            ]),
        ),
        entry("architecture", 0.3, pick(&["linux/amd64", "linux/arm64"])),
        entry("host_size", 0.2, pick(&["small", "medium", "large"])),
        entry("per_stage", 0.3, pick(&["true", "false"])),
        entry(
            "rebuild_when_changed",
            0.4,
            or_any(list_of(
                pick(&[
                    "/services/api",
                    "/services/**/*.rs",
                    "/Dockerfile",
                    "relative/path",
                ]),
                0,
                3,
            )),
        ),
        entry(
            "dependencies",
            0.2,
            or_any(list_of(pick(&["node.20", "node.22"]), 0, 2)),
        ),
        entry(
            "params",
            0.9,
            or_any(object(vec![
                entry("dockerfile", 0.5, pick(&["/Dockerfile", "Dockerfile"])),
                entry("build_root", 0.2, pick(&["/", "/services/api"])),
                entry(
                    "args",
                    0.2,
                    or_any(list_of(pick(&["NODE_ENV=production", "=x"]), 0, 2)),
                ),
                entry(
                    "build_commands",
                    0.4,
                    pick_str(&["npm ci && npm run build", "make\nzip -r out.zip dist"]),
                ),
                entry("file_path", 0.4, pick(&["/web.zip", "web.zip"])),
                entry(
                    "source_image_url",
                    0.3,
                    pick(&[
                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/repo:tag",
                        "docker.io/x",
                    ]),
                ),
                entry("source_account", 0.2, pick(&["\"123456789012\""])),
                entry("source_region", 0.2, pick(&["us-west-2"])),
                entry(
                    "source_s3_url",
                    0.2,
                    pick(&["s3://bucket/key.zip", "https://x"]),
                ),
                entry("timeout_minutes", 0.2, pick(&["30", "0", "-1"])),
                entry("env", 0.3, map_of(keys_from(VAR_NAMES), param_value(), 2)),
            ])),
        ),
        entry("envs", 0.1, vars()),
    ])
}

fn ephemeral() -> BoxedStrategy<Node> {
    let rule = object(vec![
        entry(
            "on",
            0.9,
            pick(&["pull_request", "api", "pr_closed", "timeout"]),
        ),
        entry(
            "target_branches",
            0.4,
            or_any(list_of(pick(&["main", "feat-*"]), 0, 2)),
        ),
        entry("after_idle_hours", 0.3, pick(&["24", "0", "1.5"])),
    ]);
    object(vec![
        entry("triggers", 0.9, or_any(list_of(rule.clone(), 0, 2))),
        entry("release", 0.9, or_any(list_of(rule, 0, 2))),
        entry("on_release", 0.9, pick(&["deploy_main"])),
        entry("account_id", 0.9, pick(&["\"444444444444\""])),
        entry("region", 0.9, pick(&["us-east-1"])),
        entry("vars", 0.3, vars()),
        entry("skip", 0.2, step_refs()),
    ])
}

fn pipeline() -> BoxedStrategy<Node> {
    let slack = object(vec![
        entry("channel", 0.9, pick(&["\"#deploys\""])),
        entry(
            "events",
            0.9,
            or_any(list_of(
                pick(&["stage_failed", "approval_required", "ephemeral_claimed"]),
                0,
                2,
            )),
        ),
    ]);
    object(vec![
        entry("cloud_provider", 0.97, pick(&["AWS"])),
        entry(
            "pipeline_updates_require_approval",
            0.97,
            pick(&["ALWAYS", "NEVER", "DESTRUCTIVE_CHANGES_ONLY"]),
        ),
        entry("tracks", 0.2, pick(&["main", "release/*"])),
        entry(
            "stage_defaults",
            0.2,
            or_any(object(vec![entry(
                "deployment_time_window",
                0.8,
                pick(&["NONE", "PACIFIC_WORKING_HOURS"]),
            )])),
        ),
        entry("stages", 0.97, or_any(list_of(stage(), 1, 3))),
        entry("steps", 0.97, or_any(list_of(step(), 1, 4))),
        entry(
            "artifacts",
            0.97,
            or_any(prop_oneof![
                2 => Just(Node::Map(Vec::new(), true)),
                1 => map_of(keys_from(ARTIFACT_NAMES), artifact(), 2),
            ]),
        ),
        entry(
            "notifications",
            0.1,
            or_any(object(vec![entry("slack", 0.8, slack)])),
        ),
        entry(
            "ephemeral_environments",
            0.1,
            or_any(map_of(keys_from(&["dev", "pr", "staging"]), ephemeral(), 2)),
        ),
    ])
}

fn document() -> BoxedStrategy<Node> {
    or_any(object(vec![
        entry("version", 0.97, pick(&["\"1.0.0\"", "'1.0.0'"])),
        entry("pipeline", 0.99, pipeline()),
    ]))
}

/// A key-value pair of a generated object.
fn kv(key: &str, value: Node) -> (String, Node) {
    (key.to_owned(), value)
}

/// A string value written in a random style.
fn styled(values: &'static [&'static str]) -> BoxedStrategy<Node> {
    (select(values), style())
        .prop_map(|(v, s)| Node::Str(v.to_owned(), s))
        .boxed()
}

/// Keys in generated order or shuffled, in block or (rarely) flow style.
fn arrange(entries: Vec<(String, Node)>) -> BoxedStrategy<Node> {
    let n = entries.len();
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        any::<bool>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(order, shuffle, flow)| {
            let entries = if shuffle {
                order.iter().map(|&i| entries[i].clone()).collect()
            } else {
                entries.clone()
            };
            Node::Map(entries, flow)
        })
        .boxed()
}

/// The parameters a step of `step_type` needs, with expression values.
fn tame_params(step_type: &str) -> BoxedStrategy<Node> {
    let required: &[(&str, &'static [&'static str])] = match step_type {
        "DEVRAMPS:ECS:DEPLOY" => &[
            ("cluster_name", GOOD_EXPRESSIONS),
            ("service_name", GOOD_EXPRESSIONS),
            ("reference_task_definition", GOOD_EXPRESSIONS),
            ("image_url", GOOD_EXPRESSIONS),
        ],
        "DEVRAMPS:APPROVAL:BAKE" => &[("duration_minutes", &["30", "5"])],
        "DEVRAMPS:TERRAFORM:SYNTHESIZE" => &[("source", &["/infra", "/terraform/app"])],
        _ => &[],
    };
    let fixed: Vec<BoxedStrategy<(String, Node)>> = required
        .iter()
        .map(|&(k, values)| {
            let styled = if k == "duration_minutes" {
                select(values).prop_map(Node::Raw).boxed()
            } else {
                styled(values)
            };
            styled.prop_map(move |v| kv(k, v)).boxed()
        })
        .collect();
    let custom = step_type.starts_with("CUSTOM:");
    let free = prop::sample::subsequence(&["target", "env", "command", "url"][..], 0..=3)
        .prop_flat_map(move |keys| {
            keys.into_iter()
                .map(|k| styled(GOOD_EXPRESSIONS).prop_map(move |v| kv(k, v)))
                .collect::<Vec<_>>()
        });
    (fixed, free)
        .prop_flat_map(move |(mut entries, free)| {
            if custom {
                entries.extend(free);
            }
            arrange(entries)
        })
        .boxed()
}

fn tame_stage(name: &'static str, step_refs: Vec<&'static str>) -> BoxedStrategy<Node> {
    (
        select(&["\"111111111111\"", "'222222222222'"][..]),
        select(&["us-east-1", "eu-west-2", "ap-southeast-2"][..]),
        prop::option::weighted(
            0.3,
            select(
                &[
                    "NONE",
                    "PACIFIC_WORKING_HOURS",
                    "PACIFIC_WORKING_HOURS_REDUCED",
                ][..],
            ),
        ),
        prop::sample::subsequence(VAR_NAMES, 0..=3),
        prop::sample::subsequence(step_refs.clone(), 0..=step_refs.len().min(1)),
        leaf(),
    )
        .prop_flat_map(move |(account, region, window, vars, skip, var_value)| {
            let mut entries = vec![
                kv("name", Node::Raw(name)),
                kv("account_id", Node::Raw(account)),
                kv("region", Node::Raw(region)),
            ];
            if let Some(w) = window {
                entries.push(kv("deployment_time_window", Node::Raw(w)));
            }
            if !vars.is_empty() {
                let vars = vars
                    .into_iter()
                    .map(|v| ((*v).to_owned(), var_value.clone()))
                    .collect();
                entries.push(kv("vars", Node::Map(vars, false)));
            }
            if !skip.is_empty() {
                let skip = skip.into_iter().map(Node::Raw).collect();
                entries.push(kv("skip", Node::List(skip, true)));
            }
            arrange(entries)
        })
        .boxed()
}

/// A step: name, id, type and parameters, waiting for some of the `earlier` steps.
fn tame_step(
    name: &'static str,
    id: Option<&'static str>,
    earlier: Vec<&'static str>,
) -> BoxedStrategy<Node> {
    let n = earlier.len();
    (
        prop_oneof![
            4 => select(&["CUSTOM:SCRIPT:DEPLOY", "CUSTOM:DB:MIGRATE"][..]),
            1 => select(&[
                "DEVRAMPS:ECS:DEPLOY",
                "DEVRAMPS:APPROVAL:BAKE",
                "DEVRAMPS:TERRAFORM:SYNTHESIZE",
            ][..]),
        ],
        prop::option::weighted(0.4, prop::sample::subsequence(earlier, 0..=n)),
    )
        .prop_flat_map(move |(step_type, goes_after)| {
            tame_params(step_type).prop_flat_map(move |params| {
                let mut entries = vec![kv("name", Node::Raw(name))];
                if let Some(id) = id {
                    entries.push(kv("id", Node::Raw(id)));
                }
                entries.push(kv("type", Node::Raw(step_type)));
                if let Some(deps) = &goes_after {
                    let deps = deps.iter().map(|d| Node::Raw(d)).collect();
                    entries.push(kv("goes_after", Node::List(deps, true)));
                }
                entries.push(kv("params", params));
                arrange(entries)
            })
        })
        .boxed()
}

/// Pipelines that are valid by construction (distinct names, acyclic `goes_after`, required
/// fields and parameters present), written in varied styles and key orders.
fn tame_document() -> BoxedStrategy<Node> {
    const STEPS: &[(&str, Option<&str>)] = &[
        ("Infra", Some("infra")),
        ("Deploy API", Some("deploy")),
        ("Migrate", None),
        ("Bake", Some("bake")),
        ("Notify", None),
    ];
    (
        prop::sample::subsequence(&["staging", "prod", "qa-1", "dev"][..], 1..=3),
        prop::sample::subsequence(STEPS, 1..=4),
    )
        .prop_flat_map(|(stage_names, steps)| {
            let refs: Vec<&'static str> =
                steps.iter().map(|&(name, id)| id.unwrap_or(name)).collect();
            let stages: Vec<BoxedStrategy<Node>> = stage_names
                .iter()
                .map(|&n| tame_stage(n, refs.clone()))
                .collect();
            let steps: Vec<BoxedStrategy<Node>> = steps
                .iter()
                .enumerate()
                .map(|(i, &(name, id))| tame_step(name, id, refs[..i].to_vec()))
                .collect();
            (
                stages,
                steps,
                select(&["ALWAYS", "NEVER", "DESTRUCTIVE_CHANGES_ONLY"][..]),
            )
        })
        .prop_flat_map(|(stages, steps, approval)| {
            let pipeline = vec![
                kv("cloud_provider", Node::Raw("AWS")),
                kv("pipeline_updates_require_approval", Node::Raw(approval)),
                kv("stages", Node::List(stages, false)),
                kv("steps", Node::List(steps, false)),
                kv("artifacts", Node::Map(Vec::new(), true)),
            ];
            arrange(pipeline)
        })
        .prop_flat_map(|pipeline| {
            arrange(vec![
                kv("version", Node::Raw("\"1.0.0\"")),
                kv("pipeline", pipeline),
            ])
        })
        .boxed()
}

/// Whether `s` can be written as a plain scalar (in flow context when `flow`).
fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !first.is_whitespace()
        && !s.ends_with(|c: char| c.is_whitespace() || c == ':')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control() || c == '\u{feff}')
        && !(flow && s.contains(|c| ",[]{}".contains(c)))
}

fn double_quoted(s: &str, escape_non_ascii: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{feff}' || (escape_non_ascii && !c.is_ascii()) => {
                let n = u32::from(c);
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A scalar on one line.
fn inline_scalar(s: &str, style: Style, flow: bool) -> String {
    match style {
        Style::Plain if plain_ok(s, flow) => s.to_owned(),
        Style::Single if !s.contains(|c: char| c.is_control() || c == '\u{feff}') => {
            format!("'{}'", s.replace('\'', "''"))
        }
        Style::Escaped => double_quoted(s, true),
        _ => double_quoted(s, false),
    }
}

fn flow_text(node: &Node) -> String {
    match node {
        Node::Raw(r) => (*r).to_owned(),
        Node::Str(s, style) => inline_scalar(s, *style, true),
        Node::Map(entries, _) => {
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", inline_scalar(k, Style::Plain, true), flow_text(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Node::List(items, _) => {
            let items: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// Whether a literal block scalar reproduces `s` (no leading spaces to confuse indentation
/// detection, no control characters, no trailing newline).
fn literal_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.ends_with('\n')
        && s.lines()
            .all(|l| !l.starts_with(' ') && !l.trim().is_empty())
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{feff}')
}

/// Writes what follows `key:` or `-`: a scalar on the same line or a nested block.
fn write_value(node: &Node, indent: usize, out: &mut String) {
    match node {
        Node::Str(s, Style::Literal) if literal_ok(s) => {
            out.push_str(" |-\n");
            for line in s.lines() {
                out.push_str(&" ".repeat(indent + 2));
                out.push_str(line);
                out.push('\n');
            }
        }
        Node::Map(entries, false) if !entries.is_empty() => {
            out.push('\n');
            write_block(node, indent + 2, out);
        }
        Node::List(items, false) if !items.is_empty() => {
            out.push('\n');
            write_block(node, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&flow_text(node));
            out.push('\n');
        }
    }
}

/// Writes a block mapping or sequence, each line at `indent`.
fn write_block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries, false) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(&inline_scalar(k, Style::Plain, false));
                out.push(':');
                write_value(v, indent, out);
            }
        }
        Node::List(items, false) if !items.is_empty() => {
            for item in items {
                if let Node::Map(entries, false) = item
                    && !entries.is_empty()
                {
                    // `- key: value` with the other keys aligned under the first.
                    let mut nested = String::new();
                    write_block(item, indent + 2, &mut nested);
                    out.push_str(&pad);
                    out.push_str("- ");
                    out.push_str(&nested[indent + 2..]);
                } else {
                    out.push_str(&pad);
                    out.push('-');
                    write_value(item, indent, out);
                }
            }
        }
        _ => {
            out.push_str(&pad);
            out.push_str(&flow_text(node));
            out.push('\n');
        }
    }
}

fn render(node: &Node) -> String {
    let mut out = String::new();
    write_block(node, 0, &mut out);
    out
}

#[test]
fn generated_documents_do_not_panic_and_are_deterministic() {
    let mut config = contextualize_config(config());
    config.source_file = Some(file!());
    let mut runner = TestRunner::new(config);
    let valid = std::cell::Cell::new(0u32);
    let codes = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let documents = prop_oneof![3 => document(), 1 => tame_document()];
    let result = runner.run(&documents.prop_map(|d| render(&d)), |text| {
        let first = checked_with_invariants(&text)?;
        let second = check(&text);
        prop_assert_eq!(
            &first.diagnostics,
            &second.diagnostics,
            "diagnostics differ between two runs on {:?}",
            text
        );
        prop_assert_eq!(
            format!("{:?}", first.definition),
            format!("{:?}", second.definition),
            "definitions differ between two runs on {:?}",
            text
        );
        if first.definition.is_some() {
            valid.set(valid.get() + 1);
        }
        let mut seen = codes.borrow_mut();
        for d in first.diagnostics.iter().filter(|d| d.is_error()) {
            *seen.entry(d.code.as_str()).or_insert(0u32) += 1;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let mut codes: Vec<(&str, u32)> = codes.into_inner().into_iter().collect();
    codes.sort_by_key(|&(code, n)| (std::cmp::Reverse(n), code));
    eprintln!(
        "generated documents: {} valid of {} cases; most frequent errors: {:?}",
        valid.get(),
        runner.config().cases,
        &codes[..codes.len().min(12)]
    );
}

#[test]
fn renderer_writes_the_yaml_it_means() {
    let doc = Node::Map(
        vec![
            ("version".to_owned(), Node::Raw("\"1.0.0\"")),
            (
                "pipeline".to_owned(),
                Node::Map(
                    vec![
                        ("cloud_provider".to_owned(), Node::Raw("AWS")),
                        (
                            "pipeline_updates_require_approval".to_owned(),
                            Node::Raw("NEVER"),
                        ),
                        (
                            "stages".to_owned(),
                            Node::List(
                                vec![Node::Map(
                                    vec![
                                        ("name".to_owned(), Node::Raw("staging")),
                                        ("account_id".to_owned(), Node::Raw("\"111111111111\"")),
                                        ("region".to_owned(), Node::Raw("us-east-1")),
                                    ],
                                    false,
                                )],
                                false,
                            ),
                        ),
                        (
                            "steps".to_owned(),
                            Node::List(
                                vec![Node::Map(
                                    vec![
                                        ("name".to_owned(), Node::Raw("Deploy")),
                                        ("type".to_owned(), Node::Raw("CUSTOM:SCRIPT:DEPLOY")),
                                        (
                                            "params".to_owned(),
                                            Node::Map(
                                                vec![(
                                                    "target".to_owned(),
                                                    Node::Str(
                                                        "é ${{ stage.name }}".to_owned(),
                                                        Style::Escaped,
                                                    ),
                                                )],
                                                false,
                                            ),
                                        ),
                                    ],
                                    false,
                                )],
                                false,
                            ),
                        ),
                        ("artifacts".to_owned(), Node::Map(Vec::new(), false)),
                    ],
                    false,
                ),
            ),
        ],
        false,
    );
    let text = render(&doc);
    let checked = check(&text);
    assert!(
        checked.definition.is_some(),
        "{text}\n{:?}",
        checked.diagnostics
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input: each must end quickly with an error.

/// The longest a hostile input may take to be rejected (debug build, busy machine).
const HOSTILE_LIMIT: Duration = Duration::from_secs(20);

/// The stack hostile inputs are checked on: the size of a main thread (and so of the CLI).
///
/// Test threads get 2 MiB, and in debug builds `check` needs about 30 KiB of stack per level of
/// nested mappings, so a mapping nested 62 levels deep (below the parser's depth budget of 64)
/// overflows a 2 MiB stack; see [`deep_mappings_fit_a_2_mib_stack`]. Release builds need less
/// than 1 MiB.
const HOSTILE_STACK: usize = 8 << 20;

/// Runs `f` on a thread with `stack` bytes of stack.
fn on_stack(stack: usize, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .expect("spawn a checking thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn assert_rejected_quickly(what: &str, text: &str) {
    let (what, text) = (what.to_owned(), text.to_owned());
    on_stack(HOSTILE_STACK, move || rejected_quickly(&what, &text));
}

fn rejected_quickly(what: &str, text: &str) {
    let start = Instant::now();
    let checked = check(text);
    let elapsed = start.elapsed();
    eprintln!(
        "{what}: {} bytes rejected in {elapsed:?} with {} diagnostic(s), first: {}",
        text.len(),
        checked.diagnostics.len(),
        checked
            .diagnostics
            .first()
            .map_or_else(String::new, ToString::to_string)
    );
    assert!(
        elapsed < HOSTILE_LIMIT,
        "{what}: check took {elapsed:?} on {} bytes",
        text.len()
    );
    assert!(checked.definition.is_none(), "{what}: accepted");
    assert!(
        checked.diagnostics.iter().any(Diagnostic::is_error),
        "{what}: no error"
    );
    for d in &checked.diagnostics {
        assert!(d.span.line >= 1 && d.span.column >= 1, "{what}: {d:?}");
        assert!(d.span.offset + d.span.len <= text.len(), "{what}: {d:?}");
        assert!(text.is_char_boundary(d.span.offset), "{what}: {d:?}");
    }
}

/// A block mapping nested `depth` levels deep: `a:` / ` a:` / `  a:` ...
fn nested_block_mappings(depth: usize) -> String {
    let mut text = String::new();
    for level in 0..depth {
        text.push_str(&" ".repeat(level));
        text.push_str("a:\n");
    }
    text
}

/// Nesting up to the parser's depth budget must fit the 2 MiB stack of a spawned thread (test
/// threads, async runtimes' workers), even in debug builds where the recursive reader takes
/// about 30 KiB per level; the depth budget (32) keeps it well inside.
#[test]
fn deep_mappings_fit_a_2_mib_stack() {
    for depth in [62, 64, 65, 1_000] {
        on_stack(2 << 20, move || {
            let _ = check(&nested_block_mappings(depth));
            let text = format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
            let _ = check(&text);
        });
    }
}

/// "Billion laughs": each level refers nine times to the one before, 9^10 strings in all.
fn alias_bomb(levels: usize) -> String {
    let mut text = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..=levels {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    assert_rejected_quickly("alias bomb", &alias_bomb(10));
}

#[test]
fn alias_bomb_inside_a_pipeline_is_rejected_quickly() {
    let mut text = fixture("minimal.yaml");
    text.push_str("  x0: &x0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for i in 1..=12 {
        let merges: Vec<String> = (0..8).map(|k| format!("k{k}: *x{}", i - 1)).collect();
        text.push_str(&format!("  x{i}: &x{i} {{{}}}\n", merges.join(", ")));
    }
    text.push_str("  x13:\n    <<: *x12\n");
    assert_rejected_quickly("alias bomb in a pipeline", &text);
}

#[test]
fn deep_flow_sequence_is_rejected_quickly() {
    let depth = 10_000;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_rejected_quickly("10,000 nested [", &text);
}

#[test]
fn unclosed_deep_flow_nesting_is_rejected_quickly() {
    assert_rejected_quickly("10,000 unclosed [", &"[".repeat(10_000));
    assert_rejected_quickly("10,000 unclosed {a: ", &"{a: ".repeat(10_000));
}

#[test]
fn deep_flow_mapping_is_rejected_quickly() {
    let depth = 10_000;
    let text = format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
    assert_rejected_quickly("10,000 nested {a:", &text);
}

#[test]
fn deep_block_sequence_is_rejected_quickly() {
    let text = format!("{}x\n", "- ".repeat(10_000));
    assert_rejected_quickly("10,000 nested block sequences", &text);
}

#[test]
fn deep_block_mapping_is_rejected_quickly() {
    assert_rejected_quickly("2,000 nested block mappings", &nested_block_mappings(2_000));
}

#[test]
fn deep_nesting_inside_a_pipeline_is_rejected_quickly() {
    let depth = 10_000;
    let text = fixture("api.yaml").replace(
        "replicas: 1",
        &format!("replicas: {}{}", "[".repeat(depth), "]".repeat(depth)),
    );
    assert_rejected_quickly("deep nesting in a stage variable", &text);
}

#[test]
fn huge_sequence_is_rejected_quickly() {
    // More nodes than the parser's budget allows.
    let text = "- x\n".repeat(300_000);
    assert_rejected_quickly("300,000 list items", &text);
}

/// A `pipeline` object with `keys` distinct unknown keys.
fn wide_mapping(keys: usize) -> String {
    let mut text = String::from("version: \"1.0.0\"\npipeline:\n");
    for i in 0..keys {
        text.push_str(&format!("  key{i}: {i}\n"));
    }
    text
}

#[test]
fn wide_mapping_is_checked_quickly() {
    assert_rejected_quickly("20,000 unknown keys", &wide_mapping(20_000));
}

/// The widest mapping the parser's node budget (250,000) lets through must not take long
/// either (duplicate-key detection is linear in the number of keys).
#[test]
fn widest_mapping_is_checked_quickly() {
    assert_rejected_quickly("120,000 unknown keys", &wide_mapping(120_000));
}

#[test]
fn long_lines_and_keys_are_checked_quickly() {
    let long = "k".repeat(100_000);
    assert_rejected_quickly("100,000-byte key", &format!("{long}: 1\n"));
    assert_rejected_quickly(
        "100,000-byte step name",
        &fixture("minimal.yaml").replace("name: Deploy", &format!("name: {long}\n      id: \"")),
    );
}
