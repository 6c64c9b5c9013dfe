//! Docker builds and imports for real: buildah building a Dockerfile of a git repository and
//! pushing it to a registry on 127.0.0.1 (Debian's `docker-registry`), and imports that look
//! the image up over the OCI distribution API. `scripts/test` installs the tools and starts
//! the registry (scripts/lib/oci.sh); a test that needs them fails saying so.

use std::sync::Arc;
use std::time::Duration;

use devramps_core::backend::Runner;
use devramps_core::exec::{BuildRequest, ExecutionKey, Outcome, Unit};
use devramps_core::expr::{ArtifactLocation, FinalValue};
use devramps_core::pipeline::ArtifactType;
use devramps_git::testing::TestRepo;
use devramps_local::build::{DockerBuilder, DockerImporter, DockerOptions, RegistryMap, Tool};
use serde_json::{Value, json};

/// The ECR name the deployment gives the image; traffic goes to the loopback registry.
const ECR: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";

/// The loopback registry, or a failure saying how to start one.
fn registry() -> String {
    std::env::var("DEVRAMPS_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!(
            "DEVRAMPS_TEST_REGISTRY is not set: these tests push to a registry on 127.0.0.1. Run \
             them through scripts/test, or start one with \
             `. scripts/lib/oci.sh && install_oci_tools && start_registry` (Debian packages \
             buildah and docker-registry) and export the DEVRAMPS_TEST_REGISTRY it prints"
        )
    })
}

fn repo() -> TestRepo {
    let mut repo = TestRepo::new();
    repo.write(
        "services/web/Dockerfile",
        "FROM scratch\nARG GREETING=none\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n",
    )
    .write("services/web/hello.txt", "hello from devramps\n");
    repo.commit("one");
    repo
}

fn request(repo: &TestRepo, attempt: u32, params: Value, image: &str) -> BuildRequest {
    let key = ExecutionKey::new("api", 1, "", attempt, Unit::build("web"));
    BuildRequest::new(
        key,
        "web",
        ArtifactType::DockerBuild,
        repo.c(1),
        FinalValue::Plain(json!({ "params": params })),
    )
    .with_destination(ArtifactLocation {
        image_url: image.to_owned(),
        image_tag: image.rsplit(':').next().unwrap_or_default().to_owned(),
        ..ArtifactLocation::default()
    })
}

async fn run<R: Runner<BuildRequest>>(runner: &R, request: BuildRequest) -> Outcome {
    let key = request.key.clone();
    runner.start(request).await.expect("starts");
    tokio::time::timeout(Duration::from_secs(300), runner.wait(&key))
        .await
        .expect("the build ends within five minutes")
        .expect("waits")
}

/// GETs a JSON document of the registry.
async fn get_json(url: &str, accept: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("the registry answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn with_no_working_tool_the_build_fails_saying_what_to_install() {
    let repo = repo();
    let state = tempfile::tempdir().expect("temp dir");
    let empty = tempfile::tempdir().expect("temp dir");
    let builder = DockerBuilder::new(Arc::new(repo.source()), state.path())
        .with_options(DockerOptions::default().search_path(empty.path()));
    let why = builder.detect().await.expect_err("no tool");
    assert!(
        why.contains(
            "install buildah (Debian: apt-get install buildah) or podman, or start a docker daemon"
        ),
        "{why}"
    );
    assert!(why.contains("docker: not installed"), "{why}");
    // A docker client without a daemon does not count.
    let fake = tempfile::tempdir().expect("temp dir");
    let docker = fake.path().join("docker");
    std::fs::write(
        &docker,
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let builder = DockerBuilder::new(Arc::new(repo.source()), state.path()).with_options(
        DockerOptions::default()
            .tool(Tool::Docker)
            .search_path(fake.path()),
    );
    let outcome = run(
        &builder,
        request(
            &repo,
            1,
            json!({"dockerfile": "/services/web/Dockerfile"}),
            &format!("{ECR}/api-web:{}", repo.c(1)),
        ),
    )
    .await;
    let Outcome::Failed { reason } = outcome else {
        panic!("expected a failure: {outcome:?}");
    };
    assert!(reason.contains("`docker info` failed"), "{reason}");
    assert!(reason.contains("Is the docker daemon running?"), "{reason}");
    assert!(reason.contains("apt-get install buildah"), "{reason}");
}

#[tokio::test]
async fn buildah_builds_and_pushes_to_a_loopback_registry_and_an_import_finds_it() {
    let registry = registry();
    let repo = repo();
    let state = tempfile::tempdir().expect("temp dir");
    let registries = RegistryMap::new().map(ECR, registry.clone()).insecure(true);
    let builder = DockerBuilder::new(Arc::new(repo.source()), state.path()).with_options(
        DockerOptions::default()
            .tool(Tool::Buildah)
            .storage_driver("vfs")
            .isolation("chroot")
            .registries(registries.clone()),
    );
    if let Err(why) = builder.detect().await {
        panic!("buildah does not work here ({why}); scripts/test installs it (scripts/lib/oci.sh)");
    }
    let image = format!("{ECR}/api-web:{}", repo.c(1));
    let outcome = run(
        &builder,
        request(
            &repo,
            1,
            json!({
                "dockerfile": "/services/web/Dockerfile",
                "build_root": "/services/web",
                "args": ["GREETING=hello-arg"],
            }),
            &image,
        ),
    )
    .await;
    let Outcome::Succeeded { outputs } = &outcome else {
        panic!("the build failed: {outcome:?}");
    };
    assert_eq!(outputs["image_url"], image.as_str());
    assert_eq!(outputs["image_tag"], repo.c(1));
    let digest = outputs["image_digest"].as_str().expect("a digest");
    assert!(digest.starts_with("sha256:"), "{digest}");
    // The registry holds that manifest, and its config carries the build argument.
    let manifest = get_json(
        &format!("http://{registry}/v2/api-web/manifests/{digest}"),
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
    )
    .await;
    let config_digest = manifest["config"]["digest"].as_str().expect("a config");
    let config = get_json(
        &format!("http://{registry}/v2/api-web/blobs/{config_digest}"),
        "*/*",
    )
    .await;
    assert_eq!(config["config"]["Labels"]["greeting"], "hello-arg");

    let importer = DockerImporter::new(state.path(), registries);
    let import = |attempt: u32, source: &str| {
        let key = ExecutionKey::new("api", 1, "", attempt, Unit::build("partner"));
        BuildRequest::new(
            key,
            "partner",
            ArtifactType::DockerImport,
            repo.c(1),
            FinalValue::Plain(json!({"params": {"source_image_url": source}})),
        )
        .with_destination(ArtifactLocation {
            image_url: format!("{ECR}/api-partner:{}", repo.c(1)),
            image_tag: repo.c(1).to_owned(),
            ..ArtifactLocation::default()
        })
    };
    let outcome = run(&importer, import(1, &image)).await;
    let Outcome::Succeeded { outputs } = &outcome else {
        panic!("the import failed: {outcome:?}");
    };
    assert_eq!(outputs["image_digest"], digest);
    assert_eq!(
        outputs["image_url"],
        format!("{ECR}/api-partner:{}", repo.c(1))
    );
    let outcome = run(&importer, import(2, &format!("{ECR}/api-web:no-such-tag"))).await;
    let Outcome::Failed { reason } = &outcome else {
        panic!("a missing image imported: {outcome:?}");
    };
    assert!(
        reason.contains(&format!("`{ECR}/api-web:no-such-tag` does not exist")),
        "{reason}"
    );
}
