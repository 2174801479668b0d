//! Upgrading a catalog written by an older LabVault: rows survive, rules still hold, and a
//! catalog a migration cannot upgrade cleanly is refused unchanged.

use labvault_core::catalog::{current_schema_version, open_raw, Catalog, MIGRATIONS};
use labvault_core::ErrorCode;
use labvault_crypto::{CatalogKey, RootKey};
use rusqlite::Connection;
use std::path::Path;

/// A catalog at schema version 5 (before the items CHECK rebuild), with one active and one
/// soft-deleted item, each with a version.
fn v5_catalog(path: &Path, key: &CatalogKey, fk_on: bool) -> Connection {
    let conn = open_raw(path, key).unwrap();
    conn.execute_batch(if fk_on {
        "PRAGMA foreign_keys = ON;"
    } else {
        "PRAGMA foreign_keys = OFF;"
    })
    .unwrap();
    for m in &MIGRATIONS[..5] {
        conn.execute_batch(m).unwrap();
    }
    conn.execute_batch(
        "PRAGMA user_version = 5;
         INSERT INTO projects(id, name, wrapped_key, created_at, created_by)
             VALUES ('p1', 'proj', x'00', 1, 'ada');
         INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by,
             created_at, updated_at, state, deleted_at, current_version)
         VALUES ('i1', 'p1', 'uploads', 'run/a.csv', 'text/csv', 'research_data', 'ada',
                 10, 11, 'active', NULL, 2),
                ('i2', 'p1', 'plots', 'fig.png', 'image/png', 'analysis_result', 'ada',
                 12, 13, 'soft_deleted', 14, 1);
         INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size, sha256,
             created_at, created_by)
         VALUES ('i1', 1, 'b1', x'01', 5, 'aa', 10, 'ada'),
                ('i1', 2, 'b2', x'02', 6, 'bb', 11, 'ada'),
                ('i2', 1, 'b3', x'03', 7, 'cc', 12, 'ada');",
    )
    .unwrap();
    conn
}

type ItemRow = (i64, String, String, String, String, Option<i64>, i64);

fn items(conn: &Connection) -> Vec<ItemRow> {
    let mut st = conn
        .prepare(
            "SELECT rowid, id, area, path, state, deleted_at, current_version
             FROM items ORDER BY rowid",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn insert_item(conn: &Connection, id: &str, project: &str, area: &str, state: &str) -> bool {
    conn.execute(
        "INSERT INTO items(id, project_id, area, path, media_type, data_type, created_by,
             created_at, updated_at, state, current_version)
         VALUES (?1, ?2, ?3, 'new.bin', 'application/octet-stream', 'research_data', 'ada',
                 20, 20, ?4, 1)",
        [id, project, area, state],
    )
    .is_ok()
}

#[test]
fn upgrading_a_version_5_catalog_keeps_every_item_and_every_rule() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("catalog.db");
    let key = RootKey::generate().catalog_key();
    let before = items(&v5_catalog(&path, &key, true));
    assert_eq!(before.len(), 2);

    let cat = Catalog::open(&path, &key, false, &mut || Ok(())).unwrap();
    let conn = cat.conn();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, current_schema_version());
    assert_eq!(items(conn), before, "same rows, same row ids");
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM item_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 3);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // The rules the rebuilt table must still enforce.
    assert!(
        !insert_item(conn, "x1", "p1", "downloads", "active"),
        "unknown area"
    );
    assert!(
        !insert_item(conn, "x2", "p1", "uploads", "gone"),
        "unknown state"
    );
    assert!(
        !insert_item(conn, "x3", "nope", "uploads", "active"),
        "foreign keys are back on"
    );
    assert!(
        conn.execute("DELETE FROM items WHERE id = 'i1'", [])
            .is_err(),
        "an item its versions reference cannot go"
    );
    assert!(insert_item(conn, "x4", "p1", "workspace", "active"));
    assert!(
        !insert_item(conn, "x5", "p1", "workspace", "active"),
        "one active item per path (items_active_path)"
    );
    assert!(insert_item(conn, "x6", "p1", "exports", "erased"));

    // Why the rebuild: an insert no longer builds temporary b-trees for its CHECKs.
    let ops: Vec<String> = conn
        .prepare(
            "EXPLAIN INSERT INTO items(id, project_id, area, path, media_type, data_type,
                 created_by, created_at, updated_at, state, current_version)
             VALUES ('x9', 'p1', 'plots', 'p.png', 'image/png', 'analysis_result', 'ada',
                     30, 30, 'active', 1)",
        )
        .unwrap()
        .query_map([], |r| r.get(1))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");

    // The indexes the listings and the retention pass are planned on are there.
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'items' AND sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        indexes,
        ["items_active_path", "items_lifecycle", "items_project_area"]
    );
}

#[test]
fn a_catalog_whose_upgrade_would_leave_dangling_references_is_refused_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("catalog.db");
    let key = RootKey::generate().catalog_key();
    {
        let conn = v5_catalog(&path, &key, false);
        // A version whose item is gone (written with foreign keys off).
        conn.execute_batch(
            "INSERT INTO item_versions(item_id, version, blob_id, wrapped_data_key, size,
                 sha256, created_at, created_by)
             VALUES ('ghost', 1, 'b9', x'09', 1, 'dd', 1, 'ada');",
        )
        .unwrap();
    }
    let e = Catalog::open(&path, &key, false, &mut || Ok(())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::CorruptCatalog, "{e}");
    assert!(e.to_string().contains("item_versions"), "{e}");

    let conn = open_raw(&path, &key).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5, "the failed upgrade was rolled back");
    assert_eq!(items(&conn).len(), 2);
}
