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

#[test]
fn locked_vault_refuses_commands_with_locked() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let err = invoke("main", "projects_list").expect_err("no vault is unlocked");
    assert_eq!(err["code"], json!("locked"), "{err}");
}

#[test]
fn every_command_is_declared_and_granted_to_the_main_window() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let build = std::fs::read_to_string(root.join("src-tauri/build.rs")).unwrap();
    let cap = std::fs::read_to_string(root.join("capabilities/default.json")).unwrap();
    assert!(
        build.contains("include!(\"command_list.rs\")")
            && build.contains("app_commands!(command_names)"),
        "build.rs declares the shared command list (the one lib.rs registers)"
    );
    for cmd in crate::COMMANDS {
        let perm = format!("\"allow-{}\"", cmd.replace('_', "-"));
        assert!(cap.contains(&perm), "{perm} not granted in capabilities");
    }
    let granted = cap.matches("\"allow-").count();
    assert_eq!(granted, crate::COMMANDS.len(), "no extra command grants");
    for forbidden in ["fs:", "shell:", "http:", "dialog:", "opener:"] {
        assert!(!cap.contains(forbidden), "{forbidden} must not be granted");
    }
}

mod flow {
    use std::sync::{Arc, Mutex};

    use labvault_core::{Area, ErrorCode, KdfParams};
    use tauri::http::{header, Request, StatusCode};
    use tauri::ipc::{Channel, InvokeResponseBody};

    use crate::dto::*;
    use crate::ops::{self, UnlockWith};
    use crate::state::{lock, Shared};

    const PASS: &str = "correct horse battery staple";

    fn shared(tmp: &std::path::Path) -> Arc<Shared> {
        let mut s = Shared::new(None);
        s.kdf = Some(KdfParams::FLOOR);
        s.recovery_out = Some(tmp.join("recovery.txt"));
        lock(&s.settings).vault_dir = Some(tmp.join("vault"));
        Arc::new(s)
    }

    /// A real Tauri channel whose messages land in a vector.
    fn channel() -> (Channel<Progress>, Arc<Mutex<Vec<serde_json::Value>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let ch = Channel::new(move |body| {
            if let InvokeResponseBody::Json(s) = body {
                g.lock().unwrap().push(serde_json::from_str(&s).unwrap());
            }
            Ok(())
        });
        (ch, got)
    }

    fn get(
        s: &Shared,
        label: &str,
        id: &str,
        range: Option<&str>,
    ) -> tauri::http::Response<Vec<u8>> {
        let mut b = Request::builder().uri(format!("lvpreview://localhost/item/{id}"));
        if let Some(r) = range {
            b = b.header(header::RANGE, r);
        }
        crate::preview::handle(s, label, &b.body(Vec::new()).unwrap())
    }

    fn views(s: &Shared) -> usize {
        let f = AuditFilter {
            action_prefix: Some("data.view".into()),
            ..Default::default()
        };
        ops::audit_page(s, &f, None, 100).unwrap().events.len()
    }

    #[test]
    fn create_unlock_import_preview_export_delete_hold_audit_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let s = shared(tmp.path());

        // Create: the recovery key goes to the native dialog (here: the e2e file), never the result.
        let created =
            ops::create(&s, PASS.into(), false, &|_| panic!("e2e file expected")).unwrap();
        let rk = std::fs::read_to_string(tmp.path().join("recovery.txt")).unwrap();
        let json = serde_json::to_string(&created).unwrap();
        assert!(!json.contains(&rk) && !json.contains(&rk.replace('-', "")));
        assert!(!json.contains(PASS), "the passphrase never comes back");
        assert!(created.status.unlocked && created.status.recovery_confirmation_pending);
        let e = ops::confirm_recovery(&s, "ZZZZ".into()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRecoveryKey);
        let last = rk.rsplit('-').next().unwrap().to_lowercase();
        ops::confirm_recovery(&s, last).unwrap();
        assert!(!ops::status(&s).unwrap().recovery_confirmation_pending);

        // Lock, wrong passphrase, right passphrase.
        ops::lock_vault(&s).unwrap();
        let e = ops::unlock(&s, UnlockWith::Passphrase("not it at all".into())).unwrap_err();
        assert_eq!(e.code, ErrorCode::WrongPassphrase);
        assert!(!s.is_unlocked());
        let st = ops::unlock(&s, UnlockWith::Passphrase(PASS.into())).unwrap();
        assert!(st.unlocked);
        assert!(!serde_json::to_string(&st).unwrap().contains(&rk));

