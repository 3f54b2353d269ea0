//! The human-review admin API under `/admin/review`: the queue, decisions, claims, the audit
//! log and its verification, label export, role keys. A request authenticates with the admin
//! token (an admin) or a role key (`Authorization: Bearer emr_…`): viewers read, reviewers
//! also claim and decide, admins also make role keys. The console (`/console`) is the same
//! operations behind a login.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use emguard_review::decision::{Decision, Ruling};
use emguard_review::{Actor, ReviewError, ReviewService, Role};
use emguard_store::review::{ItemQuery, ReviewItem};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// The review service, or 404 when the config has no `review:`.
pub(crate) fn service(state: &AppState) -> Result<&Arc<ReviewService>, ApiError> {
    state.review.as_ref().ok_or_else(|| {
        ApiError::bad_request("Human review is off in this gateway (no `review:` in its config).")
            .with_status(StatusCode::NOT_FOUND)
            .with_code("review_disabled")
    })
}

pub(crate) fn review_error(e: ReviewError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::bad_request(e.to_string())
        .with_status(status)
        .with_code(e.code())
}

/// Who is calling: the admin token, or a role key.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let (Some(expected), Some(_)) = (&state.admin_token, presented)
            && auth::admin_token_matches(presented, expected)
        {
            return Ok(Caller(Actor::admin_token()));
        }
        let secret = presented.and_then(auth::bearer_token);
        if let Some(secret) = secret
            && let Some(actor) = service(state)?
                .authenticate(secret)
                .await
                .map_err(review_error)?
        {
            return Ok(Caller(actor));
        }
        Err(auth::unauthorized(
            "The review API needs `Authorization: Bearer` with the admin token or a role key.",
            "invalid_review_key",
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states; default: the open ones (pending, flagged, client_gone).
    state: Option<String>,
    model: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

pub(crate) fn states_of(list: Option<&str>) -> Vec<String> {
    match list {
        None => emguard_review::service::open_states(),
        Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

pub async fn list(
    Caller(_): Caller,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let review = service(&state)?;
    let states = states_of(q.state.as_deref());
    let limit = q.limit.unwrap_or(100).min(1000);
    let items = review
        .items(ItemQuery {
            states: states.clone(),
            model: q.model,
            offset: q.offset,
            limit,
        })
        .await
        .map_err(review_error)?;
    let total = review.count(states).await.map_err(review_error)?;
    Ok(Json(
        json!({"data": items, "total": total, "offset": q.offset, "limit": limit}),
    ))
}

pub async fn show(
    Caller(_): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReviewItem>, ApiError> {
    let item = service(&state)?.item(&id).await.map_err(review_error)?;
    Ok(Json(item))
}

pub async fn claim(
    Caller(actor): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReviewItem>, ApiError> {
    let item = service(&state)?
        .claim(&id, &actor)
        .await
        .map_err(review_error)?;
    Ok(Json(item))
}

pub async fn claim_next(
    Caller(actor): Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    match service(&state)?
        .claim_next(&actor)
        .await
        .map_err(review_error)?
    {
        Some(item) => Ok(Json(item).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The body of approve and reject: all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulingBody {
    pub reason: Option<String>,
    /// Approve: release this answer instead of the model's.
    pub answer: Option<String>,
    pub aligned: Option<f64>,
    pub coherent: Option<f64>,
}

fn ruling_body(body: &Bytes) -> Result<RulingBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RulingBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The decision's JSON body is invalid: {e}")))
}

pub async fn approve(
    Caller(actor): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = ruling_body(&body)?;
    let decision = match body.answer {
        Some(answer) => Decision::Edit(answer),
        None => Decision::Approve,
    };
    decide(
        &state,
        &id,
        &actor,
        decision,
        body.reason,
        body.aligned,
        body.coherent,
    )
    .await
}

pub async fn reject(
    Caller(actor): Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = ruling_body(&body)?;
    if body.answer.is_some() {
        return Err(ApiError::invalid(
            "answer",
            "a rejection releases nothing: approve with `answer` to release an edit",
        ));
    }
    decide(
        &state,
        &id,
        &actor,
        Decision::Reject,
        body.reason,
        body.aligned,
        body.coherent,
    )
    .await
}

pub(crate) async fn decide(
    state: &AppState,
    id: &str,
    actor: &Actor,
    decision: Decision,
    reason: Option<String>,
    aligned: Option<f64>,
    coherent: Option<f64>,
) -> Result<Response, ApiError> {
    let ruling = Ruling {
        decision,
        reason,
        aligned,
        coherent,
    };
    let item = service(state)?
        .decide(id, actor, &ruling)
        .await
        .map_err(review_error)?;
    // A first approval under the two-person rule: accepted, not yet final.
    let status = if item.decision.is_none() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

pub async fn audit(
    Caller(_): Caller,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = service(&state)?
        .audit(q.after, q.limit.unwrap_or(100).min(1000))
        .await
        .map_err(review_error)?;
    Ok(Json(json!({"data": rows})))
}

pub async fn verify(
    Caller(_): Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let v = service(&state)?.verify_log().await.map_err(review_error)?;
    Ok(Json(json!({
        "ok": v.breaks.is_empty(),
        "rows": v.rows,
        "breaks": v.breaks.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "head": v.head.map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
    })))
}

/// Reviewed answers as judge label rows (JSON lines).
pub async fn labels(
    Caller(_): Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let rows = service(&state)?.labels().await.map_err(review_error)?;
    let mut out = String::new();
    for row in rows {
        out.push_str(&serde_json::to_string(&row).unwrap_or_default());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

pub async fn agreement(
    Caller(_): Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let data = service(&state)?.agreement().await.map_err(review_error)?;
    Ok(Json(json!({"data": data})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoleKey {
    name: String,
    role: String,
}

pub async fn create_key(
    Caller(actor): Caller,
    State(state): State<AppState>,
    Json(new): Json<NewRoleKey>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&new.role).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("`{}` is not viewer, reviewer or admin", new.role),
        )
    })?;
    let (key, secret) = service(&state)?
        .create_role_key(&actor, &new.name, role)
        .await
        .map_err(review_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": key.id, "name": key.name, "role": key.role, "key": secret})),
    )
        .into_response())
}

pub async fn list_keys(
    Caller(actor): Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    if !actor.role.may_administer() {
        return Err(review_error(
            emguard_review::decision::Refusal::NotAllowed {
                actor: actor.name,
                role: actor.role.as_str().into(),
            }
            .into(),
        ));
    }
    let keys = service(&state)?.role_keys().await.map_err(review_error)?;
    let data: Vec<Value> = keys
        .iter()
        .map(|k| json!({"id": k.id, "name": k.name, "role": k.role, "created_at": k.created_at, "revoked_at": k.revoked_at}))
        .collect();
    Ok(Json(json!({"data": data})))
}
