//! Shared inputs of the devramps benchmarks.
//!
//! [`large_pipeline`] writes a large, valid and realistic `pipeline.yaml` text, deterministically,
//! so that every benchmark run (and every machine) measures the same input.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// AWS regions the generated stages and imports cycle through.
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-southeast-2",
    "ap-northeast-1",
];

/// Time windows a stage may set explicitly (`None` in the generator means "inherit").
const WINDOWS: &[&str] = &[
    "NONE",
    "PACIFIC_WORKING_HOURS",
    "PACIFIC_WORKING_HOURS_REDUCED",
];

/// Terraform approval policies.
const APPROVALS: &[&str] = &["ALWAYS", "NEVER", "DESTRUCTIVE_CHANGES_ONLY"];

/// The custom step type of the step at position `pos` (3 to 6) of its block.
fn custom_type(pos: usize) -> &'static str {
    match pos {
        3 => "CUSTOM:DB:MIGRATE",
        4 => "CUSTOM:CACHE:WARM",
        5 => "CUSTOM:NOTIFY:WEBHOOK",
        _ => "CUSTOM:SCRIPT:SMOKE_TEST",
    }
}

/// How many steps one block of the step graph has: a Terraform hub, five fan-out steps, one
/// step ordered by list position and a fan-in bake.
const BLOCK: usize = 8;

/// The four artifact kinds, by `index % 4`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ArtifactKind {
    DockerBuild,
    BundleBuild,
    DockerImport,
    BundleImport,
}

impl ArtifactKind {
    fn of(index: usize) -> Self {
        match index % 4 {
            0 => ArtifactKind::DockerBuild,
            1 => ArtifactKind::BundleBuild,
            2 => ArtifactKind::DockerImport,
            _ => ArtifactKind::BundleImport,
        }
    }

    fn is_image(self) -> bool {
        matches!(self, ArtifactKind::DockerBuild | ArtifactKind::DockerImport)
    }
}

/// The display name of artifact `index`.
fn artifact_name(index: usize) -> String {
    match ArtifactKind::of(index) {
        ArtifactKind::DockerBuild => format!("Service Image {index}"),
        ArtifactKind::BundleBuild => format!("Web Bundle {index}"),
        ArtifactKind::DockerImport => format!("Vendor Image {index}"),
        ArtifactKind::BundleImport => format!("Shared Bundle {index}"),
    }
}

/// An expression reading an output of some artifact chosen by `seed`: the `image_url` of an
/// image artifact when `image` is true, else the `s3_url` of a bundle. `None` when the pipeline
/// has no artifact of that kind.
fn artifact_ref(artifacts: usize, seed: usize, image: bool) -> Option<String> {
    if artifacts == 0 {
        return None;
    }
    let start = seed % artifacts;
    (0..artifacts)
        .map(|k| (start + k) % artifacts)
        .find(|&j| ArtifactKind::of(j).is_image() == image)
        .map(|j| {
            let field = if image { "image_url" } else { "s3_url" };
            format!(
                "${{{{ stage.artifacts[\"{}\"].{field} }}}}",
                artifact_name(j)
            )
        })
}

/// The name of step `index`, from its role in its block.
fn step_name(index: usize) -> String {
    let block = index / BLOCK;
    match index % BLOCK {
        0 => format!("Infrastructure {block}"),
        1 | 2 => format!("Deploy Service {index}"),
        3 => format!("Migrate Database {index}"),
        4 => format!("Warm Cache {index}"),
        5 => format!("Notify Webhook {index}"),
        6 => format!("Smoke Test {index}"),
        _ => format!("Bake {block}"),
    }
}

/// The id of step `index`, if it has one (fan-out steps at position 4 are referenced by name).
fn step_id(index: usize) -> Option<String> {
    let block = index / BLOCK;
    match index % BLOCK {
        0 => Some(format!("infra_{block}")),
        1 | 2 => Some(format!("deploy_{index}")),
        3 => Some(format!("migrate_{index}")),
        4 => None,
        5 => Some(format!("notify_{index}")),
        6 => Some(format!("smoke_{index}")),
        _ => Some(format!("bake_{block}")),
    }
}

