//! Expression errors as `plan::check` reports them: one test per error kind (`E0601` to
//! `E0609`), each asserting the exact code, the 1-based line and column of the offending name
//! inside the expression (counted by hand in the comments), and parts of the message and help.
//! Then the valid forms: escapes, bracket and id access to artifacts, per-stage artifacts.

use devramps_core::expr::{Organization, PipelineInfo, Trigger};
use devramps_core::pipeline::Diagnostic;
use devramps_core::plan::check;
use devramps_core::plan::{Changes, SynthesisInput, synthesize};

/// Two stages with variables, 13 lines: the text a test appends starts on line 14.
const HEADER: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      vars: {env: s, replicas: 2}
    - name: prod
      account_id: "222222222222"
      region: us-west-2
      vars: {env: p, replicas: 3}
"#;

/// `HEADER` followed by `body` (whose first line is line 14).
fn with_header(body: &str) -> String {
    assert_eq!(
        HEADER.lines().count(),
        13,
        "the line numbers below assume 13 header lines"
    );
    format!("{HEADER}{body}")
}

/// A one-line description of each diagnostic, for failure messages.
fn describe(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "{} {}:{} {} (help: {:?})",
                d.code, d.span.line, d.span.column, d.message, d.help
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What one diagnostic must be.
struct Expect<'a> {
    code: &'a str,
    line: u32,
    column: u32,
    message: &'a str,
    help: Option<&'a str>,
}

impl Expect<'_> {
    #[track_caller]
    fn assert_matches(&self, d: &Diagnostic, all: &[Diagnostic]) {
        let all = describe(all);
        assert_eq!(d.code.as_str(), self.code, "code; got:\n{all}");
        assert_eq!(
            (d.span.line, d.span.column),
            (self.line, self.column),
            "line:column; got:\n{all}"
        );
        assert!(
            d.message.contains(self.message),
            "message {:?} lacks {:?}",
            d.message,
            self.message
        );
        match (self.help, &d.help) {
            (Some(want), Some(help)) => {
                assert!(help.contains(want), "help {help:?} lacks {want:?}");
            }
            (Some(want), None) => panic!("no help, expected one containing {want:?}; got:\n{all}"),
            (None, _) => {}
        }
    }
}

