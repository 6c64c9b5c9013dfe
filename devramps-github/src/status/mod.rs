//! Commit statuses (issue 15, item 3): one status per stage of a deployment on its commit,
//! posted to GitHub by a task of its own, fed by an engine
//! [`Observer`](devramps_core::engine::Observer) that never waits.
//!
//! ```no_run
//! # async fn f(store: devramps_core::backend::DynEventStore,
//! #            client: devramps_github::GitHubClient) -> devramps_core::Result<()> {
//! use std::sync::Arc;
//! use devramps_core::engine::EngineConfig;
//! use devramps_github::CommitStatuses;
//!
//! let (observer, poster) = CommitStatuses::new(client, "acme/shop")?
//!     .with_target_url("https://devramps.example.com")?
//!     .channel();
//! tokio::spawn(poster.run(store));
//! let config = EngineConfig::new("serve-1").with_observer(Arc::new(observer));
//! # let _ = config; Ok(()) }
//! ```
//!
//! | record | state | description |
//! |---|---|---|
//! | `stage_state` `NOT_STARTED` (waiting) | pending | `queued: waiting for ...` |
//! | `stage_state` `IN_PROGRESS`, `CANCELLING`, `ROLLING_BACK`, `ROLLING_FORWARD` | pending | what runs |
//! | `approval_required` | pending | `waiting for approval of STEP` |
//! | `approved` | pending | `in progress (STEP approved by WHO)` |
//! | `stage_state` `SUCCEEDED`, `ROLLED_BACK`, `ROLLED_FORWARD` | success | |
//! | `stage_state` `FAILED`, `TIMED_OUT` | failure | the reason |
//! | `stage_state` `CANCELLED`, `SKIPPED`, `NOT_STARTED`/`NEVER` | error | why it will not run |
//!
//! The context is `devramps/<pipeline>/<stage>`; the description is cut to GitHub's 140
//! characters; `target_url` is `<base>/pipelines/<pipeline>/revisions/<revision>/stages/<stage>`
//! when a base URL is configured.
//!
//! - **Never blocks the engine**: the observer hands each append to a bounded queue
//!   ([`CommitStatuses::with_queue`]); when it is full the append's statuses are dropped with
//!   a warning (a later record of the stage posts its newer state).
//! - **Coalesced**: the poster takes everything queued before each post; of the statuses of
//!   one commit and context waiting to be posted, only the newest is posted.
//! - **Never twice**: a status equal to the last one posted for its commit and context (same
//!   state and description) is not posted again. Records are observed at most once (the
//!   [`Observer`](devramps_core::engine::Observer) contract); records appended by another
//!   instance or before a restart are read from the store to know the commits, and posted
//!   by their own appender.
//! - **Retries** through [`GitHubClient`]: 5xx and connection failures three times, rate
//!   limits waited out; a status that still fails is dropped with a warning.

mod map;

use std::collections::{HashMap, VecDeque};

use devramps_core::backend::DynEventStore;
use devramps_core::engine::{AppendedRecords, NotifyingObserver, read_records};
use devramps_core::{Error, Result};
use futures::StreamExt;
use futures::channel::mpsc;
use reqwest::{StatusCode, Url};
use serde_json::json;

pub use map::{MAX_DESCRIPTION, StatusState};

use crate::client::GitHubClient;
use map::{Fold, StageStatus};

/// The default of [`CommitStatuses::with_queue`]: appends waiting for the poster.
pub const DEFAULT_STATUS_QUEUE: usize = 1024;

/// Commit statuses of one repository's pipelines: configure, then split with
/// [`channel`](CommitStatuses::channel) into the engine's observer and the poster's task.
#[derive(Clone, Debug)]
pub struct CommitStatuses {
    client: GitHubClient,
    owner: String,
    repo: String,
    target: Option<Url>,
    queue: usize,
}

impl CommitStatuses {
    /// Statuses on the commits of `repository` (`owner/name`), posted through `client` (its
    /// token needs the `repo:status` scope, or an App's "Commit statuses: write").
    pub fn new(client: GitHubClient, repository: &str) -> Result<Self> {
        let (owner, repo) = crate::source::split_repository(repository)?;
        Ok(CommitStatuses {
            client,
            owner,
            repo,
            target: None,
            queue: DEFAULT_STATUS_QUEUE,
        })
    }

    /// With links: each status's `target_url` is
    /// `<base>/pipelines/<pipeline>/revisions/<revision>/stages/<stage>`.
    pub fn with_target_url(mut self, base: &str) -> Result<Self> {
        let url = Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::backend(
                    "github",
                    "configure commit statuses",
                    format!("the target base URL `{base}` is not an http(s) URL"),
                )
            })?;
        self.target = Some(url);
        Ok(self)
    }

    /// With room for `capacity` appends waiting for the poster (default
    /// [`DEFAULT_STATUS_QUEUE`]; at least 1).
    pub fn with_queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// The observer (for [`EngineConfig::observers`]) and the poster that posts what it
    /// queues (run it on a tokio runtime: [`StatusPoster::run`]).
    ///
    /// [`EngineConfig::observers`]: devramps_core::engine::EngineConfig::observers
    pub fn channel(self) -> (CommitStatusObserver, StatusPoster) {
        let (observer, receiver) = NotifyingObserver::new(self.queue - 1);
        (
            observer,
            StatusPoster {
                config: self,
                appends: receiver,
            },
        )
    }
}

