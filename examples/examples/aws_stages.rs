//! The sample `api` pipeline deployed on the AWS backends, against moto: the engine's state on
//! S3, two stages in two accounts (each reached through its deployment role with STS
//! AssumeRole) and two regions, resource validation, image and bundle mirroring, secrets from
//! Secrets Manager, and an automatic rollback (L15) when prod's CloudWatch alarm fires.
//!
//! ```sh
//! # moto on 127.0.0.1:5055 and Debian's docker-registry installed (scripts/test does both):
//! AWS_ENDPOINT_URL=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
//!   AWS_REGION=us-east-1 cargo run -p devramps-examples --example aws_stages
//! ```
//!
//! What is real: every AWS call (STS, S3, ECR, CloudWatch, Secrets Manager) goes to moto through
//! the AWS SDK; images move over the OCI distribution API between three docker-registry
//! processes standing in for the ECR registries of the CI/CD account, staging's account and
//! prod's (moto's ECR has no blob endpoints). What is not: the build (a small image pushed, a
//! bundle uploaded), Terraform (scripted outputs) and the deployment steps (scripted runners),
//! and time, which is virtual (Monday 09:00 in Los Angeles, moved on whenever the engine waits
//! on nothing but the clock) so that prod's time window and 30-minute bake take no real time.
//!
//! The run: `r1` goes through staging and prod. `r2` goes through staging; while it bakes in
//! prod, the prod alarm `api-5xx` is set to ALARM in CloudWatch: the engine cancels `r2` there
//! and rolls prod back to `r1` (whose artifacts are mirrored already: the second mirror copies
//! nothing). Then the timeline and the AWS requests of each principal are printed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use devramps_aws::alarms::AlarmOptions;
use devramps_aws::stage::{Principal, Service};
use devramps_aws::testing::{LocalRegistry, push_image};
use devramps_aws::{
    AwsMirror, AwsResourceValidator, AwsStages, CloudWatchAlarmSource, S3EventStore, S3Location,
    S3Lock, SecretsManagerSource,
};
use devramps_core::backend::{
    ArtifactMirror, Backends, BuildRequest, ExecutionKey, MirrorRequest, Outcome,
    ResourceValidator, Runner, SecretScope, StageTarget, StepRunners, ValidationRequest,
};
use devramps_core::engine::{Engine, EngineConfig, PushRequest};
use devramps_core::exec::ImageRef;
use devramps_core::expr::Organization;
use devramps_core::lifecycle::{
    Emergency, Event, PipelineState, Record, StageRun, StageState, StepState, describe,
};
use devramps_core::plan::naming;
use devramps_core::{Error, Result};
use devramps_memory::{Behavior, ManualClock, Match, ScriptedInfra, ScriptedStepRunner};

const PIPELINE: &str = include_str!("../repo/.devramps/api/pipeline.yaml");
const SLUG: &str = "api";
const IMAGE: &str = "api-image";
const BUNDLE: &str = "web";
const ALARM: &str = "api-5xx";

/// What a run leaves: the log, and the requests sent per principal.
#[derive(Debug)]
pub struct Report {
    /// The pipeline's log.
    pub log: Vec<Record>,
    /// The final state.
    pub state: PipelineState,
    /// AWS requests per principal (`base credentials` or a role ARN) and service.
    pub requests: BTreeMap<(String, String), u64>,
    /// The organization the run used (its slug is unique per run).
    pub organization: Organization,
    /// What validation and mirroring cost, per stage-deployment, in order.
    pub phases: Vec<PhaseCost>,
}

/// The requests of one stage-deployment's resource validation and mirroring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhaseCost {
    /// The stage.
    pub stage: String,
    /// AWS API requests of the validation (STS, ECR, S3).
    pub validation: u64,
    /// AWS API requests of the mirroring.
    pub mirroring: u64,
    /// OCI registry requests of the mirroring.
    pub registry: u64,
    /// Blobs the mirroring copied.
    pub blobs_copied: u64,
}

/// Collects [`PhaseCost`]s: validation opens one, mirroring completes it.
#[derive(Clone, Debug, Default)]
struct Costs(Arc<std::sync::Mutex<Vec<PhaseCost>>>);

