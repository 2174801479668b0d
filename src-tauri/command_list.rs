// Every IPC command, written once. `build.rs` declares the names to tauri-build (which generates
// the `allow-<command>` permissions), `lib.rs` registers the handlers and exports the names; a
// test checks that capabilities/default.json grants exactly these. Usage: `app_commands!(m)`
// expands to `m!(vault_status, vault_create, ...)`.
macro_rules! app_commands {
    ($then:ident) => {
        $then! {
            vault_status,
            vault_create,
            vault_show_recovery,
            vault_confirm_recovery,
            vault_unlock,
            vault_unlock_recovery,
            vault_unlock_keyring,
            vault_lock,
            vault_change_passphrase,
            vault_set_remember,
            vault_stats,
            activity_ping,
            settings_get,
            settings_set,
            projects_list,
            project_create,
            items_page,
            item_details,
            item_move,
            item_delete,
            item_restore,
            item_erase,
            preview_open,
            preview_close,
            import_paths,
            export_item,
            export_area,
            vault_verify,
            operation_cancel,
            audit_page,
            audit_verify,
            audit_export,
            retention_summary,
            retention_timeline,
            retention_items_page,
            retention_policies,
            retention_policy_set,
            hold_set,
            hold_clear,
            holds_list,
            retention_run,
            pick_import_files,
            pick_import_folder,
            pick_export_dir,
            pick_save_path,
            tenant_status,
            tenant_connect,
            tenant_sign_in,
            tenant_sign_out,
            tenant_step_up,
            devices_list,
            device_approve,
            device_revoke,
            device_pairing,
            sync_status,
            sync_run,
            sync_conflicts,
            sync_state,
            sync_pause,
            conflict_resolve,
            team_view,
            team_set_project_role,
            team_remove_project_access,
            team_set_tenant_role,
            team_remove_member,
            team_reset_mfa,
            team_invite,
            team_revoke_invitation,
            access_review_export,
            access_review_sign_off,
        }
    };
}

/// The command names as strings (`app_commands!(command_names)`).
macro_rules! command_names {
    ($($c:ident),* $(,)?) => {
        &[$(stringify!($c)),*]
    };
}
