//! Commands exercised through Tauri's real IPC path (mock runtime, real config and capabilities).

use std::sync::Mutex;

use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

/// The command reads XDG_DATA_HOME; tests that set it must not overlap.
static ENV_LOCK: Mutex<()> = Mutex::new(());

fn invoke(label: &str, cmd: &str) -> Result<Value, Value> {
    let app = crate::with_commands(mock_builder())
        .manage(crate::AppState(std::sync::Arc::new(crate::Shared::new(
            None,
        ))))
        .build(tauri::generate_context!())
        .expect("mock app builds from the real tauri.conf.json");
    let webview = WebviewWindowBuilder::new(&app, label, Default::default())
        .build()
        .expect("mock window");
    get_ipc_response(
        &webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::default(),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<Value>().unwrap())
}

#[test]
fn vault_status_reports_missing_then_found_vault() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    std::env::set_var("XDG_DATA_HOME", data.path());
    let vault = data.path().join("labvault").join("vault");

    let missing = invoke("main", "vault_status").expect("vault_status succeeds");
    assert_eq!(missing["exists"], json!(false));
    assert_eq!(missing["unlocked"], json!(false));
    assert_eq!(missing["path"], json!(vault.display().to_string()));
    assert!(
        !vault.exists(),
        "checking the status must not create anything"
    );

    std::fs::create_dir_all(&vault).unwrap();
    std::fs::write(vault.join("vault.key"), b"key file").unwrap();
    let found = invoke("main", "vault_status").expect("vault_status succeeds");
    assert_eq!(found["exists"], json!(true));
}

#[test]
fn windows_without_a_capability_cannot_call_vault_commands() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let err = invoke("untrusted", "vault_status").expect_err("must be denied by the ACL");
    let text = err.to_string();
    assert!(text.contains("not allowed"), "unexpected denial: {text}");
}

#[test]
fn unknown_commands_are_rejected() {
    let err = invoke("main", "read_any_file").expect_err("no such command");
    assert!(err.to_string().contains("read_any_file"), "{err}");
}
