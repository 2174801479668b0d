//! Projects: each with its own random key, wrapped by the vault's root key.

use crate::audit::Subject;
use crate::error::{Error, Result};
use crate::model::ProjectInfo;
use crate::names;
use crate::vault::{ms_to_ts, ts_to_ms, Vault};
use labvault_crypto::ProjectKey;
use labvault_governance::audit::{actions, resources};
use rusqlite::{params, Connection, OptionalExtension, Row};

fn project_from_row(r: &Row<'_>) -> rusqlite::Result<ProjectInfo> {
    Ok(ProjectInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: ms_to_ts(r.get(2)?),
        created_by: r.get(3)?,
    })
}

/// Finds a project by name or id on `conn`.
pub(crate) fn find(conn: &Connection, name_or_id: &str) -> Result<ProjectInfo> {
    conn.query_row(
        "SELECT id, name, created_at, created_by FROM projects WHERE name = ?1 OR id = ?1
         ORDER BY (name = ?1) DESC LIMIT 1",
        [name_or_id],
        project_from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("project {name_or_id:?}")))
}

impl Vault {
    /// Creates a project with a fresh random project key wrapped by the root key
    /// (`project.create`, resource = the new project).
    pub fn create_project(&self, name: &str) -> Result<ProjectInfo> {
        self.write_op(
            actions::PROJECT_CREATE,
            || resources::VAULT.into(),
            |w| {
                names::validate_project_name(name)?;
                let id = uuid::Uuid::new_v4().to_string();
                let key = ProjectKey::generate();
                let wrapped = w.vault.with_keys(|k| Ok(k.root.wrap_project_key(&key, &id)))?;
                let now = ts_to_ms(w.vault.now());
                let actor = w.vault.actor.clone();
                w.commit(actions::PROJECT_CREATE, |tx| {
                    let exists: Option<String> = tx
                        .query_row("SELECT id FROM projects WHERE name = ?1", [name], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    if exists.is_some() {
                        return Err(Error::AlreadyExists(format!("project {name:?}")));
                    }
                    tx.execute(
                        "INSERT INTO projects(id, name, wrapped_key, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, name, wrapped.as_bytes(), now, actor],
                    )?;
                    crate::changes::mark_if_tracking(tx, &id, &id)?;
                    let info = ProjectInfo {
                        id: id.clone(),
                        name: name.to_string(),
                        created_at: ms_to_ts(now),
                        created_by: actor.clone(),
                    };
                    Ok((info, Subject::on(resources::project(&id))))
                })
            },
        )
    }

    /// All projects, by name.
    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        let conn = self.reader()?;
        let mut st = conn.prepare(
            "SELECT id, name, created_at, created_by FROM projects ORDER BY name COLLATE NOCASE, name",
        )?;
        let rows = st.query_map([], project_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Finds a project by name or id.
    pub fn project(&self, name_or_id: &str) -> Result<ProjectInfo> {
        find(&*self.reader()?, name_or_id)
    }
}
