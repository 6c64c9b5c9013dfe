//! `devramps plan` on real git repositories built in temporary folders (`GitRepository`
//! itself is tested against the `SourceRepository` contract in `devramps-git`).

mod common;

use std::path::Path;

use common::*;
use devramps_git::testing::TestRepo;
use serde_json::{Value, json};

/// The example pipeline of the repository (`examples/repo/.devramps/api/pipeline.yaml`).
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/repo/.devramps/api/pipeline.yaml"
);

/// The four commits of the example repository:
/// 1. the root, with the example pipeline and a few files;
/// 2. a change of `/services/api/main.rs`;
/// 3. a change of `/docs/readme.md` only;
/// 4. `/services/api/x.rs` renamed to `/lib/x.rs`.
fn example_repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write(".devramps/api/pipeline.yaml", &fixture(EXAMPLE))
        .write("services/api/main.rs", "fn main() {}\n")
        .write("services/api/x.rs", "pub fn x() -> u32 {\n    42\n}\n")
        .write("docs/readme.md", "# API\n")
        .write("web/index.html", "<h1>web</h1>\n")
        .write("Dockerfile", "FROM scratch\n");
    repo.commit("root");
    repo.write("services/api/main.rs", "fn main() { println!(\"v2\"); }\n");
    repo.commit("change the api");
    repo.write("docs/readme.md", "# API\n\nDocumented.\n");
    repo.commit("document");
    repo.rename("services/api/x.rs", "lib/x.rs");
    repo.commit("move x to lib");
    repo
}

/// Runs `devramps plan --repo <repo> args... --format json`, expecting exit code 0.
fn plan_json(repo: &TestRepo, args: &[&str]) -> Value {
    let mut all = vec!["plan", "--repo", repo.arg()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let out = devramps(Path::new("."), &all);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    json(&out)
}

/// `(id, decision, matched)` of every artifact of a plan.
fn decisions(plan: &Value) -> Vec<(String, String, Vec<String>)> {
    plan["artifacts"]
        .as_array()
        .expect("artifacts is a list")
        .iter()
        .map(|a| {
            let matched = a["matched"]
                .as_array()
                .expect("matched is a list")
                .iter()
                .map(|p| p.as_str().expect("a path").to_owned())
                .collect();
            (
                a["id"].as_str().expect("id").to_owned(),
                a["decision"].as_str().expect("decision").to_owned(),
                matched,
            )
        })
        .collect()
}

/// `(id, decision, matched)` for tests.
fn decision(id: &str, decision: &str, matched: &[&str]) -> (String, String, Vec<String>) {
    (
        id.to_owned(),
        decision.to_owned(),
        matched.iter().map(|m| (*m).to_owned()).collect(),
    )
}

/// The step `id` of stage `stage` of a plan.
fn step<'a>(plan: &'a Value, stage: &str, id: &str) -> &'a Value {
    plan["stages"]
        .as_array()
        .expect("stages is a list")
        .iter()
        .find(|s| s["name"] == stage)
        .and_then(|s| {
            s["steps"]
                .as_array()
                .expect("steps is a list")
                .iter()
                .find(|step| step["id"] == id)
        })
        .unwrap_or_else(|| panic!("no step `{id}` in stage `{stage}`: {plan:#}"))
}