impl Costs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PhaseCost>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The AWS API requests `stages` sent so far, CloudWatch (the alarm poller's) left out.
fn api_requests(stages: &AwsStages) -> u64 {
    stages
        .requests()
        .into_iter()
        .filter(|((_, service), _)| *service != Service::CloudWatch)
        .map(|(_, n)| n)
        .sum()
}

/// Counts calls into the backends that do real work, so the virtual clock moves only when the
/// engine waits on nothing else.
#[derive(Clone, Debug, Default)]
struct Busy(Arc<AtomicUsize>);

impl Busy {
    async fn during<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.0.fetch_add(1, Ordering::SeqCst);
        let out = work.await;
        self.0.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn idle(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }
}

/// The AWS validator, counted as busy while it looks, its requests counted (validation and
/// mirroring never overlap with other AWS work in this run, but for the alarm poller's).
#[derive(Debug)]
struct Validating(AwsResourceValidator, AwsStages, Busy, Costs);

#[async_trait]
impl ResourceValidator for Validating {
    async fn validate(&self, request: &ValidationRequest) -> Result<Vec<String>> {
        let before = api_requests(&self.1);
        let out = self.2.during(self.0.validate(request)).await;
        self.3.lock().push(PhaseCost {
            stage: request.target.stage.clone(),
            validation: api_requests(&self.1) - before,
            ..PhaseCost::default()
        });
        out
    }
}

/// The AWS mirror, counted as busy while it copies, its requests counted.
#[derive(Debug)]
struct Mirroring(AwsMirror, Busy, Costs);

#[async_trait]
impl ArtifactMirror for Mirroring {
    async fn mirror(&self, request: &MirrorRequest) -> Result<()> {
        let before = api_requests(self.0.stages());
        let report = self.1.during(self.0.mirror_with_report(request)).await?;
        let spent = api_requests(self.0.stages()) - before;
        if let Some(cost) = self
            .2
            .lock()
            .iter_mut()
            .rev()
            .find(|c| c.stage == request.target.stage)
        {
            cost.mirroring += spent;
            if let Some(copy) = &report.copy {
                cost.registry += copy.requests;
                cost.blobs_copied += copy.blobs_copied;
            }
        }
        Ok(())
    }
}

/// The build: a small image pushed to the root registry (the CI/CD account's ECR, a local
/// registry here), or the web bundle uploaded to the stage's bucket as the stage's role.
#[derive(Debug)]
struct Builds {
    stages: AwsStages,
    targets: BTreeMap<String, StageTarget>,
    /// ECR host -> local registry host.
    registries: BTreeMap<String, String>,
    busy: Busy,
}

impl Builds {
    async fn build(&self, request: &BuildRequest) -> Result<()> {
        let commit = &request.commit;
        let destination = &request.destination;
        if request.artifact == IMAGE {
            let image = ImageRef::parse(&destination.image_url)
                .map_err(|why| Error::backend("build", "push", why))?;
            let (host, repository) = (image.host.as_str(), image.repository.as_str());
            let local = self.registries.get(host).ok_or_else(|| {
                Error::backend("build", "push", format!("no registry for {host}"))
            })?;
            let layers = [
                format!("api server at {commit}").into_bytes(),
                b"shared base layer".to_vec(),
            ];
            let pushed = push_image(local, repository, &destination.image_tag, &layers).await?;
            // A push to ECR makes the tag visible to ECR's API too; here the blobs went to the
            // local registry, so the tag is told to moto's ECR with the same manifest.
            let region = host.split('.').nth(3).unwrap_or("us-east-1");
            self.stages
                .base_ecr(region)
                .put_image()
                .repository_name(repository)
                .image_tag(&destination.image_tag)
                .image_manifest(String::from_utf8_lossy(&pushed.manifest))
                .image_manifest_media_type(pushed.media_type)
                .send()
                .await
                .map_err(|e| Error::backend("ecr", "put the built image", format!("{e:?}")))?;
            return Ok(());
        }
        // The per-stage bundle: into the stage's bucket, as the stage's role.
        let stage = &request.key.stage;
        let target = self
            .targets
            .get(stage)
            .ok_or_else(|| Error::backend("build", "upload", format!("no stage {stage}")))?;
        self.stages
            .stage_s3(target)
            .put_object()
            .bucket(&destination.s3_bucket)
            .key(&destination.s3_key)
            .body(format!("web for {stage} at {commit}").into_bytes().into())
            .send()
            .await
            .map_err(|e| Error::backend("s3", "upload the bundle", format!("{e:?}")))?;
        Ok(())
    }
}

#[async_trait]
impl Runner<BuildRequest> for Builds {
    async fn start(&self, request: BuildRequest) -> Result<()> {
        self.busy.during(self.build(&request)).await
    }
    async fn wait(&self, _key: &ExecutionKey) -> Result<Outcome> {
        Ok(Outcome::Succeeded {
            outputs: Default::default(),
        })
    }
    async fn cancel(&self, _key: &ExecutionKey) -> Result<()> {
        Ok(())
    }
}

fn failed(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::backend("example", what.to_owned(), e)
}

/// Creates what `devramps bootstrap` creates, on moto: the stages' repositories and buckets
/// (as each stage's role), the root repository, the Terraform state bucket, prod's alarm and
/// the stages' database secrets.
async fn bootstrap(
    stages: &AwsStages,
    org: &Organization,
    targets: &BTreeMap<String, StageTarget>,
) -> Result<()> {
    for target in targets.values() {
        let repo = naming::stage_repository(SLUG, &target.stage, IMAGE);
        create_repository(&stages.stage_ecr(target), &repo).await?;
        let bucket = naming::stage_bucket(&target.account_id, SLUG, &target.stage, BUNDLE);
        create_bucket(&stages.stage_s3(target), &bucket, &target.region).await?;
    }
    let base = &org.cicd_account_region;
    create_repository(
        &stages.base_ecr(base),
        &naming::root_repository(SLUG, IMAGE),
    )
    .await?;
    let state = naming::terraform_state_bucket(&org.slug);
    create_bucket(&stages.base_s3(base), &state, base).await?;
    let prod = &targets["prod"];
    stages
        .stage_cloudwatch(prod)
        .put_metric_alarm()
        .alarm_name(ALARM)
        .metric_name("5XXError")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(
            aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
        )
        .send()
        .await
        .map_err(|e| failed("create the alarm")(format!("{e:?}")))?;
    set_alarm(stages, prod, aws_sdk_cloudwatch::types::StateValue::Ok).await?;
    let secrets = stages.base_secrets(base);
    let names = SecretsManagerSource::new(stages.clone(), &org.slug);
    for stage in targets.keys() {
        let scope = SecretScope::Stage {
            pipeline: SLUG.to_owned(),
            stage: stage.clone(),
        };
        secrets
            .create_secret()
            .name(names.secret_id(&scope, "DATABASE_URL")?)
            .secret_string(format!("postgres://db.{stage}.internal/api"))
            .send()
            .await
            .map_err(|e| failed("create a secret")(format!("{e:?}")))?;
    }
    Ok(())
}

async fn create_repository(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<()> {
    match ecr.create_repository().repository_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(failed("create a repository")(format!("{name}: {e:?}"))),
    }
}

async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: &str) -> Result<()> {
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(region.into())
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(failed("create a bucket")(format!("{bucket}: {e:?}"))),
    }
}

