//! Saving the config file so that a crash or power cut leaves either the old
//! or the new version, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Replaces `path` with `contents` atomically: writes a temporary file in the
/// same directory, fsyncs it, gives it the original file's permissions (and,
/// when allowed, its owner), renames it over `path` and fsyncs the
/// directory. If `path` is a symlink its target is replaced and the link
/// kept. A new file gets mode 0644 less the umask.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    /// Makes temporary names unique within the process.
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let target = resolve(path)?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let existing = match fs::metadata(&target) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };

    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = dir.join(temp_name);

    let result =
        write_temp(&temp, contents, existing.as_ref()).and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    File::open(&dir)?.sync_all()
}

fn write_temp(temp: &Path, contents: &str, existing: Option<&fs::Metadata>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temp)?;
    if let Some(meta) = existing {
        // Best effort: only root (or the owner, for the group) may do this,
        // and keeping the mode matters more than keeping the owner.
        let created = file.metadata()?;
        if (created.uid(), created.gid()) != (meta.uid(), meta.gid()) {
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.set_permissions(meta.permissions())?;
    }
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Follows symlinks so that the link itself is not replaced by a file.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let mut target = path.to_path_buf();
            // A bounded walk (as ELOOP would be): a dangling link is fine, the
            // file it names is created.
            for _ in 0..40 {
                match fs::symlink_metadata(&target) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        let link = fs::read_link(&target)?;
                        target = match target.parent() {
                            Some(parent) => parent.join(link),
                            None => link,
                        };
                    }
                    _ => return Ok(target),
                }
            }
            Err(io::Error::other("too many levels of symbolic links"))
        }
        _ => Ok(path.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "lbd-config-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replaces_contents_and_keeps_permissions() {
        let dir = TempDir::new("perm");
        let path = dir.0.join("lb.toml");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        write_atomic(&path, "new contents\n").unwrap();

        assert_eq!(fs::read_to_string(&path).unwrap(), "new contents\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(dir.entries(), ["lb.toml"]);
    }

    #[test]
    fn creates_a_missing_file() {
        let dir = TempDir::new("new");
        let path = dir.0.join("lb.toml");
        write_atomic(&path, "x = 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "x = 1\n");
        assert_eq!(dir.entries(), ["lb.toml"]);
    }

    #[test]
    fn keeps_a_symlink_and_writes_its_target() {
        let dir = TempDir::new("link");
        let target = dir.0.join("real.toml");
        let link = dir.0.join("lb.toml");
        fs::write(&target, "old\n").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("real.toml", &link).unwrap();

        write_atomic(&link, "new\n").unwrap();

        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(dir.entries(), ["lb.toml", "real.toml"]);
    }

    #[test]
    fn failure_leaves_no_temp_file() {
        let dir = TempDir::new("fail");
        // Renaming a file over a non-empty directory fails.
        let path = dir.0.join("lb.toml");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "").unwrap();
        assert!(write_atomic(&path, "new\n").is_err());
        assert_eq!(dir.entries(), ["lb.toml"]);
    }
}
