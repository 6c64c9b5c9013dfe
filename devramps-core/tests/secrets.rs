//! A secret's value never shows (reference §11.5, scenario 25): not in a plan, not in a resolved
//! value's `Debug`, `Display`, serialization or redacted JSON, not in errors or diagnostics, not
//! in the `Debug` of the `Resolution` that holds it. Only `FinalValue::expose_json`, the
//! hand-over to the step runner, has it.

use std::collections::BTreeMap;

use devramps_core::expr::{
    FinalValue, Organization, ParamValue, PipelineInfo, Resolution, ResolveError, SecretString,
    Trigger,
};
use devramps_core::pipeline::PipelineDefinition;
use devramps_core::plan::check;
use devramps_core::plan::{Changes, Plan, SynthesisInput, synthesize};
use serde_json::json;

/// The organization secret's value.
const PLAINTEXT: &str = "s3cr3t-PLAINTEXT-value";
/// The stage secret's value.
const STAGE_PLAINTEXT: &str = "stage-s3cr3t-PLAINTEXT";

const PIPELINE: &str = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
    - name: prod
      account_id: "222222222222"
      region: us-west-2
  steps:
    - name: Infra
      id: infra
      type: CUSTOM:INFRA
    - name: Deploy
      id: deploy
      type: CUSTOM:DEPLOY
      params:
        whole: ${{ secret("API_KEY") }}
        same: ${{ organization.secrets["API_KEY"] }}
        stage_whole: ${{ stage_secret("DB_PASS") }}
        in_text: postgres://app:${{ stage_secret("DB_PASS") }}@db.${{ stage.region }}
        with_output: ${{ steps.infra.host }}:${{ secret("API_KEY") }}
        list: [plain, "${{ secret(\"API_KEY\") }}", 3]
        nested:
          header: "Bearer ${{ secret(\"API_KEY\") }}"
          region: ${{ stage.region }}
        plain: ${{ steps.infra.host }}
  artifacts:
    Api Image:
      type: DEVRAMPS:DOCKER:BUILD
      params:
        dockerfile: /Dockerfile
        env: {TOKEN: "${{ secret(\"API_KEY\") }}"}
    Web:
      type: DEVRAMPS:BUNDLE:BUILD
      per_stage: true
      envs: {DB: "${{ stage_secret(\"DB_PASS\") }}"}
      params: {build_commands: make, file_path: /web.zip}
"#;

fn definition() -> PipelineDefinition {
    let checked = check(PIPELINE);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    checked.definition.expect("valid")
}

fn plan() -> Plan {
    let input = SynthesisInput {
        pipeline: PipelineInfo::from_slug("api"),
        organization: Organization::default(),
        trigger: Trigger {
            sha: "f".repeat(40),
            branch: "main".to_owned(),
            tag: String::new(),
            revision: 1,
        },
        previous_builds: BTreeMap::new(),
        previous_stage_builds: BTreeMap::new(),
        changes: Changes::unknown(),
    };
    synthesize(&definition(), Some(PIPELINE), &input).expect("synthesizes")
}

fn resolution() -> Resolution {
    Resolution {
        outputs: [(
            "infra".to_owned(),
            [("host".to_owned(), json!("db.internal"))].into(),
        )]
        .into(),
        secrets: [("API_KEY".to_owned(), SecretString::new(PLAINTEXT))].into(),
        stage_secrets: [("DB_PASS".to_owned(), SecretString::new(STAGE_PLAINTEXT))].into(),
    }
}

/// Asserts that `text` (named `what`) holds neither secret value.
#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(PLAINTEXT), "{what} shows the secret: {text}");
    assert!(
        !text.contains(STAGE_PLAINTEXT),
        "{what} shows the stage secret: {text}"
    );
    // Also no part long enough to give it away.
    assert!(
        !text.contains("s3cr3t"),
        "{what} shows part of a secret: {text}"
    );
}

fn deploy_params(plan: &Plan, stage: usize) -> &ParamValue {
    &plan.stages[stage].steps[1].params
}

#[test]
fn plans_show_markers_not_values() {
    let plan = plan();
    let debug = format!("{plan:?}");
    let json = serde_json::to_string(&plan).expect("serializes");
    let pretty = format!("{plan:#?}");
    for (what, text) in [
        ("plan Debug", &debug),
        ("plan JSON", &json),
        ("plan pretty Debug", &pretty),
    ] {
        assert_no_secret(what, text);
    }
    assert!(
        json.contains("[SECRET:API_KEY]") && json.contains("[STAGE_SECRET:DB_PASS]"),
        "{json}"
    );
    // Build parameters (kept out of the JSON) show markers too.
    let builds = format!(
        "{:?} {:?}",
        plan.artifacts[0].build_params, plan.stages[0].builds
    );
    assert_no_secret("build parameters", &builds);
    assert!(
        builds.contains("API_KEY") && builds.contains("DB_PASS"),
        "{builds}"
    );
}

