//! HTTP surface: one route table feeds the router, the OpenAPI document and (through
//! [`route_table`]) the authorization-matrix test, so no route can exist without the others.
//! Each route has its body limit and timeout: identity and governance calls the small
//! defaults, commits a larger JSON limit, and the routes that carry blob bytes (streamed,
//! bounded by their own checks) a long timeout.

pub mod admin;
pub mod alerts;
pub mod auth;
pub mod data;
pub mod governance;
pub mod sharing;
pub mod sync;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use labvault_wire::{ErrorCode, Health};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;

use crate::app::AppState;
use crate::error::ApiError;

/// Liveness.
#[utoipa::path(get, path = "/v1/health", tag = "meta",
    responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        api_version: labvault_wire::API_VERSION.into(),
    })
}

/// How much a route's request may carry and how long it may take.
#[derive(Clone, Copy)]
enum Limits {
    /// `cfg.body_limit` of JSON, `cfg.request_timeout_secs`.
    Small,
    /// `cfg.max_commit_body` of JSON (commits, key boxes), `cfg.request_timeout_secs`.
    Commit,
    /// Streamed blob bytes (bounded by the handler), `cfg.blob_timeout_secs`.
    Blob,
}

fn limited(
    r: axum::routing::MethodRouter<AppState>,
    cfg: &crate::app::Config,
    l: Limits,
) -> axum::routing::MethodRouter<AppState> {
    let (body, secs) = match l {
        Limits::Small => (cfg.body_limit, cfg.request_timeout_secs),
        Limits::Commit => (cfg.max_commit_body, cfg.request_timeout_secs),
        Limits::Blob => (cfg.max_commit_body, cfg.blob_timeout_secs),
    };
    r.layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(body))
        .layer::<_, std::convert::Infallible>(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(secs),
        ))
}

macro_rules! route_table {
    ($( $method:ident $path:literal => $handler:path $([$limits:ident])? ),* $(,)?) => {
        /// Every (METHOD, path) the server serves, in registration order.
        pub fn route_table() -> Vec<(&'static str, &'static str)> {
            vec![$( (route_table!(@upper $method), $path) ),*]
        }

        fn routes(cfg: &crate::app::Config) -> Router<AppState> {
            let mut r = Router::new();
            $( r = r.route($path, limited($method($handler), cfg, route_table!(@limits $($limits)?))); )*
            r
        }
    };
    (@limits) => { Limits::Small };
    (@limits $l:ident) => { Limits::$l };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
    (@upper put) => { "PUT" };
    (@upper delete) => { "DELETE" };
}

