//! HTTP surface: one route table feeds the router, the OpenAPI document and (through
//! [`route_table`]) the authorization-matrix test, so no route can exist without the others.
//!
//! File sync (ciphertext blobs) will be a sibling module `sync` with its own routes added to
//! the same table; nothing here assumes the API is identity-only.

pub mod admin;
pub mod auth;
pub mod data;
pub mod governance;

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

macro_rules! route_table {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// Every (METHOD, path) the server serves, in registration order.
        pub fn route_table() -> Vec<(&'static str, &'static str)> {
            vec![$( (route_table!(@upper $method), $path) ),*]
        }

        fn routes() -> Router<AppState> {
            let mut r = Router::new();
            $( r = r.route($path, $method($handler)); )*
            r
        }
    };
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
}

/// The OpenAPI document, generated from the handlers' annotations and the wire types.
#[derive(OpenApi)]
#[openapi(
    info(title = "LabVault tenant server", description = "Identity, access and governance API of the reference LabVault tenant server. Errors are `{code, message}` with stable codes."),
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
        governance::access_review, governance::access_review_csv,
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
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::Internal, "request timed out"),
        s if s.is_client_error() => (ErrorCode::InvalidInput, "malformed request"),
        _ => (ErrorCode::Internal, "internal server error"),
    };
    let mut out = ApiError::new(code, msg).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        *out.status_mut() = status;
    }
    out
}

/// The full application: routes, limits, timeouts, security headers and tracing.
pub fn router(state: AppState) -> Router {
    let body_limit = state.cfg.body_limit;
    let timeout = Duration::from_secs(state.cfg.request_timeout_secs);
    let hdr = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    routes()
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
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
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
}
