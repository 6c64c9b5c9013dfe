//! Pipeline synthesis (lifecycle L3) and the late resolution of deferred values: the acceptance
//! scenarios of reference §13 that concern expressions, artifacts and step order, plus typed
//! parameters, skip semantics, rebuild decisions and the JSON shape of `devramps plan`.

use std::collections::BTreeMap;

use devramps_core::expr::{
    Deferred, FinalValue, Organization, ParamValue, PipelineInfo, Resolution, ResolveError,
    SecretString, Trigger,
};
use devramps_core::pipeline::PipelineDefinition;
use devramps_core::plan::check;
use devramps_core::plan::{
    ArtifactPlan, Changes, Decision, Plan, RebuildReason, StagePlan, StepPlan, SynthesisInput,
    synthesize,
};
use serde_json::{Value as Json, json};

/// The deployed commit.
const SHA: &str = "abcdef0123456789abcdef0123456789abcdef01";

/// The §1.11-like pipeline most scenarios use.
const PIPELINE: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stage_defaults:
    deployment_time_window: PACIFIC_WORKING_HOURS
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      deployment_time_window: NONE
      skip: [Bake]
      vars:
        api_url: s
        replicas: 2
        enabled: true
        ratio: 0.5
        tags: {team: core, tier: web}
        zones: [a, b]
    - name: prod
      account_id: "222222222222"
      region: us-west-2
      vars:
        api_url: p
        replicas: 5
        enabled: false
        ratio: 1.5
        tags: {team: core, tier: api}
        zones: [c]
  steps:
    - name: Infra
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      params:
        requires_approval: NEVER
        source: /infra
        variables:
          replicas: ${{ vars.replicas }}
          enabled: ${{ vars.enabled }}
          ratio: ${{ vars.ratio }}
          tags: ${{ vars.tags }}
          zones: ${{ vars.zones }}
          team: ${{ vars.tags.team }}
          revision: ${{ trigger.revision }}
          summary: "${{ vars.replicas }} ${{ vars.enabled }} ${{ vars.tags }} ${{ vars.zones }} r${{ trigger.revision }}"
    - name: Deploy
      type: DEVRAMPS:ECS:DEPLOY
      goes_after: [infra]
      params:
        cluster_name: ${{ steps.infra.cluster }}
        service_name: svc-${{ steps.infra.service }}-${{ stage.name }}
        reference_task_definition: ${{ steps.infra.task_def }}
        image_url: ${{ stage.artifacts["Api Image"].image_url }}
    - name: Migrate
      id: migrate
      type: CUSTOM:DB:MIGRATE
      goes_after: ["Infra"]
      params:
        api_key: ${{ secret("API_KEY") }}
        db_pass: ${{ stage_secret("DB_PASS") }}
        dsn: postgres://app:${{ stage_secret("DB_PASS") }}@db.${{ stage.region }}
        region: ${{ stage.region }}
        port: ${{ steps.infra.port }}
        url: http://db:${{ steps.infra.port }}/${{ steps.infra.cluster }}
        org_a: ${{ organization.secrets["K"] }}
        org_b: ${{ secret("K") }}
        stage_a: ${{ stage.secrets["K"] }}
        stage_b: ${{ stage_secret("K") }}
        gone: ${{ secret("GONE") }}
    - name: Bake
      type: DEVRAMPS:APPROVAL:BAKE
      goes_after: [Deploy, migrate]
      params:
        duration_minutes: 30
    - name: Notify
      type: CUSTOM:NOTIFY
      params:
        role: ${{ organization.slug }}-${{ pipeline.slug }}-${{ stage.name }}
        role_name: MyRole-${{ stage.name }}
        sha: ${{ trigger.sha }}
        branch: ${{ trigger.branch }}
        tag: ${{ trigger.tag }}
        revision: ${{ trigger.revision }}
        web: ${{ stage.artifacts.web-bundle.s3_url }}
  artifacts:
    Api Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/services/api, /Dockerfile]
      params:
        dockerfile: /Dockerfile
        args: ["REVISION=${{ trigger.revision }}"]
    Web Bundle:
      type: DEVRAMPS:BUNDLE:BUILD
      per_stage: true
      rebuild_when_changed: [/web]
      envs:
        API_URL: ${{ vars.api_url }}
      params:
        build_commands: make web
        file_path: /dist/web.zip
    Tools:
      type: DEVRAMPS:DOCKER:BUILD
      params:
        dockerfile: /tools/Dockerfile
"#;

/// Parses `text`, which must have no diagnostic at all.
fn definition(text: &str) -> PipelineDefinition {
    let checked = check(text);
    assert!(
        checked.diagnostics.is_empty(),
        "unexpected diagnostics: {:#?}",
        checked.diagnostics
    );
    checked
        .definition
        .expect("a pipeline without diagnostics has a definition")
}

