//! L18: what changed between two pipeline definitions, and which changes are destructive.

use devramps_core::pipeline::{
    ChangeClass, ChangeKind, ChangeSubject, DefinitionChanges, PipelineDefinition,
    diff_definitions, parse,
};
use serde_json::json;

/// The definition in force in most tests (the shape of `shared/fixtures/pipelines/api.yaml`,
/// plus notifications and an ephemeral environment).
const BASE: &str = r##"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
  tracks: main
  stage_defaults:
    deployment_time_window: PACIFIC_WORKING_HOURS
  notifications:
    slack:
      channel: "#deployments"
      events: [stage_failed, approval_required]
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
      deployment_time_window: NONE
      vars:
        env: staging
        replicas: 1
      skip: [bake]
    - name: prod
      account_id: "222222222222"
      region: us-west-2
      auto_rollback_alarm_name: api-5xx
      vars:
        env: prod
        replicas: 3
  steps:
    - name: Infrastructure
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      params:
        source: /infra
        variables:
          env: ${{ vars.env }}
    - name: Deploy API
      id: deploy
      type: DEVRAMPS:ECS:DEPLOY
      goes_after: [infra]
      params:
        cluster_name: ${{ steps.infra.cluster_name }}
        service_name: api-${{ stage.name }}
        reference_task_definition: ${{ steps.infra.task_definition }}
        image_url: ${{ stage.artifacts["API Image"].image_url }}
    - name: Migrate
      id: migrate
      type: CUSTOM:DB:MIGRATE
      goes_after: [infra]
      params:
        database_url: ${{ stage_secret("DATABASE_URL") }}
    - name: Bake
      id: bake
      type: DEVRAMPS:APPROVAL:BAKE
      goes_after: [deploy, migrate]
      params:
        duration_minutes: 30
  artifacts:
    API Image:
      type: DEVRAMPS:DOCKER:BUILD
      rebuild_when_changed: [/services/api, /Dockerfile]
      params:
        dockerfile: /Dockerfile
    Web Bundle:
      id: web
      type: DEVRAMPS:BUNDLE:BUILD
      per_stage: true
      params:
        build_commands: cd web && npm run build
        file_path: /web.zip
  ephemeral_environments:
    preview:
      triggers:
        - on: pull_request
          target_branches: ["feature/*"]
      release:
        - on: pr_closed
      on_release: deploy_main
      account_id: "333333333333"
      region: us-east-1
      vars:
        env: preview
"##;

/// `BASE` re-formatted: flow and block styles swapped, keys and artifacts reordered, quoting
/// changed, comments added, defaults and the derived artifact id written out, an implicit
/// `goes_after` made explicit and vice versa. It means exactly the same.
const REFORMATTED: &str = r##"# The same pipeline, written differently.
pipeline:
  artifacts:
    Web Bundle: {type: "DEVRAMPS:BUNDLE:BUILD", id: web, per_stage: true,
                 params: {file_path: "/web.zip", build_commands: "cd web && npm run build"}}
    API Image:
      id: api-image   # the id derived from the name
      host_size: small
      per_stage: false
      params: {dockerfile: /Dockerfile}
      rebuild_when_changed:
        - /Dockerfile
        - /services/api
      type: DEVRAMPS:DOCKER:BUILD
  ephemeral_environments:
    preview:
      vars: {env: "preview"}
      region: "us-east-1"
      account_id: '333333333333'
      on_release: deploy_main
      release: [{on: pr_closed}]
      triggers: [{on: pull_request, target_branches: ["feature/*"]}]
  notifications: {slack: {events: [approval_required, stage_failed], channel: "#deployments"}}
  steps:
    - {name: Infrastructure, id: infra, type: "DEVRAMPS:TERRAFORM:SYNTHESIZE",
       params: {variables: {env: "${{ vars.env }}"}, source: /infra}}
    - name: "Deploy API"
      id: deploy
      type: DEVRAMPS:ECS:DEPLOY
      params:
        image_url: ${{ stage.artifacts["API Image"].image_url }}
        reference_task_definition: ${{ steps.infra.task_definition }}
        service_name: "api-${{ stage.name }}"
        cluster_name: ${{ steps.infra.cluster_name }}
    - name: Migrate
      id: migrate
      type: CUSTOM:DB:MIGRATE
      goes_after: [Infrastructure]
      params: {database_url: '${{ stage_secret("DATABASE_URL") }}'}
    - name: Bake
      id: bake
      type: DEVRAMPS:APPROVAL:BAKE
      goes_after: [migrate, Deploy API]
      params: {duration_minutes: 30}
  stages:
    - {name: staging, region: us-east-1, account_id: "111111111111", deployment_time_window: NONE,
       vars: {replicas: 1, env: staging}, skip: [Bake]}
    - name: prod
      vars: {replicas: 3, env: prod}
      auto_rollback_alarm_name: "api-5xx"
      region: us-west-2
      account_id: "222222222222"
  stage_defaults: {deployment_time_window: PACIFIC_WORKING_HOURS}
  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY
  cloud_provider: AWS
