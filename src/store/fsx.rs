//! File-system steps the store and the Triton publisher share: durability (fsync of files and folders), unique
//! temporary names, removal without following links, and their errors with the path.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::StoreError;

/// Maps an I/O error to [`StoreError::Io`] naming `path` and what was being done.
pub(crate) fn io_err(action: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let action = action.into();
    let path = path.to_owned();
    move |source| StoreError::Io { action, path, source }
}

/// A suffix no other temporary name of this or an earlier process has: the pid alone repeats after a reboot (the
/// leftovers of the process that had it may still be there until the next recovery), the clock alone within a
/// process.
pub(crate) fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{:x}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Makes a folder's entries (names created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync folder", dir))
}

/// Creates `dir` if it is missing (its parent must exist) and makes the new entry durable in the parent.
/// Returns whether it was created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Followed: a folder that is a link to another partition is as good as one.
            let meta = fs::metadata(dir).map_err(io_err("read", dir))?;
            if meta.is_dir() {
                Ok(false)
            } else {
                Err(StoreError::NotAFolder { path: dir.to_owned(), kind: kind_of(&meta) })
            }
        }
        Err(e) => Err(io_err("create folder", dir)(e)),
    }
}

/// What kind of entry `meta` describes, for messages.
pub(crate) fn kind_of(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_file() {
        "a file"
    } else {
        "a special file (device, socket or pipe)"
    }
}

/// Fsyncs every file and folder under `dir` (the folder last), refusing anything that is not a regular file or a
/// folder: a version is immutable, and a link inside it could point at something that is not. Returns the number
/// of regular files.
pub(crate) fn sync_tree(dir: &Path) -> Result<usize, StoreError> {
    let mut files = 0;
    let entries = fs::read_dir(dir).map_err(io_err("read folder", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("read folder", dir))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(io_err("read", &path))?;
        if meta.is_dir() {
            files += sync_tree(&path)?;
        } else if meta.is_file() {
            fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io_err("sync file", &path))?;
            files += 1;
        } else {
            return Err(StoreError::NotRegular {
                path,
                kind: kind_of(&meta),
                expected: "a regular file or a folder (a version holds nothing else)",
            });
        }
    }
    sync_dir(dir)?;
    Ok(files)
}

/// Removes a file, link or whole folder; a link is removed, never followed.
pub(crate) fn remove_entry(path: &Path) -> Result<(), StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let result = if meta.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Renames `from` to `to` (both in one folder, so atomic); the error names both.
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(io_err(format!("rename {} to", from.display()), to))
}

/// Whether two files hold the same bytes, compared in chunks (engines are hundreds of megabytes).
pub(crate) fn same_contents(a: &Path, b: &Path) -> Result<bool, StoreError> {
    let (mut fa, ma) = open_with_len(a)?;
    let (mut fb, mb) = open_with_len(b)?;
    if ma != mb {
        return Ok(false);
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(io_err("read", a))?;
        let m = read_full(&mut fb, &mut bb).map_err(io_err("read", b))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn open_with_len(path: &Path) -> Result<(fs::File, u64), StoreError> {
    let file = fs::File::open(path).map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("read", path))?.len();
    Ok((file, len))
}

fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