fn input(previous_builds: &[(&str, &str)], changes: Changes) -> SynthesisInput {
    SynthesisInput {
        pipeline: PipelineInfo::from_slug("api"),
        organization: Organization {
            name: "Acme Inc".to_owned(),
            slug: "acme".to_owned(),
            cicd_account_id: "999999999999".to_owned(),
            cicd_account_region: "eu-west-1".to_owned(),
        },
        trigger: Trigger {
            sha: SHA.to_owned(),
            branch: "main".to_owned(),
            tag: String::new(),
            revision: 12,
        },
        previous_builds: previous_builds
            .iter()
            .map(|(id, commit)| ((*id).to_owned(), (*commit).to_owned()))
            .collect(),
        previous_stage_builds: Default::default(),
        changes,
    }
}

fn plan_of(text: &str, input: &SynthesisInput) -> Plan {
    let definition = definition(text);
    synthesize(&definition, Some(text), input).expect("synthesis succeeds")
}

/// The plan of [`PIPELINE`] with no previous build.
fn fresh_plan() -> Plan {
    plan_of(PIPELINE, &input(&[], Changes::unknown()))
}

fn artifact<'p>(plan: &'p Plan, id: &str) -> &'p ArtifactPlan {
    plan.artifacts
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no artifact `{id}` in {:?}", plan.artifacts))
}

fn stage<'p>(plan: &'p Plan, name: &str) -> &'p StagePlan {
    plan.stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage `{name}`"))
}

fn step<'p>(plan: &'p Plan, stage_name: &str, step_name: &str) -> &'p StepPlan {
    stage(plan, stage_name)
        .steps
        .iter()
        .find(|s| s.name == step_name)
        .unwrap_or_else(|| panic!("no step `{step_name}` in stage `{stage_name}`"))
}

/// The value of parameter `key` of a step (a map of parameters).
fn param<'p>(step: &'p StepPlan, key: &str) -> &'p ParamValue {
    step.params.get(key).unwrap_or_else(|| {
        panic!(
            "step `{}` has no parameter `{key}`: {:?}",
            step.name, step.params
        )
    })
}

fn image_url(account: &str, region: &str, stage: &str, commit: &str) -> String {
    format!("{account}.dkr.ecr.{region}.amazonaws.com/api-{stage}-api-image:{commit}")
}

// ---------------------------------------------------------------------------------------------
// Rebuild or reuse (scenarios 16, 17).

#[test]
fn scenario_16_untouched_artifact_is_reused() {
    let previous = "1".repeat(40);
    let plan = plan_of(
        PIPELINE,
        &input(
            &[
                ("api-image", &previous),
                ("web-bundle", &previous),
                ("tools", &previous),
            ],
            Changes::since(previous.as_str(), ["/docs/readme.md"]),
        ),
    );
    let api = artifact(&plan, "api-image");
    assert_eq!(api.name, "Api Image");
    assert_eq!(api.decision, Decision::Reuse);
    assert_eq!(api.reason, RebuildReason::Unchanged);
    assert!(api.matched.is_empty());
    assert_eq!(
        api.build_commit, previous,
        "a reused artifact is the previous build"
    );
    assert_eq!(artifact(&plan, "web-bundle").decision, Decision::Reuse);
    // Without `rebuild_when_changed`, an artifact is built every time.
    let tools = artifact(&plan, "tools");
    assert_eq!(
        (tools.decision, tools.reason),
        (Decision::Rebuild, RebuildReason::NoRebuildWhenChanged)
    );
    assert_eq!(tools.build_commit, SHA);

    // `stage.artifacts["Api Image"].image_url` is the previous build's image in each stage.
    for (name, account, region) in [
        ("staging", "111111111111", "us-east-1"),
        ("prod", "222222222222", "us-west-2"),
    ] {
        let expected = image_url(account, region, name, &previous);
        let location = &stage(&plan, name).artifacts["api-image"];
        assert_eq!(location.image_url, expected);
        assert_eq!(location.image_tag, previous);
        assert_eq!(
            param(step(&plan, name, "Deploy"), "image_url").to_json(),
            json!(expected)
        );
        assert!(
            stage(&plan, name).artifacts["tools"]
                .image_url
                .ends_with(SHA),
            "the rebuilt artifact is tagged with the deployed commit"
        );
    }
}