version: '1.0.0'
"##;

/// Parses a definition that must be valid.
fn definition(text: &str) -> PipelineDefinition {
    parse(text).unwrap_or_else(|e| panic!("invalid test pipeline: {e}\n{text}"))
}

/// `BASE` with each `(from, to)` replaced; each `from` must occur exactly once.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` is not unique in BASE"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// The changes from `BASE` to `BASE` with `edits`.
fn diff(edits: &[(&str, &str)]) -> DefinitionChanges {
    diff_definitions(&definition(BASE), &definition(&edited(edits)))
}

/// A change as `(subject, kind, name, detail, destructive)`, for compact assertions.
type Row = (&'static str, &'static str, String, String, bool);

/// The changes as rows.
fn rows(changes: &DefinitionChanges) -> Vec<Row> {
    changes
        .changes
        .iter()
        .map(|c| {
            (
                c.subject.as_str(),
                c.kind.as_str(),
                c.name.clone(),
                c.detail.clone(),
                c.destructive,
            )
        })
        .collect()
}

/// One expected row.
fn row(subject: &'static str, kind: &'static str, name: &str, detail: &str, d: bool) -> Row {
    (subject, kind, name.to_owned(), detail.to_owned(), d)
}

/// Asserts the exact changes of `edits` and their classification.
fn assert_changes(edits: &[(&str, &str)], expected: &[Row], class: ChangeClass) {
    let changes = diff(edits);
    assert_eq!(rows(&changes), expected, "{changes:#?}");
    assert_eq!(changes.classification(), class);
    assert_eq!(changes.is_destructive(), class == ChangeClass::Destructive);
    assert_eq!(changes.is_empty(), class == ChangeClass::None);
}

#[test]
fn identical_definitions_have_no_change() {
    let changes = diff(&[]);
    assert!(changes.is_empty());
    assert!(!changes.is_destructive());
    assert_eq!(changes.classification(), ChangeClass::None);
}

#[test]
fn reformatting_comments_key_order_and_written_defaults_are_no_change() {
    let changes = diff_definitions(&definition(BASE), &definition(REFORMATTED));
    assert!(changes.is_empty(), "{changes:#?}");
    let back = diff_definitions(&definition(REFORMATTED), &definition(BASE));
    assert!(back.is_empty(), "{back:#?}");
}

#[test]
fn l18_a_removed_stage_is_destructive() {
    let prod = "    - name: prod\n      account_id: \"222222222222\"\n      region: us-west-2\n      \
                auto_rollback_alarm_name: api-5xx\n      vars:\n        env: prod\n        \
                replicas: 3\n";
    assert_changes(
        &[(prod, "")],
        &[row(
            "stage",
            "removed",
            "prod",
            "account 222222222222, us-west-2",
            true,
        )],
        ChangeClass::Destructive,
    );
}

#[test]
fn l18_a_removed_step_is_destructive() {
    assert_changes(
        &[
            (
                "    - name: Bake\n      id: bake\n      type: DEVRAMPS:APPROVAL:BAKE\n      \
                 goes_after: [deploy, migrate]\n      params:\n        duration_minutes: 30\n",
                "",
            ),
            ("      skip: [bake]\n", ""),
        ],
        &[
            row("stage", "changed", "staging", "skip [bake] -> []", false),
            row(
                "step",
                "removed",
                "bake",
                "Bake (bake): DEVRAMPS:APPROVAL:BAKE",
                true,
            ),
        ],
        ChangeClass::Destructive,
    );
}

