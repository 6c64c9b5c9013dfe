//! Artifacts as DevRamps' own guide writes and references them: ids kept as written (with
//! underscores), `pipeline.pre_mirror_artifacts` (the CI/CD account copy before mirroring), and
//! the diagnostics of a malformed `artifacts` list.

use devramps_core::expr::{Organization, PipelineInfo, Trigger};
use devramps_core::pipeline::Diagnostic;
use devramps_core::plan::{Changes, Plan, SynthesisInput, check, synthesize};
use serde_json::Value as Json;

const SHA: &str = "abcdef0123456789abcdef0123456789abcdef01";

/// Two stages, then the text a test appends (steps and artifacts).
const HEADER: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      vars: {env: s}
    - name: prod
      account_id: "222222222222"
      region: us-west-2
      vars: {env: p}
"#;

fn input(previous_builds: &[(&str, &str)], changes: Changes) -> SynthesisInput {
    SynthesisInput {
        pipeline: PipelineInfo::from_slug("api"),
        organization: Organization {
            name: "Acme".to_owned(),
            slug: "acme".to_owned(),
            cicd_account_id: "999999999999".to_owned(),
            cicd_account_region: "eu-west-1".to_owned(),
        },
        trigger: Trigger {
            sha: SHA.to_owned(),
            branch: "main".to_owned(),
            tag: String::new(),
            revision: 7,
        },
        previous_builds: previous_builds
            .iter()
            .map(|(id, commit)| ((*id).to_owned(), (*commit).to_owned()))
            .collect(),
        previous_stage_builds: Default::default(),
        changes,
    }
}

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

/// The plan of `HEADER` + `body`, which must check without any diagnostic.
fn plan_of(body: &str, input: &SynthesisInput) -> Plan {
    let text = format!("{HEADER}{body}");
    let checked = check(&text);
    assert!(
        checked.diagnostics.is_empty(),
        "unexpected diagnostics:\n{}",
        describe(&checked.diagnostics)
    );
    let definition = checked.definition.expect("a definition");
    synthesize(&definition, Some(&text), input).expect("synthesizes")
}

/// The parameters of step `index` in stage `stage`, as JSON.
fn params(plan: &Plan, stage: &str, index: usize) -> Json {
    let stage = plan.stages.iter().find(|s| s.name == stage).expect("stage");
    stage.steps[index].params.to_json()
}

const PRE_MIRROR: &str = r#"  steps:
    - name: Deploy
      type: CUSTOM:DEPLOY
      params:
        by_name: ${{ pipeline.pre_mirror_artifacts["API Image"].image_url }}
        by_id: ${{ pipeline.pre_mirror_artifacts.api-image.image_tag }}
        bundle: ${{ pipeline.pre_mirror_artifacts.web.s3_url }}
        bucket: ${{ pipeline.pre_mirror_artifacts["Web"].s3_bucket }}
        whole: ${{ pipeline.pre_mirror_artifacts.web }}
        mirrored: ${{ stage.artifacts.api-image.image_url }}
  artifacts:
    API Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/api]
      params: {dockerfile: /Dockerfile}
    Web:
      type: DEVRAMPS:BUNDLE:BUILD
      params:
        build_commands: make
        file_path: /dist/web.zip
        env: {FROM: "${{ pipeline.pre_mirror_artifacts.api-image.image_url }}"}
"#;

#[test]
fn pre_mirror_artifacts_are_the_shared_builds_in_the_cicd_account() {
    let plan = plan_of(PRE_MIRROR, &input(&[], Changes::unknown()));
    let image = format!("999999999999.dkr.ecr.eu-west-1.amazonaws.com/api-api-image:{SHA}");
    let bundle = format!("s3://999999999999-api-web/web/{SHA}/web.zip");
    // The same in every stage: the one copy before mirroring.
    for stage in ["staging", "prod"] {
        let p = params(&plan, stage, 0);
        assert_eq!(p["by_name"], image.as_str(), "{stage}");
        assert_eq!(p["by_id"], SHA, "{stage}");
        assert_eq!(p["bundle"], bundle.as_str(), "{stage}");
        assert_eq!(p["bucket"], "999999999999-api-web", "{stage}");
        assert_eq!(
            p["whole"]["s3_key"],
            format!("web/{SHA}/web.zip"),
            "{stage}"
        );
        assert_eq!(p["whole"]["image_url"], "", "{stage}");
        assert_ne!(p["mirrored"], image.as_str(), "the stage copy differs");
    }
    // Usable in a shared artifact's build too.
    let web = plan.artifacts.iter().find(|a| a.id == "web").expect("web");
    let build = web.build_params.as_ref().expect("shared build").to_json();
    assert_eq!(build["params"]["env"]["FROM"], image.as_str());
}

