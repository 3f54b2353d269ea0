//! The monitor's admin API: its figures, canary rollouts (weights, promote, abort, pin) and
//! incidents (list, show, acknowledge, resolve). Changes go through the monitor's rollouts,
//! so they are stored and reach the other replicas.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use emguard_monitor::{Actor, Monitor, RolloutError, Rollouts};
use emguard_store::monitor::{IncidentQuery, IncidentState, RolloutRecord, TimelineEntry};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::Admin;
use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::state::{AppState, unix_now_f64};

fn monitor(state: &AppState) -> Result<Arc<Monitor>, ApiError> {
    state.monitor.clone().ok_or_else(|| {
        ApiError::bad_request("The monitor is off in this gateway (no `monitor:` section).")
            .with_code("monitor_disabled")
    })
}

fn refused(e: RolloutError) -> ApiError {
    let (status, code) = match &e {
        RolloutError::NoModel(_) | RolloutError::NoVersion { .. } => {
            (StatusCode::NOT_FOUND, "version_not_found")
        }
        RolloutError::Refused(_) => (StatusCode::CONFLICT, "rollout_refused"),
        RolloutError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_failed"),
    };
    ApiError::invalid("version", e.to_string())
        .with_status(status)
        .with_code(code)
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
}

/// Applies an admin's rollout change through the monitor (stored, so it reaches the other
/// replicas) off the async threads; the rollout as it now stands.
async fn change_rollout(
    state: &AppState,
    change: impl FnOnce(&Rollouts) -> Result<RolloutRecord, RolloutError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let m = monitor(state)?;
    let r = blocking(move || change(m.rollouts()).map_err(refused)).await?;
    Ok(Json(serde_json::to_value(r).unwrap_or(Value::Null)))
}