route_table! {
    get "/v1/health" => health,
    post "/v1/auth/login" => auth::login,
    post "/v1/auth/mfa" => auth::login_mfa,
    post "/v1/auth/refresh" => auth::refresh,
    post "/v1/auth/logout" => auth::logout,
    post "/v1/auth/step-up" => auth::step_up,
    get "/v1/me" => auth::me,
    delete "/v1/me" => auth::delete_me,
    post "/v1/me/mfa/enroll" => auth::mfa_enroll,
    post "/v1/me/mfa/confirm" => auth::mfa_confirm,
    delete "/v1/me/mfa" => auth::mfa_disable,
    post "/v1/me/password" => auth::change_password,
    get "/v1/tenant" => admin::get_tenant,
    delete "/v1/tenant" => admin::delete_tenant,
    put "/v1/tenant/plan" => admin::set_plan,
    put "/v1/tenant/settings" => admin::set_settings,
    post "/v1/tenant/transfer-ownership" => admin::transfer_ownership,
    get "/v1/members" => admin::list_members,
    put "/v1/members/{user_id}/role" => admin::set_member_role,
    delete "/v1/members/{user_id}" => admin::remove_member,
    post "/v1/members/{user_id}/mfa/reset" => admin::reset_member_mfa,
    get "/v1/invitations" => admin::list_invitations,
    post "/v1/invitations" => admin::create_invitation,
    delete "/v1/invitations/{invitation_id}" => admin::revoke_invitation,
    post "/v1/invitations/accept" => admin::accept_invitation,
    get "/v1/api-keys" => admin::list_api_keys,
    post "/v1/api-keys" => admin::create_api_key,
    delete "/v1/api-keys/{key_id}" => admin::revoke_api_key,
    get "/v1/projects" => data::list_projects,
    post "/v1/projects" => data::create_project,
    get "/v1/projects/{project_id}" => data::get_project,
    delete "/v1/projects/{project_id}" => data::delete_project,
    put "/v1/projects/{project_id}/members/{user_id}" => data::set_project_role,
    delete "/v1/projects/{project_id}/members/{user_id}" => data::remove_project_role,
    put "/v1/projects/{project_id}/retention" => data::set_project_retention,
    get "/v1/retention" => data::get_retention,
    put "/v1/retention" => data::set_retention,
    get "/v1/audit" => governance::query_audit,
    get "/v1/audit/export" => governance::export_audit,
    get "/v1/audit/verify" => governance::verify_audit,
    get "/v1/access-review" => governance::access_review,
    get "/v1/access-review/csv" => governance::access_review_csv,
    post "/v1/access-review/sign-off" => governance::access_review_sign_off,
    post "/v1/me/devices" => sync::register_device,
    get "/v1/me/devices" => sync::list_devices,
    post "/v1/me/devices/{device_id}/approve" => sync::approve_device [Commit],
    delete "/v1/me/devices/{device_id}" => sync::revoke_device,
    get "/v1/projects/{project_id}/keyring" => sync::get_keyring,
    put "/v1/projects/{project_id}/keyring" => sync::put_keyring [Commit],
    get "/v1/projects/{project_id}/keyring/recipients" => sync::key_recipients,
    post "/v1/projects/{project_id}/commits" => sync::commit [Commit],
    get "/v1/projects/{project_id}/changes" => sync::changes,
    get "/v1/projects/{project_id}/snapshot" => sync::snapshot,
    put "/v1/projects/{project_id}/blobs/{blob_id}" => sync::put_blob [Blob],
    get "/v1/projects/{project_id}/blobs/{blob_id}" => sync::get_blob [Blob],
    post "/v1/projects/{project_id}/missing-blobs" => sync::missing_blobs [Commit],
    post "/v1/projects/{project_id}/packs" => sync::put_pack [Blob],
    post "/v1/projects/{project_id}/blob-batches" => sync::blob_batch [Blob],
    post "/v1/projects/{project_id}/uploads" => sync::create_upload,
    get "/v1/uploads/{upload_id}" => sync::get_upload,
    put "/v1/uploads/{upload_id}/parts/{n}" => sync::put_part [Blob],
    post "/v1/uploads/{upload_id}/complete" => sync::complete_upload [Commit],
    delete "/v1/uploads/{upload_id}" => sync::abort_upload,
    post "/v1/audit/anchors" => sync::anchor,
    get "/v1/audit/anchors" => sync::list_anchors,
    put "/v1/me/identity" => sharing::register_identity,
    get "/v1/me/identity" => sharing::my_identity,
    put "/v1/me/identity/boxes" => sharing::put_identity_boxes,
    get "/v1/identities" => sharing::find_identity,
    get "/v1/projects/{project_id}/membership" => sharing::membership,
    post "/v1/projects/{project_id}/membership" => sharing::append_membership [Commit],
    get "/v1/tenant/sharing" => sharing::get_policy,
    put "/v1/tenant/sharing" => sharing::set_policy,
    post "/v1/me/wipes" => sharing::report_wipe,
    get "/v1/alerts" => alerts::list_alerts,
    post "/v1/alerts/{alert_id}/acknowledge" => alerts::acknowledge_alert,
    post "/v1/alerts/{alert_id}/resolve" => alerts::resolve_alert,
    get "/v1/tenant/alerts" => alerts::get_alert_settings,
    put "/v1/tenant/alerts" => alerts::set_alert_settings,
}

