//! The `lvpreview` URI scheme: decrypted item bytes served from memory to the main window only,
//! with HTTP range support so large files (video, big images, PDFs) are read chunk by chunk.
//!
//! `lvpreview://localhost/item/<itemId>` (Windows: `http://lvpreview.localhost/item/<itemId>`).
//! The first request for an item opens a view (audited once as `data.view`); later range
//! requests reuse it until `preview_close`, a delete/move/erase of the item, or lock. Nothing is
//! written to disk. Responses are `no-store`, `nosniff`, and carry a sandboxing CSP so an SVG
//! or HTML file opened in a frame cannot run script.

use std::sync::Arc;

use labvault_core::ErrorCode;
use tauri::http::{header, Method, Request, Response, StatusCode};

use crate::state::{lock, Shared};

/// The scheme name (also in the CSP of `tauri.conf.json`).
pub const SCHEME: &str = "lvpreview";

/// Largest body sent for a request without `Range` (bigger files must be read in ranges).
pub const MAX_FULL_BODY: u64 = 64 << 20;

/// Size of the slice sent for an open-ended range (`bytes=N-`), as media players ask.
pub const OPEN_RANGE_SLICE: u64 = 8 << 20;

/// Only the main window may read previews.
pub const ALLOWED_WEBVIEW: &str = "main";

