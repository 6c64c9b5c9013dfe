//! Property tests of the `${{ }}` expression language.
//!
//! - (a) Rendering a template with `Display` and parsing the text gives back an equal template
//!   (byte ranges aside): random paths (names with hyphens and underscores, bracket keys that are
//!   arbitrary Unicode strings with quotes and backslashes), random `secret(...)` /
//!   `stage_secret(...)` calls, and literal text that may hold `${{`, `$`, `{` and `}`.
//! - (b) `parse_template` never panics, and an error's byte range lies inside the input and
//!   starts and ends on character boundaries (renderers slice the text with it).
//! - (c) `resolve_str` against a fixed scope never panics, and its errors' ranges obey the same
//!   rule.
//!
//! Each property runs 256 cases (proptest's default). To search harder:
//!
//! ```text
//! PROPTEST_CASES=10000 cargo test -p devramps-core --test expr_props --release
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use devramps_core::expr::{
    Accessor, ArtifactLocation, Call, Expr, ExprKind, Ident, Organization, Part, Path,
    PipelineInfo, Scope, StageScope, StepScope, Template, Trigger, parse_template, resolve_str,
};
use devramps_core::pipeline::PipelineDefinition;
use devramps_core::plan::parse;
use proptest::prelude::*;

/// 256 cases unless `PROPTEST_CASES` says otherwise (proptest reads it in `default()`). Failures
/// are not saved to a file: the minimal failing input is printed.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing templates without their byte ranges.

fn ident(name: String) -> Ident {
    Ident { name, range: 0..0 }
}

fn strip_ident(i: &Ident) -> Ident {
    ident(i.name.clone())
}

fn strip_expr(e: &Expr) -> Expr {
    let kind = match &e.kind {
        ExprKind::Path(p) => ExprKind::Path(Path {
            root: strip_ident(&p.root),
            accessors: p
                .accessors
                .iter()
                .map(|a| match a {
                    Accessor::Field(i) => Accessor::Field(strip_ident(i)),
                    Accessor::Index(i) => Accessor::Index(strip_ident(i)),
                })
                .collect(),
        }),
        ExprKind::Call(c) => ExprKind::Call(Call {
            function: strip_ident(&c.function),
            argument: strip_ident(&c.argument),
        }),
    };
    Expr { kind, range: 0..0 }
}

/// The template with every byte range set to `0..0`.
fn strip(t: &Template) -> Template {
    Template {
        parts: t
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(s) => Part::Text(s.clone()),
                Part::Expr(e) => Part::Expr(strip_expr(e)),
            })
            .collect(),
    }
}

/// What the parser produces: no empty text parts, adjacent text parts merged.
fn normalize(parts: Vec<Part>) -> Template {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        match (part, out.last_mut()) {
            (Part::Text(t), _) if t.is_empty() => {}
            (Part::Text(t), Some(Part::Text(prev))) => prev.push_str(&t),
            (part, _) => out.push(part),
        }
    }
    Template { parts: out }
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// A name as the grammar allows it: a letter or `_`, then letters, digits, `_` and `-`.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_-]{0,10}",
        Just("stage".to_owned()),
        Just("api-image".to_owned()),
        Just("_".to_owned()),
        Just("a-".to_owned()),
    ]
}

/// A bracket key or call argument: any Unicode, with quotes, backslashes and expression syntax
/// made likely.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\{}$\\[\\]() a-zé😀]{0,8}",
        Just("\\\"".to_owned()),
        Just("}} ${{ x }}".to_owned()),
        Just(String::new()),
    ]
}

fn accessor() -> impl Strategy<Value = Accessor> {
    prop_oneof![
        name().prop_map(|n| Accessor::Field(ident(n))),
        key().prop_map(|k| Accessor::Index(ident(k))),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let path = (name(), prop::collection::vec(accessor(), 0..5)).prop_map(|(root, accessors)| {
        ExprKind::Path(Path {
            root: ident(root),
            accessors,
        })
    });
    let call = (prop_oneof![Just("secret"), Just("stage_secret")], key()).prop_map(|(f, arg)| {
        ExprKind::Call(Call {
            function: ident(f.to_owned()),
            argument: ident(arg),
        })
    });
    prop_oneof![3 => path, 1 => call].prop_map(|kind| Expr { kind, range: 0..0 })
}

/// Literal text that may hold the characters of expression syntax.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z $\\{\\}\"\\\\é]{1,8}",
        Just("$".to_owned()),
        Just("$$".to_owned()),
        Just("${{".to_owned()),
        Just("$${{".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        any::<String>(),
    ]
}

fn template() -> impl Strategy<Value = Template> {
    let part = prop_oneof![text().prop_map(Part::Text), expr().prop_map(Part::Expr),];
    prop::collection::vec(part, 0..7).prop_map(normalize)
}

/// Text that looks like YAML values with expressions in them.
const EXPRESSION_SOUP: &str = "[${}\\[\\]().\"'\\\\ a-z_0-9+,\n\té-]{0,60}";