async fn set_alarm(
    stages: &AwsStages,
    target: &StageTarget,
    state: aws_sdk_cloudwatch::types::StateValue,
) -> Result<()> {
    stages
        .stage_cloudwatch(target)
        .set_alarm_state()
        .alarm_name(ALARM)
        .state_value(state)
        .state_reason("set by the aws_stages example")
        .send()
        .await
        .map_err(|e| failed("set the alarm")(format!("{e:?}")))?;
    Ok(())
}

/// A 40-hex commit id no earlier run on the same moto used.
fn commit_id(n: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = devramps_aws::testing::sha256(format!("{nanos}/{n}").as_bytes());
    hash["sha256:".len().."sha256:".len() + 40].to_owned()
}

/// Runs the deployment; prints the timeline as it goes when `verbose`.
pub async fn run(verbose: bool) -> Result<Report> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return Err(Error::backend(
            "example",
            "start",
            "AWS_ENDPOINT_URL is not set: this example creates resources and is meant for \
             moto. Start moto (scripts/test does) and set AWS_ENDPOINT_URL, \
             AWS_ACCESS_KEY_ID=test, AWS_SECRET_ACCESS_KEY=test, AWS_REGION=us-east-1",
        ));
    }
    let stages = AwsStages::from_env().await;
    let run_id = commit_id(0)[..12].to_owned();
    // The CI/CD account is the base credentials' (moto's default account).
    let cicd = stages.verify_base().await?;
    let organization = Organization {
        name: "Example".into(),
        slug: format!("example-{run_id}"),
        cicd_account_id: cicd.clone(),
        cicd_account_region: stages.base_region(),
    };
    let targets: BTreeMap<String, StageTarget> = [
        ("staging", "111111111111", "us-east-1"),
        ("prod", "222222222222", "us-west-2"),
    ]
    .into_iter()
    .map(|(s, a, r)| (s.to_owned(), StageTarget::new(SLUG, s, a, r)))
    .collect();
    bootstrap(&stages, &organization, &targets).await?;

    // One local registry per ECR registry: the CI/CD account's and each stage's.
    let root = LocalRegistry::start().await?;
    let staging = LocalRegistry::start().await?;
    let prod = LocalRegistry::start().await?;
    let ecr = |account: &str, region: &str| format!("{account}.dkr.ecr.{region}.amazonaws.com");
    let registries: BTreeMap<String, String> = [
        (ecr(&cicd, &organization.cicd_account_region), root.host()),
        (ecr("111111111111", "us-east-1"), staging.host()),
        (ecr("222222222222", "us-west-2"), prod.host()),
    ]
    .into_iter()
    .map(|(e, h)| (e, h.to_owned()))
    .collect();

    let clock = ManualClock::new(devramps_memory::DEFAULT_START);
    let busy = Busy::default();
    let costs = Costs::default();
    let location = S3Location::from_env(format!("devramps-example-{run_id}"), "state").await;
    create_bucket(location.client(), location.bucket(), &stages.base_region()).await?;
    let mut mirror = AwsMirror::new(stages.clone())?;
    for (ecr_host, local) in &registries {
        mirror = mirror.with_registry_endpoint(ecr_host, &format!("http://{local}"))?;
    }
    let options = AlarmOptions {
        interval: Duration::from_millis(200),
        ..AlarmOptions::default()
    };
    let alarms = CloudWatchAlarmSource::with_options(stages.clone(), options);
    alarms.watch(targets["prod"].clone(), ALARM);
    let infra = ScriptedInfra::new();
    infra.script_outputs(
        Match::step("infra"),
        [
            ("cluster_name".to_owned(), serde_json::json!("api-cluster")),
            (
                "task_definition".to_owned(),
                serde_json::json!("api-task:7"),
            ),
        ]
        .into(),
    );
    let steps = ScriptedStepRunner::new("example steps", Arc::new(clock.clone()));
    steps.set_default(Behavior::succeed(Duration::from_secs(120)));
    let source = devramps_memory::InMemorySource::new();
    let (c1, c2) = (commit_id(1), commit_id(2));
    source.commit(
        &c1,
        None,
        [
            ("/.devramps/api/pipeline.yaml", PIPELINE),
            ("/services/api/main.rs", "v1"),
            ("/web/index.html", "v1"),
        ],
    );
    source.commit_changes(&c2, &c1, [("/services/api/main.rs", Some("v2"))]);
    let backends = Backends::builder(Arc::new(clock.clone()))
        .store(Arc::new(S3EventStore::new(location.clone())))
        .lock(Arc::new(S3Lock::new(location)))
        .source(Arc::new(source))
        .builds(Arc::new(Builds {
            stages: stages.clone(),
            targets: targets.clone(),
            registries,
            busy: busy.clone(),
        }))
        .resources(Arc::new(Validating(
            AwsResourceValidator::new(stages.clone()),
            stages.clone(),
            busy.clone(),
            costs.clone(),
        )))
        .mirror(Arc::new(Mirroring(mirror, busy.clone(), costs.clone())))
        .infra(Arc::new(infra))
        .steps(StepRunners::new().with_fallback(Arc::new(steps)))
        .secrets(Arc::new(SecretsManagerSource::new(
            stages.clone(),
            &organization.slug,
        )))
        .alarms(Arc::new(alarms))
        .build();
    let config = EngineConfig::new("aws-example").with_organization(organization.clone());
    let (engine, driver) = Engine::new(backends, config);
    let driving = tokio::spawn(driver.run());
    let mut shown = 0;

    engine.push(SLUG, PushRequest::new("main", &c1)).await?;
    settle(&engine, &clock, &busy, verbose, &mut shown, |s| {
        stage_is(s, 1, "prod", StageState::Succeeded)
    })
    .await?;
    engine.push(SLUG, PushRequest::new("main", &c2)).await?;
    // r2 bakes in prod: the alarm fires.
    settle(&engine, &clock, &busy, verbose, &mut shown, |s| {
        s.deployments
            .get(&2)
            .and_then(|d| d.stage("prod"))
            .is_some_and(|p| p.state == StageState::InProgress && baking(p))
    })
    .await?;
    if verbose {
        println!("           -- CloudWatch: {ALARM} set to ALARM in 222222222222/us-west-2 --");
    }
    set_alarm(
        &stages,
        &targets["prod"],
        aws_sdk_cloudwatch::types::StateValue::Alarm,
    )
    .await?;
    // Real time, not virtual: the alarm source polls CloudWatch.
    wait_real(&engine, verbose, &mut shown, |log| {
        log.iter().any(|r| {
            matches!(&r.event, Event::EmergencyRequested {
                stage,
                operation: Emergency::Rollback,
                ..
            } if stage == "prod")
        })
    })
    .await?;
    set_alarm(
        &stages,
        &targets["prod"],
        aws_sdk_cloudwatch::types::StateValue::Ok,
    )
    .await?;
    settle(&engine, &clock, &busy, verbose, &mut shown, |s| {
        let prod = s.stage("prod");
        prod.current == Some(1) && prod.running.is_none()
    })
    .await?;
    let state = engine.state(SLUG).await?;
    let log = engine.history(SLUG).await?;
    engine.stop().await?;
    let _ = driving.await;
    let requests = stages
        .requests()
        .into_iter()
        .map(|((principal, service), n)| {
            let who = match principal {
                Principal::Base => "base credentials".to_owned(),
                Principal::Role(arn) => arn,
            };
            ((who, Service::as_str(service).to_owned()), n)
        })
        .collect();
    drop((root, staging, prod));
    let phases = costs.lock().clone();
    Ok(Report {
        log,
        state,
        requests,
        organization,
        phases,
    })
}