/// The OpenAPI document, generated from the handlers' annotations and the wire types.
#[derive(OpenApi)]
#[openapi(
    info(title = "LabVault tenant server", description = "Identity, access, governance and end-to-end encrypted file sync API of the reference LabVault tenant server. Errors are `{code, message}` with stable codes."),
    paths(
        health,
        auth::login, auth::login_mfa, auth::refresh, auth::logout, auth::step_up,
        auth::me, auth::delete_me, auth::mfa_enroll, auth::mfa_confirm, auth::mfa_disable,
        auth::change_password,
        admin::get_tenant, admin::delete_tenant, admin::set_plan, admin::set_settings,
        admin::transfer_ownership, admin::list_members, admin::set_member_role,
        admin::remove_member, admin::reset_member_mfa, admin::list_invitations, admin::create_invitation,
        admin::revoke_invitation, admin::accept_invitation, admin::list_api_keys,
        admin::create_api_key, admin::revoke_api_key,
        data::list_projects, data::create_project, data::get_project, data::delete_project,
        data::set_project_role, data::remove_project_role, data::set_project_retention,
        data::get_retention, data::set_retention,
        governance::query_audit, governance::export_audit, governance::verify_audit,
        governance::access_review, governance::access_review_csv, governance::access_review_sign_off,
        sync::register_device, sync::list_devices, sync::approve_device, sync::revoke_device,
        sync::get_keyring, sync::put_keyring, sync::key_recipients, sync::commit, sync::changes,
        sync::snapshot, sync::put_blob, sync::get_blob, sync::missing_blobs, sync::put_pack,
        sync::blob_batch, sync::create_upload, sync::get_upload, sync::put_part,
        sync::complete_upload, sync::abort_upload, sync::anchor, sync::list_anchors,
        sharing::register_identity, sharing::my_identity, sharing::put_identity_boxes,
        sharing::find_identity, sharing::membership, sharing::append_membership,
        sharing::get_policy, sharing::set_policy, sharing::report_wipe,
        alerts::list_alerts, alerts::acknowledge_alert, alerts::resolve_alert,
        alerts::get_alert_settings, alerts::set_alert_settings,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or lvk_ API key")
                    .description(Some("Access token from /v1/auth/login, /v1/auth/mfa or /v1/auth/refresh, or an API key"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as pretty JSON (what `openapi.json` contains).
pub fn openapi_json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("OpenAPI document serializes");
    s.push('\n');
    s
}

/// Turns framework rejections (plain-text 4xx from extractors, 404/405 from routing,
/// 408 from the timeout) into the `{code, message}` error body.
async fn normalize_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let (code, msg) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "request body too large"),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::InvalidInput, "method not allowed here"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::InvalidInput,
            "request body must be application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::RequestTimeout,
            "the request did not arrive in time (a stalled body or a slow connection); retry it",
        ),
        s if s.is_client_error() => (ErrorCode::InvalidInput, "malformed request"),
        _ => (ErrorCode::Internal, "internal server error"),
    };
    let mut out = ApiError::new(code, msg).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        *out.status_mut() = status;
    }
    out
}

/// Room for a pack's manifest (and its length prefix) beyond its blobs' bytes.
const MAX_FRAME_OVERHEAD: usize = (1 << 20) + 4;

/// The full application: routes, limits, timeouts, security headers and tracing.
pub fn router(state: AppState) -> Router {
    // Outer bound on any body; each route has its own, smaller, limit (see [`Limits`]).
    let body_limit = (state.cfg.max_blob_request as usize + MAX_FRAME_OVERHEAD)
        .max(state.cfg.max_commit_body)
        .max(state.cfg.body_limit);
    let hdr = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    routes(&state.cfg)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::map_response(normalize_errors))
        .layer(hdr(
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ))
        .layer(hdr("x-content-type-options", "nosniff"))
        .layer(hdr("x-frame-options", "DENY"))
        .layer(hdr("cache-control", "no-store"))
        .layer(hdr("referrer-policy", "no-referrer"))
        .layer(hdr(
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(
            // One span per request (method, path, version; never headers, so never tokens).
            // Every request is in the audit trail already; its log line is DEBUG, so a busy
            // server does not write a line per request (at 12,000 requests/s that was 157 MB
            // in 40 s). Server errors are logged at ERROR whatever the level.
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
}