/// How other steps refer to step `index`: its id, or its name when it has none.
fn step_ref(index: usize) -> String {
    step_id(index).unwrap_or_else(|| step_name(index))
}

/// Writes `items` as a YAML flow list of double-quoted strings.
fn flow_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

fn write_stage(out: &mut String, index: usize, steps: usize) {
    let region = REGIONS[index % REGIONS.len()];
    let env = format!("env-{index}");
    let _ = writeln!(out, "    - name: stage-{index}");
    let _ = writeln!(out, "      account_id: \"{:012}\"", 100_000_000_000 + index);
    let _ = writeln!(out, "      region: {region}");
    if !index.is_multiple_of(3) {
        let _ = writeln!(
            out,
            "      deployment_time_window: {}",
            WINDOWS[index % WINDOWS.len()]
        );
    }
    if index % 4 == 3 {
        let _ = writeln!(out, "      auto_rollback_alarm_name: api-5xx-stage-{index}");
    }
    let _ = writeln!(out, "      vars:");
    let _ = writeln!(out, "        env: {env}");
    let _ = writeln!(out, "        replicas: {}", 1 + index % 5);
    let _ = writeln!(
        out,
        "        log_level: {}",
        ["info", "debug", "warn"][index % 3]
    );
    let _ = writeln!(out, "        domain: {env}.example.com");
    let _ = writeln!(out, "        canary: {}", index.is_multiple_of(2));
    // Early stages skip some bakes and smoke tests, by name and by id.
    if index.is_multiple_of(2) && steps > 0 {
        let mut skip = Vec::new();
        let bakes = steps / BLOCK;
        for b in (0..bakes).step_by(3).take(4) {
            skip.push(if b.is_multiple_of(2) {
                step_name(b * BLOCK + BLOCK - 1)
            } else {
                step_ref(b * BLOCK + BLOCK - 1)
            });
        }
        if steps > 4 {
            skip.push(step_name(4));
        }
        if skip.is_empty() {
            skip.push(step_ref(steps - 1));
        }
        let _ = writeln!(out, "      skip: {}", flow_list(&skip));
    }
}

/// The index of the hub (Terraform step) of the block of step `index`.
fn hub_of(index: usize) -> usize {
    index - index % BLOCK
}

/// The hub step referenced by a hub's variables: the previous block's hub, which it waits for
/// through the previous fan-in step.
fn previous_hub(index: usize) -> Option<usize> {
    index.checked_sub(BLOCK).map(hub_of)
}