#[test]
fn a_code_change_rebuilds_the_image_and_resolves_every_parameter() {
    let repo = example_repo();
    let plan = plan_json(
        &repo,
        &[
            "--commit",
            repo.c(2),
            "--base",
            repo.c(1),
            "--revision",
            "7",
        ],
    );
    let top: Vec<&String> = plan.as_object().expect("object").keys().collect();
    assert_eq!(
        top,
        [
            "pipeline",
            "commit",
            "revision",
            "artifacts",
            "stages",
            "definition_changes"
        ],
        "--base adds definition_changes after the plan's own keys"
    );
    assert_eq!(
        plan["definition_changes"],
        json!({"base": repo.c(1), "classification": "NONE", "changes": []})
    );
    assert_eq!(plan["pipeline"], "api");
    assert_eq!(plan["commit"], repo.c(2));
    assert_eq!(plan["revision"], 7);
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REBUILD", &["/services/api/main.rs"]),
            decision("web", "REUSE", &[]),
        ]
    );
    let artifact = &plan["artifacts"][0];
    let keys: Vec<&String> = artifact.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["id", "name", "type", "per_stage", "decision", "matched"]
    );
    assert_eq!(artifact["name"], "API Image");
    assert_eq!(artifact["type"], "DEVRAMPS:DOCKER:BUILD");
    assert_eq!(artifact["per_stage"], false);
    assert_eq!(plan["artifacts"][1]["per_stage"], true);

    let stages: Vec<(&str, &str, &str, &str)> = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name"),
                s["account_id"].as_str().expect("account"),
                s["region"].as_str().expect("region"),
                s["deployment_time_window"].as_str().expect("window"),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("staging", "111111111111", "us-east-1", "NONE"),
            ("prod", "222222222222", "us-west-2", "PACIFIC_WORKING_HOURS"),
        ]
    );

    for stage in ["staging", "prod"] {
        assert_eq!(step(&plan, stage, "infra")["after"], json!([]));
        assert_eq!(step(&plan, stage, "deploy")["after"], json!(["infra"]));
        assert_eq!(step(&plan, stage, "migrate")["after"], json!(["infra"]));
        assert_eq!(
            step(&plan, stage, "bake")["after"],
            json!(["deploy", "migrate"])
        );
        let deploy = &step(&plan, stage, "deploy")["params"];
        assert_eq!(deploy["cluster_name"], "[OUTPUT:infra/cluster_name]");
        assert_eq!(deploy["service_name"], format!("api-{stage}"));
        let migrate = &step(&plan, stage, "migrate")["params"];
        assert_eq!(migrate["database_url"], "[STAGE_SECRET:DATABASE_URL]");
        assert_eq!(migrate["revision"], 7, "a number, from --revision");
    }
    let bake = step(&plan, "staging", "bake");
    assert_eq!(bake["skipped"], true);
    assert_eq!(bake["name"], "Bake");
    assert_eq!(bake["type"], "DEVRAMPS:APPROVAL:BAKE");
    assert_eq!(step(&plan, "prod", "bake")["skipped"], false);
    assert_eq!(step(&plan, "staging", "deploy")["skipped"], false);

    let variables = |stage| step(&plan, stage, "infra")["params"]["variables"].clone();
    assert_eq!(
        variables("staging"),
        json!({"env": "staging", "replicas": 1})
    );
    assert_eq!(variables("prod"), json!({"env": "prod", "replicas": 3}));
    assert!(variables("prod")["replicas"].is_number());

    for (stage, registry) in [
        ("staging", "111111111111.dkr.ecr.us-east-1.amazonaws.com/"),
        ("prod", "222222222222.dkr.ecr.us-west-2.amazonaws.com/"),
    ] {
        let image = step(&plan, stage, "deploy")["params"]["image_url"]
            .as_str()
            .expect("image_url is text")
            .to_owned();
        assert!(image.starts_with(registry), "{image}");
        assert!(
            image.ends_with(&format!(":{}", repo.c(2))),
            "the rebuilt image is tagged with the commit: {image}"
        );
    }
}

#[test]
fn a_docs_change_reuses_every_artifact_and_the_base_defaults_to_the_parent() {
    let repo = example_repo();
    let given = plan_json(&repo, &["--commit", repo.c(3), "--base", repo.c(2)]);
    assert_eq!(
        decisions(&given),
        [
            decision("api-image", "REUSE", &[]),
            decision("web", "REUSE", &[])
        ]
    );
    assert_eq!(given["revision"], 1, "the default revision");
    // A reused image is the one built at the base.
    let image = step(&given, "prod", "deploy")["params"]["image_url"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(image.ends_with(&format!(":{}", repo.c(2))), "{image}");

    let short = &repo.c(3)[..8];
    let default = plan_json(&repo, &["--commit", short]);
    assert!(
        default.get("definition_changes").is_none(),
        "only --base compares definitions"
    );
    let mut given = given;
    let compared = given
        .as_object_mut()
        .and_then(|o| o.remove("definition_changes"));
    assert_eq!(
        compared.map(|c| c["classification"].clone()),
        Some(json!("NONE"))
    );
    assert_eq!(default, given, "the first parent is the default base");
}

#[test]
fn a_rename_counts_under_its_old_path() {
    let repo = example_repo();
    // HEAD is commit 4.
    let plan = plan_json(&repo, &[]);
    assert_eq!(plan["commit"], repo.c(4));
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REBUILD", &["/services/api/x.rs"]),
            decision("web", "REUSE", &[]),
        ]
    );
}

