//! The thread that keeps the watches of an unlocked vault running: it registers the active
//! folders for file-system notifications (inotify through `notify`), and runs a pass when
//! something changed, while files are settling, and at least every [`RESCAN_MS`] (network
//! shares send no notifications). It stops when asked, or by itself when the vault locks.

use crate::board::Board;
use crate::passes::Passes;
use labvault_core::{ErrorCode, Vault};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the runner wakes while files are settling.
pub const TICK: Duration = Duration::from_millis(250);

enum Msg {
    Fs(notify::Event),
    Kick,
}

/// The running watches of one vault; dropping it stops them.
pub struct Runner {
    board: Arc<Mutex<Board>>,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    /// Starts the watches of `vault` on a thread of their own.
    pub fn start(vault: Arc<Vault>) -> Runner {
        Runner::start_on(vault, Board::default())
    }

    /// Like [`Runner::start`], reporting on `board` (one with a sink, say).
    pub fn start_on(vault: Arc<Vault>, board: Board) -> Runner {
        let board = Arc::new(Mutex::new(board));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let thread = {
            let (board, stop, tx) = (board.clone(), stop.clone(), tx.clone());
            std::thread::Builder::new()
                .name("labvault-watch".into())
                .spawn(move || run(vault, board, stop, tx, rx))
                .expect("spawning the watch thread")
        };
        Runner {
            board,
            stop,
            tx,
            thread: Some(thread),
        }
    }

    /// What the watches show.
    pub fn board(&self) -> Arc<Mutex<Board>> {
        self.board.clone()
    }

    /// Runs a pass now (a watch was added, resumed or changed).
    pub fn kick(&self) {
        let _ = self.tx.send(Msg::Kick);
    }

    /// Whether the thread still runs (it stops when the vault locks).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the watches and waits for the thread (an import in progress finishes its file).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Kick);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    vault: Arc<Vault>,
    board: Arc<Mutex<Board>>,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
) {
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let mut passes = Passes::with_cancel(vault, board.clone(), stop.clone());
    let notifier = {
        let tx = tx.clone();
        notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let _ = tx.send(Msg::Fs(ev));
            }
        })
    };
    let mut notifier = match notifier {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "file-system notifications unavailable; folders are rescanned");
            None
        }
    };
    // Folders registered for notifications, per watch.
    let mut registered: HashMap<String, PathBuf> = HashMap::new();
    let set_stopped = |why: &str| {
        board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_stopped(Some(why.to_string()))
    };
    while !stop.load(Ordering::Relaxed) {
        // Wake on an event or every TICK; the pass decides which folders are due a scan.
        let first = match rx.recv_timeout(TICK) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Take the events already queued too (an instrument writing produces bursts).
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            if let Msg::Fs(ev) = msg {
                let closed = matches!(
                    ev.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                );
                for path in &ev.paths {
                    for (id, folder) in &registered {
                        if path.starts_with(folder) {
                            passes.touched(id, folder, path, closed, now_ms());
                        }
                    }
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match passes.pass(now_ms()) {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::Locked => {
                set_stopped("the vault is locked");
                return;
            }
            Err(e) => tracing::warn!(code = e.code().as_str(), "watch pass failed"),
        }
        // Keep notifications on exactly the active, readable folders.
        if let Some(n) = notifier.as_mut() {
            let want: HashMap<String, PathBuf> = passes.folders().into_iter().collect();
            registered.retain(|id, folder| {
                let keep = want.get(id) == Some(folder) && folder.is_dir();
                if !keep {
                    let _ = n.unwatch(folder);
                }
                keep
            });
            for (id, folder) in want {
                if !registered.contains_key(&id)
                    && n.watch(&folder, RecursiveMode::Recursive).is_ok()
                {
                    registered.insert(id, folder);
                }
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        set_stopped("stopped");
    }
}
