//! One look at a watched folder: every regular file under it with its stamp, and what could
//! not be looked at. A folder that is missing or unreadable is `Unavailable` as a whole (a
//! drive that is not mounted), never an empty folder: nothing is ever concluded from absence.

use labvault_core::watches::Stamp;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Folders deeper than this are not entered (a loop of bind mounts, a runaway tree).
pub const MAX_DEPTH: usize = 32;

/// A regular file found.
#[derive(Clone, Debug)]
pub struct Found {
    /// `/`-separated path under the folder.
    pub rel: String,
    /// Its path.
    pub abs: PathBuf,
    /// Size and modification time.
    pub stamp: Stamp,
}

/// What one scan saw.
#[derive(Debug, Default)]
pub struct Scan {
    /// Regular files, in no particular order.
    pub files: Vec<Found>,
    /// Entries that could not be looked at or are never imported, with why.
    pub problems: Vec<(String, String)>,
    /// The device the folder is on (a changed device means another drive was mounted there).
    pub device: u64,
}

/// Scans `folder`; `Err` names why the folder as a whole cannot be read.
pub fn scan(folder: &Path) -> Result<Scan, String> {
    let meta = fs::metadata(folder).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "the folder is not there (a drive not mounted, or moved)".to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "the folder cannot be opened: permission denied".into()
        }
        _ => format!("the folder cannot be opened: {e}"),
    })?;
    if !meta.is_dir() {
        return Err("the path is no longer a folder".into());
    }
    let mut out = Scan {
        device: meta.dev(),
        ..Scan::default()
    };
    fs::read_dir(folder).map_err(|e| format!("the folder cannot be read: {e}"))?;
    walk(folder, "", 0, &mut out);
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Scan) {
    let shown = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let what = if prefix.is_empty() { "." } else { prefix };
            out.problems
                .push((what.to_string(), format!("the folder cannot be read: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.problems
                    .push((shown("?"), format!("an entry cannot be read: {e}")));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            out.problems.push((
                shown(&name.to_string_lossy()),
                "the name is not valid UTF-8; the vault cannot store it under that name".into(),
            ));
            continue;
        };
        let rel = shown(name);
        let meta = match fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            // Removed between listing and looking: the next scan will not see it either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.problems.push((rel, format!("cannot be read: {e}")));
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            out.problems
                .push((rel, "a symbolic link: links are not followed".into()));
        } else if ft.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                out.problems.push((
                    rel,
                    format!("more than {MAX_DEPTH} folders deep: not entered"),
                ));
            } else {
                walk(&entry.path(), &rel, depth + 1, out);
            }
        } else if ft.is_file() {
            out.files.push(Found {
                rel,
                abs: entry.path(),
                stamp: Stamp::of(&meta),
            });
        }
        // Pipes, sockets and devices are not instrument output.
    }
}