#[test]
fn the_root_commit_rebuilds_every_artifact() {
    let repo = example_repo();
    let plan = plan_json(&repo, &["--commit", repo.c(1)]);
    assert_eq!(plan["commit"], repo.c(1));
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REBUILD", &[]),
            decision("web", "REBUILD", &[]),
        ]
    );
}

#[test]
fn changed_paths_given_explicitly_decide_alone() {
    let repo = example_repo();
    // The root commit has no history at all: only the given paths count.
    let plan = plan_json(
        &repo,
        &["--commit", repo.c(1), "--changed", "/services/api/x.rs"],
    );
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REBUILD", &["/services/api/x.rs"]),
            decision("web", "REUSE", &[]),
        ]
    );
    // Commit 2 changed the API, but the given paths say otherwise; a path without its
    // leading `/` gets one.
    let plan = plan_json(
        &repo,
        &[
            "--commit",
            repo.c(2),
            "--changed",
            "web/app.js",
            "/docs/a.md",
        ],
    );
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REUSE", &[]),
            decision("web", "REBUILD", &["/web/app.js"]),
        ]
    );
    // `--changed` alone: nothing changed.
    let plan = plan_json(&repo, &["--commit", repo.c(2), "--changed"]);
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REUSE", &[]),
            decision("web", "REUSE", &[])
        ]
    );
}

#[test]
fn the_text_plan_shows_decisions_stages_steps_and_markers() {
    let repo = example_repo();
    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--commit", repo.c(2)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "pipeline api\n",
        &format!("  commit    {}\n", repo.c(2)),
        "  revision  1\n",
        "  trigger   branch main, no tag\n",
        &format!("1 file changed since {} (first parent)", &repo.c(1)[..12]),
        "REBUILD   API Image (api-image)",
        "changed: /services/api/main.rs",
        "REUSE     Web Bundle (web), per stage",
        "stage staging: account 111111111111, us-east-1, window NONE\n",
        "stage prod: account 222222222222, us-west-2, window PACIFIC_WORKING_HOURS\n",
        "  - Deploy API (deploy): DEVRAMPS:ECS:DEPLOY, after infra\n",
        "      cluster_name: [OUTPUT:infra/cluster_name]\n",
        "      database_url: [STAGE_SECRET:DATABASE_URL]\n",
        "      variables: {\"env\":\"staging\",\"replicas\":1}\n",
        "  - Bake (bake): DEVRAMPS:APPROVAL:BAKE, after deploy, migrate (skipped)\n",
        "  - Bake (bake): DEVRAMPS:APPROVAL:BAKE, after deploy, migrate\n",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "no colours off a terminal");
}