#[test]
fn a_reused_artifact_is_the_previous_build_before_mirroring_too() {
    let previous = "1".repeat(40);
    let plan = plan_of(
        PRE_MIRROR,
        &input(
            &[("api-image", &previous)],
            Changes::since(previous.as_str(), ["/docs/x.md"]),
        ),
    );
    let p = params(&plan, "prod", 0);
    assert_eq!(
        p["by_name"],
        format!("999999999999.dkr.ecr.eu-west-1.amazonaws.com/api-api-image:{previous}")
    );
}

#[test]
fn a_per_stage_artifact_has_no_pre_mirror_copy_and_a_misspelt_property_is_named() {
    let text = format!(
        "{HEADER}{}",
        r#"  steps:
    - name: Deploy
      type: CUSTOM:DEPLOY
      params:
        a: ${{ pipeline.pre_mirror_artifacts.site.s3_url }}
        b: ${{ pipeline.pre_mirror_artifact.site.s3_url }}
  artifacts:
    Site:
      type: DEVRAMPS:BUNDLE:BUILD
      per_stage: true
      params: {build_commands: make, file_path: /site.zip}
"#
    );
    let diagnostics = check(&text).diagnostics;
    let all = describe(&diagnostics);
    assert_eq!(diagnostics.len(), 2, "{all}");
    let per_stage = &diagnostics[0];
    assert_eq!(per_stage.code.as_str(), "E0609", "{all}");
    assert_eq!((per_stage.span.line, per_stage.span.column), (18, 46));
    assert!(per_stage.message.contains("built for each stage"), "{all}");
    assert!(
        per_stage
            .help
            .as_deref()
            .is_some_and(|h| h.contains("stage.artifacts")),
        "{all}"
    );
    let typo = &diagnostics[1];
    assert_eq!(typo.code.as_str(), "E0604", "{all}");
    assert_eq!(
        typo.help.as_deref(),
        Some("did you mean `pre_mirror_artifacts`?"),
        "{all}"
    );
}

#[test]
fn ids_as_the_devramps_guide_writes_them_are_kept_and_normalized_only_in_aws_names() {
    let plan = plan_of(
        r#"  steps:
    - name: Deploy
      type: CUSTOM:DEPLOY
      params:
        bucket: ${{ stage.artifacts.frontend_bundle.s3_bucket }}
        url: ${{ stage.artifacts.frontend_bundle.s3_url }}
        image: ${{ stage.artifacts.Api_Image.image_url }}
  artifacts:
    Frontend Bundle:
      id: frontend_bundle
      type: DEVRAMPS:BUNDLE:BUILD
      params: {build_commands: make, file_path: /dist/site.zip}
    API:
      id: Api_Image
      type: DEVRAMPS:DOCKER:BUILD
      params: {dockerfile: /Dockerfile}
"#,
        &input(&[], Changes::unknown()),
    );
    let ids: Vec<&str> = plan.artifacts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["frontend_bundle", "Api_Image"], "kept as written");
    let p = params(&plan, "prod", 0);
    let bucket = "222222222222-api-prod-frontend-bundle";
    assert_eq!(p["bucket"], bucket);
    assert_eq!(
        p["url"],
        format!("s3://{bucket}/frontend_bundle/{SHA}/site.zip")
    );
    assert_eq!(
        p["image"],
        format!("222222222222.dkr.ecr.us-west-2.amazonaws.com/api-prod-api-image:{SHA}")
    );
    // Valid AWS names: bucket names lowercase letters, digits and hyphens; so are ECR names here.
    let valid = |name: &str| {
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    assert!(valid(bucket));
    let repository = p["image"].as_str().and_then(|u| u.split('/').nth(1));
    let repository = repository.and_then(|r| r.split(':').next()).expect("repo");
    assert!(valid(repository), "{repository}");
}
