//! Self-contained commands: each carries its whole request, and the work in flight that
//! `Machine::pending_work` lists after a restart is exactly the commands issued when that work
//! started (L20).

use std::collections::BTreeMap;

use devramps_core::backend::{ExecutionKey, InfraPlan, Outcome, Unit};
use devramps_core::expr::Deferred;
use devramps_core::lifecycle::{
    Actor, Command, Decide, InfraWork, Input, Machine, Output, Push, Record, StepWork, WorkResult,
};
use devramps_core::pipeline::{ApprovalPolicy, ArtifactType};
use devramps_core::plan::StepKind;
use jiff::Timestamp;

const PIPELINE: &str = r#"
version: "1.0.0"
pipeline:
  cloud_provider: AWS
  pipeline_updates_require_approval: NEVER
  stages:
    - { name: staging, account_id: "111111111111", region: us-west-2 }
    - { name: prod, account_id: "222222222222", region: us-east-1 }
  steps:
    - name: Infra
      id: infra
      type: DEVRAMPS:TERRAFORM:SYNTHESIZE
      goes_after: []
      params:
        source: /infra
        requires_approval: ALWAYS
        variables: { token: '${{ secret("TOKEN") }}', region: '${{ stage.region }}' }
    - name: Deploy
      type: CUSTOM:SCRIPT:DEPLOY
      goes_after: [infra]
      params: { cluster: '${{ steps.infra.cluster }}', stage: '${{ stage.name }}' }
  artifacts:
    Image:
      type: DEVRAMPS:DOCKER:BUILD
      params: { dockerfile: /Dockerfile }
"#;

fn t0() -> Timestamp {
    "2026-01-05T17:00:00Z".parse().expect("ts")
}

/// A machine, its log, and the work it asked for that has not ended yet.
struct Harness {
    machine: Machine,
    log: Vec<Record>,
    in_flight: BTreeMap<ExecutionKey, Command>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            machine: Machine::new("app"),
            log: Vec::new(),
            in_flight: BTreeMap::new(),
        }
    }

    /// Handles `input`; returns the commands it issued (cancellations left out).
    fn handle(&mut self, input: Input) -> Vec<Command> {
        if let Input::Work { key, .. } = &input {
            self.in_flight.remove(key);
        }
        let Output {
            records, commands, ..
        } = self.machine.handle(input, t0());
        self.log.extend(records);
        let issued: Vec<Command> = commands
            .into_iter()
            .filter(|c| !matches!(c, Command::Cancel { .. }))
            .collect();
        for command in &issued {
            self.in_flight
                .insert(command.key().clone(), command.clone());
        }
        self.check_pending();
        issued
    }

    fn done(&mut self, command: &Command, result: WorkResult) -> Vec<Command> {
        let key = command.key().clone();
        self.handle(Input::Work { key, result })
    }

    /// The pending work of the machine, and of a machine replayed from the log as after a
    /// restart, is the work issued and not ended, command for command.
    fn check_pending(&self) {
        let expected: Vec<&Command> = self.in_flight.values().collect();
        let sorted = |mut commands: Vec<Command>| {
            commands.sort_by(|a, b| a.key().cmp(b.key()));
            commands
        };
        let live = sorted(self.machine.pending_work());
        assert_eq!(live.iter().collect::<Vec<_>>(), expected);
        let replayed = sorted(Machine::replay("app", &self.log).pending_work());
        assert_eq!(replayed.iter().collect::<Vec<_>>(), expected);
    }
}

fn push(commit: &str) -> Input {
    Input::Push(
        Push::new("main", commit)
            .with_delivery(format!("d-{commit}"))
            .with_definition(Some(PIPELINE.into())),
    )
}

fn succeeded(outputs: &[(&str, &str)]) -> WorkResult {
    WorkResult::Done(Outcome::Succeeded {
        outputs: outputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect(),
    })
}

fn only(commands: Vec<Command>) -> Command {
    assert_eq!(commands.len(), 1, "{commands:?}");
    commands.into_iter().next().expect("one command")
}