#[test]
fn scenario_17_touched_artifact_is_rebuilt() {
    let previous = "1".repeat(40);
    let decide = |path: &str| {
        let plan = plan_of(
            PIPELINE,
            &input(
                &[("api-image", &previous)],
                Changes::since(previous.as_str(), [path]),
            ),
        );
        let api = artifact(&plan, "api-image").clone();
        let url = stage(&plan, "prod").artifacts["api-image"]
            .image_url
            .clone();
        (api, url)
    };
    for path in ["/services/api/src/main.ts", "/Dockerfile"] {
        let (api, url) = decide(path);
        assert_eq!(api.decision, Decision::Rebuild, "{path}");
        assert_eq!(api.reason, RebuildReason::PathsChanged, "{path}");
        assert_eq!(api.matched, [path]);
        assert_eq!(api.build_commit, SHA);
        assert_eq!(url, image_url("222222222222", "us-west-2", "prod", SHA));
    }
    // Whole path components: `/services/api` does not cover `/services/api-gateway`.
    let (api, url) = decide("/services/api-gateway/x.ts");
    assert_eq!(
        (api.decision, api.reason),
        (Decision::Reuse, RebuildReason::Unchanged)
    );
    assert!(api.matched.is_empty());
    assert_eq!(
        url,
        image_url("222222222222", "us-west-2", "prod", &previous)
    );
}

#[test]
fn no_previous_build_means_rebuild() {
    let plan = fresh_plan();
    for a in &plan.artifacts {
        assert_eq!(
            (a.decision, a.reason),
            (Decision::Rebuild, RebuildReason::NoPreviousBuild),
            "{}",
            a.id
        );
        assert_eq!(a.build_commit, SHA);
        assert!(a.matched.is_empty());
    }
}

#[test]
fn unknown_changes_mean_rebuild() {
    let previous = "1".repeat(40);
    let plan = plan_of(
        PIPELINE,
        &input(&[("api-image", &previous)], Changes::unknown()),
    );
    let api = artifact(&plan, "api-image");
    assert_eq!(
        (api.decision, api.reason),
        (Decision::Rebuild, RebuildReason::ChangesUnknown)
    );
    assert_eq!(api.build_commit, SHA);
}

#[test]
fn each_artifact_uses_the_changes_since_its_own_previous_build() {
    let (p1, p2) = ("1".repeat(40), "2".repeat(40));
    let mut changes = Changes::since(p1.as_str(), ["/web/index.ts"]);
    changes.add(p2.as_str(), ["/services/api/main.rs"]);
    let plan = plan_of(
        PIPELINE,
        &input(&[("api-image", &p1), ("web-bundle", &p2)], changes),
    );
    // Since p1 only /web changed: the image is untouched; since p2 only the API changed: the
    // bundle is untouched. Mixing the change sets up would rebuild both.
    let api = artifact(&plan, "api-image");
    let web = artifact(&plan, "web-bundle");
    assert_eq!(
        (api.decision, api.build_commit.as_str()),
        (Decision::Reuse, p1.as_str())
    );
    assert_eq!(
        (web.decision, web.build_commit.as_str()),
        (Decision::Reuse, p2.as_str())
    );

    let mut changes = Changes::since(p1.as_str(), ["/services/api/main.rs"]);
    changes.add(p2.as_str(), ["/docs/x.md"]);
    let plan = plan_of(
        PIPELINE,
        &input(&[("api-image", &p1), ("web-bundle", &p2)], changes),
    );
    let api = artifact(&plan, "api-image");
    assert_eq!(api.decision, Decision::Rebuild);
    assert_eq!(api.matched, ["/services/api/main.rs"]);
    assert_eq!(artifact(&plan, "web-bundle").decision, Decision::Reuse);
    assert!(
        stage(&plan, "staging").artifacts["web-bundle"]
            .s3_key
            .contains(&p2),
        "the reused bundle comes from its own previous build"
    );
}

const GLOBS: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
  steps:
    - name: A
      type: CUSTOM:A
  artifacts:
    Services:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: ["/services/*/src"]
      params: {dockerfile: /Dockerfile}
    Web:
      type: DEVRAMPS:BUNDLE:BUILD
      rebuild_when_changed: ["/web/**/*.ts"]
      params: {build_commands: make, file_path: /web.zip}
"#;

