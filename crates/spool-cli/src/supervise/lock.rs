//! One supervisor per host and configuration: an exclusive lock on a file in the runtime
//! directory, named by a hash of the configuration's path and the store URL.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::Write,
    path::{Path, PathBuf},
};

/// The held lock; released when dropped or when the process ends, however it ends.
#[derive(Debug)]
pub(crate) struct HostLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another supervisor holds it.
    Held(PathBuf),
    /// The file could not be opened.
    Io(PathBuf, std::io::Error),
}

/// Takes the lock for `config` (its canonical path, or none) and `url`.
pub(crate) fn acquire(config: Option<&Path>, url: &str) -> Result<HostLock, LockError> {
    let path = lock_path(config, url);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LockError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(LockError::Held(path)),
        Err(TryLockError::Error(e)) => return Err(LockError::Io(path, e)),
    }
    // The holder's pid, for the operator who finds the file.
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(HostLock { _file: file })
}

/// `$XDG_RUNTIME_DIR` (per user, cleared at boot) or the temp dir, with a stable name for the
/// pair.
fn lock_path(config: Option<&Path>, url: &str) -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let config = config
        .map(|c| c.canonicalize().unwrap_or_else(|_| c.to_path_buf()))
        .map(|c| c.display().to_string())
        .unwrap_or_default();
    let key = fnv1a(format!("{config}\n{url}").as_bytes());
    dir.join(format!("spool-supervise-{key:016x}.lock"))
}

/// FNV-1a: stable across builds and versions, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_config_and_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("spool.toml");
        std::fs::write(&config, "").unwrap();
        let url = format!("sqlite://{}/a.db", dir.path().display());
        let held = acquire(Some(&config), &url).unwrap();
        assert!(matches!(
            acquire(Some(&config), &url),
            Err(LockError::Held(_))
        ));
        // Another store is another supervisor.
        let other = acquire(Some(&config), "sqlite://elsewhere.db").unwrap();
        drop(held);
        drop(other);
        assert!(acquire(Some(&config), &url).is_ok());
    }
}