/// The engine side of [`CommitStatuses`]: the core's [`NotifyingObserver`], which queues each
/// append for the poster and never waits (a full queue drops the append with a warning).
pub type CommitStatusObserver = NotifyingObserver;

/// A status waiting to be posted: its commit and context are the key.
type Key = (String, String);

/// The task side of [`CommitStatuses`]: posts the queued statuses.
#[derive(Debug)]
pub struct StatusPoster {
    config: CommitStatuses,
    appends: mpsc::Receiver<AppendedRecords>,
}

impl StatusPoster {
    /// Posts statuses until every observer is dropped and nothing is left to post.
    pub async fn run(mut self, store: DynEventStore) {
        let mut folds: HashMap<String, Fold> = HashMap::new();
        let mut order: VecDeque<Key> = VecDeque::new();
        let mut due: HashMap<Key, Due> = HashMap::new();
        let mut posted: HashMap<Key, (StatusState, String)> = HashMap::new();
        let mut open = true;
        loop {
            if due.is_empty() {
                if !open {
                    return;
                }
                // Nothing to post: wait for the next append.
                match self.appends.next().await {
                    Some(batch) => {
                        self.fold(batch, &store, &mut folds, &mut order, &mut due)
                            .await;
                    }
                    None => return,
                }
            }
            // Everything queued meanwhile first, so that only the newest state is posted.
            while open {
                match self.appends.try_recv() {
                    Ok(batch) => {
                        self.fold(batch, &store, &mut folds, &mut order, &mut due)
                            .await;
                    }
                    Err(mpsc::TryRecvError::Closed) => open = false,
                    Err(_) => break,
                }
            }
            let Some(key) = order.pop_front() else {
                continue;
            };
            let Some(next) = due.remove(&key) else {
                continue;
            };
            let last = (next.status.state, next.status.description.clone());
            if posted.get(&key) == Some(&last) {
                continue;
            }
            match self.config.post(&key.0, &key.1, &next).await {
                Ok(()) => {
                    posted.insert(key, last);
                }
                Err(e) => tracing::warn!(
                    commit = %key.0, context = %key.1, error = %e,
                    "commit status not posted"
                ),
            }
        }
    }

    /// Folds `batch` into its pipeline's log and queues the statuses it means.
    async fn fold(
        &self,
        batch: AppendedRecords,
        store: &DynEventStore,
        folds: &mut HashMap<String, Fold>,
        order: &mut VecDeque<Key>,
        due: &mut HashMap<Key, Due>,
    ) {
        let pipeline = batch.pipeline.as_str();
        let fold = folds
            .entry(batch.pipeline.clone())
            .or_insert_with(|| Fold::new(pipeline));
        if fold.next_seq() < batch.first_seq
            && let Err(e) = catch_up(fold, store, pipeline, batch.first_seq).await
        {
            tracing::warn!(pipeline, error = %e, "cannot read the log to catch up: the commit statuses of this append are dropped");
            return;
        }
        for (seq, record) in (batch.first_seq..).zip(&batch.records) {
            let Some((commit, status)) = fold.apply(seq, record) else {
                continue;
            };
            let key = (commit, format!("devramps/{pipeline}/{}", status.stage));
            let next = Due {
                pipeline: pipeline.to_owned(),
                status,
            };
            if due.insert(key.clone(), next).is_none() {
                order.push_back(key);
            }
        }
    }
}

/// A status to post, with what its link needs.
#[derive(Debug)]
struct Due {
    pipeline: String,
    status: StageStatus,
}

impl CommitStatuses {
    /// The status's JSON body.
    fn body(&self, context: &str, due: &Due) -> serde_json::Value {
        let mut body = json!({
            "state": due.status.state.as_str(),
            "context": context,
            "description": due.status.description,
        });
        if let Some(base) = &self.target {
            let mut url = base.clone();
            let revision = due.status.revision.to_string();
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().extend([
                    "pipelines",
                    due.pipeline.as_str(),
                    "revisions",
                    revision.as_str(),
                    "stages",
                    due.status.stage.as_str(),
                ]);
            }
            body["target_url"] = json!(url.as_str());
        }
        body
    }

    async fn post(&self, commit: &str, context: &str, due: &Due) -> Result<()> {
        let url = self.client.url([
            "repos",
            self.owner.as_str(),
            self.repo.as_str(),
            "statuses",
            commit,
        ]);
        let operation = format!(
            "post the status `{context}` on `{commit}` in {}/{}",
            self.owner, self.repo
        );
        let answer = self
            .client
            .post(url, &self.body(context, due), &operation)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::backend(
                "github",
                operation,
                "the repository was not found (or the token may not write statuses)",
            ));
        }
        Ok(())
    }
}

/// Folds the records of `pipeline` from `fold`'s next one up to (not including) `until`,
/// read from the store (no statuses: their appender posted them); transient failures are
/// retried a few times.
async fn catch_up(
    fold: &mut Fold,
    store: &DynEventStore,
    pipeline: &str,
    until: u64,
) -> Result<()> {
    let next = fold.next_seq();
    read_records(
        store,
        pipeline,
        "github",
        next,
        until,
        tokio::time::sleep,
        |seq, record| {
            let _ = fold.apply(seq, record);
        },
    )
    .await
}