#[test]
fn l18_a_removed_artifact_is_destructive() {
    assert_changes(
        &[(
            "    Web Bundle:\n      id: web\n      type: DEVRAMPS:BUNDLE:BUILD\n      \
             per_stage: true\n      params:\n        build_commands: cd web && npm run build\n        \
             file_path: /web.zip\n",
            "",
        )],
        &[row(
            "artifact",
            "removed",
            "web",
            "Web Bundle: DEVRAMPS:BUNDLE:BUILD",
            true,
        )],
        ChangeClass::Destructive,
    );
}

#[test]
fn l18_a_changed_account_or_region_is_destructive() {
    assert_changes(
        &[(
            "\"222222222222\"\n      region: us-west-2",
            "\"444444444444\"\n      region: eu-west-1",
        )],
        &[
            row(
                "stage",
                "changed",
                "prod",
                "account_id 222222222222 -> 444444444444",
                true,
            ),
            row(
                "stage",
                "changed",
                "prod",
                "region us-west-2 -> eu-west-1",
                true,
            ),
        ],
        ChangeClass::Destructive,
    );
}

#[test]
fn l18_renames_of_stages_steps_and_artifacts_are_destructive_and_keep_references() {
    let changes = diff(&[
        ("    - name: prod\n", "    - name: production\n"),
        ("      id: deploy\n", "      id: deploy-api\n"),
        ("[deploy, migrate]", "[deploy-api, migrate]"),
        ("    Web Bundle:\n      id: web\n", "    Web Assets:\n"),
    ]);
    assert_eq!(
        rows(&changes),
        [
            row(
                "artifact",
                "renamed",
                "web-assets",
                "Web Bundle (web) -> Web Assets (web-assets)",
                true
            ),
            row("stage", "renamed", "production", "prod -> production", true),
            row(
                "step",
                "renamed",
                "deploy-api",
                "Deploy API (deploy) -> Deploy API (deploy-api)",
                true
            ),
        ],
        "bake now waits for `deploy-api`, which is the renamed `deploy`: no change of its own"
    );
    let old: Vec<Option<&str>> = changes
        .changes
        .iter()
        .map(|c| c.renamed_from.as_deref())
        .collect();
    assert_eq!(old, [Some("web"), Some("prod"), Some("deploy")]);
    assert_eq!(changes.classification(), ChangeClass::Destructive);
}

#[test]
fn a_step_renamed_by_name_and_referenced_by_name_is_one_rename() {
    // Steps without ids are known by name.
    let old = definition(&edited(&[
        ("      id: migrate\n", ""),
        ("[deploy, migrate]", "[deploy, Migrate]"),
    ]));
    let new = definition(&edited(&[
        ("      id: migrate\n", ""),
        ("    - name: Migrate\n", "    - name: Migrate DB\n"),
        ("[deploy, migrate]", "[deploy, Migrate DB]"),
    ]));
    assert_eq!(
        rows(&diff_definitions(&old, &new)),
        [row(
            "step",
            "renamed",
            "Migrate DB",
            "Migrate -> Migrate DB",
            true
        )]
    );
}

#[test]
fn a_rename_that_also_changes_the_content_is_a_removal_and_an_addition() {
    assert_changes(
        &[
            (
                "      id: migrate\n      type: CUSTOM:DB:MIGRATE\n",
                "      id: migrate-db\n      type: CUSTOM:DB:MIGRATE\n",
            ),
            (
                "database_url: ${{ stage_secret(\"DATABASE_URL\") }}",
                "database_url: ${{ stage_secret(\"DB_URL\") }}",
            ),
            ("[deploy, migrate]", "[deploy, migrate-db]"),
        ],
        &[
            row(
                "step",
                "removed",
                "migrate",
                "Migrate (migrate): CUSTOM:DB:MIGRATE",
                true,
            ),
            row(
                "step",
                "added",
                "migrate-db",
                "Migrate (migrate-db): CUSTOM:DB:MIGRATE",
                false,
            ),
            row(
                "step",
                "changed",
                "bake",
                "runs after [deploy, migrate] -> [deploy, migrate-db]",
                false,
            ),
        ],
        ChangeClass::Destructive,
    );
}