#[test]
fn rebuild_globs() {
    let previous = "1".repeat(40);
    let decide = |paths: &[&str]| {
        let plan = plan_of(
            GLOBS,
            &input(
                &[("services", &previous), ("web", &previous)],
                Changes::since(previous.as_str(), paths.iter().copied()),
            ),
        );
        (
            artifact(&plan, "services").matched.clone(),
            artifact(&plan, "web").matched.clone(),
        )
    };
    let none: [&str; 0] = [];
    // `*` matches one component, and an entry covers everything beneath what it matches.
    assert_eq!(
        decide(&["/services/a/src/x.rs"]).0,
        ["/services/a/src/x.rs"]
    );
    assert_eq!(decide(&["/services/a/src"]).0, ["/services/a/src"]);
    // `*` does not cross `/`.
    assert_eq!(decide(&["/services/a/b/src/x.rs"]).0, none);
    assert_eq!(decide(&["/services/src/x.rs"]).0, none);
    // `**` crosses any number of directories, including none.
    assert_eq!(decide(&["/web/a/b/c.ts"]).1, ["/web/a/b/c.ts"]);
    assert_eq!(decide(&["/web/c.ts"]).1, ["/web/c.ts"]);
    assert_eq!(decide(&["/web/a/c.js", "/webapp/c.ts"]).1, none);
    // Matched paths are listed per artifact in the order given.
    let (services, web) = decide(&[
        "/web/z.ts",
        "/services/b/src/y.rs",
        "/docs/a.md",
        "/services/a/src/x.rs",
    ]);
    assert_eq!(services, ["/services/b/src/y.rs", "/services/a/src/x.rs"]);
    assert_eq!(web, ["/web/z.ts"]);
}

// ---------------------------------------------------------------------------------------------
// Artifacts per stage (scenario 20).

#[test]
fn scenario_20_per_stage_artifact() {
    let plan = fresh_plan();
    let web = artifact(&plan, "web-bundle");
    assert!(web.per_stage);
    assert!(
        web.build_params.is_none(),
        "no root CI/CD-account build of a per-stage artifact"
    );
    for (name, url) in [("staging", "s"), ("prod", "p")] {
        let builds = &stage(&plan, name).builds;
        assert_eq!(
            builds.keys().collect::<Vec<_>>(),
            ["web-bundle"],
            "only per-stage artifacts build in {name}"
        );
        assert_eq!(
            builds["web-bundle"].to_json(),
            json!({
                "params": {"build_commands": "make web", "file_path": "/dist/web.zip"},
                "envs": {"API_URL": url},
            }),
            "build of stage {name}"
        );
    }
    // A shared artifact is built once (in the CI/CD account) and mirrored to both stages.
    let api = artifact(&plan, "api-image");
    assert!(!api.per_stage);
    assert_eq!(
        api.build_params.as_ref().map(ParamValue::to_json),
        Some(json!({"params": {"dockerfile": "/Dockerfile", "args": ["REVISION=12"]}, "envs": {}}))
    );
    assert_eq!(
        stage(&plan, "staging").artifacts["api-image"].image_url,
        image_url("111111111111", "us-east-1", "staging", SHA)
    );
    assert_eq!(
        stage(&plan, "prod").artifacts["api-image"].image_url,
        image_url("222222222222", "us-west-2", "prod", SHA)
    );
    // Each stage's bundle is in its own bucket.
    let s3 = |name| stage(&plan, name).artifacts["web-bundle"].clone();
    assert_eq!(
        s3("staging").s3_url,
        format!("s3://111111111111-api-staging-web-bundle/web-bundle/{SHA}/web.zip")
    );
    assert_eq!(s3("prod").s3_bucket, "222222222222-api-prod-web-bundle");
    assert_eq!(s3("prod").s3_key, format!("web-bundle/{SHA}/web.zip"));
    assert_eq!(
        param(step(&plan, "prod", "Notify"), "web").to_json(),
        json!(s3("prod").s3_url)
    );
}

// ---------------------------------------------------------------------------------------------
// Step order (scenario 22) and skipped steps.

#[test]
fn scenario_22_fan_out() {
    let plan = fresh_plan();
    for name in ["staging", "prod"] {
        let deploy = step(&plan, name, "Deploy");
        let migrate = step(&plan, name, "Migrate");
        // `goes_after: [infra]` (id) and `goes_after: ["Infra"]` (name) are the same step.
        assert_eq!(deploy.after, ["infra"]);
        assert_eq!(migrate.after, ["infra"]);
        assert_eq!(deploy.predecessors, [0]);
        assert_eq!(migrate.predecessors, [0]);
        // Neither waits for the other: they run concurrently.
        assert!(!deploy.predecessors.contains(&migrate.index));
        assert!(!migrate.predecessors.contains(&deploy.index));
        assert!(step(&plan, name, "Infra").after.is_empty());
    }
    let bake = step(&plan, "prod", "Bake");
    assert_eq!(bake.after, ["Deploy", "migrate"], "by id, else name");
    assert!(!bake.skipped);
    assert_eq!(step(&plan, "prod", "Notify").after, ["Bake"]);
}

#[test]
fn a_skipped_step_passes_its_predecessors_on() {
    let plan = fresh_plan();
    // Staging skips Bake, so Notify (listed after Bake) waits for what Bake waits for.
    let bake = step(&plan, "staging", "Bake");
    assert!(bake.skipped);
    let notify = step(&plan, "staging", "Notify");
    assert_eq!(notify.after, ["Deploy", "migrate"]);
    assert_eq!(notify.predecessors, [1, 2]);
}

