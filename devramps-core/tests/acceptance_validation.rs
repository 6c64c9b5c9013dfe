//! Acceptance scenarios of `devramps-reference.md` section 13 that concern discovery and
//! validation: 1 to 8, 19, 22 and 23. Each test is named after its scenario.

use devramps_core::pipeline::{
    Checked, Code, PipelineDefinition, StepGraph, TimeWindow, check, discover, find_step,
};

/// A pipeline with the given `stages`, `steps` and `artifacts` blocks (each indented by two
/// spaces, starting with its key), and valid top-level fields.
fn pipeline(stages: &str, steps: &str, artifacts: &str) -> String {
    format!(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  \
         pipeline_updates_require_approval: NEVER\n{stages}{steps}{artifacts}"
    )
}

const STAGES: &str = r#"  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
    - name: prod
      account_id: "222222222222"
      region: us-east-1
"#;

const STEPS: &str = "  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
";

const NO_ARTIFACTS: &str = "  artifacts: {}\n";

/// The codes of every diagnostic, in source order.
fn codes(checked: &Checked) -> Vec<Code> {
    checked.diagnostics.iter().map(|d| d.code).collect()
}

/// The definition of a pipeline that must be valid without warnings.
fn valid(text: &str) -> PipelineDefinition {
    let checked = check(text);
    assert!(
        checked.diagnostics.is_empty(),
        "expected no diagnostics, got {:#?}",
        checked.diagnostics
    );
    checked
        .definition
        .expect("a valid pipeline has a definition")
}

/// Checks a pipeline that must be invalid with exactly the diagnostics `expected`.
fn invalid(text: &str, expected: &[Code]) -> Checked {
    let checked = check(text);
    assert_eq!(codes(&checked), expected, "{:#?}", checked.diagnostics);
    assert!(!checked.is_valid());
    assert!(checked.definition.is_none());
    checked
}

#[test]
fn scenario_01_discovery() {
    let repo = tempfile::tempdir().expect("temp dir");
    let root = repo.path().join(".devramps");
    for slug in ["api", "web"] {
        std::fs::create_dir_all(root.join(slug)).expect("create pipeline folder");
        let text = pipeline(STAGES, STEPS, NO_ARTIFACTS);
        std::fs::write(root.join(slug).join("pipeline.yaml"), text).expect("write pipeline");
    }
    std::fs::create_dir_all(root.join("tools")).expect("create tools folder");
    std::fs::write(root.join("tools/README.md"), "# tools\n").expect("write readme");

    let found = discover(repo.path()).expect("discover");
    let slugs: Vec<&str> = found.iter().map(|p| p.slug.as_str()).collect();
    assert_eq!(slugs, ["api", "web"], "`tools` has no pipeline.yaml");
    for p in &found {
        assert_eq!(p.path, root.join(&p.slug).join("pipeline.yaml"));
        let text = std::fs::read_to_string(&p.path).expect("read discovered pipeline");
        valid(&text);
    }
}

#[test]
fn scenario_01_discovery_without_devramps_folder_finds_nothing() {
    let repo = tempfile::tempdir().expect("temp dir");
    assert!(discover(repo.path()).expect("discover").is_empty());
}

#[test]
fn scenario_02_minimum_stages() {
    let checked = invalid(
        &pipeline("  stages: []\n", STEPS, NO_ARTIFACTS),
        &[Code::NoStages],
    );
    let d = &checked.diagnostics[0];
    assert!(d.message.contains("at least one stage"), "{}", d.message);
    assert_eq!((d.span.line, d.span.column), (5, 11), "points at `[]`");
}

#[test]
fn scenario_03_stage_required_fields() {
    let stages = r#"  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
    - name: prod
      account_id: "222222222222"
"#;
    let checked = invalid(
        &pipeline(stages, STEPS, NO_ARTIFACTS),
        &[Code::MissingField],
    );
    let d = &checked.diagnostics[0];
    assert!(
        d.message.contains("stage `prod`") && d.message.contains("`region`"),
        "the error names the stage and the field: {}",
        d.message
    );
    assert_eq!(d.span.line, 9, "points at the stage");
}

#[test]
fn scenario_04_stage_name_charset() {
    let stage = |name: &str| {
        format!(
            "  stages:\n    - name: {name}\n      account_id: \"111111111111\"\n      \
             region: us-east-1\n"
        )
    };
    let checked = invalid(
        &pipeline(&stage("Prod_1"), STEPS, NO_ARTIFACTS),
        &[Code::InvalidStageName],
    );
    let d = &checked.diagnostics[0];
    assert!(d.message.contains("`Prod_1`"), "{}", d.message);
    assert!(
        d.message.contains("lowercase letters, digits and hyphens"),
        "{}",
        d.message
    );

    let definition = valid(&pipeline(&stage("prod-1"), STEPS, NO_ARTIFACTS));
    assert_eq!(definition.stages[0].name.value, "prod-1");
}

