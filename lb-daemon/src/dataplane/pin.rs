//! Pinning under bpffs, so the data path outlives `lbd`.
//!
//! Layout of a pin directory (default `/sys/fs/bpf/lbd`):
//! - `maps/<NAME>`: every map of the object, plus `REAL_META` (userspace
//!   only: who each real slot belongs to, so a restarted `lbd` can adopt the
//!   slots that established flows point at);
//! - `links/<ifname>`: the XDP link of each attached interface. A pinned link
//!   keeps the program attached with no process holding it; a restarted
//!   `lbd` swaps its freshly loaded program into the same link atomically
//!   (`BPF_LINK_UPDATE`), so no packet sees "no program".

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;

/// Where one `lbd` instance keeps its pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    #[must_use]
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }

    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    #[must_use]
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    #[must_use]
    pub fn link(&self, ifname: &str) -> PathBuf {
        self.links().join(ifname)
    }

    /// Creates the directories (bpffs allows mkdir). The nearest existing
    /// parent must be on a bpffs mount: pins anywhere else fail, and a
    /// private bpffs (e.g. under `ip netns exec`, which remounts `/sys`)
    /// would not outlive the process.
    pub fn create(&self) -> io::Result<()> {
        let existing = self
            .root
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        if !is_bpffs(existing) {
            return Err(io::Error::other(format!(
                "{} is not on a bpf filesystem (mount one: `mount -t bpf bpf /sys/fs/bpf`)",
                existing.display()
            )));
        }
        fs::create_dir_all(self.maps())?;
        fs::create_dir_all(self.links())
    }

    /// Whether a previous `lbd` left maps here to adopt.
    #[must_use]
    pub fn has_maps(&self) -> bool {
        fs::read_dir(self.maps()).is_ok_and(|mut entries| entries.next().is_some())
    }

    /// Interfaces with a pinned link.
    #[must_use]
    pub fn pinned_links(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.links())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Removes one interface's pinned link: the program detaches from it.
    pub fn unpin_link(&self, ifname: &str) -> io::Result<()> {
        fs::remove_file(self.link(ifname))
    }

    /// Removes every pin: the links go (the program detaches from each
    /// interface), then the maps (freed once no program uses them).
    /// Returns the interfaces that were detached.
    pub fn remove_all(&self) -> io::Result<Vec<String>> {
        let links = self.pinned_links();
        for dir in [self.links(), self.maps()] {
            if let Ok(entries) = fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    fs::remove_file(entry.path())?;
                }
                fs::remove_dir(&dir)?;
            }
        }
        match fs::remove_dir(&self.root) {
            Ok(()) => Ok(links),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(links),
            Err(e) => Err(e),
        }
    }
}

/// What a map must look like to be adopted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MapShape {
    pub name: &'static str,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// A pinned map that does not fit what this `lbd` would create.
#[derive(Debug, thiserror::Error)]
#[error(
    "pinned map {name} has {what} {pinned} but this lbd needs {wanted}; \
     `lbd teardown` removes the old data path (established flows are lost)"
)]
pub struct ShapeMismatch {
    pub name: &'static str,
    pub what: &'static str,
    pub pinned: u32,
    pub wanted: u32,
}

/// Checks the pinned maps that exist against the shapes wanted. Maps not
/// pinned yet are fine (they are created).
pub(crate) fn check_shapes(dir: &PinDir, shapes: &[MapShape]) -> Result<(), ShapeMismatch> {
    for shape in shapes {
        let Ok(info) = MapInfo::from_pin(dir.map(shape.name)) else {
            continue;
        };
        for (what, pinned, wanted) in [
            ("key size", info.key_size(), shape.key_size),
            ("value size", info.value_size(), shape.value_size),
            ("max_entries", info.max_entries(), shape.max_entries),
        ] {
            if pinned != wanted {
                return Err(ShapeMismatch {
                    name: shape.name,
                    what,
                    pinned,
                    wanted,
                });
            }
        }
    }
    Ok(())
}

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid out-buffer; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &raw mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