/// Checks `text` and asserts its diagnostics are exactly `expected`, in order.
#[track_caller]
fn expect_all(text: &str, expected: &[Expect<'_>]) -> Vec<Diagnostic> {
    let checked = check(text);
    let diagnostics = checked.diagnostics;
    assert_eq!(
        diagnostics.len(),
        expected.len(),
        "number of diagnostics; got:\n{}",
        describe(&diagnostics)
    );
    for (d, e) in diagnostics.iter().zip(expected) {
        e.assert_matches(d, &diagnostics);
    }
    assert!(
        checked.definition.is_none(),
        "an invalid pipeline has no definition"
    );
    diagnostics
}

/// Checks `text` and asserts its one diagnostic is `expected`.
#[track_caller]
fn expect_one(
    text: &str,
    code: &str,
    line: u32,
    column: u32,
    message: &str,
    help: Option<&str>,
) -> Diagnostic {
    let mut all = expect_all(
        text,
        &[Expect {
            code,
            line,
            column,
            message,
            help,
        }],
    );
    all.remove(0)
}

/// One custom step `A` with parameter `x: <value>`; `x` is on line 18 and its value starts at
/// column 12.
fn step_param(value: &str) -> String {
    with_header(&format!(
        "  steps:\n    - name: A\n      type: CUSTOM:A\n      params:\n        x: {value}\n  artifacts: {{}}\n"
    ))
}

#[track_caller]
fn assert_valid(text: &str) {
    let checked = check(text);
    assert!(
        checked.is_valid() && checked.diagnostics.is_empty(),
        "expected no diagnostics, got:\n{}",
        describe(&checked.diagnostics)
    );
}

// ---------------------------------------------------------------------------------------------
// E0601 unterminated, E0602 syntax.

#[test]
fn e0601_unterminated_points_at_the_opening() {
    // `        x: ${{ stage.name`: `$` is column 12.
    expect_one(
        &step_param("${{ stage.name"),
        "E0601",
        18,
        12,
        "is not closed by `}}`",
        Some("write `$${{` for a literal `${{`"),
    );
}

#[test]
fn e0601_unterminated_inside_a_double_quoted_string() {
    // `        x: "a ${{ vars.env"`: `"` 12, `a` 13, space 14, `$` 15.
    expect_one(
        &step_param("\"a ${{ vars.env\""),
        "E0601",
        18,
        15,
        "is not closed",
        Some("close the expression with `}}`"),
    );
}

#[test]
fn e0602_empty_expression() {
    // `        x: ${{ }}`: the error covers `${{ }}` from column 12.
    expect_one(
        &step_param("${{ }}"),
        "E0602",
        18,
        12,
        "empty expression",
        Some("`$${{` for a literal `${{`"),
    );
}

#[test]
fn e0602_single_quotes() {
    // `        x: ${{ stage.artifacts['X'] }}`: `s` 16, `stage.artifacts` ends at 30, `[` 31, `'` 32.
    expect_one(
        &step_param("${{ stage.artifacts['X'] }}"),
        "E0602",
        18,
        32,
        "strings in expressions use double quotes",
        Some("[\"key\"]"),
    );
}

#[test]
fn e0602_operator() {
    // `        x: ${{ stage.name + vars.env }}`: `stage.name` is 16..25, `+` 27.
    expect_one(
        &step_param("${{ stage.name + vars.env }}"),
        "E0602",
        18,
        27,
        "unexpected `+`",
        Some("expressions have no operators"),
    );
}

#[test]
fn e0602_bad_escape() {
    // Single-quoted YAML keeps the backslash: `        x: '${{ secret("a\nb") }}'`:
    // `'` 12, `$` 13, `secret` 17..22, `(` 23, `"` 24, `a` 25, `\` 26.
    expect_one(
        &step_param(r#"'${{ secret("a\nb") }}'"#),
        "E0602",
        18,
        26,
        "unknown escape in string",
        Some(r#"only \" and \\ are escapes"#),
    );
}

#[test]
fn e0602_missing_closing_bracket() {
    // `        x: ${{ vars["env" }}`: `vars` 16..19, `[` 20, `"env"` 21..25, `}}` 27.
    expect_one(
        &step_param(r#"${{ vars["env" }}"#),
        "E0602",
        18,
        27,
        "expected `]`, found `}}`",
        Some("close the key with `]`"),
    );
}

#[test]
fn e0602_number_index() {
    // `        x: ${{ vars[0] }}`: `[` 20, `0` 21.
    expect_one(
        &step_param("${{ vars[0] }}"),
        "E0602",
        18,
        21,
        "unexpected `0`",
        Some("bracket keys are quoted strings: [\"0\"]"),
    );
}

#[test]
fn e0602_call_with_two_arguments() {
    // `        x: ${{ secret("a", "b") }}`: `secret` 16..21, `(` 22, `"a"` 23..25, `,` 26.
    expect_one(
        &step_param(r#"${{ secret("a", "b") }}"#),
        "E0602",
        18,
        26,
        "`secret(...)` takes exactly one argument",
        Some("write secret(\"NAME\")"),
    );
}

#[test]
fn e0602_call_with_a_name_argument() {
    // `        x: ${{ secret(vars) }}`: `(` 22, `vars` 23.
    expect_one(
        &step_param("${{ secret(vars) }}"),
        "E0602",
        18,
        23,
        "takes one double-quoted string, found `vars`",
        Some("write secret(\"NAME\")"),
    );
}

// ---------------------------------------------------------------------------------------------
// E0603 unknown namespace, E0604 unknown property, E0605 unknown artifact.

#[test]
fn e0603_unknown_namespace_with_suggestion() {
    // `        x: ${{ stgae.name }}`: `stgae` at 16.
    expect_one(
        &step_param("${{ stgae.name }}"),
        "E0603",
        18,
        16,
        "unknown namespace `stgae`",
        Some("did you mean `stage`?"),
    );
}

#[test]
fn e0604_unknown_property_in_a_double_quoted_string() {
    // `        x: "pre ${{ stage.regoin }} post"`: `"` 12, `pre ` 13..16, `$` 17, `stage` 21..25,
    // `.` 26, `regoin` 27.
    expect_one(
        &step_param("\"pre ${{ stage.regoin }} post\""),
        "E0604",
        18,
        27,
        "`stage` has no property `regoin`",
        Some("did you mean `region`?"),
    );
}

#[test]
fn e0604_second_of_two_expressions() {
    // `        x: "${{ stage.name }}-${{ pipeline.slgu }}"`: `"` 12, first expression 13..29,
    // `-` 30, second `$` 31, `pipeline` 35..42, `.` 43, `slgu` 44.
    expect_one(
        &step_param("\"${{ stage.name }}-${{ pipeline.slgu }}\""),
        "E0604",
        18,
        44,
        "`pipeline` has no property `slgu`",
        Some("did you mean `slug`?"),
    );
}

#[test]
fn e0604_property_of_a_value_and_an_object_without_property() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        e: ${{ trigger.sha.x }}\n",
        "        f: ${{ stage }}\n",
        "        d: ${{ stage.secrets }}\n",
        "  artifacts: {}\n",
    ));
    expect_all(
        &text,
        &[
            // `trigger` 16..22, `.` 23, `sha` 24..26, `.` 27, `x` 28.
            Expect {
                code: "E0604",
                line: 18,
                column: 28,
                message: "`trigger.sha` is a value, not an object",
                help: None,
            },
            // `stage` at 16.
            Expect {
                code: "E0604",
                line: 19,
                column: 16,
                message: "`stage` is an object; name one of its properties",
                help: Some("for example `stage.name`"),
            },
            // `stage` 16..20, `.` 21, `secrets` 22.
            Expect {
                code: "E0604",
                line: 20,
                column: 22,
                message: "`stage.secrets` needs a secret name",
                help: None,
            },
        ],
    );
}

#[test]
fn e0605_unknown_artifact_with_suggestion() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: ${{ stage.artifacts[\"Api Imag\"].image_url }}\n",
        "  artifacts:\n",
        "    Api Image:\n",
        "      type: DEVRAMPS:DOCKER:BUILD\n",
        "      params: {dockerfile: /Dockerfile}\n",
    ));
    // `stage.artifacts` 16..30, `[` 31, the key (with its quotes) from 32.
    expect_one(
        &text,
        "E0605",
        18,
        32,
        "unknown artifact `Api Imag`",
        Some("did you mean `Api Image`?"),
    );
}

#[test]
fn e0604_unknown_artifact_field() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: ${{ stage.artifacts.api-image.image_uri }}\n",
        "  artifacts:\n",
        "    Api Image:\n",
        "      type: DEVRAMPS:DOCKER:BUILD\n",
        "      params: {dockerfile: /Dockerfile}\n",
    ));
    // `stage.artifacts` 16..30, `.` 31, `api-image` 32..40, `.` 41, `image_uri` 42.
    expect_one(
        &text,
        "E0604",
        18,
        42,
        "artifact `Api Image` has no property `image_uri`",
        Some("did you mean `image_url`?"),
    );
}