fn write_step(out: &mut String, index: usize, artifacts: usize) {
    let pos = index % BLOCK;
    let block = index / BLOCK;
    let hub = hub_of(index);
    let hub_id = step_ref(hub);
    let _ = writeln!(out, "    - name: {}", step_name(index));
    if let Some(id) = step_id(index) {
        let _ = writeln!(out, "      id: {id}");
    }
    let goes_after: Option<Vec<String>> = match pos {
        // The hub waits for the previous block's fan-in (or for nothing).
        0 => index.checked_sub(1).map(|prev| vec![step_ref(prev)]),
        // Fan-out from the hub.
        1..=5 => Some(vec![hub_id.clone()]),
        // List order: waits for the step before it.
        6 => None,
        // Fan-in: waits for every step of the block, some by name, some by id.
        _ => Some(
            (hub + 1..index)
                .map(|j| {
                    if j.is_multiple_of(2) {
                        step_name(j)
                    } else {
                        step_ref(j)
                    }
                })
                .collect(),
        ),
    };
    match pos {
        0 => {
            let _ = writeln!(out, "      type: DEVRAMPS:TERRAFORM:SYNTHESIZE");
            write_goes_after(out, goes_after.as_deref());
            let _ = writeln!(out, "      params:");
            let _ = writeln!(
                out,
                "        requires_approval: {}",
                APPROVALS[block % APPROVALS.len()]
            );
            let _ = writeln!(out, "        source: /infra/module-{block}");
            let _ = writeln!(out, "        variables:");
            let _ = writeln!(out, "          env: ${{{{ vars.env }}}}");
            let _ = writeln!(out, "          replicas: ${{{{ vars.replicas }}}}");
            let _ = writeln!(out, "          region: ${{{{ stage.region }}}}");
            let _ = writeln!(
                out,
                "          db_password: ${{{{ secret(\"DB_PASSWORD_{block}\") }}}}"
            );
            if let Some(image) = artifact_ref(artifacts, block * 5, true) {
                let _ = writeln!(out, "          image: {image}");
            }
            if let Some(prev) = previous_hub(index) {
                let _ = writeln!(
                    out,
                    "          upstream_vpc: ${{{{ steps.{}.vpc_id }}}}",
                    step_ref(prev)
                );
            }
        }
        1 | 2 => {
            let _ = writeln!(out, "      type: DEVRAMPS:ECS:DEPLOY");
            write_goes_after(out, goes_after.as_deref());
            let _ = writeln!(out, "      params:");
            let _ = writeln!(
                out,
                "        cluster_name: ${{{{ steps.{hub_id}.cluster_name }}}}"
            );
            let _ = writeln!(
                out,
                "        service_name: svc-{index}-${{{{ stage.name }}}}"
            );
            let _ = writeln!(
                out,
                "        reference_task_definition: ${{{{ steps.{hub_id}.task_definition_{pos} }}}}"
            );
            let image = artifact_ref(artifacts, index * 7, true).unwrap_or_else(|| {
                format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/svc-{index}:latest")
            });
            let _ = writeln!(out, "        image_url: {image}");
            if index.is_multiple_of(3) {
                let _ = writeln!(out, "        timeout: {}", 10 + index % 50);
            }
        }
        7 => {
            let _ = writeln!(out, "      type: DEVRAMPS:APPROVAL:BAKE");
            write_goes_after(out, goes_after.as_deref());
            let _ = writeln!(out, "      params:");
            let _ = writeln!(out, "        duration_minutes: {}", 5 + block % 60);
        }
        _ => {
            let custom = custom_type(pos);
            let _ = writeln!(out, "      type: {custom}");
            write_goes_after(out, goes_after.as_deref());
            let _ = writeln!(out, "      params:");
            let _ = writeln!(
                out,
                "        endpoint: https://${{{{ steps.{hub_id}.api_host }}}}/v{pos}"
            );
            let _ = writeln!(
                out,
                "        api_key: ${{{{ secret(\"API_KEY_{}\") }}}}",
                index % 17
            );
            let _ = writeln!(
                out,
                "        database_url: '${{{{ stage_secret(\"DATABASE_URL\") }}}}'"
            );
            let _ = writeln!(out, "        revision: ${{{{ trigger.revision }}}}");
            let _ = writeln!(out, "        log_level: ${{{{ vars.log_level }}}}");
            if let Some(bundle) = artifact_ref(artifacts, index * 3, false) {
                let _ = writeln!(out, "        bundle: {bundle}");
            }
            let _ = writeln!(out, "        retries: {}", index % 4);
            let _ = writeln!(out, "        labels:");
            let _ = writeln!(out, "          team: team-{}", index % 9);
            let _ = writeln!(
                out,
                "          tier: {}",
                ["web", "worker", "batch"][index % 3]
            );
            let _ = writeln!(out, "        command:");
            let _ = writeln!(out, "          - ./scripts/run.sh");
            let _ = writeln!(out, "          - --stage=${{{{ stage.name }}}}");
            let _ = writeln!(out, "          - --domain=${{{{ vars.domain }}}}");
        }
    }
}

fn write_goes_after(out: &mut String, deps: Option<&[String]>) {
    if let Some(deps) = deps {
        let _ = writeln!(out, "      goes_after: {}", flow_list(deps));
    }
}

