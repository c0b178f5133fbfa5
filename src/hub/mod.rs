//! A Hugging Face hub client: `bitnet download` and `-hf REPO[:FILE_OR_QUANT]` (docs/hub.md).
//!
//! One file is fetched in three steps, the way huggingface_hub does it, into the same cache
//! layout (`cache.rs`), so either program uses what the other downloaded:
//! 1. `HEAD {endpoint}/{repo}/resolve/{revision}/{file}` (`http::Client::resolve`): the commit
//!    (`X-Repo-Commit`), the content's ETag (`X-Linked-Etag` for LFS files: their sha256;
//!    `ETag` for small files: their git blob sha1), the size, and where the bytes are (a
//!    redirect to a CDN, which gets no token).
//! 2. The bytes go to `blobs/{etag}.incomplete`; a dropped connection or an interrupted run
//!    resumes from the bytes already there with `Range` (`fetch_blob`).
//! 3. The finished file is hashed and compared with the ETag; on a mismatch it is deleted. Only
//!    then is it renamed to `blobs/{etag}` and linked from `snapshots/{commit}/{file}`.

pub mod cache;
pub mod http;
mod progress;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha1::Digest as _;

use crate::{Error, ErrorKind, Result};
use cache::{check_file_name, create_parent, io_error, is_commit, is_safe_name, RepoCache};
use http::{Client, Failure, Resolved};
use progress::Progress;

/// Where the hub is, who we are, where the cache is.
#[derive(Clone, Debug)]
pub struct Config {
    /// `https://huggingface.co` or `$HF_ENDPOINT`, without a trailing `/`.
    pub endpoint: String,
    pub token: Option<String>,
    /// The cache root: `$HF_HUB_CACHE`, else `$HF_HOME/hub`.
    pub cache: PathBuf,
    /// `$HF_HUB_OFFLINE`: no request at all, cached files only.
    pub offline: bool,
}

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// huggingface_hub's truth values for its boolean variables.
fn env_true(name: &str) -> bool {
    crate::env::var(name).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

impl Config {
    /// The configuration huggingface_hub would use in this environment (see `crate::env`).
    pub fn from_env() -> Result<Config> {
        use crate::cache::env_path;
        use crate::env;
        let home = env_path(env::HF_HOME)
            .or_else(|| env_path(env::XDG_CACHE_HOME).map(|x| x.join("huggingface")))
            .or_else(|| env_path("HOME").map(|h| h.join(".cache/huggingface")));
        let cache = env_path(env::HF_HUB_CACHE)
            .or_else(|| home.as_ref().map(|h| h.join("hub")))
            .ok_or_else(|| {
                Error::bad_input("no hub cache: set HF_HOME or HF_HUB_CACHE (HOME is not set)")
            })?;
        let token_file = env_path(env::HF_TOKEN_PATH).or_else(|| home.map(|h| h.join("token")));
        // An empty HF_TOKEN counts as unset, as in huggingface_hub.
        let clean = |t: String| Some(t.trim().to_string()).filter(|t| !t.is_empty());
        let token = crate::env::var(env::HF_TOKEN).and_then(clean).or_else(|| {
            token_file
                .and_then(|f| fs::read_to_string(f).ok())
                .and_then(clean)
        });
        let endpoint = crate::env::var(env::HF_ENDPOINT)
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Ok(Config {
            endpoint,
            token,
            cache,
            offline: env_true(env::HF_HUB_OFFLINE) || env_true(env::TRANSFORMERS_OFFLINE),
        })
    }
}

/// A repository id: `org/name` (or a legacy `name`), letters, digits, `-`, `_`, `.`.
pub fn check_repo(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 96
                && !p.starts_with(['.', '-'])
                && !p.contains("--")
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "{repo:?} is not a hub repository id (ORG/NAME: letters, digits, '-', '_', '.')"
        )))
    }
}