#[test]
fn escaped_quotes_in_yaml_point_at_the_expression() {
    // In a double-quoted YAML string the key is written `[\"Nope\"]`, so the string and the
    // source differ inside the expression: the diagnostic points at its `${{` (column 13, after
    // the opening quote at 12).
    expect_one(
        &step_param(r#""${{ stage.artifacts[\"Nope\"].image_url }}""#),
        "E0605",
        18,
        13,
        "unknown artifact `Nope`",
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// E0606 unknown variable.

#[test]
fn e0606_unknown_variable_in_every_stage() {
    // `        x: ${{ vars.evn }}`: `vars` 16..19, `.` 20, `evn` 21. Each stage lacks it.
    let text = step_param("${{ vars.evn }}");
    let all = [
        Expect {
            code: "E0606",
            line: 18,
            column: 21,
            message: "stage `staging` has no variable `evn`",
            help: Some("did you mean `env`?"),
        },
        Expect {
            code: "E0606",
            line: 18,
            column: 21,
            message: "stage `prod` has no variable `evn`",
            help: Some("did you mean `env`?"),
        },
    ];
    expect_all(&text, &all);
}

#[test]
fn e0606_variable_missing_in_one_stage_names_that_stage() {
    let text = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      vars: {env: s, api_url: x}
    - name: prod
      account_id: "222222222222"
      region: us-west-2
      vars: {env: p}
  steps:
    - name: Deploy
      type: CUSTOM:B
      params:
        url: "https://${{ vars.api_url }}/"
  artifacts: {}
"#;
    // `        url: "https://${{ vars.api_url }}/"`: `"` 14, `https://` 15..22, `$` 23,
    // `vars` 27..30, `.` 31, `api_url` 32.
    let d = expect_one(
        text,
        "E0606",
        18,
        32,
        "stage `prod` has no variable `api_url`",
        Some("available: `env`"),
    );
    assert!(
        !d.message.contains("staging"),
        "only prod lacks it: {}",
        d.message
    );
}

#[test]
fn e0606_in_a_block_scalar_on_its_third_line() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: |\n",
        "          line one\n",
        "          line two\n",
        "          a ${{ vars.nope }} b\n",
        "  artifacts: {}\n",
    ));
    // Line 21: `          a ${{ vars.nope }} b`: `a` 11, `$` 13, `vars` 17..20, `.` 21, `nope` 22.
    let expected = ["staging", "prod"].map(|stage| Expect {
        code: "E0606",
        line: 21,
        column: 22,
        message: if stage == "staging" {
            "stage `staging` has no variable `nope`"
        } else {
            "stage `prod` has no variable `nope`"
        },
        help: Some("available: `env`, `replicas`"),
    });
    expect_all(&text, &expected);
}