#[test]
fn every_command_carries_its_request_and_pending_work_reissues_it_unchanged() {
    let mut h = Harness::new();
    // Build: the artifact, its type, the commit and its parameters.
    let build = only(h.handle(push("c1")));
    let Command::Build(work) = &build else {
        panic!("a build first, got {build:?}");
    };
    assert_eq!(work.key.unit, Unit::build("image"));
    assert_eq!(
        (
            work.artifact.as_str(),
            work.artifact_type,
            work.commit.as_str()
        ),
        ("image", ArtifactType::DockerBuild, "c1")
    );
    assert!(work.params.to_json().to_string().contains("/Dockerfile"));
    // Resource validation: the stage's account and region, and every artifact.
    let validate = only(h.done(&build, succeeded(&[])));
    let Command::ValidateResources(work) = &validate else {
        panic!("validation, got {validate:?}");
    };
    assert_eq!(work.key.unit, Unit::Validate);
    let request = &work.request;
    assert_eq!(
        (
            request.target.account_id.as_str(),
            request.target.region.as_str()
        ),
        ("111111111111", "us-west-2")
    );
    let artifacts: Vec<_> = request
        .artifacts
        .iter()
        .map(|a| (a.id.as_str(), a.artifact_type))
        .collect();
    assert_eq!(artifacts, [("image", ArtifactType::DockerBuild)]);
    // With where each artifact goes in the stage: its repository there.
    assert!(
        request.artifacts[0]
            .location
            .image_url
            .starts_with("111111111111.dkr.ecr.us-west-2.amazonaws.com/"),
        "{request:?}"
    );
    // Mirroring: one copy per artifact, to its place in the stage.
    let mirror = only(h.done(&validate, succeeded(&[])));
    let Command::Mirror(work) = &mirror else {
        panic!("mirroring, got {mirror:?}");
    };
    assert_eq!(work.key.unit, Unit::Mirror);
    assert_eq!(work.artifacts.len(), 1);
    assert_eq!(work.artifacts[0].build_commit, "c1");
    assert!(
        work.artifacts[0]
            .destination
            .image_url
            .starts_with("111111111111.dkr.ecr.us-west-2.amazonaws.com/")
    );
    // Terraform: source, commit and variables with the secret still deferred.
    let plan = only(h.done(&mirror, succeeded(&[])));
    let Command::PlanInfra(InfraWork {
        key,
        source,
        commit,
        variables,
        outputs,
        target,
        ..
    }) = &plan
    else {
        panic!("a Terraform plan, got {plan:?}");
    };
    assert_eq!(key.unit, Unit::step("infra"));
    assert_eq!((source.as_str(), commit.as_str()), ("/infra", "c1"));
    assert_eq!(target.stage, "staging");
    assert!(outputs.is_empty());
    assert_eq!(
        variables.deferred(),
        [&Deferred::Secret("TOKEN".into())],
        "{variables:?}"
    );
    // The plan waits for a person (ALWAYS): nothing runs meanwhile.
    let changes = InfraPlan::new("p1", 1, 0, 0);
    assert!(h.done(&plan, WorkResult::Planned(changes)).is_empty());
    assert!(h.machine.pending_work().is_empty());
    let approve = Decide::new(1, "staging", "infra", Actor::User("ana".into()));
    let apply = only(h.handle(Input::Approve(approve)));
    let Command::ApplyInfra(work) = &apply else {
        panic!("the apply, got {apply:?}");
    };
    let Command::PlanInfra(planned) = &plan else {
        unreachable!()
    };
    assert_eq!(work, planned, "the apply carries what the plan did");
    // The step after it: the outputs it reads gathered, its kind, its parameters deferred.
    let deploy = only(h.done(&apply, succeeded(&[("cluster", "c-9")])));
    let Command::RunStep(StepWork {
        key,
        step_type,
        kind,
        params,
        outputs,
        approved,
        ..
    }) = &deploy
    else {
        panic!("the deploy step, got {deploy:?}");
    };
    assert_eq!(key.unit, Unit::step("Deploy"));
    assert_eq!(
        (step_type.as_str(), kind, *approved),
        ("CUSTOM:SCRIPT:DEPLOY", &StepKind::Custom, false)
    );
    assert_eq!(
        outputs["infra"]["cluster"],
        serde_json::json!("c-9"),
        "{outputs:?}"
    );
    assert!(params.to_json().to_string().contains("staging"));
    // Every other stage's request names its own account and region.
    let next = h.done(&deploy, succeeded(&[]));
    let validate = next
        .iter()
        .find(|c| matches!(c, Command::ValidateResources(_)))
        .expect("prod validates its resources");
    let Command::ValidateResources(work) = validate else {
        unreachable!()
    };
    assert_eq!(
        (
            work.key.stage.as_str(),
            work.request.target.account_id.as_str()
        ),
        ("prod", "222222222222")
    );
    // prod has a Terraform step: its state bucket is validated too.
    assert_eq!(work.request.terraform_states.len(), 1, "{work:?}");
    assert!(
        work.request.terraform_states[0]
            .key
            .starts_with(&format!("{}/prod/", work.key.pipeline)),
        "{work:?}"
    );
    assert_eq!(
        h.machine
            .state()
            .deployments
            .get(&1)
            .and_then(|d| d.plan())
            .map(|p| p.stages[0].steps[0].kind.clone()),
        Some(StepKind::Terraform {
            source: "/infra".into(),
            requires_approval: ApprovalPolicy::Always
        })
    );
}

#[test]
fn a_stage_that_skips_its_terraform_step_validates_no_state_bucket() {
    // Staging skips the Terraform step (and Deploy no longer reads its outputs).
    let skipping = PIPELINE
        .replace(
            r#"- { name: staging, account_id: "111111111111", region: us-west-2 }"#,
            r#"- { name: staging, account_id: "111111111111", region: us-west-2, skip: [infra] }"#,
        )
        .replace("'${{ steps.infra.cluster }}'", "main");
    assert_ne!(skipping, PIPELINE, "the stage line is in the pipeline");
    let mut machine = Machine::new("app");
    let input = Input::Push(
        Push::new("main", "c1")
            .with_delivery("d-c1")
            .with_definition(Some(skipping)),
    );
    let build = machine
        .handle(input, t0())
        .commands
        .into_iter()
        .find(|c| matches!(c, Command::Build(_)))
        .expect("a build first");
    let key = build.key().clone();
    let validate = machine
        .handle(
            Input::Work {
                key,
                result: succeeded(&[]),
            },
            t0(),
        )
        .commands
        .into_iter()
        .find(|c| matches!(c, Command::ValidateResources(_)))
        .expect("staging validates its resources");
    let Command::ValidateResources(work) = validate else {
        unreachable!()
    };
    assert_eq!(work.request.target.stage, "staging");
    assert!(work.request.terraform_states.is_empty(), "{work:?}");
    assert_eq!(work.request.artifacts.len(), 1, "{work:?}");
}