#[test]
fn scenario_05_duplicate_step_names() {
    let steps = "  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
    - name: Deploy
      type: DEVRAMPS:ECS:DEPLOY
      params:
        cluster_name: api
        service_name: api
        reference_task_definition: api
        image_url: example.com/api:1
";
    let checked = invalid(
        &pipeline(STAGES, steps, NO_ARTIFACTS),
        &[Code::DuplicateStepName],
    );
    let d = &checked.diagnostics[0];
    assert!(d.message.contains("`Deploy`"), "{}", d.message);
    assert_eq!(d.span.line, 15, "points at the second `Deploy`");
}

#[test]
fn scenario_06_artifacts_as_list() {
    let artifacts = "  artifacts:
    - name: X
      type: DEVRAMPS:DOCKER:BUILD
      params:
        dockerfile: /Dockerfile
";
    let checked = invalid(&pipeline(STAGES, STEPS, artifacts), &[Code::WrongType]);
    let d = &checked.diagnostics[0];
    assert!(
        d.message.contains("`artifacts` must be a map"),
        "{}",
        d.message
    );
    assert!(d.message.contains("found a list"), "{}", d.message);
}

#[test]
fn scenario_07_enum_validation() {
    let window = |w: &str| {
        format!(
            "  stages:\n    - name: staging\n      account_id: \"111111111111\"\n      \
             region: us-east-1\n      deployment_time_window: {w}\n"
        )
    };
    let checked = invalid(
        &pipeline(&window("BUSINESS_HOURS"), STEPS, NO_ARTIFACTS),
        &[Code::InvalidEnumValue],
    );
    assert!(checked.diagnostics[0].message.contains("`BUSINESS_HOURS`"));
    let help = checked.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(
        help.contains("PACIFIC_WORKING_HOURS"),
        "lists the allowed values: {help}"
    );

    let sometimes = pipeline(STAGES, STEPS, NO_ARTIFACTS).replace("NEVER", "SOMETIMES");
    let checked = invalid(&sometimes, &[Code::InvalidEnumValue]);
    assert!(checked.diagnostics[0].message.contains("`SOMETIMES`"));

    // Both at once: both are reported.
    let both =
        pipeline(&window("BUSINESS_HOURS"), STEPS, NO_ARTIFACTS).replace("NEVER", "SOMETIMES");
    invalid(&both, &[Code::InvalidEnumValue, Code::InvalidEnumValue]);

    for w in [
        "NONE",
        "PACIFIC_WORKING_HOURS",
        "PACIFIC_WORKING_HOURS_REDUCED",
    ] {
        valid(&pipeline(&window(w), STEPS, NO_ARTIFACTS));
    }
    for policy in ["ALWAYS", "NEVER", "DESTRUCTIVE_CHANGES_ONLY"] {
        valid(&pipeline(STAGES, STEPS, NO_ARTIFACTS).replace("NEVER", policy));
    }
}

/// The composite example of reference section 1.11.
const COMPOSITE: &str = r##"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
  tracks: main
  stage_defaults:
    deployment_time_window: PACIFIC_WORKING_HOURS
  notifications:
    slack: { channel: "#deploys", events: [stage_failed, approval_required] }
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      deployment_time_window: NONE
      vars: { env: staging }
      skip: ["Bake"]
    - name: prod
      account_id: "222222222222"
      region: us-east-1
      auto_rollback_alarm_name: api-5xx
      vars: { env: prod }
  steps:
    - name: Infra
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      params:
        requires_approval: ALWAYS
        source: /infra
        variables:
          env: ${{ vars.env }}
          image: ${{ stage.artifacts["Api Image"].image_url }}
    - name: Deploy
      type: DEVRAMPS:ECS:DEPLOY
      goes_after: [infra]
      params:
        cluster_name: ${{ steps.infra.cluster }}
        service_name: ${{ steps.infra.service }}
        reference_task_definition: ${{ steps.infra.task_def }}
        image_url: ${{ stage.artifacts["Api Image"].image_url }}
    - name: Bake
      type: DEVRAMPS:APPROVAL:BAKE
      params: { duration_minutes: 30 }
  artifacts:
    Api Image:
      id: api
      type: DEVRAMPS:DOCKER:BUILD
      architecture: linux/arm64
      host_size: medium
      rebuild_when_changed: [/services/api, /Dockerfile]
      params: { dockerfile: /Dockerfile, build_root: /, args: [NODE_ENV=production] }
"##;