fn write_artifact(out: &mut String, index: usize) {
    let kind = ArtifactKind::of(index);
    let name = artifact_name(index);
    let service = format!("svc-{index}");
    let _ = writeln!(out, "    {name}:");
    if index.is_multiple_of(3) {
        let _ = writeln!(out, "      id: artifact-{index}");
    }
    let type_name = match kind {
        ArtifactKind::DockerBuild => "DEVRAMPS:DOCKER:BUILD",
        ArtifactKind::BundleBuild => "DEVRAMPS:BUNDLE:BUILD",
        ArtifactKind::DockerImport => "DEVRAMPS:DOCKER:IMPORT",
        ArtifactKind::BundleImport => "DEVRAMPS:BUNDLE:IMPORT",
    };
    let _ = writeln!(out, "      type: {type_name}");
    if matches!(kind, ArtifactKind::DockerBuild | ArtifactKind::BundleBuild) {
        let arch = ["linux/amd64", "linux/arm64"][index % 2];
        let _ = writeln!(out, "      architecture: {arch}");
        let _ = writeln!(
            out,
            "      host_size: {}",
            ["small", "medium", "large"][index % 3]
        );
        let _ = writeln!(
            out,
            "      dependencies: [node.{}]",
            [20, 22, 24][index % 3]
        );
        // Directory prefixes mixed with globs.
        let _ = writeln!(out, "      rebuild_when_changed:");
        let _ = writeln!(out, "        - /services/{service}");
        let _ = writeln!(out, "        - /services/{service}/**/*.rs");
        let _ = writeln!(out, "        - /libs/common");
        let _ = writeln!(out, "        - /libs/proto/*.proto");
        let _ = writeln!(out, "        - /Cargo.lock");
    }
    // Bundles read stage variables, so they are built per stage; so are some images.
    let per_stage = kind == ArtifactKind::BundleBuild
        || (kind == ArtifactKind::DockerBuild && index.is_multiple_of(3));
    if per_stage {
        let _ = writeln!(out, "      per_stage: true");
    }
    let _ = writeln!(out, "      params:");
    match kind {
        ArtifactKind::DockerBuild => {
            let _ = writeln!(out, "        dockerfile: /services/{service}/Dockerfile");
            let _ = writeln!(out, "        build_root: /services/{service}");
            let _ = writeln!(
                out,
                "        args: [NODE_ENV=production, SERVICE={service}, BUILD_NUMBER={index}]"
            );
            let _ = writeln!(out, "        env:");
            let _ = writeln!(out, "          RUST_LOG: info");
            let _ = writeln!(out, "          NPM_TOKEN: ${{{{ secret(\"NPM_TOKEN\") }}}}");
            if per_stage {
                let _ = writeln!(out, "          DEPLOY_STAGE: ${{{{ stage.name }}}}");
                let _ = writeln!(out, "          DEPLOY_ENV: ${{{{ vars.env }}}}");
            }
        }
        ArtifactKind::BundleBuild => {
            let _ = writeln!(out, "        build_commands: |");
            let _ = writeln!(out, "          cd web/{service}");
            let _ = writeln!(out, "          npm ci");
            let _ = writeln!(out, "          npm run build");
            let _ = writeln!(out, "          zip -r ../../{service}.zip dist");
            let _ = writeln!(out, "        file_path: /{service}.zip");
            let _ = writeln!(out, "        env:");
            let _ = writeln!(
                out,
                "          API_URL: https://api.${{{{ stage.name }}}}.example.com"
            );
            let _ = writeln!(out, "          LOG_LEVEL: ${{{{ vars.log_level }}}}");
        }
        ArtifactKind::DockerImport => {
            let region = REGIONS[index % REGIONS.len()];
            let _ = writeln!(
                out,
                "        source_image_url: {:012}.dkr.ecr.{region}.amazonaws.com/vendor/{service}:1.{index}.0",
                900_000_000_000 + index
            );
            let _ = writeln!(out, "        timeout_minutes: {}", 10 + index % 20);
        }
        ArtifactKind::BundleImport => {
            let _ = writeln!(
                out,
                "        source_account: \"{:012}\"",
                800_000_000_000 + index
            );
            let _ = writeln!(
                out,
                "        source_region: {}",
                REGIONS[(index + 1) % REGIONS.len()]
            );
            let _ = writeln!(
                out,
                "        source_s3_url: s3://shared-bundles-{index}/builds/{service}.zip"
            );
            let _ = writeln!(out, "        timeout_minutes: {}", 15 + index % 30);
        }
    }
}

