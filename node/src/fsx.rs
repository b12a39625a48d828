//! File operations whose errors name the path (and, for a rename, both paths): what
//! an operator reads in the log must say which file, not only "Permission denied".

use std::path::Path;

/// A file operation that failed: what was done to which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct FileError {
    pub what: String,
    pub cause: std::io::Error,
}

pub type Result<T> = std::result::Result<T, FileError>;

/// Names the operation and path of an IO error.
pub trait Named<T> {
    fn named(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Named<T> for std::io::Result<T> {
    fn named(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|cause| FileError { what: what(), cause })
    }
}

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, bytes).named(|| format!("cannot write {}", path.display()))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).named(|| format!("cannot read {}", path.display()))
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).named(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).named(|| format!("cannot create the folder {}", path.display()))
}

pub fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).named(|| format!("cannot create {}", path.display()))
}

/// Sets the permission bits (e.g. 0o600).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .named(|| format!("cannot set the permissions of {} to {mode:o}", path.display()))
}

/// Flushes a file's data to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).named(|| format!("cannot sync {} to disk", path.display()))
}

pub fn size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).named(|| format!("cannot read the size of {}", path.display()))?.len())
}

/// When this process runs as root (an operator's `restore` or `recover`), gives
/// `path` to the owner and group of `like` (the data folder), so the service user can
/// still open what root wrote. Does nothing for another user, or when `path` is gone.
pub fn adopt_owner(path: &Path, like: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() || !path.exists() {
        return Ok(());
    }
    let m = std::fs::metadata(like).named(|| format!("cannot read the owner of {}", like.display()))?;
    std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()))
        .named(|| format!("cannot give {} to the owner of {}", path.display(), like.display()))
}

/// Writes a file only its owner can read (0600), replacing one already there, and
/// flushes it to disk (keys, tokens).
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("cannot write {}", path.display());
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).named(what),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).named(what)?;
    f.write_all(bytes.as_ref()).and_then(|()| f.sync_all()).named(what)
}

/// Writes through a hidden temporary file beside `path` and a rename, so a reader
/// never sees half a file; the data is on disk before the rename.
pub fn write_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut f = create(&tmp)?;
        f.write_all(bytes.as_ref()).and_then(|()| f.sync_all()).named(|| format!("cannot write {}", tmp.display()))?;
    }
    rename(&tmp, path)
}

/// Flushes a folder's entries (a file created, renamed or removed in it) to disk. Best
/// effort: a file system that cannot sync a folder has nothing more to do.
pub fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Bytes free on the file system holding `p` (or its nearest existing ancestor).
pub fn free_bytes(p: &Path) -> Option<u64> {
    let probe = p.ancestors().find(|a| a.exists())?;
    rustix::fs::statvfs(probe).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/folder/x.txt");
        let e = super::write(&missing, b"x").unwrap_err();
        assert!(format!("{e:#}").contains("no/such/folder/x.txt"), "{e:#}");
        let e = super::rename(&missing, &dir.path().join("y")).unwrap_err();
        assert!(format!("{e:#}").contains("x.txt") && format!("{e:#}").contains("/y"), "{e:#}");
        assert!(format!("{:#}", super::sync_file(&missing).unwrap_err()).contains("x.txt"));
    }
}