fn check_revision(revision: &str) -> Result<()> {
    // Branches may hold '/' (refs/pr/1): the ref file then lies in a subdirectory, as in
    // huggingface_hub.
    check_file_name(revision).map_err(|_| {
        Error::bad_input(format!(
            "{revision:?} is not a revision (branch, tag or commit)"
        ))
    })
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `-hf REPO[:FILE_OR_QUANT]` split into its repository and selector.
pub fn parse_spec(spec: &str) -> Result<(String, Option<String>)> {
    let (repo, selector) = match spec.split_once(':') {
        Some((r, s)) if !s.is_empty() => (r, Some(s.to_string())),
        Some((r, _)) => (r, None),
        None => (spec, None),
    };
    check_repo(repo)?;
    Ok((repo.to_string(), selector))
}

/// Does the file name (its last component) carry the quantization tag `quant`, as a whole word
/// (`i2_s` in `ggml-model-i2_s.gguf`, not `q4_k` in `q4_k_m`'s middle)? Case-insensitive.
fn has_quant(file: &str, quant: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    let stem = name.strip_suffix(".gguf").unwrap_or(&name);
    let quant = quant.to_ascii_lowercase();
    stem.match_indices(&quant).any(|(i, m)| {
        let before = stem[..i].chars().next_back();
        let after = stem[i + m.len()..].chars().next();
        before.is_none_or(|c| c == '-' || c == '.' || c == '_')
            && after.is_none_or(|c| c == '-' || c == '.')
    })
}

/// The GGUF file of a repository's `files` that `selector` names: the file itself, or the one
/// `.gguf` whose name carries that quantization tag; with no selector, the only `.gguf`, else
/// the only I2_S one. Anything else (none, several) is an error listing the candidates.
pub fn pick_gguf(repo: &str, files: &[String], selector: Option<&str>) -> Result<String> {
    let ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    let list = |v: &[&String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    if let Some(sel) = selector {
        if files.iter().any(|f| f == sel) {
            return Ok(sel.to_string());
        }
        if sel.contains('/') || sel.to_ascii_lowercase().ends_with(".gguf") {
            return Err(Error::bad_input(format!(
                "{repo} has no file {sel}; its GGUF files: {}",
                list(&ggufs)
            )));
        }
    }
    let quant = selector.unwrap_or("i2_s");
    let matching: Vec<&String> = ggufs
        .iter()
        .copied()
        .filter(|f| has_quant(f, quant))
        .collect();
    match (selector, ggufs.as_slice(), matching.as_slice()) {
        (None, [only], _) => Ok(only.to_string()),
        (_, _, [one]) => Ok(one.to_string()),
        (Some(q), _, []) => Err(Error::bad_input(format!(
            "{repo} has no GGUF file of quantization {q}; its GGUF files: {}",
            list(&ggufs)
        ))),
        (None, [], _) => Err(Error::bad_input(format!(
            "{repo} holds no GGUF file (a checkpoint to convert? see bitnet convert)"
        ))),
        (_, _, []) => Err(Error::bad_input(format!(
            "{repo} holds several GGUF files: name one as {repo}:FILE or {repo}:QUANT ({})",
            list(&ggufs)
        ))),
        (_, _, several) => Err(Error::bad_input(format!(
            "{repo}: several GGUF files match {quant}: name one as {repo}:FILE ({})",
            list(several)
        ))),
    }
}

/// The hub client.
pub struct Hub {
    pub config: Config,
    client: Client,
}

/// Consecutive failed tries without a byte received before a download gives up, and tries in
/// all (a connection that keeps dropping after some progress).
const MAX_TRIES_IN_ALL: u32 = 50;

impl Hub {
    pub fn new(config: Config) -> Hub {
        let client = Client::new(config.token.clone());
        Hub { config, client }
    }

    pub fn from_env() -> Result<Hub> {
        Ok(Hub::new(Config::from_env()?))
    }

    pub fn repo_cache(&self, repo: &str) -> RepoCache {
        RepoCache::new(&self.config.cache, repo)
    }

    fn offline_error(&self, what: &str) -> Error {
        Error::io(format!(
            "{what}: HF_HUB_OFFLINE is set and it is not in the cache {}",
            self.config.cache.display()
        ))
    }

    /// The local path of `file` of `repo` at `revision` (a branch, tag or commit), downloaded
    /// and verified if the cache does not hold it yet.
    pub fn download(&self, repo: &str, file: &str, revision: &str) -> Result<PathBuf> {
        check_repo(repo)?;
        check_file_name(file)?;
        check_revision(revision)?;
        let cache = self.repo_cache(repo);
        let what = format!("{repo}/{file}@{revision}");
        if is_commit(revision) || self.config.offline {
            if let Some(p) = cache.cached(revision, file) {
                return Ok(p);
            }
            if self.config.offline {
                return Err(self.offline_error(&what));
            }
        }
        let url = format!(
            "{}/{repo}/resolve/{}/{}",
            self.config.endpoint,
            encode(revision, false),
            encode(file, true)
        );
        let resolved = match self.client.resolve(&url, &what) {
            Ok(r) => r,
            // The hub is unreachable or failing: a cached copy still serves.
            Err(e) if e.kind == ErrorKind::Io => match cache.cached(revision, file) {
                Some(p) => {
                    eprintln!("bitnet: {}; using the cached {}", e.message, p.display());
                    return Ok(p);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let commit = resolved
            .commit
            .clone()
            .filter(|c| is_commit(c))
            .ok_or_else(|| {
                Error::format(format!(
                    "{what}: the answer has no X-Repo-Commit commit id: {} does not look like a \
                 Hugging Face hub",
                    self.config.endpoint
                ))
            })?;
        let etag = resolved
            .etag
            .clone()
            .filter(|e| is_safe_name(e))
            .ok_or_else(|| {
                Error::format(format!(
                    "{what}: the answer has no usable ETag ({:?})",
                    resolved.etag
                ))
            })?;
        cache.write_ref(revision, &commit)?;
        let pointer = cache.pointer(&commit, file);
        if pointer.exists() {
            return Ok(pointer);
        }
        let _lock = cache.lock(&etag)?;
        if !cache.blob(&etag).exists() {
            self.fetch_blob(&cache, &resolved, &etag, file, &what)?;
        }
        cache.link(&commit, file, &etag)
    }

    /// Downloads `resolved` into `blobs/{etag}`: through `blobs/{etag}.incomplete`, resumed
    /// from what it holds, hashed against the ETag before the rename.
    fn fetch_blob(
        &self,
        cache: &RepoCache,
        resolved: &Resolved,
        etag: &str,
        file: &str,
        what: &str,
    ) -> Result<()> {
        let part = cache.incomplete(etag);
        create_parent(&part)?;
        let mut out = File::options()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| io_error("cannot open", &part, e))?;
        let mut have = out
            .metadata()
            .map_err(|e| io_error("cannot stat", &part, e))?
            .len();
        let mut size = resolved.size;
        let restart = |out: &mut File| {
            out.set_len(0)
                .map_err(|e| io_error("cannot truncate", &part, e))
        };
        if size.is_some_and(|s| have > s) {
            restart(&mut out)?;
            have = 0;
        }
        let mut progress = Progress::new(file, size, have);
        let write_error = |e: std::io::Error| {
            let mut err = io_error("cannot write", &part, e);
            if err.message.starts_with("disk full") {
                err.message +=
                    " (the partial download is kept: free some space and run again to resume)";
            }
            err
        };
        let (mut failures, mut tries) = (0u32, 0u32);
        let mut buf = vec![0u8; 1 << 20];
        while size != Some(have) {
            tries += 1;
            let before = have;
            let outcome =
                match self
                    .client
                    .get(&resolved.location, resolved.same_origin, have, what)
                {
                    Err(Failure::RangeRefused) => {
                        // The server cannot serve from `have` on: start over.
                        restart(&mut out)?;
                        have = 0;
                        Err(Failure::Transient(format!(
                            "{what}: the server refused to resume"
                        )))
                    }
                    Err(f) => Err(f),
                    Ok(mut body) => {
                        if body.start != have {
                            if body.start != 0 {
                                return Err(Error::format(format!(
                                "{what}: asked for bytes from {have}, the server sent them from {}",
                                body.start
                            )));
                            }
                            // The server ignored Range and sends the whole file.
                            restart(&mut out)?;
                            have = 0;
                        }
                        if size.is_none() {
                            size = body.total;
                        }
                        loop {
                            match body.reader.read(&mut buf) {
                                Ok(0) if size.is_none_or(|s| s == have) => break Ok(()),
                                Ok(0) => {
                                    break Err(Failure::Transient(format!(
                                        "{what}: the connection closed after {have} of {} bytes",
                                        size.unwrap_or(0)
                                    )))
                                }
                                Ok(n) => {
                                    out.write_all(&buf[..n]).map_err(write_error)?;
                                    have += n as u64;
                                    progress.set(have);
                                    if size.is_some_and(|s| have > s) {
                                        drop(out);
                                        let _ = fs::remove_file(&part);
                                        return Err(Error::format(format!(
                                        "{what}: the server sent more than the {} bytes announced; \
                                         the download was deleted",
                                        size.unwrap_or(0)
                                    )));
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                                Err(e) => {
                                    break Err(Failure::Transient(format!(
                                        "{what}: the connection broke after {have} bytes: {e}"
                                    )))
                                }
                            }
                        }
                    }
                };
            match outcome {
                Ok(()) => break,
                Err(Failure::Fatal(e)) => return Err(e),
                Err(f) => {
                    failures = if have > before { 1 } else { failures + 1 };
                    if failures >= http::MAX_TRIES || tries >= MAX_TRIES_IN_ALL {
                        return Err(Error::io(format!(
                            "{} (gave up after {tries} tries; the {have} bytes received are kept \
                             in {} for the next run to resume)",
                            f.into_error().message,
                            part.display()
                        )));
                    }
                    if have == before {
                        std::thread::sleep(http::backoff(failures - 1));
                    }
                }
            }
        }
        progress.finish();
        out.sync_all().map_err(write_error)?;
        drop(out);
        if let Err(e) = check_digest(&part, etag, what) {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
        let blob = cache.blob(etag);
        fs::rename(&part, &blob).map_err(|e| io_error("cannot rename into", &blob, e))
    }

    /// Every file of `repo` at `revision` and the commit it resolved to: the hub's
    /// `/api/models/{repo}/revision/{revision}`, or offline the cached snapshot's files.
    pub fn list_files(&self, repo: &str, revision: &str) -> Result<(String, Vec<String>)> {
        check_repo(repo)?;
        check_revision(revision)?;
        let cache = self.repo_cache(repo);
        let what = format!("{repo}@{revision}");
        if self.config.offline {
            return cache
                .cached_files(revision)
                .ok_or_else(|| self.offline_error(&what));
        }
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.config.endpoint,
            encode(revision, false)
        );
        let info = match self.client.get_json(&url, &what, 64 << 20) {
            Ok(v) => v,
            Err(e) if e.kind == ErrorKind::Io => match cache.cached_files(revision) {
                Some(cached) => {
                    eprintln!("bitnet: {}; using the cached file list", e.message);
                    return Ok(cached);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let commit = info["sha"]
            .as_str()
            .filter(|c| is_commit(c))
            .ok_or_else(|| Error::format(format!("{what}: the file list names no commit (sha)")))?;
        let files = info["siblings"]
            .as_array()
            .ok_or_else(|| Error::format(format!("{what}: the file list has no siblings")))?
            .iter()
            .filter_map(|s| s["rfilename"].as_str().map(str::to_string))
            .collect();
        Ok((commit.to_string(), files))
    }

    /// `-hf REPO[:FILE_OR_QUANT]`: the GGUF file it names (see `pick_gguf`), downloaded if
    /// needed. Returns the file's name in the repository and its local path.
    pub fn model(&self, spec: &str, revision: &str) -> Result<(String, PathBuf)> {
        let (repo, selector) = parse_spec(spec)?;
        let file = match &selector {
            // A file name in full needs no list (and works offline on a cold list).
            Some(f) if f.to_ascii_lowercase().ends_with(".gguf") => f.clone(),
            _ => {
                let (_, files) = self.list_files(&repo, revision)?;
                pick_gguf(&repo, &files, selector.as_deref())?
            }
        };
        let path = self.download(&repo, &file, revision)?;
        Ok((file, path))
    }

    /// Every file of `repo` at `revision` that `keep` accepts, downloaded; returns the snapshot
    /// directory holding them (`snapshots/{commit}`), laid out like the repository. The hook
    /// for `bitnet convert -hf REPO` (config.json, tokenizer files, *.safetensors).
    pub fn snapshot(
        &self,
        repo: &str,
        revision: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<PathBuf> {
        let (commit, files) = self.list_files(repo, revision)?;
        let cache = self.repo_cache(repo);
        if !self.config.offline {
            cache.write_ref(revision, &commit)?;
        }
        for file in files.iter().filter(|f| keep(f)) {
            self.download(repo, file, &commit)?;
        }
        Ok(cache.snapshot_dir(&commit))
    }
}

/// What an ETag says about the bytes: 64 hex digits are the sha256 of an LFS file, 40 the git
/// blob sha1 (`sha1("blob {len}\0" + bytes)`) of a small one; anything else is not checked.
fn check_digest(path: &Path, etag: &str, what: &str) -> Result<()> {
    let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
    let mut file = File::open(path).map_err(|e| io_error("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?
        .len();
    let (name, got) = match (hex, etag.len()) {
        (true, 64) => ("sha256", digest_hex(sha2::Sha256::new(), &mut file, path)?),
        (true, 40) => {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {len}\0").as_bytes());
            ("git blob sha1", digest_hex(h, &mut file, path)?)
        }
        _ => {
            eprintln!("bitnet: {what}: its ETag {etag:?} is neither a sha256 nor a git sha1, so the bytes are not verified");
            return Ok(());
        }
    };
    if got.eq_ignore_ascii_case(etag) {
        Ok(())
    } else {
        Err(Error::format(format!(
            "{what}: {name} mismatch: the hub announced {etag}, the {len} bytes received hash to \
             {got}; the download was deleted"
        )))
    }
}

fn digest_hex(mut h: impl sha1::Digest, file: &mut File, path: &Path) -> Result<String> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| io_error("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks() {
        let ms = names(&["README.md", "ggml-model-i2_s.gguf", "data/config.json"]);
        let repo = "microsoft/bitnet-b1.58-2B-4T-gguf";
        assert_eq!(pick_gguf(repo, &ms, None).unwrap(), "ggml-model-i2_s.gguf");
        assert_eq!(
            pick_gguf(repo, &ms, Some("I2_S")).unwrap(),
            "ggml-model-i2_s.gguf"
        );
        assert!(pick_gguf(repo, &ms, Some("tq2_0")).is_err());
        assert!(pick_gguf(repo, &ms, Some("x.gguf"))
            .unwrap_err()
            .message
            .contains("i2_s"));
        let several = names(&[
            "m-Q4_K_M.gguf",
            "m-Q4_K_S.gguf",
            "m-tq2_0.gguf",
            "m-i2_s.gguf",
        ]);
        assert_eq!(pick_gguf("o/n", &several, None).unwrap(), "m-i2_s.gguf");
        assert_eq!(
            pick_gguf("o/n", &several, Some("q4_k_m")).unwrap(),
            "m-Q4_K_M.gguf"
        );
        // A tag is a whole word: q4_k is not q4_k_m.
        let err = pick_gguf("o/n", &several, Some("q4_k"))
            .unwrap_err()
            .message;
        assert!(err.contains("no GGUF file of quantization q4_k"), "{err}");
        let twins = names(&["a/m-i2_s.gguf", "b/m-i2_s.gguf"]);
        let err = pick_gguf("o/n", &twins, Some("i2_s")).unwrap_err().message;
        assert!(err.contains("several GGUF files match"), "{err}");
        assert!(pick_gguf("o/n", &names(&["a.gguf", "b.gguf"]), None).is_err());
        assert!(pick_gguf("o/n", &names(&["config.json"]), None).is_err());
    }

    #[test]
    fn specs_and_urls() {
        assert_eq!(
            parse_spec("org/m:q4").unwrap(),
            ("org/m".into(), Some("q4".into()))
        );
        assert_eq!(parse_spec("org/m").unwrap(), ("org/m".into(), None));
        for bad in ["", "a/b/c", "../x", "org/", "a b/c", "org/--x"] {
            assert!(parse_spec(bad).is_err(), "{bad:?}");
        }
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("a b/c.gguf", true), "a%20b/c.gguf");
    }

    #[test]
    fn digests() {
        let dir = std::env::temp_dir().join(format!("bitnet-hub-digest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        fs::write(&p, b"hello\n").unwrap();
        // `git hash-object` of "hello\n" and `sha256sum` of it.
        check_digest(&p, "ce013625030ba8dba906f756967f9e9ca394464a", "t").unwrap();
        check_digest(
            &p,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            "t",
        )
        .unwrap();
        let err = check_digest(&p, &"0".repeat(64), "t").unwrap_err().message;
        assert!(err.contains("sha256 mismatch"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