#[test]
fn scenario_08_window_inheritance() {
    let definition = valid(COMPOSITE);
    let window = |name: &str| {
        let stage = definition.stage(name).expect("stage exists");
        definition.effective_window(stage)
    };
    assert_eq!(window("staging"), TimeWindow::None, "its own value wins");
    assert_eq!(
        window("prod"),
        TimeWindow::PacificWorkingHours,
        "inherited from stage_defaults"
    );
}

#[test]
fn scenario_08_window_defaults_to_none_without_stage_defaults() {
    let definition = valid(&pipeline(STAGES, STEPS, NO_ARTIFACTS));
    for stage in &definition.stages {
        assert_eq!(definition.effective_window(stage), TimeWindow::None);
    }
}

#[test]
fn scenario_19_artifact_id_default() {
    let artifacts = "  artifacts:
    API Image:
      type: DEVRAMPS:DOCKER:BUILD
      params:
        dockerfile: /Dockerfile
    Frontend  Bundle!:
      type: DEVRAMPS:BUNDLE:BUILD
      params:
        build_commands: npm ci && npm run build && zip -r web.zip dist
        file_path: /web.zip
    Written Id:
      id: custom
      type: DEVRAMPS:DOCKER:BUILD
      params:
        dockerfile: /Dockerfile
";
    let definition = valid(&pipeline(STAGES, STEPS, artifacts));
    let ids: Vec<(&str, &str, bool)> = definition
        .artifacts
        .iter()
        .map(|a| (a.name.value.as_str(), a.id.value.as_str(), a.id_written))
        .collect();
    assert_eq!(
        ids,
        [
            ("API Image", "api-image", false),
            ("Frontend  Bundle!", "frontend-bundle", false),
            ("Written Id", "custom", true),
        ]
    );
}

#[test]
fn scenario_22_fan_out() {
    let steps = r#"  steps:
    - name: Infra
      id: infra
      type: CUSTOM:TF:APPLY
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
      goes_after: [infra]
    - name: Migrate
      type: CUSTOM:DB:MIGRATE
      goes_after: ["Infra"]
"#;
    let definition = valid(&pipeline(STAGES, steps, NO_ARTIFACTS));
    let graph = StepGraph::of(&definition);
    let index = |r: &str| find_step(&definition.steps, r).expect("step exists");
    let (infra, deploy, migrate) = (index("infra"), index("Deploy"), index("Migrate"));
    assert_eq!(graph.predecessors(infra), Vec::<usize>::new());
    assert_eq!(graph.predecessors(deploy), [infra], "by id");
    assert_eq!(graph.predecessors(migrate), [infra], "by name");
    assert!(
        !graph.predecessors(migrate).contains(&deploy),
        "Migrate does not wait for the step listed before it, so it runs alongside Deploy"
    );
    assert!(graph.cycles().is_empty());
}

#[test]
fn scenario_21_and_22_steps_without_goes_after_wait_for_the_previous_one() {
    let steps = "  steps:
    - name: A
      type: CUSTOM:X:A
    - name: B
      type: CUSTOM:X:B
    - name: C
      type: CUSTOM:X:C
";
    let definition = valid(&pipeline(STAGES, steps, NO_ARTIFACTS));
    let graph = StepGraph::of(&definition);
    assert_eq!(graph.predecessors(0), Vec::<usize>::new());
    assert_eq!(graph.predecessors(1), [0]);
    assert_eq!(graph.predecessors(2), [1]);
}

#[test]
fn scenario_23_skip_list() {
    // By name, as in the composite example.
    let definition = valid(COMPOSITE);
    let staging = definition.stage("staging").expect("staging");
    let prod = definition.stage("prod").expect("prod");
    let skipped: Vec<&str> = staging
        .skip
        .iter()
        .map(|s| {
            definition
                .step(&s.value)
                .expect("skip entry resolves")
                .name
                .value
                .as_str()
        })
        .collect();
    assert_eq!(skipped, ["Bake"]);
    assert!(prod.skip.is_empty(), "prod runs Bake");

    // By id.
    let steps = "  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
    - name: Bake
      id: bake
      type: DEVRAMPS:APPROVAL:BAKE
      params:
        duration_minutes: 30
";
    let stages = r#"  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      skip: [bake]
    - name: prod
      account_id: "222222222222"
      region: us-east-1
"#;
    let definition = valid(&pipeline(stages, steps, NO_ARTIFACTS));
    let entry = &definition.stages[0].skip[0];
    assert_eq!(entry.value, "bake");
    let step = definition.step(&entry.value).expect("skip by id resolves");
    assert_eq!(step.name.value, "Bake");
    assert!(step.is_named("bake") && step.is_named("Bake"));

    // A skip entry that names no step is an error, not silently ignored.
    let typo = pipeline(&stages.replace("[bake]", "[bkae]"), steps, NO_ARTIFACTS);
    let checked = invalid(&typo, &[Code::UnknownSkipEntry]);
    let help = checked.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("`bake`"), "{help}");
}