#[test]
fn trigger_and_organization_come_from_the_repository_and_the_flags() {
    let pipeline = r#"version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  tracks: release
  stages:
    - name: staging
      account_id: "111111111111"
      region: us-east-1
  steps:
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
      params:
        branch: ${{ trigger.branch }}
        tag: ${{ trigger.tag }}
        sha: ${{ trigger.sha }}
        org: ${{ organization.name }}/${{ organization.slug }}/${{ organization.cicd_account_id }}/${{ organization.cicd_account_region }}
        pipeline: ${{ pipeline.name }}/${{ pipeline.slug }}
  artifacts: {}
"#;
    let mut repo = TestRepo::new();
    repo.write(".devramps/svc/pipeline.yaml", pipeline);
    repo.commit("one");
    repo.write("a.txt", "a\n");
    repo.commit("two");
    repo.branch("release", 2);
    repo.branch("feature", 1);
    repo.tag("v1.0", 2);
    let params = |repo: &TestRepo, args: &[&str]| {
        let plan = plan_json(repo, args);
        plan["stages"][0]["steps"][0]["params"].clone()
    };

    // Commit 2 is the tip of `main` and of the tracked `release`: the tracked branch wins.
    let head = params(&repo, &[]);
    assert_eq!(head["branch"], "release");
    assert_eq!(head["tag"], "v1.0");
    assert_eq!(head["sha"], repo.c(2));
    assert_eq!(head["org"], "local/local/000000000000/us-east-1");
    assert_eq!(head["pipeline"], "svc/svc");

    // Commit 1 is the tip of `feature` only; no tag.
    let first = params(
        &repo,
        &[
            "--commit",
            repo.c(1),
            "--org",
            "acme",
            "--cicd-account-id",
            "999999999999",
            "--cicd-region",
            "eu-west-1",
        ],
    );
    assert_eq!(first["branch"], "feature");
    assert_eq!(first["tag"], "");
    assert_eq!(first["org"], "acme/acme/999999999999/eu-west-1");

    // A commit that no branch points at: the tracked branch.
    repo.write("b.txt", "b\n");
    repo.commit("three");
    repo.write("c.txt", "c\n");
    repo.commit("four");
    let third = params(&repo, &["--commit", repo.c(3)]);
    assert_eq!(third["branch"], "release");
}

#[test]
fn an_invalid_pipeline_at_the_commit_exits_1_with_located_diagnostics() {
    let mut repo = example_repo();
    let broken = fixture(EXAMPLE).replace("name: prod\n", "name: Prod_1\n");
    let line = broken
        .lines()
        .position(|l| l.contains("Prod_1"))
        .expect("replaced")
        + 1;
    repo.write(".devramps/api/pipeline.yaml", &broken);
    repo.commit("break the pipeline");
    // The work tree is fixed but not committed: the commit is what counts.
    repo.write(".devramps/api/pipeline.yaml", &fixture(EXAMPLE));

    let out = devramps(Path::new("."), &["plan", "--repo", repo.arg()]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let header = format!(".devramps/api/pipeline.yaml:{line}:13: error[E0104]: ");
    assert!(
        text.lines().any(|l| l.starts_with(&header)),
        "no `{header}` in:\n{text}"
    );
    assert!(text.contains("|     - name: Prod_1"), "{text}");
    assert!(
        text.ends_with("✗ .devramps/api/pipeline.yaml (api): 1 error\n"),
        "{text}"
    );

    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--format", "json"],
    );
    assert_eq!(code(&out), 1);
    let report = json(&out);
    let keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["pipeline", "commit", "path", "valid", "diagnostics"]);
    assert_eq!(report["pipeline"], "api");
    assert_eq!(report["commit"], repo.c(5));
    assert_eq!(report["valid"], false);
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "E0104");
    assert_eq!(first["path"], ".devramps/api/pipeline.yaml");
    assert_eq!(first["line"].as_u64(), u64::try_from(line).ok());
    assert_eq!(first["column"], 13);

    // The commit before is still planned.
    let plan = plan_json(&repo, &["--commit", "HEAD~1"]);
    assert_eq!(plan["commit"], repo.c(4));
}