fn stage_is(state: &PipelineState, revision: u64, stage: &str, want: StageState) -> bool {
    state
        .deployments
        .get(&revision)
        .and_then(|d| d.stage(stage))
        .is_some_and(|s| s.state == want)
}

/// Whether the stage runs its last step (prod's bake).
fn baking(stage: &StageRun) -> bool {
    stage
        .steps
        .last()
        .is_some_and(|s| s.state == StepState::Running)
}

/// Prints the records after `shown`.
fn show(log: &[Record], verbose: bool, shown: &mut usize) {
    if verbose {
        for r in &log[(*shown).min(log.len())..] {
            if let Some(line) = describe(r) {
                let time =
                    r.at.in_tz(devramps_core::lifecycle::PACIFIC_ZONE)
                        .map_or_else(|_| r.at.to_string(), |z| z.strftime("%a %H:%M").to_string());
                println!("{time}  {line}");
            }
        }
    }
    *shown = log.len();
}

/// Lets the engine work, moving the virtual clock to its next deadline whenever nothing real is
/// in flight and the log has stopped growing, until `done` holds.
async fn settle(
    engine: &Engine,
    clock: &ManualClock,
    busy: &Busy,
    verbose: bool,
    shown: &mut usize,
    done: impl Fn(&PipelineState) -> bool,
) -> Result<()> {
    let mut quiet = 0;
    for _ in 0..20_000 {
        let log = engine.history(SLUG).await?;
        let grew = log.len() != *shown;
        show(&log, verbose, shown);
        if done(&engine.state(SLUG).await?) {
            return Ok(());
        }
        quiet = if grew || !busy.idle() { 0 } else { quiet + 1 };
        if quiet >= 3 {
            clock.advance_to_next_deadline();
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(failed("settle")("the deployment did not get there".into()))
}

/// Waits in real time (up to a minute) until the log satisfies `done`.
async fn wait_real(
    engine: &Engine,
    verbose: bool,
    shown: &mut usize,
    done: impl Fn(&[Record]) -> bool,
) -> Result<()> {
    for _ in 0..600 {
        let log = engine.history(SLUG).await?;
        show(&log, verbose, shown);
        if done(&log) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(failed("wait")(
        "the alarm was not acted on within a minute".into(),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    println!(
        "devramps on AWS (moto): the `api` pipeline, staging in 111111111111/us-east-1, prod in \
         222222222222/us-west-2 (virtual clock, Monday 09:00 Los Angeles)\n"
    );
    let report = match run(true).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("aws_stages: {e}");
            std::process::exit(1);
        }
    };
    println!("\nresource validation and mirroring, per stage-deployment:");
    for c in &report.phases {
        println!(
            "  {:<8} validation {:>2} AWS requests; mirroring {:>2} AWS + {:>2} registry requests, \
             {} blobs copied",
            c.stage, c.validation, c.mirroring, c.registry, c.blobs_copied
        );
    }
    println!("\nAWS requests of the whole run, per principal and service:");
    for ((who, service), n) in &report.requests {
        println!("  {n:>5}  {service:<15} {who}");
    }
    let prod = report.state.stages.get("prod").and_then(|s| s.current);
    println!("\nprod runs r{}", prod.unwrap_or_default());
    Ok(())
}
