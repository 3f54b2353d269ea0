//! The review console under `/console`: server-rendered pages (minijinja templates compiled
//! into the binary, no script, no external resource), a login with a role key, a session
//! cookie (HttpOnly, SameSite=Strict), a CSRF token in every form, and no change by GET.
//! Pages: the queue with evidence and approve/edit/reject, an item, trace search and detail,
//! models with the traffic chart and the judge's agreement with reviewers, keys, the audit log.

mod chart;

use std::sync::{Arc, OnceLock};

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use emguard_review::decision::Decision;
use emguard_review::sessions::{Session, tokens_match};
use emguard_review::{Actor, ReviewService, Role};
use emguard_store::gateway::TraceQuery;
use emguard_store::review::ItemQuery;
use minijinja::{Environment, context};
use serde::Deserialize;

use super::review::{review_error, service};
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

const SESSION_COOKIE: &str = "emg_session";
const LOGIN_COOKIE: &str = "emg_login";
/// Items the queue page shows at once (the oldest first: they are closest to their deadline).
const QUEUE_PAGE: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/queue") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/queue", get(queue))
        .route("/console/items/{id}", get(item))
        .route("/console/items/{id}/decide", post(decide))
        .route("/console/items/{id}/claim", post(claim))
        .route("/console/traces", get(traces))
        .route("/console/traces/{id}", get(trace))
        .route("/console/models", get(models))
        .route("/console/keys", get(keys).post(create_key))
        .route("/console/audit", get(audit))
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // HTML-escape every value by the template's extension.
        for (name, text) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("queue.html", include_str!("templates/queue.html")),
            ("item.html", include_str!("templates/item.html")),
            ("traces.html", include_str!("templates/traces.html")),
            ("trace.html", include_str!("templates/trace.html")),
            ("models.html", include_str!("templates/models.html")),
            ("keys.html", include_str!("templates/keys.html")),
            ("audit.html", include_str!("templates/audit.html")),
        ] {
            env.add_template(name, text)
                .expect("the console's templates parse");
        }
        env
    })
}

/// Renders a page; `page` adds the session's fields the layout needs.
fn render(name: &str, session: Option<&Session>, page: minijinja::Value) -> Response {
    let base = match session {
        Some(s) => context! {
            actor => s.actor.name, role => s.actor.role.as_str(), csrf => s.csrf,
            may_decide => s.actor.role.may_decide(), may_administer => s.actor.role.may_administer(),
        },
        None => context! {},
    };
    let merged = context! { ..page, ..base };
    match templates()
        .get_template(name)
        .and_then(|t| t.render(merged))
    {
        Ok(html) => {
            let mut res = Html(html).into_response();
            // Nothing of the console in another site's frame, nor from another origin.
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
                ),
            );
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => ApiError::server(format!("rendering {name}: {e}")).into_response(),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A logged-in console user; a request without a live session is sent to the login page.
pub struct Console {
    service: Arc<ReviewService>,
    session: Session,
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Console, Response> {
        let service = service(state).map_err(IntoResponse::into_response)?.clone();
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => service
                .session(&token)
                .await
                .map_err(|e| review_error(e).into_response())?,
            None => None,
        };
        match session {
            Some(session) => Ok(Console { service, session }),
            None if parts.method == axum::http::Method::GET => {
                Err(Redirect::to("/console/login").into_response())
            }
            None => Err(forbidden(
                "Log in first: this form needs a console session.",
            )),
        }
    }
}

fn forbidden(message: &str) -> Response {
    ApiError::bad_request(message)
        .with_status(StatusCode::FORBIDDEN)
        .with_code("forbidden")
        .into_response()
}

impl Console {
    /// The refusal of a form without the session's CSRF token; `None` when it has it.
    fn refuse_without_csrf(&self, presented: Option<&str>) -> Option<Response> {
        match presented {
            Some(token) if tokens_match(token, &self.session.csrf) => None,
            _ => Some(forbidden(
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            )),
        }
    }

    fn actor(&self) -> &Actor {
        &self.session.actor
    }
}

async fn login_page(State(state): State<AppState>) -> Response {
    if let Err(e) = service(&state) {
        return e.into_response();
    }
    login_form(None)
}