        // Import with progress over a real channel.
        ops::project_create(&s, "p").unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(src.join("a.txt"), b"hello world").unwrap();
        std::fs::write(src.join("b.png"), &big).unwrap();
        std::fs::write(src.join("c.csv"), b"x,y\n1,2\n").unwrap();
        let (ch, msgs) = channel();
        let paths = ["a.txt", "b.png", "c.csv"]
            .iter()
            .map(|n| src.join(n).display().to_string())
            .collect();
        let rep = ops::import_paths(
            &s,
            "p",
            Area::Uploads,
            paths,
            None,
            "op1",
            crate::commands::sink(ch),
        )
        .unwrap();
        assert_eq!(rep.imported.len(), 3);
        assert!(rep.failed.is_empty());
        let msgs = msgs.lock().unwrap().clone();
        assert!(msgs.iter().any(|m| m["phase"] == "file_done"));
        let last = msgs.last().unwrap();
        assert_eq!(last["phase"], "done");
        assert_eq!(last["opId"], "op1");
        assert!(last["overallTotal"].as_u64().unwrap() >= big.len() as u64);
        assert_eq!(last["overallDone"], last["overallTotal"], "final 100%");
        assert_eq!(last["filesDone"], 3);
        assert!(lock(&s.ops).is_empty(), "finished ops are unregistered");