/// Writes a valid `pipeline.yaml` with `stages` stages, `steps` steps and `artifacts` artifacts.
///
/// The text is deterministic (no randomness) and realistic: stages have `vars`, `skip` lists and
/// deployment windows; steps mix `CUSTOM:*`, `DEVRAMPS:ECS:DEPLOY`, `DEVRAMPS:APPROVAL:BAKE` and
/// `DEVRAMPS:TERRAFORM:SYNTHESIZE` types in blocks of eight (a Terraform hub, a fan-out of five
/// steps through `goes_after`, one step ordered by list position and a fan-in bake waiting for
/// the whole block), so the step graph is acyclic; most parameters hold `${{ ... }}` expressions
/// (stage variables, artifact outputs, outputs of steps that finish earlier, secrets);
/// artifacts cycle through the four artifact types, build artifacts list
/// `rebuild_when_changed` directory prefixes and globs, and the artifacts whose parameters
/// read `stage` or `vars` are built `per_stage`.
///
/// `stages` and `steps` are raised to 1 when 0 (a valid pipeline needs at least one of each);
/// `artifacts` may be 0.
pub fn large_pipeline(stages: usize, steps: usize, artifacts: usize) -> String {
    let stages = stages.max(1);
    let steps = steps.max(1);
    // About 60 bytes per line and a dozen lines per item.
    let mut out = String::with_capacity(800 * (stages + steps + artifacts) + 512);
    out.push_str("# Generated by devramps-benches: large_pipeline\n");
    let _ = writeln!(
        out,
        "# {stages} stages, {steps} steps, {artifacts} artifacts"
    );
    out.push_str("version: \"1.0.0\"\n");
    out.push_str("pipeline:\n");
    out.push_str("  cloud_provider: AWS\n");
    out.push_str("  pipeline_updates_require_approval: DESTRUCTIVE_CHANGES_ONLY\n");
    out.push_str("  tracks: main\n");
    out.push_str("  stage_defaults:\n");
    out.push_str("    deployment_time_window: PACIFIC_WORKING_HOURS\n");
    out.push_str("  notifications:\n");
    out.push_str("    slack:\n");
    out.push_str("      channel: \"#deployments\"\n");
    out.push_str("      events: [stage_failed, approval_required]\n");
    out.push_str("  stages:\n");
    for i in 0..stages {
        write_stage(&mut out, i, steps);
    }
    out.push_str("  steps:\n");
    for i in 0..steps {
        write_step(&mut out, i, artifacts);
    }
    if artifacts == 0 {
        out.push_str("  artifacts: {}\n");
    } else {
        out.push_str("  artifacts:\n");
        for i in 0..artifacts {
            write_artifact(&mut out, i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::large_pipeline;
    use devramps_core::plan::check;

    /// The benchmark input must stay valid: no error and no warning.
    fn assert_valid(stages: usize, steps: usize, artifacts: usize) {
        let text = large_pipeline(stages, steps, artifacts);
        let checked = check(&text);
        assert!(
            checked.diagnostics.is_empty(),
            "large_pipeline({stages}, {steps}, {artifacts}) has diagnostics:\n{}",
            checked
                .diagnostics
                .iter()
                .take(20)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let definition = checked.definition.expect("valid pipeline has a definition");
        assert_eq!(definition.stages.len(), stages.max(1));
        assert_eq!(definition.steps.len(), steps.max(1));
        assert_eq!(definition.artifacts.len(), artifacts);
    }

    #[test]
    fn benchmark_input_is_valid() {
        assert_valid(50, 500, 200);
    }

    #[test]
    fn small_inputs_are_valid() {
        for (stages, steps, artifacts) in [
            (0, 0, 0),
            (1, 1, 0),
            (1, 1, 1),
            (2, 3, 2),
            (3, 8, 4),
            (4, 9, 5),
            (5, 17, 3),
            (7, 31, 11),
        ] {
            assert_valid(stages, steps, artifacts);
        }
    }

    #[test]
    fn is_deterministic_and_large() {
        let a = large_pipeline(50, 500, 200);
        assert_eq!(a, large_pipeline(50, 500, 200));
        assert!(a.len() > 200_000, "only {} bytes", a.len());
    }
}

/// The median of `samples`, in milliseconds.
pub fn median_ms(samples: &mut [std::time::Duration]) -> f64 {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        return 0.0;
    }
    let mid = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2
    };
    mid.as_secs_f64() * 1000.0
}

/// Runs `a` and `b` alternately `iterations` times (so machine noise hits both alike) and
/// returns their median times in milliseconds.
pub fn interleaved_medians(
    iterations: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    let mut ta = Vec::with_capacity(iterations);
    let mut tb = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = std::time::Instant::now();
        a();
        ta.push(start.elapsed());
        let start = std::time::Instant::now();
        b();
        tb.push(start.elapsed());
    }
    (median_ms(&mut ta), median_ms(&mut tb))
}

/// A pipeline with `artifacts` bundle artifacts whose `rebuild_when_changed` mixes prefix and
/// glob entries (every third artifact uses globs), for the rebuild-decision benchmark. Each
/// artifact watches its own service folders and a shared library used by `per_library`
/// artifacts (1: every artifact has its own library).
pub fn rebuild_pipeline(artifacts: usize, per_library: usize) -> String {
    let per_library = per_library.max(1);
    use std::fmt::Write;
    let mut yaml = String::from(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  stages: [{name: s, account_id: \"111111111111\", region: us-east-1}]\n  steps: [{name: A, type: \"CUSTOM:A\"}]\n  artifacts:\n",
    );
    for i in 0..artifacts {
        let entries = if i % 3 == 2 {
            format!(
                "[\"/services/svc{i}/**/*.rs\", \"/services/svc{i}/*.toml\", \"/shared/lib{}/*\"]",
                i / per_library
            )
        } else {
            format!(
                "[/services/svc{i}, /services/svc{i}-config/app.yaml, /shared/lib{}]",
                i / per_library
            )
        };
        let _ = write!(
            yaml,
            "    Artifact {i}:\n      type: DEVRAMPS:BUNDLE:BUILD\n      rebuild_when_changed: {entries}\n      params: {{build_commands: make, file_path: /out/a{i}.zip}}\n"
        );
    }
    yaml
}

/// `count` changed paths spread over 2,000 services, shared libraries and docs: deep paths,
/// most of them touching no artifact of a small pipeline.
pub fn changed_paths(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match i % 4 {
            0 => format!("/services/svc{}/src/module{}/file{i}.rs", i % 2000, i % 17),
            1 => format!("/services/svc{}/Cargo.toml", i % 2000),
            2 => format!("/shared/lib{}/src/x{i}.rs", i % 2000),
            _ => format!("/docs/section{}/page{i}.md", i % 40),
        })
        .collect()
}

#[cfg(test)]
mod rebuild_input_tests {
    use super::*;

    #[test]
    fn rebuild_inputs_are_valid_and_match() {
        let definition = devramps_core::plan::parse(&rebuild_pipeline(30, 1)).expect("valid");
        assert_eq!(definition.artifacts.len(), 30);
        let matcher =
            devramps_core::plan::RebuildMatcher::new(&definition.artifacts).expect("compiles");
        let paths = changed_paths(4_000);
        let matched = matcher.matches(&paths);
        assert!(matched[0].iter().any(|p| p.starts_with("/services/svc0/")));
        assert!(
            matched[2]
                .iter()
                .any(|p| p.ends_with(".rs") || p.ends_with(".toml"))
        );
        assert!(
            matched
                .iter()
                .all(|m| m.iter().all(|p| !p.starts_with("/docs/")))
        );
    }
}

/// A valid pipeline for the lifecycle benchmarks: `stages` stages (deployment window `NONE`,
/// so that no clock time gates them) and `steps` steps of type `CUSTOM:BENCH:STEP`, no
/// artifacts. The steps run one after the other in list order, or all at once when `parallel`
/// (`goes_after: []`). It tracks `main`. `stages` and `steps` are raised to 1 when 0.
pub fn lifecycle_pipeline(stages: usize, steps: usize, parallel: bool) -> String {
    use std::fmt::Write;
    let mut yaml = String::from(
        "version: \"1.0.0\"\npipeline:\n  cloud_provider: AWS\n  pipeline_updates_require_approval: NEVER\n  tracks: main\n  stages:\n",
    );
    for s in 0..stages.max(1) {
        let _ = writeln!(
            yaml,
            "    - {{ name: stage-{s}, account_id: \"{:012}\", region: us-east-1, deployment_time_window: NONE }}",
            100_000_000_000_usize + s
        );
    }
    yaml.push_str("  steps:\n");
    let after = if parallel { ", goes_after: []" } else { "" };
    for i in 0..steps.max(1) {
        let _ = writeln!(
            yaml,
            "    - {{ name: Step {i}, id: step_{i}, type: \"CUSTOM:BENCH:STEP\"{after}, params: {{ n: {i} }} }}"
        );
    }
    yaml.push_str("  artifacts: {}\n");
    yaml
}

/// Push `i` of a push storm on `main`: commit `c{i}`, webhook delivery `d{i}`, carrying the
/// definition text `definition` and the default organization, with no changed paths (the
/// benchmark pipelines have no artifacts, so the machine asks for no base commits).
pub fn storm_push(i: usize, definition: &str) -> devramps_core::lifecycle::Push {
    devramps_core::lifecycle::Push::new("main", format!("c{i}"))
        .with_delivery(format!("d{i}"))
        .with_definition(Some(definition.to_owned()))
}

/// The work results that let a stage-deployment reach its steps: for each resource validation
/// and mirroring among `commands`, an input saying it succeeded (other commands are left
/// running). Feeding them to the machine moves a fresh stage-deployment into its steps phase.
pub fn finish_setup_work(
    commands: &[devramps_core::lifecycle::Command],
) -> Vec<devramps_core::lifecycle::Input> {
    use devramps_core::backend::Outcome;
    use devramps_core::lifecycle::{Command, Input, WorkResult};
    commands
        .iter()
        .filter_map(|c| match c {
            Command::ValidateResources(_) | Command::Mirror(_) => Some(Input::Work {
                key: c.key().clone(),
                result: WorkResult::Done(Outcome::Succeeded {
                    outputs: std::collections::BTreeMap::new(),
                }),
            }),
            _ => None,
        })
        .collect()
}

/// The resident set of this process, `(VmRSS, VmHWM)` in bytes: now and at its peak, read
/// from `/proc/self/status`. Linux only: `None` elsewhere or when the file cannot be read.
pub fn resident_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod lifecycle_input_tests {
    use super::*;
    use devramps_core::lifecycle::{Command, Input, Machine, StageState};

    #[test]
    fn lifecycle_pipelines_are_valid() {
        for (stages, steps, parallel) in [(1, 1, false), (2, 1, false), (3, 5, false), (1, 5, true)]
        {
            let text = lifecycle_pipeline(stages, steps, parallel);
            let checked = devramps_core::plan::check(&text);
            assert!(
                checked.diagnostics.is_empty(),
                "{text}\n{:?}",
                checked.diagnostics.first()
            );
            let definition = checked.definition.expect("valid");
            assert_eq!(definition.stages.len(), stages);
            assert_eq!(definition.steps.len(), steps);
        }
    }

    /// A push storm into a busy first stage keeps two plans (the running and the queued
    /// revision) and two active deployments, however many pushes came.
    #[test]
    fn push_storm_into_a_busy_stage_holds_two_plans() {
        let definition = lifecycle_pipeline(2, 1, false);
        let mut machine = Machine::new("storm");
        let start = jiff::Timestamp::constant(1_767_632_400, 0);
        let mut commands = machine
            .handle(Input::Push(storm_push(0, &definition)), start)
            .commands;
        // Resource validation and mirroring succeed; the step starts and never ends.
        while !commands
            .iter()
            .any(|c| matches!(c, Command::RunStep { .. }))
        {
            let inputs = finish_setup_work(&commands);
            assert!(!inputs.is_empty(), "revision 1 is stuck: {commands:?}");
            commands = inputs
                .into_iter()
                .flat_map(|input| machine.handle(input, start).commands)
                .collect();
        }
        let pushes = 2_000;
        for i in 1..=pushes {
            let now = start
                .checked_add(jiff::SignedDuration::from_millis(
                    i64::try_from(i).expect("small"),
                ))
                .expect("in range");
            let out = machine.handle(Input::Push(storm_push(i, &definition)), now);
            assert!(out.commands.is_empty(), "push {i} started work");
        }
        let state = machine.state();
        assert_eq!(state.last_revision, 1 + pushes as u64);
        assert_eq!(
            state
                .deployments
                .values()
                .filter(|d| d.plan().is_some())
                .count(),
            2
        );
        let active: Vec<u64> = state.active_deployments().map(|d| d.revision).collect();
        assert_eq!(active, [1, 1 + pushes as u64]);
        let first_stage = state.stage("stage-0");
        assert_eq!(first_stage.running, Some(1));
        assert_eq!(first_stage.queued, Some(1 + pushes as u64));
        let superseded = &state.deployments[&2];
        assert!(superseded.superseded);
        assert_eq!(superseded.stages[0].state, StageState::Skipped);
    }
}

/// Whether this run measures: `cargo bench` passes `--bench` to the benchmark binaries;
/// `cargo test --benches` does not, and the benchmarks then only smoke-test their code.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The criterion configuration of the benchmarks that time long operations: 10 samples,
/// half a second of warm-up, three seconds of measurement.
pub fn short_criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3))
}