// ---------------------------------------------------------------------------------------------
// Range checks.

fn check_range(text: &str, range: &Range<usize>, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        range.start <= range.end && range.end <= text.len(),
        "{what}: range {range:?} outside the input ({} bytes): {text:?}",
        text.len()
    );
    prop_assert!(
        text.is_char_boundary(range.start) && text.is_char_boundary(range.end),
        "{what}: range {range:?} not on character boundaries: {text:?}"
    );
    Ok(())
}

fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match parse_template(text) {
        Ok(t) => {
            for e in t.exprs() {
                check_range(text, &e.range, "expression")?;
            }
        }
        Err(e) => {
            check_range(text, &e.range, "syntax error")?;
            prop_assert!(
                !e.message.is_empty(),
                "an error without a message: {text:?}"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A fixed scope for (c).

const DEFINITION: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      vars: {env: s, replicas: 2, nested: {a: {b: 1}}, list: [1, 2]}
      skip: [Skipped]
  steps:
    - name: Infra
      id: infra
      type: CUSTOM:INFRA
    - name: Skipped
      type: CUSTOM:X
    - name: Deploy
      id: deploy
      type: CUSTOM:DEPLOY
      goes_after: [infra, Skipped]
  artifacts:
    API Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: {dockerfile: /Dockerfile}
"#;

fn definition() -> PipelineDefinition {
    parse(DEFINITION).expect("the fixed definition is valid")
}

fn check_resolution(definition: &PipelineDefinition, text: &str) -> Result<(), TestCaseError> {
    let pipeline = PipelineInfo::from_slug("api");
    let organization = Organization::default();
    let trigger = Trigger {
        sha: "a".repeat(40),
        branch: "main".to_owned(),
        tag: String::new(),
        revision: 3,
    };
    let artifacts: BTreeMap<String, ArtifactLocation> =
        [("api-image".to_owned(), ArtifactLocation::default())].into();
    let stage = &definition.stages[0];
    let ancestors = [true, true, false];
    let skipped = [false, true, false];
    let scope = Scope {
        definition,
        pipeline: &pipeline,
        organization: &organization,
        trigger: &trigger,
        pre_mirror_artifacts: &artifacts,
        stage: Some(StageScope {
            name: &stage.name.value,
            account_id: &stage.account_id.value,
            region: &stage.region.value,
            vars: &stage.vars,
            artifacts: &artifacts,
        }),
        step: Some(StepScope {
            index: 2,
            ancestors: &ancestors,
            skipped: &skipped,
        }),
        owner: "step `Deploy`",
    };
    let shared = Scope {
        stage: None,
        step: None,
        owner: "artifact `API Image`",
        ..scope
    };
    for scope in [scope, shared] {
        if let Err(errors) = resolve_str(text, &scope) {
            prop_assert!(!errors.is_empty(), "Err without errors: {text:?}");
            for e in &errors {
                check_range(text, &e.range, "expression error")?;
            }
        }
    }
    Ok(())
}

/// Expressions built from the scope's real names, so resolution gets past the first name.
fn scoped_expression() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("stage"),
        Just("vars"),
        Just("steps"),
        Just("trigger"),
        Just("pipeline"),
        Just("organization"),
        Just("artifacts"),
        Just("secrets"),
        Just("infra"),
        Just("Skipped"),
        Just("deploy"),
        Just("nested"),
        Just("a"),
        Just("b"),
        Just("image_url"),
        Just("revision"),
        Just("api-image"),
        Just("env"),
    ];
    let accessor = prop_oneof![
        word.clone().prop_map(|w| format!(".{w}")),
        word.clone().prop_map(|w| format!("[\"{w}\"]")),
        Just("[\"API Image\"]".to_owned()),
        Just("[\"\"]".to_owned()),
        Just("[\"é\\\\\"]".to_owned()),
    ];
    let path = (word, prop::collection::vec(accessor, 0..5))
        .prop_map(|(root, rest)| format!("${{{{ {root}{} }}}}", rest.concat()));
    let call = (
        prop_oneof![Just("secret"), Just("stage_secret"), Just("secert")],
        key(),
    )
        .prop_map(|(f, k)| {
            let quoted: String = k
                .chars()
                .flat_map(|c| match c {
                    '"' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("${{{{ {f}(\"{quoted}\") }}}}")
        });
    let piece = prop_oneof![4 => path, 1 => call, 1 => text()];
    prop::collection::vec(piece, 1..4).prop_map(|p| p.concat())
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(config())]

    /// (a) `Display` then `parse_template` is the identity on templates.
    #[test]
    fn display_then_parse_round_trips(template in template()) {
        let rendered = template.to_string();
        let parsed = parse_template(&rendered);
        prop_assert!(parsed.is_ok(), "rendering {template:?} gave {rendered:?}, which does not parse: {parsed:?}");
        let parsed = parsed.map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(strip(&parsed), strip(&template), "rendered as {:?}", rendered);
        // The canonical form is a fixed point.
        prop_assert_eq!(parsed.to_string(), rendered);
    }

    /// (a) A single expression round-trips, and its range covers the expression's text.
    #[test]
    fn single_expression_round_trips(expr in expr()) {
        let template = Template { parts: vec![Part::Expr(expr)] };
        let rendered = template.to_string();
        let parsed = parse_template(&rendered).map_err(|e| TestCaseError::fail(format!("{rendered:?}: {}", e.message)))?;
        prop_assert_eq!(strip(&parsed), strip(&template));
        let single = parsed.as_single_expr();
        prop_assert!(single.is_some(), "{rendered:?} is not a single expression");
        if let Some(e) = single {
            prop_assert_eq!(&rendered[e.range.clone()], e.to_string());
        }
    }

    /// (b) Arbitrary strings.
    #[test]
    fn parse_never_panics_on_any_string(text in any::<String>()) {
        check_parse(&text)?;
    }

    /// (b) Strings made of expression and YAML syntax.
    #[test]
    fn parse_never_panics_on_expression_soup(text in EXPRESSION_SOUP) {
        check_parse(&text)?;
        check_parse(&format!("${{{{ {text}"))?;
        check_parse(&format!("${{{{ {text} }}}}"))?;
    }

    /// (c) Resolution against a fixed scope.
    #[test]
    fn resolve_never_panics(text in prop_oneof![any::<String>(), EXPRESSION_SOUP.prop_map(|t| format!("${{{{ {t} }}}}")), scoped_expression()]) {
        let definition = definition();
        check_resolution(&definition, &text)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed cases of the rules above (each failed before the fix named in it).

/// Renders `parts` and parses the rendering.
fn render_and_parse(parts: Vec<Part>) -> (String, Template, Template) {
    let template = normalize(parts);
    let rendered = template.to_string();
    let parsed = parse_template(&rendered)
        .unwrap_or_else(|e| panic!("{rendered:?} does not parse: {}", e.message));
    (rendered, strip(&parsed), template)
}

fn path_expr(root: &str) -> Part {
    Part::Expr(Expr {
        kind: ExprKind::Path(Path {
            root: ident(root.to_owned()),
            accessors: vec![Accessor::Field(ident("price".to_owned()))],
        }),
        range: 0..0,
    })
}

#[test]
fn a_dollar_sign_right_before_an_expression_round_trips() {
    // Found by `display_then_parse_round_trips`: text ending in `$` followed by an expression
    // used to render as `$${{ ... }}`, which is the escape for a literal `${{`.
    for dollars in ["$", "$$", "a $", "$${{"] {
        let (rendered, parsed, template) =
            render_and_parse(vec![Part::Text(dollars.to_owned()), path_expr("vars")]);
        assert_eq!(parsed, template, "rendered as {rendered:?}");
    }
    let (rendered, _, _) = render_and_parse(vec![Part::Text("$".to_owned()), path_expr("vars")]);
    assert_eq!(rendered, "$$${{ vars.price }}");
}

#[test]
fn dollar_runs_before_braces() {
    let cases: &[(&str, &[Option<&str>])] = &[
        // `None` stands for the expression `vars.x`.
        ("${{ vars.x }}", &[None]),
        ("$${{ vars.x }}", &[Some("${{ vars.x }}")]),
        ("$$${{ vars.x }}", &[Some("$"), None]),
        ("$$$${{ vars.x }}", &[Some("$${{ vars.x }}")]),
        ("$$ $${{", &[Some("$$ ${{")]),
        ("echo $$ ${{ vars.x }}", &[Some("echo $$ "), None]),
        ("$ {{ $", &[Some("$ {{ $")]),
    ];
    for (text, expected) in cases {
        let parsed = parse_template(text)
            .unwrap_or_else(|e| panic!("{text:?} does not parse: {}", e.message));
        let got: Vec<Option<String>> = parsed
            .parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => Some(t.clone()),
                Part::Expr(e) => {
                    assert_eq!(e.to_string(), "vars.x", "in {text:?}");
                    None
                }
            })
            .collect();
        let expected: Vec<Option<String>> = expected.iter().map(|e| e.map(str::to_owned)).collect();
        assert_eq!(got, expected, "parts of {text:?}");
        assert_eq!(
            devramps_core::expr::has_expressions(text),
            expected.iter().any(Option::is_none),
            "has_expressions({text:?})"
        );
    }
}

#[test]
fn an_unknown_escape_before_a_wide_character_keeps_the_range_on_boundaries() {
    // The range of this error used to be two bytes from the backslash, ending inside `é`, so
    // slicing the text with it panicked. `parse_never_panics_*` check the same rule at random.
    let text = r#"${{ secret("\é") }}"#;
    let error = match parse_template(text) {
        Ok(t) => panic!("{text:?} parsed as {t:?}"),
        Err(e) => e,
    };
    assert_eq!(&text[error.range.clone()], "\\é");
    assert!(
        error.message.contains("unknown escape"),
        "{}",
        error.message
    );
}
