//! File operations whose errors name the path (and, for a rename, both paths): what
//! an operator reads in the log must say which file, not only "Permission denied".

use anyhow::Context;
use std::path::Path;

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

pub fn read_to_string(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}

pub fn create_dir_all(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create the folder {}", path.display()))
}

pub fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Sets the permission bits (e.g. 0o600).
pub fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {} to {mode:o}", path.display()))
}

/// Flushes a file's data to disk.
pub fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("cannot sync {} to disk", path.display()))
}

pub fn size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path).with_context(|| format!("cannot read the size of {}", path.display()))?.len())
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