/// The login form with a fresh token in a cookie and the form (double submit: a login
/// POSTed from another site carries neither).
fn login_form(error: Option<&str>) -> Response {
    let token = hex_token();
    let mut res = render(
        "login.html",
        None,
        context! { login_csrf => token, error => error },
    );
    let cookie = format!("{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console");
    if let Ok(v) = cookie.parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn hex_token() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let review = match service(&state) {
        Ok(r) => r.clone(),
        Err(e) => return e.into_response(),
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    match (expected.as_deref(), form.csrf.as_deref()) {
        (Some(a), Some(b)) if tokens_match(a, b) => {}
        _ => return forbidden("The login form's CSRF token is missing or wrong: reload the page."),
    }
    let bearer = format!("Bearer {}", form.key.trim());
    let actor = match &state.admin_token {
        Some(token) if auth::admin_token_matches(Some(&bearer), token) => {
            Some(Actor::admin_token())
        }
        _ => match review.authenticate(form.key.trim()).await {
            Ok(actor) => actor,
            Err(e) => return review_error(e).into_response(),
        },
    };
    let Some(actor) = actor else {
        let mut res = login_form(Some("That key is not a valid role key."));
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return res;
    };
    if let Err(e) = review
        .record(&actor, "console_login", None, serde_json::json!({}))
        .await
    {
        return review_error(e).into_response();
    }
    let id = match review.open_session(actor).await {
        Ok((id, _)) => id,
        Err(e) => return review_error(e).into_response(),
    };
    let mut res = Redirect::to("/console/queue").into_response();
    let cookie = format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/console");
    if let Ok(v) = cookie.parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn logout(console: Console, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    if let Some(refused) = console.refuse_without_csrf(form.csrf.as_deref()) {
        return refused;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = console.service.close_session(&id).await
    {
        return review_error(e).into_response();
    }
    let mut res = Redirect::to("/console/login").into_response();
    if let Ok(v) =
        format!("{SESSION_COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/console").parse()
    {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn queue(console: Console) -> Response {
    let states = emguard_review::service::open_states();
    let items = console
        .service
        .items(ItemQuery {
            states: states.clone(),
            limit: QUEUE_PAGE,
            ..ItemQuery::default()
        })
        .await;
    let total = console.service.count(states).await;
    match (items, total) {
        (Ok(items), Ok(total)) => render(
            "queue.html",
            Some(&console.session),
            context! { items => items, total => total },
        ),
        (Err(e), _) | (_, Err(e)) => review_error(e).into_response(),
    }
}

async fn item(console: Console, Path(id): Path<String>) -> Response {
    match console.service.item(&id).await {
        Ok(item) => {
            let evidence = serde_json::to_string_pretty(&item.evidence).unwrap_or_default();
            render(
                "item.html",
                Some(&console.session),
                context! { item => item, evidence => evidence },
            )
        }
        Err(e) => review_error(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    answer: Option<String>,
}

async fn decide(
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Response {
    if let Some(refused) = console.refuse_without_csrf(form.csrf.as_deref()) {
        return refused;
    }
    if !console.actor().role.may_decide() {
        return forbidden("Viewers may not decide review items.");
    }
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "reject" => Decision::Reject,
        "edit" => Decision::Edit(form.answer.unwrap_or_default()),
        other => {
            return ApiError::invalid(
                "decision",
                format!("`{other}` is not approve, edit or reject"),
            )
            .into_response();
        }
    };
    let reason = form.reason.filter(|r| !r.trim().is_empty());
    let ruling = emguard_review::decision::Ruling {
        decision,
        reason,
        aligned: None,
        coherent: None,
    };
    match console.service.decide(&id, console.actor(), &ruling).await {
        Ok(_) => Redirect::to("/console/queue").into_response(),
        Err(e) => review_error(e).into_response(),
    }
}

async fn claim(console: Console, Path(id): Path<String>, Form(form): Form<CsrfForm>) -> Response {
    if let Some(refused) = console.refuse_without_csrf(form.csrf.as_deref()) {
        return refused;
    }
    match console.service.claim(&id, console.actor()).await {
        Ok(_) => Redirect::to(&format!("/console/items/{id}")).into_response(),
        Err(e) => review_error(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct TraceSearch {
    model: Option<String>,
    status: Option<String>,
}

async fn traces(
    console: Console,
    State(state): State<AppState>,
    Query(q): Query<TraceSearch>,
) -> Response {
    let Some(store) = state.store.clone() else {
        return ApiError::bad_request("this gateway keeps no traces").into_response();
    };
    let model = q.model.filter(|m| !m.is_empty());
    let status = q.status.as_deref().and_then(|s| s.parse().ok());
    let query = TraceQuery {
        model: model.clone(),
        status,
        limit: 200,
        ..TraceQuery::default()
    };
    match tokio::task::spawn_blocking(move || store.traces(&query)).await {
        Ok(Ok(list)) => render(
            "traces.html",
            Some(&console.session),
            context! { traces => list, model => model, status => status },
        ),
        Ok(Err(e)) => ApiError::server(e.to_string()).into_response(),
        Err(e) => ApiError::server(e.to_string()).into_response(),
    }
}

async fn trace(
    console: Console,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let Some(store) = state.store.clone() else {
        return ApiError::bad_request("this gateway keeps no traces").into_response();
    };
    let key = id.clone();
    match tokio::task::spawn_blocking(move || store.trace(&key)).await {
        Ok(Ok(Some(t))) => render(
            "trace.html",
            Some(&console.session),
            context! { id => id, trace => serde_json::to_string_pretty(&t).unwrap_or_default() },
        ),
        Ok(Ok(None)) => ApiError::bad_request(format!("no trace `{id}`"))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
        Ok(Err(e)) => ApiError::server(e.to_string()).into_response(),
        Err(e) => ApiError::server(e.to_string()).into_response(),
    }
}

/// Traces the chart reads (the newest).
const CHART_TRACES: usize = 5000;

async fn models(console: Console, State(state): State<AppState>) -> Response {
    let models: Vec<minijinja::Value> = state
        .models
        .values()
        .map(|m| {
            context! {
                id => m.id, active => m.active(), fallback => m.fallback(),
                versions => m.versions().iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
            }
        })
        .collect();
    let recent = match state.store.clone() {
        Some(store) => {
            let query = TraceQuery {
                limit: CHART_TRACES,
                ..TraceQuery::default()
            };
            tokio::task::spawn_blocking(move || store.traces(&query))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let (svg, bucket) = chart::svg(&recent);
    let agreement: Vec<minijinja::Value> = match console.service.agreement().await {
        Ok(list) => list
            .iter()
            .map(|a| {
                context! {
                    model => a.model, n => a.n(), kappa => a.kappa.map(|k| format!("{k:.2}")),
                    both_misaligned => a.both_misaligned, judge_only => a.judge_only,
                    reviewer_only => a.reviewer_only, neither => a.neither,
                }
            })
            .collect(),
        Err(e) => return review_error(e).into_response(),
    };
    render(
        "models.html",
        Some(&console.session),
        context! {
            models => models, chart => svg, bucket => bucket, traced => recent.len(),
            agreement => agreement,
        },
    )
}

async fn keys(console: Console, State(state): State<AppState>) -> Response {
    keys_page(&console, &state, None).await
}

async fn keys_page(console: &Console, state: &AppState, created: Option<String>) -> Response {
    let role_keys = if console.actor().role.may_administer() {
        match console.service.role_keys().await {
            Ok(k) => k,
            Err(e) => return review_error(e).into_response(),
        }
    } else {
        Vec::new()
    };
    let api_keys: Vec<minijinja::Value> = match (&state.keys, console.actor().role.may_administer())
    {
        (Some(ring), true) => ring
            .list()
            .iter()
            .map(|k| {
                context! {
                    id => k.id, name => k.name, scopes => k.scopes,
                    filter_policy => k.filter_policy, revoked_at => k.revoked_at,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    render(
        "keys.html",
        Some(&console.session),
        context! { keys => role_keys, api_keys => api_keys, created => created },
    )
}

#[derive(Debug, Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

async fn create_key(
    console: Console,
    State(state): State<AppState>,
    Form(form): Form<NewKeyForm>,
) -> Response {
    if let Some(refused) = console.refuse_without_csrf(form.csrf.as_deref()) {
        return refused;
    }
    let Some(role) = Role::parse(&form.role) else {
        return ApiError::invalid(
            "role",
            format!("`{}` is not viewer, reviewer or admin", form.role),
        )
        .into_response();
    };
    match console
        .service
        .create_role_key(console.actor(), &form.name, role)
        .await
    {
        Ok((_, secret)) => keys_page(&console, &state, Some(secret)).await,
        Err(e) => review_error(e).into_response(),
    }
}

async fn audit(console: Console) -> Response {
    let verified = console.service.verify_log().await;
    // The newest rows: from the head back one page.
    let head = verified
        .as_ref()
        .ok()
        .and_then(|v| v.head.as_ref().map(|h| h.0))
        .unwrap_or(0);
    let rows = console.service.audit((head - 200).max(0), 200).await;
    match (verified, rows) {
        (Ok(v), Ok(mut rows)) => {
            rows.reverse();
            let breaks: Vec<String> = v.breaks.iter().map(ToString::to_string).collect();
            render(
                "audit.html",
                Some(&console.session),
                context! { log => rows, breaks => breaks, rows => v.rows },
            )
        }
        (Err(e), _) | (_, Err(e)) => review_error(e).into_response(),
    }
}