#[test]
fn additions_are_additive() {
    assert_changes(
        &[
            (
                "  steps:\n",
                "    - name: canary\n      account_id: \"555555555555\"\n      region: us-east-2\n      vars: {env: canary}\n  steps:\n",
            ),
            (
                "  artifacts:\n",
                "    - name: Smoke\n      type: CUSTOM:TEST:SMOKE\n  artifacts:\n",
            ),
            (
                "  ephemeral_environments:\n",
                "    Docs:\n      type: DEVRAMPS:BUNDLE:BUILD\n      params:\n        \
                 build_commands: make docs\n        file_path: /docs.zip\n  ephemeral_environments:\n",
            ),
        ],
        &[
            row(
                "artifact",
                "added",
                "docs",
                "Docs: DEVRAMPS:BUNDLE:BUILD",
                false,
            ),
            row(
                "stage",
                "added",
                "canary",
                "account 555555555555, us-east-2",
                false,
            ),
            row("step", "added", "Smoke", "Smoke: CUSTOM:TEST:SMOKE", false),
        ],
        ChangeClass::Additive,
    );
}

#[test]
fn changed_params_windows_skips_and_order_are_additive() {
    assert_changes(
        &[
            ("      deployment_time_window: NONE\n", ""),
            (
                "        replicas: 3\n",
                "        replicas: 4\n        tier: web\n",
            ),
            ("      skip: [bake]\n", "      skip: [bake, Migrate]\n"),
            (
                "        duration_minutes: 30\n",
                "        duration_minutes: 45\n",
            ),
            (
                "      goes_after: [deploy, migrate]\n",
                "      goes_after: [deploy]\n",
            ),
            ("image_url }}\n", "image_url }}\n        timeout: 20\n"),
        ],
        &[
            row(
                "stage",
                "changed",
                "staging",
                "deployment_time_window NONE -> (unset)",
                false,
            ),
            row(
                "stage",
                "changed",
                "staging",
                "skip [bake] -> [bake, migrate]",
                false,
            ),
            row(
                "stage",
                "changed",
                "prod",
                "vars changed: replicas, tier",
                false,
            ),
            row(
                "step",
                "changed",
                "deploy",
                "params changed: timeout",
                false,
            ),
            row(
                "step",
                "changed",
                "bake",
                "params changed: duration_minutes",
                false,
            ),
            row(
                "step",
                "changed",
                "bake",
                "runs after [deploy, migrate] -> [deploy]",
                false,
            ),
        ],
        ChangeClass::Additive,
    );
}

#[test]
fn changed_artifact_fields_are_additive() {
    assert_changes(
        &[
            (
                "[/services/api, /Dockerfile]",
                "[/services/api, /Dockerfile, /lib]",
            ),
            (
                "      per_stage: true\n",
                "      per_stage: false\n      host_size: large\n      dependencies: [node.20]\n",
            ),
            ("file_path: /web.zip", "file_path: /dist/web.zip"),
        ],
        &[
            row(
                "artifact",
                "changed",
                "api-image",
                "rebuild_when_changed [/Dockerfile, /services/api] -> [/Dockerfile, /lib, /services/api]",
                false,
            ),
            row(
                "artifact",
                "changed",
                "web",
                "host_size small -> large",
                false,
            ),
            row(
                "artifact",
                "changed",
                "web",
                "per_stage true -> false",
                false,
            ),
            row(
                "artifact",
                "changed",
                "web",
                "dependencies [] -> [node.20]",
                false,
            ),
            row(
                "artifact",
                "changed",
                "web",
                "params changed: file_path",
                false,
            ),
        ],
        ChangeClass::Additive,
    );
}

#[test]
fn a_step_whose_name_changes_under_the_same_id_is_changed_not_renamed() {
    assert_changes(
        &[("    - name: Deploy API\n", "    - name: Deploy the API\n")],
        &[row(
            "step",
            "changed",
            "deploy",
            "name Deploy API -> Deploy the API",
            false,
        )],
        ChangeClass::Additive,
    );
}