#[test]
fn columns_count_characters_not_bytes() {
    // `        x: "é ü ${{ vars.nope }}"`: `"` 12, `é` 13, `ü` 15, `$` 17, `vars` 21..24, `nope` 26.
    let diagnostics = check(&step_param("\"é ü ${{ vars.nope }}\"")).diagnostics;
    assert_eq!(diagnostics.len(), 2, "{}", describe(&diagnostics));
    for d in &diagnostics {
        assert_eq!(
            (d.code.as_str(), d.span.line, d.span.column),
            ("E0606", 18, 26)
        );
    }
}

#[test]
fn nested_values_and_flow_collections_point_into_the_value() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        list: [a, \"${{ vars.nope }}\"]\n",
        "        map: {k: \"${{ pipeline.nme }}\"}\n",
        "  artifacts: {}\n",
    ));
    let nope = |stage| Expect {
        code: "E0606",
        line: 18,
        // `        list: [a, "${{ vars.nope }}"]`: `[` 15, `"` 19, `$` 20, `vars` 24..27, `nope` 29.
        column: 29,
        message: stage,
        help: Some("available: `env`, `replicas`"),
    };
    expect_all(
        &text,
        &[
            nope("stage `staging` has no variable `nope`"),
            nope("stage `prod` has no variable `nope`"),
            // `        map: {k: "${{ pipeline.nme }}"}`: `{` 14, `"` 18, `$` 19, `pipeline` 23..30,
            // `nme` 32.
            Expect {
                code: "E0604",
                line: 19,
                column: 32,
                message: "`pipeline` has no property `nme`",
                help: Some("did you mean `name`?"),
            },
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// E0607 bad function or argument.

#[test]
fn e0607_unknown_function_with_suggestion() {
    // `        x: ${{ secert("K") }}`: `secert` at 16.
    expect_one(
        &step_param(r#"${{ secert("K") }}"#),
        "E0607",
        18,
        16,
        "unknown function `secert`",
        Some("did you mean `secret`?"),
    );
}

#[test]
fn e0607_empty_secret_name_and_function_without_call() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        a: ${{ secret(\"\") }}\n",
        "        b: ${{ stage_secret }}\n",
        "  artifacts: {}\n",
    ));
    expect_all(
        &text,
        &[
            // `        a: ${{ secret("") }}`: `secret` 16..21, `(` 22, `""` from 23.
            Expect {
                code: "E0607",
                line: 18,
                column: 23,
                message: "`secret` needs the name of a secret",
                help: None,
            },
            // `        b: ${{ stage_secret }}`: `stage_secret` at 16.
            Expect {
                code: "E0607",
                line: 19,
                column: 16,
                message: "`stage_secret` is a function",
                help: Some("write stage_secret(\"NAME\")"),
            },
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// E0608 bad step reference.

#[test]
fn e0608_step_that_is_not_an_ancestor() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      id: a\n",
        "      type: CUSTOM:A\n",
        "    - name: B\n",
        "      type: CUSTOM:B\n",
        "      goes_after: []\n",
        "      params:\n",
        "        x: ${{ steps.a.out }}\n",
        "  artifacts: {}\n",
    ));
    // Line 22: `        x: ${{ steps.a.out }}`: `steps` 16..20, `.` 21, `a` 22.
    // (Once per stage would be the same diagnostic: it is reported once.)
    expect_one(
        &text,
        "E0608",
        22,
        22,
        "step `B` uses outputs of `A`, which does not finish before it starts",
        Some("add `a` to the `goes_after` of `B`"),
    );
}

#[test]
fn e0608_step_skipped_in_one_stage_names_that_stage() {
    let text = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      skip: [Infra]
    - name: prod
      account_id: "222222222222"
      region: us-west-2
  steps:
    - name: Infra
      id: infra
      type: CUSTOM:A
    - name: Deploy
      type: CUSTOM:B
      params:
        cluster: ${{ steps.infra.cluster }}
  artifacts: {}
"#;
    // `        cluster: ${{ steps.infra.cluster }}`: `cluster` 9..15, `$` 18, `steps` 22..26,
    // `.` 27, `infra` 28.
    let d = expect_one(
        text,
        "E0608",
        20,
        28,
        "step `Deploy` uses outputs of `Infra`, which stage `staging` skips",
        Some("remove `infra` from the stage's `skip`"),
    );
    assert!(
        !d.message.contains("prod"),
        "prod does not skip Infra: {}",
        d.message
    );
}

#[test]
fn e0608_own_outputs() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      id: a\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: ${{ steps.a.out }}\n",
        "  artifacts: {}\n",
    ));
    // Line 19, `a` at 22.
    expect_one(
        &text,
        "E0608",
        19,
        22,
        "step `A` cannot use its own outputs",
        None,
    );
}