#[test]
fn resolved_values_redact_secrets_everywhere_but_expose_json() {
    let plan = plan();
    let resolution = resolution();
    for stage in [0, 1] {
        let resolved = resolution
            .resolve(deploy_params(&plan, stage))
            .expect("every secret and output is there");
        assert!(resolved.has_secret());
        for (what, text) in [
            ("Debug", format!("{resolved:?}")),
            ("pretty Debug", format!("{resolved:#?}")),
            ("Display", resolved.to_string()),
            (
                "Serialize",
                serde_json::to_string(&resolved).expect("serializes"),
            ),
            ("redacted_json", resolved.redacted_json().to_string()),
        ] {
            assert_no_secret(what, &text);
            assert!(
                text.contains("[REDACTED]"),
                "{what} marks the secret: {text}"
            );
        }
        let redacted = resolved.redacted_json();
        assert_eq!(redacted["whole"], "[REDACTED]");
        assert_eq!(redacted["same"], "[REDACTED]");
        assert_eq!(redacted["stage_whole"], "[REDACTED]");
        // Text holding a secret is a secret as a whole.
        assert_eq!(redacted["in_text"], "[REDACTED]");
        assert_eq!(redacted["with_output"], "[REDACTED]");
        assert_eq!(redacted["list"], json!(["plain", "[REDACTED]", 3]));
        assert_eq!(redacted["nested"]["header"], "[REDACTED]");
        // What holds no secret stays readable.
        assert_eq!(redacted["plain"], "db.internal");
        assert_eq!(
            redacted["nested"]["region"],
            if stage == 0 { "us-east-1" } else { "us-west-2" }
        );

        // Only the hand-over to the step runner has the values.
        let exposed = resolved.expose_json();
        assert_eq!(exposed["whole"], PLAINTEXT);
        assert_eq!(exposed["same"], PLAINTEXT);
        assert_eq!(exposed["stage_whole"], STAGE_PLAINTEXT);
        let region = if stage == 0 { "us-east-1" } else { "us-west-2" };
        assert_eq!(
            exposed["in_text"],
            format!("postgres://app:{STAGE_PLAINTEXT}@db.{region}")
        );
        assert_eq!(exposed["with_output"], format!("db.internal:{PLAINTEXT}"));
        assert_eq!(exposed["list"], json!(["plain", PLAINTEXT, 3]));
        assert_eq!(exposed["nested"]["header"], format!("Bearer {PLAINTEXT}"));
    }
}

#[test]
fn artifact_build_parameters_resolve_with_redaction() {
    let plan = plan();
    let resolution = resolution();
    let shared = plan.artifacts[0]
        .build_params
        .as_ref()
        .expect("a shared artifact has build parameters");
    let resolved = resolution.resolve(shared).expect("resolves");
    assert_no_secret("shared build Debug", &format!("{resolved:?}"));
    assert_eq!(resolved.expose_json()["params"]["env"]["TOKEN"], PLAINTEXT);
    let per_stage = resolution
        .resolve(&plan.stages[1].builds["web"])
        .expect("resolves");
    assert_no_secret("per-stage build Display", &per_stage.to_string());
    assert_eq!(per_stage.expose_json()["envs"]["DB"], STAGE_PLAINTEXT);
}

#[test]
fn resolutions_and_secret_strings_do_not_show_values() {
    let resolution = resolution();
    assert_no_secret("Resolution Debug", &format!("{resolution:?}"));
    assert_no_secret("Resolution pretty Debug", &format!("{resolution:#?}"));
    let secret = SecretString::new(PLAINTEXT);
    assert_eq!(format!("{secret:?}"), "[REDACTED]");
    assert_eq!(secret.to_string(), "[REDACTED]");
    assert_eq!(
        serde_json::to_string(&secret).expect("serializes"),
        "\"[REDACTED]\""
    );
    assert_eq!(secret.expose(), PLAINTEXT);
    let value = FinalValue::Secret(secret);
    assert_eq!(format!("{value:?}"), "\"[REDACTED]\"");
    assert_eq!(value.expose_json(), json!(PLAINTEXT));
}

#[test]
fn resolution_errors_do_not_show_values() {
    let plan = plan();
    // The secret is resolved before the missing output is found: the error must not carry the
    // text built so far.
    let without_outputs = Resolution {
        outputs: BTreeMap::new(),
        ..resolution()
    };
    let error = without_outputs
        .resolve(deploy_params(&plan, 0))
        .expect_err("the output is missing");
    assert!(
        matches!(&error, ResolveError::MissingOutput { step, field } if step == "infra" && field == "host")
    );
    assert_no_secret("ResolveError Display", &error.to_string());
    assert_no_secret("ResolveError Debug", &format!("{error:?}"));
    // A missing secret names the secret, not the others' values.
    let without_stage = Resolution {
        stage_secrets: BTreeMap::new(),
        ..resolution()
    };
    let error = without_stage
        .resolve(deploy_params(&plan, 1))
        .expect_err("DB_PASS is missing");
    assert_eq!(
        error,
        ResolveError::MissingStageSecret("DB_PASS".to_owned())
    );
    assert_no_secret("ResolveError Display", &error.to_string());
}

#[test]
fn diagnostics_do_not_resolve_secrets() {
    // Checking and synthesizing never see secret values: an error next to a secret reference
    // shows the reference as written.
    let text = PIPELINE.replace(
        "plain: ${{ steps.infra.host }}",
        "plain: ${{ secret(\"API_KEY\") }}-${{ steps.infra.hots.x }}",
    );
    let checked = check(&text);
    assert_eq!(checked.diagnostics.len(), 1, "{:#?}", checked.diagnostics);
    let d = &checked.diagnostics[0];
    assert_eq!(d.code.as_str(), "E0608");
    assert_no_secret("Diagnostic", &format!("{d:?} {d}"));
}
