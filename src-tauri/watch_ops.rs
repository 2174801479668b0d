//! Bodies of the instrument folder commands: plain functions over [`Shared`], testable
//! without a window. The watches run (on `labvault_watch`'s thread) while the vault is
//! unlocked; locking stops them, and they start again at the next unlock.

use labvault_core::watches::WatchSpec;
use labvault_core::{Area, DataType};
use labvault_watch::WatchStatus;

use crate::error::CommandError;
use crate::state::{lock, Shared};
use crate::watch_dto::*;

/// Newest imports shown with a watch.
const RECENT: usize = 50;

fn status_of(s: &Shared, id: &str) -> WatchStatus {
    match lock(&s.watches).as_ref() {
        Some(r) => r
            .board()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status(id),
        None => WatchStatus {
            state: labvault_watch::WatchState::Stopped,
            reason: Some("the vault is locked".into()),
            waiting: 0,
            activity: Vec::new(),
        },
    }
}

fn kick(s: &Shared) {
    if let Some(r) = lock(&s.watches).as_ref() {
        r.kick();
    }
}

/// Every watch with its state.
pub fn list(s: &Shared) -> Result<Vec<Watch>, CommandError> {
    let v = s.vault()?;
    Ok(v.watches()?
        .into_iter()
        .map(|w| {
            let st = status_of(s, &w.id);
            Watch::new(w, &st)
        })
        .collect())
}

/// Adds a watch; it starts at once.
pub fn add(s: &Shared, new: NewWatch) -> Result<Watch, CommandError> {
    let v = s.vault()?;
    let area: Area = new.area.parse()?;
    let data_type: Option<DataType> = match new.data_type.as_deref() {
        None | Some("") => None,
        Some(d) => Some(d.parse()?),
    };
    let clean = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let spec = WatchSpec {
        name: new.name.trim().to_string(),
        folder: new.folder.into(),
        project: new.project,
        area,
        data_type,
        include: clean(new.include),
        exclude: clean(new.exclude),
        delete_source: new.delete_source,
        settle_ms: u64::from(new.settle_secs) * 1000,
    };
    let w = v.watch_add(&spec)?;
    s.start_watches(&v);
    kick(s);
    let st = status_of(s, &w.id);
    Ok(Watch::new(w, &st))
}

/// Removes a watch (what it imported stays).
pub fn remove(s: &Shared, id: &str) -> Result<(), CommandError> {
    s.vault()?.watch_remove(id)?;
    kick(s);
    Ok(())
}

/// Pauses or resumes a watch.
pub fn pause(s: &Shared, id: &str, paused: bool) -> Result<Watch, CommandError> {
    let w = s.vault()?.watch_set_paused(id, paused)?;
    kick(s);
    let st = status_of(s, &w.id);
    Ok(Watch::new(w, &st))
}

/// A watch with its activity and latest imports.
pub fn details(s: &Shared, id: &str) -> Result<WatchDetails, CommandError> {
    let v = s.vault()?;
    let w = v.watch(id)?;
    let recent = v.watch_recent(&w.id, RECENT)?;
    let st = status_of(s, &w.id);
    Ok(WatchDetails {
        activity: st.activity.iter().map(WatchActivity::from).collect(),
        recent: recent.into_iter().map(WatchImport::from).collect(),
        watch: Watch::new(w, &st),
    })
}