/// `GET /admin/monitor`: every version's figures and the queue's counters.
pub async fn status(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let m = monitor(&state)?;
    let mut body = m.snapshot();
    body["rollouts"] = state
        .models
        .values()
        .map(|e| serde_json::to_value(e.rollout()).unwrap_or(Value::Null))
        .collect();
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    version: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsBody {
    /// Candidate version -> share of traffic.
    weights: BTreeMap<String, f64>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    pinned: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /admin/models/{id}/rollout {"weights": {"v2": 0.2}}`: starts or changes a canary.
pub async fn set_weights(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WeightsBody>,
) -> Result<Json<Value>, ApiError> {
    if body.weights.values().any(|w| !(0.0..=1.0).contains(w)) {
        return Err(ApiError::invalid(
            "weights",
            "each weight must be between 0 and 1",
        ));
    }
    let reason = body
        .reason
        .unwrap_or_else(|| "weights set by an admin".into());
    change_rollout(&state, move |rollouts| {
        rollouts.change(&id, Actor::Admin, &reason, |r| {
            r.weights = body.weights.clone();
            Ok(())
        })
    })
    .await
}

/// `POST /admin/models/{id}/promote {"version": "v2"}`.
pub async fn promote(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VersionBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.reason.unwrap_or_else(|| "promoted by an admin".into());
    change_rollout(&state, move |rollouts| {
        rollouts.promote(&id, &body.version, Actor::Admin, &reason)
    })
    .await
}

/// `POST /admin/models/{id}/abort {"version": "v2"}`: a candidate loses its traffic; the
/// active version rolls back to the last good one.
pub async fn abort(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<VersionBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.reason.unwrap_or_else(|| "aborted by an admin".into());
    change_rollout(&state, move |rollouts| {
        rollouts.abort(&id, &body.version, Actor::Admin, &reason)
    })
    .await
}

/// `POST /admin/models/{id}/pin {"pinned": true}`: while pinned, automation leaves the rollout alone.
pub async fn pin(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PinBody>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.reason.unwrap_or_else(|| {
        if body.pinned {
            "pinned by an admin"
        } else {
            "unpinned by an admin"
        }
        .into()
    });
    change_rollout(&state, move |rollouts| {
        rollouts.change(&id, Actor::Admin, &reason, |r| {
            r.pinned = body.pinned;
            Ok(())
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    state: Option<IncidentState>,
    model: Option<String>,
    /// Page size [default and most: 100].
    limit: Option<usize>,
    /// The last id of the previous page.
    after: Option<String>,
}

/// The most incidents one page holds.
const INCIDENT_PAGE: usize = 100;

/// `GET /admin/incidents?limit=&after=`: newest first, a page at a time; `next` is the `after`
/// of the next page (`null` on the last one).
pub async fn incidents(
    _: Admin,
    State(state): State<AppState>,
    Query(params): Query<IncidentParams>,
) -> Result<Json<Value>, ApiError> {
    let m = monitor(&state)?;
    let limit = params.limit.unwrap_or(INCIDENT_PAGE);
    if !(1..=INCIDENT_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {INCIDENT_PAGE}"),
        ));
    }
    let (after, wanted) = (params.after.clone(), params.after.clone());
    let query = IncidentQuery {
        state: params.state,
        model: params.model,
        // One more than asked: whether there is a next page.
        limit: Some(limit + 1),
        after: params.after,
    };
    let (found, after_known) = blocking(move || {
        let failed = |e: emguard_store::StoreError| {
            ApiError::server(format!("reading incidents failed: {e}"))
        };
        let store = m.store();
        if let Some(after) = &after
            && store.incident(after).map_err(failed)?.is_none()
        {
            return Ok((Vec::new(), false));
        }
        Ok((store.incidents(&query).map_err(failed)?, true))
    })
    .await?;
    if !after_known {
        return Err(ApiError::invalid(
            "after",
            format!("no incident `{}`", wanted.unwrap_or_default()),
        )
        .with_status(StatusCode::NOT_FOUND)
        .with_code("incident_not_found"));
    }
    let mut found = found;
    let next = (found.len() > limit).then(|| {
        found.truncate(limit);
        found.last().map(|i| i.id.clone())
    });
    Ok(Json(json!({ "data": found, "next": next.flatten() })))
}

fn incident_not_found(id: &str) -> ApiError {
    ApiError::invalid("id", format!("no incident `{id}`"))
        .with_status(StatusCode::NOT_FOUND)
        .with_code("incident_not_found")
}

pub async fn incident(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = monitor(&state)?;
    let wanted = id.clone();
    let found = blocking(move || {
        m.store()
            .incident(&wanted)
            .map_err(|e| ApiError::server(format!("reading the incident failed: {e}")))
    })
    .await?;
    match found {
        Some(i) => Ok(Json(serde_json::to_value(i).unwrap_or(Value::Null))),
        None => Err(incident_not_found(&id)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

/// `POST /admin/incidents/{id}/ack` and `/resolve`.
async fn set_incident_state(
    state: AppState,
    id: String,
    to: IncidentState,
    body: NoteBody,
) -> Result<Json<Value>, ApiError> {
    let m = monitor(&state)?;
    let wanted = id.clone();
    let updated = blocking(move || {
        let updated = m
            .store()
            .update_incident(&wanted, |i| {
                i.state = to;
                let note = body
                    .note
                    .as_deref()
                    .map_or(String::new(), |n| format!(": {n}"));
                i.timeline.push(TimelineEntry {
                    time: unix_now_f64(),
                    by: body.by.clone().unwrap_or_else(|| "admin".into()),
                    event: format!("{}{note}", to.as_str()),
                });
            })
            .map_err(|e| ApiError::server(format!("updating the incident failed: {e}")))?;
        // A resolved incident's version stops being held here at once (other replicas: at
        // their next poll).
        if let Err(e) = m.reread_incidents() {
            tracing::warn!(error = %e, "rereading incidents failed");
        }
        Ok(updated)
    })
    .await?;
    match updated {
        Some(i) => Ok(Json(serde_json::to_value(i).unwrap_or(Value::Null))),
        None => Err(incident_not_found(&id)),
    }
}

pub async fn ack(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    set_incident_state(state, id, IncidentState::Acknowledged, body).await
}

pub async fn resolve(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NoteBody>,
) -> Result<Json<Value>, ApiError> {
    set_incident_state(state, id, IncidentState::Resolved, body).await
}
