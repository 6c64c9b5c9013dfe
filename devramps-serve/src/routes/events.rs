//! The event log: paged by sequence number, and live as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use devramps_core::backend::StoredEvent;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiResult, Problem};

/// The default page size of `GET .../events`.
const DEFAULT_LIMIT: usize = 1_000;
/// The largest page.
const MAX_LIMIT: usize = 10_000;
/// How many records an event stream reads at once.
const STREAM_BATCH: usize = 500;

/// The query of the event routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Records with a greater sequence number (default 0: from the start).
    after: Option<u64>,
    /// At most this many (default 1,000, at most 10,000).
    limit: Option<usize>,
}

/// One stored record as the API shows it: `seq` first, then the record's own fields.
fn shown(event: StoredEvent) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("seq".into(), Value::from(event.seq));
    match event.payload {
        Value::Object(fields) => out.extend(fields),
        other => {
            out.insert("record".into(), other);
        }
    }
    Value::Object(out)
}

type QueryResult = Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>;

/// `GET /api/v1/pipelines/{slug}/events?after=SEQ&limit=N`:
/// `{"events": [{seq, at, actor, type, ...}], "next": SEQ, "last_seq": N}`; ask again with
/// `after=next` until `next == last_seq`.
pub(super) async fn page(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    query: QueryResult,
) -> ApiResult<Json<Value>> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {limit}"
        )));
    }
    app.known(&slug).await?;
    let after = q.after.unwrap_or(0);
    let store = &app.config.store;
    let events = store
        .read(&slug, after, Some(limit))
        .await
        .map_err(Problem::from)?;
    let last_seq = store.last_seq(&slug).await.map_err(Problem::from)?;
    let next = events.last().map_or(after, |e| e.seq);
    let events: Vec<Value> = events.into_iter().map(shown).collect();
    Ok(Json(
        json!({ "events": events, "next": next, "last_seq": last_seq }),
    ))
}

/// `GET /api/v1/pipelines/{slug}/events/stream?after=SEQ`: every record after `after` (or
/// after the `Last-Event-ID` header, when reconnecting), then each new one as it is
/// appended; each SSE event has the record's `seq` as id, its `type` as name and the record
/// (as in `GET .../events`) as data. It ends when the server shuts down.
pub(super) async fn stream(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    query: QueryResult,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    app.known(&slug).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = resume.or(q.after).unwrap_or(0);
    let state = Cursor {
        app,
        slug,
        after,
        pending: Vec::new().into_iter(),
    };
    let events = futures::stream::unfold(state, next_event);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Cursor {
    app: AppState,
    slug: String,
    after: u64,
    pending: std::vec::IntoIter<StoredEvent>,
}

async fn next_event(mut c: Cursor) -> Option<(Result<SseEvent, Infallible>, Cursor)> {
    loop {
        if let Some(event) = c.pending.next() {
            c.after = event.seq;
            let name = event
                .payload
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("record")
                .to_owned();
            let sse = SseEvent::default()
                .id(event.seq.to_string())
                .event(name)
                .data(shown(event).to_string());
            return Some((Ok(sse), c));
        }
        let shutdown = c.app.config.shutdown.clone();
        if shutdown.is_triggered() {
            return None;
        }
        // Register for the wake-up before reading, so an append in between is not missed.
        let appended = c.app.config.metrics.appended();
        let woken = appended.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match c
            .app
            .config
            .store
            .read(&c.slug, c.after, Some(STREAM_BATCH))
            .await
        {
            Ok(events) if !events.is_empty() => {
                c.pending = events.into_iter();
                continue;
            }
            // A store that fails now may answer later: wait and read again.
            Ok(_) | Err(_) => {}
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(c.app.config.stream_poll) => {}
            () = shutdown.triggered() => return None,
        }
    }
}