#[test]
fn skipped_middle_of_a_chain() {
    let text = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      skip: [b]
    - name: prod
      account_id: "222222222222"
      region: us-west-2
  steps:
    - {name: A, type: "CUSTOM:A"}
    - {name: B, id: b, type: "CUSTOM:B"}
    - {name: C, type: "CUSTOM:C"}
  artifacts: {}
"#;
    let plan = plan_of(text, &input(&[], Changes::unknown()));
    let c = step(&plan, "staging", "C");
    assert!(step(&plan, "staging", "B").skipped);
    assert_eq!(c.after, ["A"]);
    assert_eq!(c.predecessors, [0]);
    assert!(!step(&plan, "prod", "B").skipped);
    assert_eq!(step(&plan, "prod", "C").after, ["b"]);
    assert_eq!(step(&plan, "prod", "B").after, ["A"]);
}

/// Two stages (`first`, `second`) and a step `Deploy` reading the stage, a secret and the
/// outputs of `Infra`.
const SHARED: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: first
      account_id: "111111111111"
      region: us-east-1
    - name: second
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
        service: svc-${{ stage.name }}
        settings: {key: "${{ secret(\"K\") }}", url: "https://${{ steps.infra.host }}/"}
  artifacts: {}
"#;

/// [`SHARED`] with the stage at `stage` skipping the steps `skip`.
fn shared_with_skip(stage: usize, skip: &[&str]) -> PipelineDefinition {
    let mut definition = definition(SHARED);
    definition.stages[stage].skip = skip
        .iter()
        .map(|s| devramps_core::pipeline::Spanned::unspanned((*s).to_owned()))
        .collect();
    definition
}

#[test]
fn values_that_do_not_depend_on_the_stage_are_the_same_in_every_stage() {
    let plan = plan_of(SHARED, &input(&[], Changes::unknown()));
    let (first, second) = (
        step(&plan, "first", "Deploy"),
        step(&plan, "second", "Deploy"),
    );
    assert_eq!(param(first, "cluster"), param(second, "cluster"));
    assert_eq!(param(first, "settings"), param(second, "settings"));
    assert_eq!(
        param(first, "settings").to_json(),
        json!({"key": "[SECRET:K]", "url": "https://[OUTPUT:infra/host]/"})
    );
    assert_eq!(param(first, "service").as_str(), Some("svc-first"));
    assert_eq!(param(second, "service").as_str(), Some("svc-second"));
}

#[test]
fn a_stage_that_skips_a_producer_reports_it_whichever_stage_comes_first() {
    for stage in [0, 1] {
        let definition = shared_with_skip(stage, &["infra"]);
        let name = &definition.stages[stage].name.value;
        let errors = synthesize(&definition, Some(SHARED), &input(&[], Changes::unknown()))
            .expect_err("a skipped producer is an error");
        let expected = format!("step `Deploy` uses outputs of `Infra`, which stage `{name}` skips");
        assert!(
            errors.0.iter().any(|d| d.message == expected),
            "no `{expected}` in {:#?}",
            errors.0
        );
        assert!(
            errors
                .0
                .iter()
                .all(|d| !d.message.contains(&definition.stages[1 - stage].name.value)),
            "only stage `{name}` skips Infra: {:#?}",
            errors.0
        );
    }
}