/// Starts an engine on `backends` with its driver spawned on a new local pool.
pub fn start_engine(
    backends: &devramps_core::backend::Backends,
) -> (futures::executor::LocalPool, devramps_core::engine::Engine) {
    use futures::task::LocalSpawnExt;
    let (engine, driver) = devramps_core::engine::Engine::new(
        backends.clone(),
        devramps_core::engine::EngineConfig::default(),
    );
    let pool = futures::executor::LocalPool::new();
    pool.spawner()
        .spawn_local(async move {
            driver.run().await.expect("the engine runs");
        })
        .expect("spawn the driver");
    (pool, engine)
}

/// In-memory backends whose store holds a log of at least `records` records of completed
/// deployments of pipeline `slug` (3 stages x 5 instant steps, pushed and run to completion one
/// after the other by the engine), and the snapshots the engine saved on the way.
pub fn completed_deployments(
    slug: &str,
    records: usize,
) -> (
    devramps_core::backend::Backends,
    devramps_memory::MemoryHandles,
) {
    use devramps_core::backend::EventStore;
    let (backends, handles) = devramps_memory::scripted_backends();
    handles
        .steps
        .set_default(devramps_memory::Behavior::succeed(
            std::time::Duration::ZERO,
        ));
    let definition = lifecycle_pipeline(3, 5, false);
    let path = format!("/.devramps/{slug}/pipeline.yaml");
    let (mut pool, engine) = start_engine(&backends);
    let mut i = 0;
    while futures::executor::block_on(handles.store.last_seq(slug)).expect("last seq")
        < records as u64
    {
        i += 1;
        let commit = format!("c{i}");
        handles
            .source
            .commit(&commit, None, [(path.as_str(), definition.as_str())]);
        let request =
            devramps_core::engine::PushRequest::new("main", commit).with_delivery(format!("d{i}"));
        pool.run_until(engine.push(slug, request))
            .expect("the push is recorded");
        loop {
            pool.run_until_stalled();
            if handles.clock.advance_to_next_deadline().is_none() {
                break;
            }
        }
    }
    pool.run_until(engine.stop()).expect("the engine stops");
    (backends, handles)
}
