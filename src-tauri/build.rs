fn main() {
    // Declaring the app's commands makes Tauri generate `allow-<command>` permissions and enforce
    // capabilities for them: a window can only call what capabilities/ grants it.
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(&["vault_status"]));
    tauri_build::try_build(attributes).expect("tauri-build failed");
}