#[test]
fn e0608_unknown_step_with_suggestion() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: Infra\n",
        "      id: infra\n",
        "      type: CUSTOM:A\n",
        "    - name: B\n",
        "      type: CUSTOM:B\n",
        "      params:\n",
        "        x: ${{ steps.infar.out }}\n",
        "  artifacts: {}\n",
    ));
    // Line 21, `infar` at 22.
    expect_one(
        &text,
        "E0608",
        21,
        22,
        "`steps.infar` names no step",
        Some("did you mean `infra`?"),
    );
}

#[test]
fn e0608_shape_of_step_references() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: Infra\n",
        "      id: infra\n",
        "      type: CUSTOM:A\n",
        "    - name: B\n",
        "      type: CUSTOM:B\n",
        "      params:\n",
        "        x: ${{ steps.infra }}\n",
        "        y: ${{ steps.prod.infra.cluster }}\n",
        "  artifacts: {}\n",
    ));
    expect_all(
        &text,
        &[
            // `        x: ${{ steps.infra }}`: `infra` at 22.
            Expect {
                code: "E0608",
                line: 21,
                column: 22,
                message: "`steps.infra` needs an output name",
                help: None,
            },
            // Outputs of another stage cannot be named: `steps` 16..20, `prod` 22..25,
            // `infra` 27..31, `cluster` 33.
            Expect {
                code: "E0608",
                line: 22,
                column: 33,
                message: "a step output is read as `steps.<step>.<output>`",
                help: None,
            },
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// E0609 not available here.

/// An artifact `Web` (bundle) whose `env.API` is `value`, on line 24, value at column 16;
/// one more line (and so line 25) when `per_stage` is true.
fn artifact_env(value: &str, per_stage: bool) -> String {
    let per_stage = if per_stage {
        "      per_stage: true\n"
    } else {
        ""
    };
    with_header(&format!(
        "  steps:\n    - name: A\n      type: CUSTOM:A\n  artifacts:\n    Web:\n      type: DEVRAMPS:BUNDLE:BUILD\n{per_stage}      params:\n        build_commands: make\n        file_path: /a.zip\n        env:\n          API: {value}\n"
    ))
}

#[test]
fn e0609_vars_in_a_shared_artifact() {
    // `          API: ${{ vars.env }}`: `API` 11..13, `$` 16, `vars` 20.
    expect_one(
        &artifact_env("${{ vars.env }}", false),
        "E0609",
        24,
        20,
        "`vars` differs per stage, but artifact `Web` is built once for all stages",
        Some("set `per_stage: true`"),
    );
}

#[test]
fn vars_in_a_per_stage_artifact_are_fine() {
    assert_valid(&artifact_env("${{ vars.env }}", true));
    assert_valid(&artifact_env(
        "${{ stage.name }}-${{ stage_secret(\"K\") }}",
        true,
    ));
}

#[test]
fn e0609_stage_and_stage_secret_in_a_shared_artifact() {
    let diagnostics = expect_all(
        &artifact_env(r#"${{ stage.name }}/${{ stage_secret("K") }}"#, false),
        &[
            // `stage` at 20.
            Expect {
                code: "E0609",
                line: 24,
                column: 20,
                message: "`stage` differs per stage",
                help: Some("per_stage: true"),
            },
            // `${{ stage.name }}` is 16..32, `/` 33, `$` 34, `stage_secret` 38.
            Expect {
                code: "E0609",
                line: 24,
                column: 38,
                message: "`stage_secret(...)` differs per stage",
                help: Some("per_stage: true"),
            },
        ],
    );
    assert_eq!(diagnostics.len(), 2);
    // What is the same in every stage is fine in a shared artifact.
    assert_valid(&artifact_env(
        r#"${{ pipeline.slug }}-${{ organization.slug }}-${{ trigger.sha }}-${{ secret("K") }}"#,
        false,
    ));
}

#[test]
fn e0609_step_outputs_in_an_artifact() {
    // Line 25 (per_stage adds a line): `steps` at 20.
    expect_one(
        &artifact_env("${{ steps.A.out }}", true),
        "E0609",
        25,
        20,
        "artifact `Web` cannot use step outputs",
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Valid forms.

fn input() -> SynthesisInput {
    SynthesisInput {
        pipeline: PipelineInfo::from_slug("api"),
        organization: Organization::default(),
        trigger: Trigger {
            sha: "c".repeat(40),
            branch: "main".to_owned(),
            tag: String::new(),
            revision: 4,
        },
        previous_builds: Default::default(),
        previous_stage_builds: Default::default(),
        changes: Changes::unknown(),
    }
}

#[test]
fn escaped_expression_is_literal_text() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: $${{ literal }}\n",
        "        y: \"cost: $$${{ vars.replicas }} and $${{ vars.nope }}\"\n",
        "  artifacts: {}\n",
    ));
    assert_valid(&text);
    let definition = check(&text).definition.expect("valid");
    let plan = synthesize(&definition, Some(&text), &input()).expect("synthesizes");
    let params = plan.stages[0].steps[0].params.to_json();
    assert_eq!(params["x"], "${{ literal }}");
    assert_eq!(params["y"], "cost: $2 and ${{ vars.nope }}");
}

#[test]
fn artifacts_by_bracketed_name_and_by_dotted_id() {
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        by_name: ${{ stage.artifacts[\"API Image\"].image_url }}\n",
        "        by_id: ${{ stage.artifacts.api-image.image_url }}\n",
        "        by_id_bracket: ${{ stage.artifacts[\"api-image\"][\"image_tag\"] }}\n",
        "        whole: ${{ stage.artifacts.api-image }}\n",
        "  artifacts:\n",
        "    API Image:\n",
        "      type: DEVRAMPS:DOCKER:BUILD\n",
        "      params: {dockerfile: /Dockerfile}\n",
    ));
    assert_valid(&text);
    let definition = check(&text).definition.expect("valid");
    let plan = synthesize(&definition, Some(&text), &input()).expect("synthesizes");
    let params = plan.stages[1].steps[0].params.to_json();
    let sha = "c".repeat(40);
    let url = format!("222222222222.dkr.ecr.us-west-2.amazonaws.com/api-prod-api-image:{sha}");
    assert_eq!(params["by_name"], url.as_str());
    assert_eq!(params["by_id"], url.as_str());
    assert_eq!(params["by_id_bracket"], sha.as_str());
    assert_eq!(params["whole"]["image_url"], url.as_str());
    assert_eq!(params["whole"]["s3_url"], "");
}

#[test]
fn hyphenated_names_are_one_name() {
    // `api-image` is a single name, not `api` minus `image`: with an artifact id `api`, the
    // dotted form still looks for `api-image`.
    let text = with_header(concat!(
        "  steps:\n",
        "    - name: A\n",
        "      type: CUSTOM:A\n",
        "      params:\n",
        "        x: ${{ stage.artifacts.api-image.image_url }}\n",
        "  artifacts:\n",
        "    Api:\n",
        "      type: DEVRAMPS:DOCKER:BUILD\n",
        "      params: {dockerfile: /Dockerfile}\n",
    ));
    // `stage.artifacts` 16..30, `.` 31, `api-image` 32.
    expect_one(
        &text,
        "E0605",
        18,
        32,
        "unknown artifact `api-image`",
        Some("available: `Api`, `api`"),
    );
}