#[test]
fn a_skipped_consumer_shows_what_resolves_in_its_stage_only() {
    for stage in [0, 1] {
        let definition = shared_with_skip(stage, &["infra", "Deploy"]);
        let plan = synthesize(&definition, Some(SHARED), &input(&[], Changes::unknown()))
            .expect("a skipped step's errors are not reported");
        let (skipping, running) = (&plan.stages[stage], &plan.stages[1 - stage]);
        let skipped = &skipping.steps[1].params;
        assert!(skipping.steps[1].skipped);
        // The entries that read Infra's outputs do not resolve where Infra is skipped.
        assert_eq!(skipped.get("cluster"), None);
        assert_eq!(skipped.get("settings"), None);
        assert_eq!(
            skipped.get("service").and_then(ParamValue::as_str),
            Some(format!("svc-{}", skipping.name).as_str())
        );
        let running = &running.steps[1].params;
        assert_eq!(
            running.get("cluster").map(ParamValue::to_json),
            Some(json!("[OUTPUT:infra/cluster]"))
        );
        assert!(running.get("settings").is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions in the plan (scenarios 24, 25, 28) and typed values.

#[test]
fn scenario_24_interpolation() {
    let plan = fresh_plan();
    let notify = step(&plan, "staging", "Notify");
    assert_eq!(param(notify, "role"), &ParamValue::from("acme-api-staging"));
    assert_eq!(
        param(notify, "role_name"),
        &ParamValue::from("MyRole-staging")
    );
    let notify = step(&plan, "prod", "Notify");
    assert_eq!(param(notify, "role").to_json(), json!("acme-api-prod"));
    assert_eq!(param(notify, "role_name").to_json(), json!("MyRole-prod"));
}

#[test]
fn scenario_25_deferred_markers() {
    let plan = fresh_plan();
    let migrate = step(&plan, "staging", "Migrate");
    assert_eq!(
        param(migrate, "api_key"),
        &ParamValue::from(Deferred::Secret("API_KEY".to_owned()))
    );
    assert_eq!(
        param(migrate, "api_key").to_json(),
        json!("[SECRET:API_KEY]")
    );
    assert_eq!(
        param(migrate, "db_pass").to_json(),
        json!("[STAGE_SECRET:DB_PASS]")
    );
    // Text around a deferred value keeps the marker in place; resolvable parts are resolved.
    assert_eq!(
        param(migrate, "dsn").to_json(),
        json!("postgres://app:[STAGE_SECRET:DB_PASS]@db.us-east-1")
    );
    assert_eq!(param(migrate, "region"), &ParamValue::from("us-east-1"));
    let deploy = step(&plan, "staging", "Deploy");
    assert_eq!(
        param(deploy, "cluster_name"),
        &ParamValue::from(Deferred::Output {
            step: "infra".to_owned(),
            field: "cluster".to_owned()
        })
    );
    assert_eq!(
        param(deploy, "cluster_name").to_json(),
        json!("[OUTPUT:infra/cluster]")
    );
    assert_eq!(
        param(deploy, "service_name").to_json(),
        json!("svc-[OUTPUT:infra/service]-staging")
    );
    // The deferred values of a step, in order.
    let markers: Vec<String> = migrate
        .params
        .deferred()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        markers,
        [
            "[SECRET:API_KEY]",
            "[STAGE_SECRET:DB_PASS]",
            "[STAGE_SECRET:DB_PASS]",
            "[OUTPUT:infra/port]",
            "[OUTPUT:infra/port]",
            "[OUTPUT:infra/cluster]",
            "[SECRET:K]",
            "[SECRET:K]",
            "[STAGE_SECRET:K]",
            "[STAGE_SECRET:K]",
            "[SECRET:GONE]",
        ]
    );
}

#[test]
fn scenario_28_trigger_context() {
    let plan = fresh_plan();
    let notify = step(&plan, "prod", "Notify");
    assert_eq!(param(notify, "sha").to_json(), json!(SHA));
    assert_eq!(param(notify, "branch").to_json(), json!("main"));
    assert_eq!(param(notify, "tag").to_json(), json!(""));
    assert_eq!(param(notify, "revision"), &ParamValue::Int(12));
    assert!(
        param(notify, "revision").to_json().is_u64(),
        "trigger.revision is a number"
    );
    assert_eq!((plan.commit.as_str(), plan.revision), (SHA, 12));
}

#[test]
fn whole_value_expressions_keep_their_type() {
    let plan = fresh_plan();
    let variables = |stage_name| param(step(&plan, stage_name, "Infra"), "variables").to_json();
    let staging = variables("staging");
    assert_eq!(staging["replicas"], json!(2));
    assert!(staging["replicas"].is_i64());
    assert_eq!(staging["enabled"], json!(true));
    assert_eq!(staging["ratio"], json!(0.5));
    assert_eq!(staging["tags"], json!({"team": "core", "tier": "web"}));
    assert_eq!(staging["zones"], json!(["a", "b"]));
    assert_eq!(staging["team"], json!("core"));
    assert_eq!(staging["revision"], json!(12));
    // Inside text, values are rendered as text (maps and lists as compact JSON).
    assert_eq!(
        staging["summary"],
        json!(r#"2 true {"team":"core","tier":"web"} ["a","b"] r12"#)
    );
    let prod = variables("prod");
    assert_eq!(prod["replicas"], json!(5));
    assert_eq!(prod["enabled"], json!(false));
    assert_eq!(prod["zones"], json!(["c"]));
    assert_eq!(
        prod["summary"],
        json!(r#"5 false {"team":"core","tier":"api"} ["c"] r12"#)
    );
    // The same as `ParamValue`s.
    let variables = param(step(&plan, "staging", "Infra"), "variables");
    assert!(variables.as_map().is_some(), "variables are a map");
    let get = |k: &str| variables.get(k).cloned();
    assert_eq!(get("replicas"), Some(ParamValue::Int(2)));
    assert_eq!(get("enabled"), Some(ParamValue::Bool(true)));
    assert!(matches!(get("tags"), Some(ParamValue::Map(m)) if m.len() == 2));
    assert!(matches!(get("zones"), Some(ParamValue::List(l)) if l.len() == 2));
    // Literal parameters are left as written.
    assert_eq!(
        param(step(&plan, "prod", "Bake"), "duration_minutes"),
        &ParamValue::Int(30)
    );
}

// ---------------------------------------------------------------------------------------------
// Late resolution (scenarios 26, 27, 29).

/// The outputs of a finished Infra step.
fn infra_outputs() -> BTreeMap<String, BTreeMap<String, Json>> {
    let outputs: BTreeMap<String, Json> = [
        ("cluster".to_owned(), json!("c1")),
        ("service".to_owned(), json!("web")),
        ("task_def".to_owned(), json!("td:3")),
        ("port".to_owned(), json!(8080)),
    ]
    .into();
    [("infra".to_owned(), outputs)].into()
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretString::new(*v)))
        .collect()
}

#[test]
fn scenario_26_secret_equivalence() {
    let plan = fresh_plan();
    let org_secrets = secrets(&[("K", "org-k"), ("API_KEY", "key"), ("GONE", "x")]);
    let mut resolved = Vec::new();
    for (name, stage_k) in [("staging", "staging-k"), ("prod", "prod-k")] {
        let migrate = step(&plan, name, "Migrate");
        // The two spellings give the same deferred value.
        assert_eq!(param(migrate, "org_a"), param(migrate, "org_b"));
        assert_eq!(
            param(migrate, "org_a"),
            &ParamValue::from(Deferred::Secret("K".to_owned()))
        );
        assert_eq!(param(migrate, "stage_a"), param(migrate, "stage_b"));
        assert_eq!(
            param(migrate, "stage_a"),
            &ParamValue::from(Deferred::StageSecret("K".to_owned()))
        );
        let resolution = Resolution {
            outputs: infra_outputs(),
            secrets: org_secrets.clone(),
            stage_secrets: secrets(&[("K", stage_k), ("DB_PASS", "pw")]),
        };
        let value = |key| {
            resolution
                .resolve(param(migrate, key))
                .expect("every secret and output is there")
                .expose_json()
        };
        assert_eq!(value("org_a"), json!("org-k"));
        assert_eq!(value("org_b"), json!("org-k"));
        assert_eq!(value("stage_a"), json!(stage_k));
        assert_eq!(value("stage_b"), json!(stage_k));
        resolved.push(value("stage_b"));
    }
    assert_ne!(
        resolved[0], resolved[1],
        "stage secrets differ between stages"
    );
}

#[test]
fn scenario_27_deleted_secret_fails_resolution() {
    let plan = fresh_plan();
    let migrate = step(&plan, "prod", "Migrate");
    let resolution = Resolution {
        outputs: infra_outputs(),
        secrets: secrets(&[("API_KEY", "key"), ("K", "k")]),
        stage_secrets: secrets(&[("DB_PASS", "pw"), ("K", "k")]),
    };
    // Synthesis does not look secrets up: the plan exists; the step that needs it fails.
    let error = resolution
        .resolve(&migrate.params)
        .expect_err("GONE was deleted");
    assert_eq!(error, ResolveError::MissingSecret("GONE".to_owned()));
    assert!(error.to_string().contains("`GONE`"), "{error}");
    // Parameters that do not use it still resolve.
    assert!(resolution.resolve(param(migrate, "api_key")).is_ok());
    // A missing stage secret is its own error.
    let no_stage_secret = Resolution {
        stage_secrets: BTreeMap::new(),
        ..resolution.clone()
    };
    assert_eq!(
        no_stage_secret.resolve(param(migrate, "dsn")),
        Err(ResolveError::MissingStageSecret("DB_PASS".to_owned()))
    );
}

#[test]
fn scenario_29_step_output_flow() {
    let plan = fresh_plan();
    let deploy = step(&plan, "staging", "Deploy");
    let migrate = step(&plan, "staging", "Migrate");
    // Before Infra has finished there is nothing to resolve the outputs with.
    let before = Resolution::default();
    assert_eq!(
        before.resolve(param(deploy, "cluster_name")),
        Err(ResolveError::MissingOutput {
            step: "infra".to_owned(),
            field: "cluster".to_owned()
        })
    );
    // Outputs are keyed by the producer's id (else name): outputs filed under the name of a step
    // that has an id resolve nothing.
    let by_name = Resolution {
        outputs: [("Infra".to_owned(), infra_outputs()["infra"].clone())].into(),
        ..Resolution::default()
    };
    assert!(matches!(
        by_name.resolve(param(deploy, "cluster_name")),
        Err(ResolveError::MissingOutput { .. })
    ));
    let after = Resolution {
        outputs: infra_outputs(),
        secrets: secrets(&[("API_KEY", "key"), ("K", "k"), ("GONE", "g")]),
        stage_secrets: secrets(&[("DB_PASS", "pw"), ("K", "k")]),
    };
    let resolved = after.resolve(&deploy.params).expect("Infra finished");
    assert!(!resolved.has_secret());
    let json = resolved.expose_json();
    assert_eq!(json["cluster_name"], json!("c1"));
    assert_eq!(
        json["service_name"],
        json!("svc-web-staging"),
        "outputs inside text become text"
    );
    assert_eq!(json["reference_task_definition"], json!("td:3"));
    assert_eq!(
        json["image_url"],
        json!(image_url("111111111111", "us-east-1", "staging", SHA))
    );
    assert_eq!(resolved, FinalValue::Plain(json.clone()));
    // A whole-value output keeps its JSON type; inside text it is rendered.
    let port = after.resolve(param(migrate, "port")).expect("resolves");
    assert_eq!(port, FinalValue::Plain(json!(8080)));
    assert!(port.expose_json().is_u64());
    assert_eq!(
        after
            .resolve(param(migrate, "url"))
            .expect("resolves")
            .expose_json(),
        json!("http://db:8080/c1")
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON of `devramps plan` (cli.md).

fn keys(value: &Json) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn plan_json_has_the_documented_shape() {
    let previous = "1".repeat(40);
    let plan = plan_of(
        PIPELINE,
        &input(
            &[("api-image", &previous)],
            Changes::since(previous.as_str(), ["/Dockerfile", "/README.md"]),
        ),
    );
    let json = serde_json::to_value(&plan).expect("a plan serializes");
    assert_eq!(
        keys(&json),
        ["pipeline", "commit", "revision", "artifacts", "stages"]
    );
    assert_eq!(json["pipeline"], "api");
    assert_eq!(json["commit"], SHA);
    assert_eq!(json["revision"], 12);

    let artifacts = json["artifacts"].as_array().expect("artifacts is a list");
    assert_eq!(artifacts.len(), 3);
    for a in artifacts {
        assert_eq!(
            keys(a),
            ["id", "name", "type", "per_stage", "decision", "matched"]
        );
    }
    assert_eq!(
        artifacts[0],
        json!({"id": "api-image", "name": "Api Image", "type": "DEVRAMPS:DOCKER:BUILD",
               "per_stage": false, "decision": "REBUILD", "matched": ["/Dockerfile"]})
    );
    assert_eq!(artifacts[1]["per_stage"], true);
    assert_eq!(artifacts[1]["type"], "DEVRAMPS:BUNDLE:BUILD");

    let stages = json["stages"].as_array().expect("stages is a list");
    assert_eq!(stages.len(), 2);
    for s in stages {
        assert_eq!(
            keys(s),
            [
                "name",
                "account_id",
                "region",
                "deployment_time_window",
                "steps"
            ]
        );
        for st in s["steps"].as_array().expect("steps is a list") {
            assert_eq!(
                keys(st),
                ["name", "id", "type", "after", "skipped", "params"]
            );
        }
    }
    assert_eq!(stages[0]["deployment_time_window"], "NONE");
    assert_eq!(
        stages[1]["deployment_time_window"], "PACIFIC_WORKING_HOURS",
        "inherited from stage_defaults"
    );
    assert_eq!(stages[1]["account_id"], "222222222222");
    assert_eq!(
        stages[0]["steps"][1],
        json!({"name": "Deploy", "id": null, "type": "DEVRAMPS:ECS:DEPLOY", "after": ["infra"],
               "skipped": false,
               "params": {"cluster_name": "[OUTPUT:infra/cluster]",
                          "service_name": "svc-[OUTPUT:infra/service]-staging",
                          "reference_task_definition": "[OUTPUT:infra/task_def]",
                          "image_url": image_url("111111111111", "us-east-1", "staging", SHA)}})
    );
    assert_eq!(stages[0]["steps"][3]["skipped"], true);
    assert_eq!(stages[0]["steps"][0]["id"], "infra");
}

#[test]
fn the_example_repository_pipeline_synthesizes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/repo/.devramps/api/pipeline.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the example pipeline is readable");
    let plan = plan_of(&text, &input(&[], Changes::unknown()));
    let deploy = step(&plan, "prod", "Deploy API");
    assert_eq!(deploy.after, ["infra"]);
    assert_eq!(param(deploy, "service_name").to_json(), json!("api-prod"));
    assert_eq!(
        param(step(&plan, "prod", "Migrate"), "revision"),
        &ParamValue::Int(12)
    );
    assert_eq!(
        stage(&plan, "staging").builds["web"].to_json()["params"]["env"]["API_URL"],
        json!("https://api.staging.example.com")
    );
}