/// Media types that could run script or render active content are served as plain text.
pub fn served_media_type(media_type: &str) -> &str {
    match media_type {
        "text/html" | "application/xhtml+xml" | "application/xml" => "text/plain; charset=utf-8",
        "text/plain"
        | "text/csv"
        | "text/tab-separated-values"
        | "text/x-python"
        | "text/x-r"
        | "text/x-fasta" => match media_type {
            "text/plain" => "text/plain; charset=utf-8",
            "text/csv" => "text/csv; charset=utf-8",
            "text/tab-separated-values" => "text/tab-separated-values; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        },
        "application/json" | "application/x-ipynb+json" => "application/json",
        other => other,
    }
}

/// A parsed `Range` header, relative to a resource of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No (usable) Range header: the whole resource.
    Full,
    /// Inclusive byte range `start..=end`, already clamped to the resource.
    Bytes(u64, u64),
    /// Syntactically valid but outside the resource: 416.
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (the first range of a list; multipart ranges
/// are not served). Anything malformed is ignored, as RFC 9110 says.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeSpec {
    let Some(v) = value else {
        return RangeSpec::Full;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last n bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Full;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Bytes(size.saturating_sub(n), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Full;
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    if b.is_empty() {
        let end = start.saturating_add(OPEN_RANGE_SLICE).min(size) - 1;
        return RangeSpec::Bytes(start, end);
    }
    let Ok(end) = b.parse::<u64>() else {
        return RangeSpec::Full;
    };
    if end < start {
        return RangeSpec::Full;
    }
    RangeSpec::Bytes(start, end.min(size - 1))
}

fn plain(status: StatusCode, msg: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .body(msg.as_bytes().to_vec())
        .expect("static response parts are valid")
}

fn status_for(code: labvault_sync::Code) -> StatusCode {
    let labvault_sync::Code::Vault(code) = code else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match code {
        ErrorCode::Locked => StatusCode::FORBIDDEN,
        ErrorCode::NotFound | ErrorCode::Erased | ErrorCode::InvalidArgument => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Tampered | ErrorCode::Truncated => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The key of an open view, and the last segment of its URL: the item id, or `<id>.v<n>`
/// for one version of it.
pub fn view_key(item_id: &str, version: Option<u32>) -> String {
    match version {
        None => item_id.to_string(),
        Some(n) => format!("{item_id}.v{n}"),
    }
}

/// Extracts the view key from `/item/<id>` or `/item/<id>.v<n>`.
fn item_id_of(path: &str) -> Option<&str> {
    let key = path.strip_prefix("/item/")?.trim_end_matches('/');
    let id = split_key(key)?.0;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(key)
}

/// A view key's item id and version.
fn split_key(key: &str) -> Option<(&str, Option<u32>)> {
    match key.split_once(".v") {
        None => Some((key, None)),
        Some((id, n)) if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some((id, Some(n.parse().ok()?)))
        }
        Some(_) => None,
    }
}

/// Answers one scheme request. `webview` is the label of the requesting webview.
pub fn handle(shared: &Shared, webview: &str, req: &Request<Vec<u8>>) -> Response<Vec<u8>> {
    if webview != ALLOWED_WEBVIEW {
        return plain(StatusCode::FORBIDDEN, "forbidden");
    }
    let cors = |b: tauri::http::response::Builder| {
        // fetch() from the app origin is cross-origin to this scheme; only the app may read it.
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| crate::navigation::is_app_origin(o));
        match origin {
            Some(o) => b
                .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, o)
                .header(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    "Content-Range, Content-Length, Accept-Ranges, Content-Type",
                )
                .header(header::VARY, "Origin"),
            None => b,
        }
    };
    if req.method() == Method::OPTIONS {
        return cors(Response::builder().status(StatusCode::NO_CONTENT))
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "Range")
            .body(Vec::new())
            .expect("valid response");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let Some(item_id) = item_id_of(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not_found");
    };
    if !shared.is_unlocked() {
        return plain(StatusCode::FORBIDDEN, "locked");
    }
    let existing = lock(&shared.views).get(item_id).cloned();
    let view = match existing {
        Some(v) => v,
        None => match shared.with_vault(|v| {
            Ok(match split_key(item_id) {
                Some((id, Some(n))) => v.view_open_version(id, n)?,
                _ => v.view_open(item_id)?,
            })
        }) {
            Ok(h) => {
                let h = Arc::new(h);
                lock(&shared.views).insert(item_id.to_string(), h.clone());
                h
            }
            Err(e) => {
                tracing::info!(item = item_id, code = e.code.as_str(), "preview refused");
                return plain(status_for(e.code), e.code.as_str());
            }
        },
    };
    let size = view.size();
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, end) = match parse_range(range, size) {
        RangeSpec::Full if size > MAX_FULL_BODY => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too large to preview without range requests",
            );
        }
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Bytes(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeSpec::Unsatisfiable => {
            return cors(Response::builder().status(StatusCode::RANGE_NOT_SATISFIABLE))
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::ACCEPT_RANGES, "bytes")
                .body(Vec::new())
                .expect("valid response");
        }
    };
    let end = end.min(start + labvault_core::view::MAX_VIEW_READ);
    let body = if req.method() == Method::HEAD {
        Vec::new()
    } else {
        match shared.with_vault(|v| Ok(v.view_read(&view, start, end - start)?)) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(
                    item = item_id,
                    code = e.code.as_str(),
                    "preview read failed"
                );
                return plain(status_for(e.code), e.code.as_str());
            }
        }
    };
    let mut b = cors(Response::builder().status(status))
        .header(header::CONTENT_TYPE, served_media_type(view.media_type()))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox",
        )
        .header(header::CONTENT_LENGTH, (end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    b.body(body).expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range(None, 100), RangeSpec::Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), RangeSpec::Bytes(0, 9));
        assert_eq!(
            parse_range(Some("bytes=90-200"), 100),
            RangeSpec::Bytes(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeSpec::Bytes(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=-1000"), 100),
            RangeSpec::Bytes(0, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=50-"), 100),
            RangeSpec::Bytes(50, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeSpec::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-0"), 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-1"), 100), RangeSpec::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeSpec::Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 100), RangeSpec::Full);
        assert_eq!(
            parse_range(Some("bytes=0-"), 100 << 20),
            RangeSpec::Bytes(0, OPEN_RANGE_SLICE - 1)
        );
    }

    #[test]
    fn active_content_is_served_as_text() {
        assert_eq!(served_media_type("text/html"), "text/plain; charset=utf-8");
        assert_eq!(served_media_type("image/png"), "image/png");
        assert_eq!(served_media_type("text/csv"), "text/csv; charset=utf-8");
    }

    #[test]
    fn only_item_paths_are_accepted() {
        assert_eq!(item_id_of("/item/abc-123"), Some("abc-123"));
        assert_eq!(item_id_of("/item/../../etc/passwd"), None);
        assert_eq!(item_id_of("/other/abc"), None);
        assert_eq!(item_id_of("/item/"), None);
        assert_eq!(item_id_of("/item/abc-123.v7"), Some("abc-123.v7"));
        assert_eq!(split_key("abc-123.v7"), Some(("abc-123", Some(7))));
        assert_eq!(item_id_of("/item/abc.v"), None);
        assert_eq!(item_id_of("/item/abc.v1x"), None);
        assert_eq!(item_id_of("/item/abc.v99999999999"), None);
    }
}