#[test]
fn pipeline_settings_are_additive_and_come_first() {
    let prod = "    - name: prod\n      account_id: \"222222222222\"\n      region: us-west-2\n      \
                auto_rollback_alarm_name: api-5xx\n      vars:\n        env: prod\n        \
                replicas: 3\n";
    assert_changes(
        &[
            (
                "pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY",
                "pipeline_updates_require_approval: NEVER",
            ),
            ("  tracks: main\n", "  tracks: release\n"),
            (
                "    deployment_time_window: PACIFIC_WORKING_HOURS\n",
                "    deployment_time_window: NONE\n",
            ),
            ("      channel: \"#deployments\"", "      channel: \"#ops\""),
            ("[stage_failed, approval_required]", "[stage_failed]"),
            (prod, ""),
            ("  stages:\n", &format!("  stages:\n{prod}")),
            (
                "\"333333333333\"\n      region: us-east-1",
                "\"333333333333\"\n      region: us-east-2",
            ),
            ("        replicas: 1\n", "        replicas: 2\n"),
        ],
        &[
            row(
                "pipeline",
                "changed",
                "pipeline_updates_require_approval",
                "pipeline_updates_require_approval DESTRUCTIVE_CHANGES_ONLY -> NEVER",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "tracks",
                "tracks main -> release",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "stage_defaults.deployment_time_window",
                "stage_defaults.deployment_time_window PACIFIC_WORKING_HOURS -> NONE",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "notifications.slack.channel",
                "notifications.slack.channel #deployments -> #ops",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "notifications.slack.events",
                "notifications.slack.events [approval_required, stage_failed] -> [stage_failed]",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "stages",
                "promotion order [staging, prod] -> [prod, staging]",
                false,
            ),
            row(
                "pipeline",
                "changed",
                "ephemeral_environments.preview",
                "region us-east-1 -> us-east-2",
                false,
            ),
            row(
                "stage",
                "changed",
                "staging",
                "vars changed: replicas",
                false,
            ),
        ],
        ChangeClass::Additive,
    );
}

#[test]
fn ephemeral_environments_and_notifications_come_and_go_without_being_destructive() {
    let base = definition(BASE);
    let mut bare = base.clone();
    bare.notifications = None;
    bare.ephemeral_environments.clear();
    let removed = diff_definitions(&base, &bare);
    assert_eq!(
        rows(&removed),
        [
            row(
                "pipeline",
                "removed",
                "notifications.slack",
                "channel #deployments",
                false
            ),
            row(
                "pipeline",
                "removed",
                "ephemeral_environments.preview",
                "account 333333333333, us-east-1",
                false
            ),
        ]
    );
    assert_eq!(removed.classification(), ChangeClass::Additive);
    let added = diff_definitions(&bare, &base);
    let kinds: Vec<ChangeKind> = added.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::Added, ChangeKind::Added]);
}

#[test]
fn changes_serialize_with_lowercase_names_and_the_class_in_capitals() {
    let changes = diff(&[
        ("    - name: prod\n", "    - name: production\n"),
        ("region: us-west-2", "region: eu-west-1"),
    ]);
    assert_eq!(
        serde_json::to_value(&changes).expect("serializes"),
        json!({"changes": [
            {"subject": "stage", "kind": "removed", "name": "prod",
             "detail": "account 222222222222, us-west-2", "destructive": true},
            {"subject": "stage", "kind": "added", "name": "production",
             "detail": "account 222222222222, eu-west-1", "destructive": false},
        ]})
    );
    assert_eq!(
        serde_json::to_value(ChangeClass::Destructive).expect("serializes"),
        "DESTRUCTIVE"
    );
    assert_eq!(ChangeClass::Additive.to_string(), "ADDITIVE");
    assert_eq!(ChangeClass::None.to_string(), "NONE");
    assert_eq!(ChangeSubject::Pipeline.to_string(), "pipeline");
    assert_eq!(ChangeKind::Renamed.to_string(), "renamed");
    let back: DefinitionChanges =
        serde_json::from_value(serde_json::to_value(&changes).expect("serializes"))
            .expect("reads back");
    assert_eq!(back, changes);
}

#[test]
fn a_new_pipeline_is_one_additive_change() {
    let changes = DefinitionChanges::pipeline_added("api", "no definition at abc123");
    assert_eq!(
        rows(&changes),
        [row(
            "pipeline",
            "added",
            "api",
            "no definition at abc123",
            false
        )]
    );
    assert_eq!(changes.classification(), ChangeClass::Additive);
}
