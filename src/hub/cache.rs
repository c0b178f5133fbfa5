//! The hub download cache, laid out exactly as huggingface_hub lays it out, so files fetched by
//! either program are found by the other (docs/hub.md):
//!
//! ```text
//! {root}/models--{org}--{name}/
//!     blobs/{etag}                     the file's bytes, named by its ETag (sha256 or git sha1)
//!     blobs/{etag}.incomplete          ours: a partial download, resumed with Range
//!     snapshots/{commit}/{file}        a relative symlink to ../../blobs/{etag} (deeper for a/b/c)
//!     refs/{revision}                  the commit a branch or tag pointed to, no newline
//! {root}/.locks/models--{org}--{name}/{etag}.lock
//! ```

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The cache root (`$HF_HUB_CACHE`, `$HF_HOME/hub`, ...) seen from one repository.
#[derive(Clone, Debug)]
pub struct RepoCache {
    /// `{root}/models--{org}--{name}`.
    pub dir: PathBuf,
    /// `{root}/.locks/models--{org}--{name}`.
    locks: PathBuf,
}

/// `models--org--name`: every `/` of the repository id becomes `--`.
pub fn repo_folder_name(repo: &str) -> String {
    format!("models--{}", repo.split('/').collect::<Vec<_>>().join("--"))
}

/// A commit id as the hub writes it: 40 lowercase hex digits.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A name that is safe as one path component chosen by the server (an ETag, a commit): ASCII
/// letters, digits, `-`, `_`, `.`, not starting with a dot, at most 128 bytes.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A repository file name that stays inside its snapshot directory: relative, `/`-separated,
/// no empty, `.` or `..` component, no backslash or NUL.
pub fn check_file_name(file: &str) -> Result<()> {
    let bad = file.is_empty()
        || file.starts_with('/')
        || file.contains('\\')
        || file.contains('\0')
        || file
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::bad_input(format!(
            "{file:?} is not a file name inside a repository (relative, '/'-separated, no '..')"
        )));
    }
    Ok(())
}

impl RepoCache {
    pub fn new(root: &Path, repo: &str) -> RepoCache {
        let folder = repo_folder_name(repo);
        RepoCache {
            dir: root.join(&folder),
            locks: root.join(".locks").join(folder),
        }
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// Our partial download of a blob (huggingface_hub never reads it).
    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// `snapshots/{commit}/{file}`.
    pub fn pointer(&self, commit: &str, file: &str) -> PathBuf {
        let mut p = self.snapshot_dir(commit);
        p.extend(file.split('/'));
        p
    }

    /// The commit `revision` names in the cache: itself when it is a commit id, else what
    /// `refs/{revision}` holds.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_string());
        }
        let text = fs::read_to_string(self.dir.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_commit(commit).then(|| commit.to_string())
    }

    /// The cached copy of `file` at `revision`, if there is one (a pointer whose blob exists).
    pub fn cached(&self, revision: &str, file: &str) -> Option<PathBuf> {
        let pointer = self.pointer(&self.commit_of(revision)?, file);
        pointer.exists().then_some(pointer)
    }

    /// Every file of the cached snapshot of `revision` (`/`-separated, sorted), with its commit.
    pub fn cached_files(&self, revision: &str) -> Option<(String, Vec<String>)> {
        let commit = self.commit_of(revision)?;
        let root = self.snapshot_dir(&commit);
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).ok()?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.exists() {
                    let rel = path.strip_prefix(&root).ok()?;
                    let parts: Vec<_> = rel.iter().map(|c| c.to_string_lossy()).collect();
                    files.push(parts.join("/"));
                }
            }
        }
        files.sort();
        Some((commit, files))
    }

    /// Records that `revision` (a branch or tag) points at `commit`, atomically (temporary file,
    /// rename). Nothing to do when `revision` is the commit itself.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        if fs::read_to_string(&path).is_ok_and(|c| c == commit) {
            return Ok(());
        }
        let tmp = path.with_file_name(format!(
            "{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        create_parent(&path)?;
        fs::write(&tmp, commit)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| io_error("cannot write", &path, e))
    }

    /// Points `snapshots/{commit}/{file}` at `blobs/{etag}` with a relative symlink, replacing
    /// whatever was there.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.pointer(commit, file);
        create_parent(&pointer)?;
        // snapshots/{commit}/a/b/file -> ../../../../blobs/{etag}: one `..` per directory
        // between the pointer and the repository folder.
        let depth = 2 + file.split('/').count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        let _ = fs::remove_file(&pointer);
        symlink(&target, &pointer).map_err(|e| io_error("cannot create the link", &pointer, e))?;
        Ok(pointer)
    }

    /// An exclusive lock on one blob, shared with huggingface_hub (which takes the same file
    /// with flock): held until the returned file is dropped.
    pub fn lock(&self, etag: &str) -> Result<File> {
        let path = self.locks.join(format!("{etag}.lock"));
        create_parent(&path)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("cannot open the lock", &path, e))?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(file)
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    // Without symlinks (huggingface_hub's own fallback): a copy of the blob.
    let blob = link.parent().unwrap_or(Path::new(".")).join(target);
    fs::copy(blob, link).map(|_| ())
}

pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e)),
        None => Ok(()),
    }
}

/// One line for a failed file operation; a full disk says so.
pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        Error::io(format!("disk full: {what} {}", path.display()))
    } else {
        Error::io(format!("{what} {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            repo_folder_name("microsoft/bitnet-b1.58-2B-4T-gguf"),
            "models--microsoft--bitnet-b1.58-2B-4T-gguf"
        );
        assert!(is_commit(&"a1".repeat(20)));
        assert!(!is_commit(&"A1".repeat(20)) && !is_commit("main"));
        assert!(is_safe_name(&"ab".repeat(32)));
        assert!(!is_safe_name("../x") && !is_safe_name(".hidden") && !is_safe_name("a/b"));
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
        check_file_name("sub/dir/model.gguf").unwrap();
    }

    #[test]
    fn link_depth_and_lookup() {
        let root = std::env::temp_dir().join(format!("bitnet-hub-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let c = RepoCache::new(&root, "org/name");
        let commit = "c".repeat(40);
        fs::create_dir_all(c.dir.join("blobs")).unwrap();
        fs::write(c.blob("e1"), b"x").unwrap();
        let p = c.link(&commit, "a/b/f.gguf", "e1").unwrap();
        assert_eq!(
            fs::read_link(&p).unwrap(),
            Path::new("../../../../blobs/e1")
        );
        assert_eq!(fs::read(&p).unwrap(), b"x");
        c.write_ref("main", &commit).unwrap();
        assert_eq!(c.cached("main", "a/b/f.gguf"), Some(p));
        assert_eq!(
            c.cached_files("main"),
            Some((commit.clone(), vec!["a/b/f.gguf".to_string()]))
        );
        assert_eq!(c.cached("dev", "a/b/f.gguf"), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
