include!("command_list.rs");

fn main() {
    // Declaring the app's commands makes Tauri generate `allow-<command>` permissions and enforce
    // capabilities for them: a window can only call what capabilities/ grants it.
    // The list lives in command_list.rs, shared with lib.rs.
    const COMMANDS: &[&str] = app_commands!(command_names);
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes).expect("tauri-build failed");
}
