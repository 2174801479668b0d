//! What the watches show: each watch's state and its recent activity (the newest
//! [`ACTIVITY_KEPT`] entries; what was imported is also in the vault's journal and audit log).

use labvault_core::watches::WatchInfo;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use time::OffsetDateTime;

/// Activity entries kept per watch.
pub const ACTIVITY_KEPT: usize = 200;

/// The kind of an activity entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    /// A file was imported.
    Imported,
    /// A file is still being written.
    Waiting,
    /// A file (or the whole pass) failed; the message says why and what happens next.
    Failed,
    /// An entry that is never imported (a link, a name the vault cannot store).
    Skipped,
    /// The folder cannot be read (drive not mounted, permissions).
    Unavailable,
    /// The folder is readable again, or changed drive.
    Available,
    /// A source was deleted after its import was verified.
    SourceDeleted,
    /// A source was kept although the watch deletes sources: the message says why.
    SourceKept,
}

/// One activity entry.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What kind.
    pub kind: ActivityKind,
    /// The file concerned (path under the folder), if one.
    pub source: Option<String>,
    /// What happened, for people.
    pub message: String,
}

/// A watch's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchState {
    /// Not looked at yet.
    Starting,
    /// Watching its folder.
    Watching,
    /// Paused by the person.
    Paused,
    /// The folder cannot be read.
    Unavailable,
    /// Not running (the vault is locked, or the runner stopped).
    Stopped,
}

/// State and activity of one watch.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchStatus {
    /// State.
    pub state: WatchState,
    /// Why it is unavailable or stopped.
    pub reason: Option<String>,
    /// Files waiting to be complete.
    pub waiting: usize,
    /// Recent activity, newest first.
    pub activity: Vec<Activity>,
}

#[derive(Default, Debug)]
struct Entry {
    state: Option<(WatchState, Option<String>, usize)>,
    activity: VecDeque<Activity>,
}

/// Receives every activity entry as it is noted (watch name, entry): a command line prints
/// it, the app forwards it to the window. The board itself keeps only the newest entries.
pub type ActivitySink = Box<dyn Fn(&str, &Activity) + Send>;

/// The board of every watch of a vault.
#[derive(Default)]
pub struct Board {
    watches: HashMap<String, Entry>,
    stopped: Option<String>,
    sink: Option<ActivitySink>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("watches", &self.watches)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl Board {
    /// A board that also hands every entry to `sink`.
    pub fn with_sink(sink: ActivitySink) -> Board {
        Board {
            sink: Some(sink),
            ..Board::default()
        }
    }

    /// Records an activity entry for `w`, logged too (without the file name, which is data).
    pub fn note(
        &mut self,
        w: &WatchInfo,
        kind: ActivityKind,
        source: Option<String>,
        message: String,
    ) {
        tracing::info!(watch = %w.name, kind = ?kind, "watch activity");
        let a = Activity {
            at: OffsetDateTime::now_utc(),
            kind,
            source,
            message,
        };
        if let Some(sink) = &self.sink {
            sink(&w.name, &a);
        }
        let e = self.watches.entry(w.id.clone()).or_default();
        e.activity.push_front(a);
        e.activity.truncate(ACTIVITY_KEPT);
    }

    /// Sets `w`'s state.
    pub fn set_state(
        &mut self,
        w: &WatchInfo,
        state: WatchState,
        reason: Option<String>,
        waiting: usize,
    ) {
        self.watches.entry(w.id.clone()).or_default().state = Some((state, reason, waiting));
    }

    /// Drops the watches not in `ids` (removed).
    pub fn retain(&mut self, ids: &HashSet<String>) {
        self.watches.retain(|k, _| ids.contains(k));
    }

    /// The runner stopped (vault locked, or an error that stops every watch).
    pub fn set_stopped(&mut self, reason: Option<String>) {
        self.stopped = reason;
    }

    /// The status of watch `id`.
    pub fn status(&self, id: &str) -> WatchStatus {
        let e = self.watches.get(id);
        let (state, reason, waiting) = match (&self.stopped, e.and_then(|e| e.state.clone())) {
            (Some(why), _) => (WatchState::Stopped, Some(why.clone()), 0),
            (None, Some(s)) => s,
            (None, None) => (WatchState::Starting, None, 0),
        };
        WatchStatus {
            state,
            reason,
            waiting,
            activity: e
                .map(|e| e.activity.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }
}