        // Paged, sorted, filtered listing.
        let q = |sort: SortKey, desc: bool, text: Option<&str>| ItemQuery {
            project: "p".into(),
            area: Some(Area::Uploads),
            text: text.map(str::to_string),
            data_type: None,
            media_type: None,
            states: None,
            sort: Some(ItemSort { key: sort, desc }),
        };
        use labvault_core::SortKey;
        let page = ops::items_page(&s, &q(SortKey::Size, true, None), 0, 10).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.rows[0].path, "b.png");
        let page = ops::items_page(&s, &q(SortKey::Path, false, None), 1, 1).unwrap();
        assert_eq!((page.total, page.rows[0].path.as_str()), (3, "b.png"));
        let page = ops::items_page(&s, &q(SortKey::Path, false, Some("CSV")), 0, 10).unwrap();
        assert_eq!(page.total, 1);
        let all = ops::items_page(&s, &q(SortKey::Path, false, None), 0, 10)
            .unwrap()
            .rows;
        let id = |p: &str| all.iter().find(|r| r.path == p).unwrap().id.clone();
        let (a, b) = (id("a.txt"), id("b.png"));

        // Preview: exact bytes, a correct 206, one audited view for many range requests.
        let before = views(&s);
        let r = get(&s, "main", &a, None);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body(), b"hello world");
        let r = get(&s, "main", &b, Some("bytes=1048570-1048609"));
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            r.headers()[header::CONTENT_RANGE],
            format!("bytes 1048570-1048609/{}", big.len()).as_str()
        );
        assert_eq!(r.headers()[header::ACCEPT_RANGES], "bytes");
        assert_eq!(r.body(), &big[1_048_570..1_048_610]);
        let r = get(&s, "main", &b, Some("bytes=-10"));
        assert_eq!(r.body(), &big[big.len() - 10..]);
        let r = get(&s, "main", &b, Some(&format!("bytes={}-", big.len())));
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(views(&s), before + 2, "one data.view per item opened");
        assert_eq!(get(&s, "other", &a, None).status(), StatusCode::FORBIDDEN);
        assert_eq!(
            get(&s, "main", "no-such-item", None).status(),
            StatusCode::NOT_FOUND
        );

        // Export: bytes equal.
        let out = tmp.path().join("out");
        let (ch, msgs) = channel();
        let ex = ops::export_item(
            &s,
            &b,
            &out.display().to_string(),
            false,
            "op2",
            crate::commands::sink(ch),
        )
        .unwrap();
        assert_eq!(std::fs::read(&ex.paths[0]).unwrap(), big);
        assert_eq!(msgs.lock().unwrap().last().unwrap()["phase"], "done");

        // Delete and restore; hold then delete is refused with on_hold.
        assert_eq!(
            ops::item_delete(&s, &a).unwrap().state,
            labvault_core::ItemState::SoftDeleted
        );
        assert_eq!(get(&s, "main", &a, None).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ops::item_restore(&s, &a).unwrap().state,
            labvault_core::ItemState::Active
        );
        ops::hold_set(&s, &HoldTarget::Item(a.clone()), "case 42").unwrap();
        let e = ops::item_delete(&s, &a).unwrap_err();
        assert_eq!(e.code, ErrorCode::OnHold);
        let e = ops::item_erase(&s, &a, "request").unwrap_err();
        assert_eq!(e.code, ErrorCode::OnHold);
        let d = ops::item_details(&s, &a).unwrap();
        assert_eq!(d.hold_reason.as_deref(), Some("case 42"));
        assert!(d.history.iter().any(|e| e.action == "data.delete"));

        // Audit filter: the refused delete is there as denied.
        let f = AuditFilter {
            action_prefix: Some("data.delete".into()),
            result: Some(labvault_core::governance::audit::Outcome::Denied),
            ..Default::default()
        };
        let page = ops::audit_page(&s, &f, None, 50).unwrap();
        assert!(!page.events.is_empty());
        assert!(page.events.iter().all(|e| e.action == "data.delete"));
        let (ch, _m) = channel();
        let v = ops::audit_verify(&s, "op3", crate::commands::sink(ch)).unwrap();
        assert!(v.ok && v.events_checked > 0, "{v:?}");

        // Lock: commands and previews are refused.
        ops::lock_vault(&s).unwrap();
        let e = ops::items_page(&s, &q(SortKey::Path, false, None), 0, 10).unwrap_err();
        assert_eq!(e.code, ErrorCode::Locked);
        assert_eq!(get(&s, "main", &a, None).status(), StatusCode::FORBIDDEN);
        assert!(lock(&s.views).is_empty(), "lock forgets open views");
    }

    /// The project bundle through its command body: written with progress to 100 %, verified
    /// offline; a relative path refused; a cancelled export leaves nothing at the destination.
    #[test]
    fn a_project_bundle_is_written_with_progress_verifies_and_cancels_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let s = shared(tmp.path());
        ops::create(&s, PASS.into(), false, &|_| Ok(())).unwrap();
        ops::project_create(&s, "p").unwrap();
        let a = tmp.path().join("a.csv");
        let b = tmp.path().join("b.bin");
        std::fs::write(&a, b"x,y\n1,2\n").unwrap();
        std::fs::write(&b, vec![9u8; 2 << 20]).unwrap();
        let paths = vec![a.display().to_string(), b.display().to_string()];
        let noop: ops::Sink = Arc::new(|_| {});
        ops::import_paths(&s, "p", Area::Uploads, paths, None, "i1", noop).unwrap();

        let seen = Arc::new(Mutex::new(Vec::<Progress>::new()));
        let seen2 = seen.clone();
        let sink: ops::Sink = Arc::new(move |p: Progress| seen2.lock().unwrap().push(p));
        let dest = tmp.path().join("p-bundle.tar");
        let r = ops::export_bundle(
            &s,
            "p",
            dest.to_str().unwrap(),
            Default::default(),
            "b1",
            sink,
        )
        .unwrap();
        assert_eq!((r.files, r.bytes), (2, (2 << 20) + 8));
        let last = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last.phase, "done");
        assert!(
            last.overall_total > 0 && last.overall_done == last.overall_total,
            "{last:?}"
        );
        let v = labvault_core::bundle::verify_bundle(&dest, None, &mut |_, _| {}).unwrap();
        assert!(v.is_ok() && v.files_checked == 2, "{:?}", v.problems);
        assert_eq!(v.bundle_digest, r.bundle_digest);

        let noop: ops::Sink = Arc::new(|_| {});
        let e = ops::export_bundle(&s, "p", "relative/b.tar", Default::default(), "b2", noop)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);

        let s2 = s.clone();
        let cancel: ops::Sink = Arc::new(move |p: Progress| {
            if p.phase != "done" {
                s2.cancel_op(&p.op_id);
            }
        });
        let dest = tmp.path().join("cancelled");
        let e = ops::export_bundle(
            &s,
            "p",
            dest.to_str().unwrap(),
            Default::default(),
            "b3",
            cancel,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Cancelled);
        let left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("cancelled"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// The export dialog's options reach the core: a sealed `.tar.age` that opens with the
    /// passphrase typed, earlier versions when asked, and contradictory options refused.
    #[test]
    fn a_sealed_bundle_with_all_versions_is_exported_from_the_dialog_options() {
        let tmp = tempfile::tempdir().unwrap();
        let s = shared(tmp.path());
        ops::create(&s, PASS.into(), false, &|_| Ok(())).unwrap();
        ops::project_create(&s, "p").unwrap();
        let a = tmp.path().join("a.csv");
        let noop: ops::Sink = Arc::new(|_| {});
        for content in [&b"v1"[..], b"v2"] {
            std::fs::write(&a, content).unwrap();
            let paths = vec![a.display().to_string()];
            ops::import_paths(&s, "p", Area::Uploads, paths, None, "i", noop.clone()).unwrap();
        }
        let dest = tmp.path().join("p.tar.age");
        let req = BundleRequest {
            all_versions: true,
            passphrase: Some("for the archive shelf".into()),
            recipients: vec![],
        };
        let r =
            ops::export_bundle(&s, "p", dest.to_str().unwrap(), req, "b", noop.clone()).unwrap();
        assert!(r.encrypted);
        assert_eq!(r.files, 2, "the current version and version 1");
        let key = labvault_core::bundle_seal::BundleKey::passphrase("for the archive shelf".into());
        let v = labvault_core::bundle::verify_bundle(&dest, Some(&key), &mut |_, _| {}).unwrap();
        assert!(
            v.is_ok() && v.encrypted && v.files_checked == 2,
            "{:?}",
            v.problems
        );

        let both = BundleRequest {
            all_versions: false,
            passphrase: Some("x".into()),
            recipients: vec!["age1x".into()],
        };
        let other = tmp.path().join("q.tar.age");
        let e = ops::export_bundle(&s, "p", other.to_str().unwrap(), both, "c", noop.clone())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        let plain_name = BundleRequest {
            passphrase: Some("for the archive shelf".into()),
            ..Default::default()
        };
        let e = ops::export_bundle(
            &s,
            "p",
            tmp.path().join("p.tar").to_str().unwrap(),
            plain_name,
            "d",
            noop,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains(".tar.age"), "{}", e.message);
    }

    #[test]
    fn cancelled_import_reports_cancelled_and_auto_lock_fires_when_idle() {
        let tmp = tempfile::tempdir().unwrap();
        let s = shared(tmp.path());
        ops::create(&s, PASS.into(), false, &|_| Ok(())).unwrap();
        ops::project_create(&s, "p").unwrap();
        let f = tmp.path().join("f.bin");
        std::fs::write(&f, vec![0u8; 3 << 20]).unwrap();
        let s2 = s.clone();
        let sink: ops::Sink = Arc::new(move |p: Progress| {
            if p.phase == "started" {
                assert!(s2.cancel_op(&p.op_id));
            }
        });
        let e = ops::import_paths(
            &s,
            "p",
            Area::Uploads,
            vec![f.display().to_string()],
            None,
            "c1",
            sink,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Cancelled);

        *lock(&s.idle_override) = Some(std::time::Duration::from_millis(20));
        s.touch();
        assert!(!s.auto_lock_due(), "not idle yet");
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(s.auto_lock_due());
        assert!(!s.is_unlocked());
    }

    /// Instrument folders through the command bodies: a watch added in the app imports a file
    /// the instrument writes, locking stops it, and a file written while locked is imported
    /// after the next unlock (watches survive restarts).
    #[test]
    fn a_watched_folder_imports_while_unlocked_and_resumes_after_unlock() {
        use crate::watch_dto::NewWatch;
        use crate::watch_ops;
        let wait = |what: &str, f: &dyn Fn() -> bool| {
            let t = std::time::Instant::now();
            while !f() {
                assert!(t.elapsed().as_secs() < 30, "timed out waiting for {what}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        let tmp = tempfile::tempdir().unwrap();
        let s = shared(tmp.path());
        ops::create(&s, PASS.into(), false, &|_| Ok(())).unwrap();
        ops::project_create(&s, "plankton").unwrap();
        let folder = tmp.path().join("instrument");
        std::fs::create_dir(&folder).unwrap();
        let new = |name: &str, folder: &std::path::Path| NewWatch {
            name: name.into(),
            folder: folder.display().to_string(),
            project: "plankton".into(),
            area: "uploads".into(),
            data_type: None,
            include: vec![" *.raw ".into(), "".into()],
            exclude: vec![],
            delete_source: false,
            settle_secs: 1,
        };
        // The vault's own folder is refused, with the reason.
        let e = watch_ops::add(&s, new("inside", &tmp.path().join("vault"))).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("overlaps the vault"), "{}", e.message);

        let w = watch_ops::add(&s, new("spectro-1", &folder)).unwrap();
        assert_eq!(w.include, vec!["*.raw"]);
        std::fs::write(folder.join("a.raw"), b"frame one").unwrap();
        std::fs::write(folder.join("notes.txt"), b"not wanted").unwrap();
        wait("the import", &|| {
            watch_ops::list(&s).unwrap()[0].imported == 1
        });
        // Closing the window: hidden to the tray while a watch runs, if there is a tray.
        assert!(!s.close_keeps_running(), "without a tray, closing quits");
        s.tray_available
            .store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(
            s.close_keeps_running(),
            "a running watch keeps the app in the tray"
        );
        let d = watch_ops::details(&s, &w.id).unwrap();
        assert_eq!(d.watch.state, "watching");
        assert_eq!(d.recent[0].source, "a.raw");
        assert!(d
            .activity
            .iter()
            .any(|a| a.kind == "imported" && a.source.as_deref() == Some("a.raw")));
        let q: ItemQuery =
            serde_json::from_value(serde_json::json!({"project": "plankton"})).unwrap();
        let items = ops::items_page(&s, &q, 0, 10).unwrap();
        assert_eq!(items.total, 1, "notes.txt is not included");

        ops::lock_vault(&s).unwrap();
        assert!(lock(&s.watches).is_none(), "locking stops the watches");
        assert!(
            !s.close_keeps_running(),
            "nothing runs while locked: closing quits"
        );
        assert_eq!(watch_ops::list(&s).unwrap_err().code, ErrorCode::Locked);
        std::fs::write(folder.join("b.raw"), b"frame two").unwrap();
        ops::unlock(&s, UnlockWith::Passphrase(PASS.into())).unwrap();
        wait("the import after unlock", &|| {
            watch_ops::list(&s).unwrap()[0].imported == 2
        });
        let d = watch_ops::details(&s, &w.id).unwrap();
        assert_eq!(d.recent.len(), 2, "a.raw was not imported again");

        // The instrument rewrites a.raw: version 2; version 1 still previews by its own URL
        // (what the conflict comparison uses), audited with its version.
        std::fs::write(folder.join("a.raw"), b"frame one, corrected").unwrap();
        wait("the new version", &|| {
            watch_ops::list(&s).unwrap()[0].imported == 3
        });
        let item = ops::items_page(&s, &q, 0, 10)
            .unwrap()
            .rows
            .into_iter()
            .find(|r| r.path == "a.raw")
            .unwrap();
        let old = ops::preview_open(&s, &item.id, Some(1)).unwrap();
        assert!(
            old.url.ends_with(&format!("/item/{}.v1", item.id)),
            "{}",
            old.url
        );
        let r = get(&s, "main", &format!("{}.v1", item.id), None);
        assert_eq!(r.status(), tauri::http::StatusCode::OK);
        assert_eq!(r.body().as_slice(), b"frame one");
        let cur = get(&s, "main", &item.id, None);
        assert_eq!(cur.body().as_slice(), b"frame one, corrected");
        assert_eq!(
            get(&s, "main", &format!("{}.v9", item.id), None)
                .status()
                .as_u16(),
            404
        );
        ops::preview_close(&s, &item.id, Some(1)).unwrap();

        watch_ops::pause(&s, &w.id, true).unwrap();
        wait("paused", &|| {
            watch_ops::list(&s).unwrap()[0].state == "paused"
        });
        assert!(
            !s.close_keeps_running(),
            "every watch paused: closing quits"
        );
        watch_ops::remove(&s, &w.id).unwrap();
        assert!(watch_ops::list(&s).unwrap().is_empty());
        ops::lock_vault(&s).unwrap();
    }
}