#[test]
fn a_folder_outside_any_git_repository_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), ".devramps/api/pipeline.yaml", fixture(EXAMPLE));
    let arg = dir.path().to_str().expect("UTF-8");
    let out = devramps(Path::new("."), &["plan", "--repo", arg]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is not in a git repository"),
        "{}",
        stderr(&out)
    );

    let missing = dir.path().join("nope");
    let out = devramps(
        Path::new("."),
        &["plan", "--repo", missing.to_str().expect("UTF-8")],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn unknown_revisions_and_empty_repositories_exit_2() {
    let repo = example_repo();
    for args in [
        vec!["--commit", "no-such-branch"],
        vec!["--commit", "0123456789012345678901234567890123456789"],
        vec!["--base", "v9.9"],
    ] {
        let mut all = vec!["plan", "--repo", repo.arg()];
        all.extend(args.iter().copied());
        let out = devramps(Path::new("."), &all);
        assert_eq!(code(&out), 2, "{args:?}: {}", stdout(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains("unknown revision"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let empty = TestRepo::new();
    let out = devramps(Path::new("."), &["plan", "--repo", empty.arg()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no commits yet"), "{}", stderr(&out));
}

#[test]
fn several_pipelines_need_pipeline_and_a_missing_one_exits_2() {
    let mut repo = example_repo();
    repo.write(".devramps/web/pipeline.yaml", &fixture(MINIMAL_FIXTURE))
        .write(".devramps/tools/README.md", "not a pipeline\n");
    repo.commit("a second pipeline");

    let out = devramps(Path::new("."), &["plan", "--repo", repo.arg()]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(out.stdout.is_empty());
    let message = stderr(&out);
    assert!(message.contains("2 pipelines: api, web"), "{message}");
    assert!(message.contains("--pipeline"), "{message}");

    let plan = plan_json(&repo, &["--pipeline", "api"]);
    assert_eq!(plan["pipeline"], "api");
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REUSE", &[]),
            decision("web", "REUSE", &[])
        ],
        "the new pipeline changed nothing the API builds from"
    );

    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--pipeline", "tools"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no pipeline `tools`") && stderr(&out).contains("api, web"),
        "{}",
        stderr(&out)
    );

    // A commit without any pipeline.
    let mut bare = TestRepo::new();
    bare.write("README.md", "hello\n");
    bare.commit("no pipeline");
    let out = devramps(Path::new("."), &["plan", "--repo", bare.arg()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no pipeline at commit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plan_can_be_run_from_a_folder_inside_the_repository() {
    let repo = example_repo();
    let out = devramps(
        &repo.path().join("services/api"),
        &["plan", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["commit"], repo.c(4));
}

#[test]
fn warnings_go_to_stderr_and_stdout_keeps_only_the_plan() {
    let mut repo = TestRepo::new();
    repo.write(".devramps/bake/pipeline.yaml", WARNING_ONLY);
    repo.commit("one");
    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["pipeline"], "bake");
    assert!(
        stderr(&out).contains(".devramps/bake/pipeline.yaml:14:9: warning[W0210]: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_parent_missing_from_the_repository_makes_the_changes_unknown() {
    let repo = example_repo();
    // Remove commit 1's object, as a shallow clone would lack it; its tree stays.
    let id = repo.c(1);
    let object = repo
        .path()
        .join(".git/objects")
        .join(&id[..2])
        .join(&id[2..]);
    std::fs::remove_file(&object).expect("a loose object");
    let plan = plan_json(&repo, &["--commit", repo.c(2)]);
    assert_eq!(
        decisions(&plan),
        [
            decision("api-image", "REBUILD", &[]),
            decision("web", "REBUILD", &[]),
        ]
    );
    let out = devramps(
        Path::new("."),
        &["plan", "--repo", repo.arg(), "--commit", repo.c(2)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is not in the repository (a shallow clone?)"),
        "{}",
        stdout(&out)
    );
    // An explicit base that is missing is an error, not a guess.
    let out = devramps(
        Path::new("."),
        &[
            "plan",
            "--repo",
            repo.arg(),
            "--commit",
            repo.c(2),
            "--base",
            id,
        ],
    );
    assert_eq!(code(&out), 2, "{}", stdout(&out));
}

#[test]
fn plan_help_documents_defaults_and_exit_codes() {
    let out = devramps(Path::new("."), &["plan", "--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for needle in [
        "Exit codes",
        "--changed",
        "--base",
        "first parent",
        "[default: HEAD]",
        "[default: local]",
        "[default: 000000000000]",
        "[default: us-east-1]",
        "Examples:",
    ] {
        assert!(help.contains(needle), "no `{needle}` in:\n{help}");
    }
    let out = devramps(Path::new("."), &["plan", "--revision", "0"]);
    assert_eq!(code(&out), 2, "revisions start at 1");
}
