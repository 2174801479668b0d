//! Navigation policy: a vault app must never load remote content into a webview that can call
//! vault commands, so only the bundled UI (and, in dev builds, the dev server) may be shown.

use tauri::Url;

/// True when `url` is the app's own UI: `tauri://localhost`, `http(s)://tauri.localhost` (how
/// Windows serves it) or, in dev builds only, the configured dev server origin.
pub fn is_app_url(url: &Url, dev_url: Option<&Url>) -> bool {
    let bundled = match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost"),
        _ => false,
    };
    bundled || (cfg!(dev) && dev_url.is_some_and(|dev| dev.origin() == url.origin()))
}

/// True when an `Origin` header value is the app's own UI (what may read preview responses).
pub fn is_app_origin(origin: &str) -> bool {
    matches!(
        origin,
        "tauri://localhost" | "http://tauri.localhost" | "https://tauri.localhost"
    ) || (cfg!(dev) && origin == "http://localhost:1420")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn bundled_ui_is_allowed() {
        assert!(is_app_url(&url("tauri://localhost/index.html"), None));
        assert!(is_app_url(&url("http://tauri.localhost/"), None));
    }

    #[test]
    fn remote_and_local_files_are_refused() {
        let dev = url("http://localhost:1420");
        for bad in [
            "https://example.com/",
            "http://evil.tauri.localhost.example/",
            "file:///etc/passwd",
            "tauri://elsewhere/",
            "data:text/html,<script>alert(1)</script>",
        ] {
            assert!(!is_app_url(&url(bad), Some(&dev)), "{bad} must be refused");
        }
    }

    #[test]
    fn dev_server_only_in_dev_builds() {
        let dev = url("http://localhost:1420");
        assert_eq!(
            is_app_url(&url("http://localhost:1420/src/main.tsx"), Some(&dev)),
            cfg!(dev)
        );
        assert!(!is_app_url(&url("http://localhost:9999/"), Some(&dev)));
    }
}
