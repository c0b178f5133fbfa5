//! The cache of requantized output heads: a head made at load (`HeadType::Q8_0`, `Q4_0`, ...)
//! is written once beside the other caches, `<cache dir>/heads/<model path hash>-<head>.bin`,
//! and read back on later loads instead of being requantized (a read of its bytes against
//! 0.4-1 s of requantization on two cores for the 2B-4T head).
//!
//! The rule:
//! - **Key.** A cache file holds one head for one model file. Its header records what the head's
//!   bytes depend on: the model file's identity (device, inode, size, modification time in ns),
//!   the head tensor's place, type and shape in it, the head type asked for, and `VERSION` (our
//!   layout and quantizers: bump it when either changes). A load uses the file only when every
//!   field matches; the name only picks the slot (one per model path and head type), so an
//!   edited or replaced model file overwrites its slot instead of adding files.
//! - **Checks.** The header carries its own hash and the hash of the payload; the file length
//!   must be exactly header + payload. A truncated, damaged or foreign file is ignored (the
//!   head is requantized and the slot rewritten); nothing in it is trusted before the checks.
//! - **Writes** go to a temporary file in the same directory, renamed over the slot when
//!   complete, so a reader never sees half a file; a failed write leaves no cache and is not an
//!   error (the cache is an optimization). No fsync (it cost the first load over a second): a
//!   crash that loses the data behind a renamed file leaves a file the checks reject.
//! - **Opt-out:** `BITNET_HEAD_CACHE=0` (no reads, no writes); no cache directory
//!   (`cache::dir` is None) means no cache either.
//!
//! The payload is the head's arrays in native byte order (the key records the byte order).

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::kernels::pool::{self, SendPtr};

/// Our layout of every cached head type and the quantizers that fill it; part of the key.
const VERSION: u64 = 1;
const MAGIC: &[u8; 8] = b"BNHEADS\0";
/// Key words: version, byte order, dev, inode, size, mtime s, mtime ns, tensor offset, tensor
/// bytes, stored type id, rows, cols, head type.
const KEY_WORDS: usize = 13;
/// Section lengths a head may have (unused ones are 0).
const MAX_SECTIONS: usize = 4;
/// Header: magic, key, section lengths, payload hash, header hash; padded so that the payload
/// starts on a cache line.
const HEADER_BYTES: usize = 256;
const HEADER_USED: usize = 8 + 8 * (KEY_WORDS + MAX_SECTIONS + 2);
const _: () = assert!(HEADER_USED <= HEADER_BYTES);

/// What a cached head's bytes depend on (`CacheSlot::new`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadKey {
    /// The head tensor's byte range in the model file.
    pub offset: u64,
    pub len: u64,
    /// The stored tensor's ggml type id, rows and columns.
    pub stored_type: u32,
    pub rows: u64,
    pub cols: u64,
    /// Which head is made from it (`HeadType` as a number).
    pub head: u32,
}

/// One head's cache file and the key it must carry.
#[derive(Clone, Debug)]
pub struct CacheSlot {
    pub path: PathBuf,
    key: [u64; KEY_WORDS],
}

/// Whether `BITNET_HEAD_CACHE` allows the cache (unset, or anything but `0`/`off`/`false`).
pub fn enabled() -> bool {
    !matches!(
        crate::env::var(crate::env::HEAD_CACHE).as_deref(),
        Some("0" | "off" | "false")
    )
}

/// The directory of the head cache: `<cache::dir>/heads`, when enabled and there is one.
pub fn default_dir() -> Option<PathBuf> {
    if !enabled() {
        return None;
    }
    crate::cache::dir().map(|d| d.join("heads"))
}

impl CacheSlot {
    /// The slot for the head `key` of the model at `model_path` (whose open file's metadata is
    /// `meta`), in directory `dir`.
    pub fn new(dir: &Path, model_path: &Path, meta: &std::fs::Metadata, key: HeadKey) -> CacheSlot {
        let (dev, ino, mtime_s, mtime_ns) = file_identity(meta);
        let words = [
            VERSION,
            u64::from(cfg!(target_endian = "little")),
            dev,
            ino,
            meta.len(),
            mtime_s,
            mtime_ns,
            key.offset,
            key.len,
            u64::from(key.stored_type),
            key.rows,
            key.cols,
            u64::from(key.head),
        ];
        let full = std::fs::canonicalize(model_path).unwrap_or_else(|_| model_path.to_path_buf());
        let name_hash = hash(full.as_os_str().as_encoded_bytes(), 0);
        CacheSlot {
            path: dir.join(format!("{name_hash:016x}-{}.bin", key.head)),
            key: words,
        }
    }

    /// Fills `sections` (each exactly the length it had when stored) from the cache file;
    /// false, with the sections' contents unspecified, when there is no valid file for this key.
    pub fn load(&self, sections: &mut [&mut [u8]]) -> bool {
        self.try_load(sections).unwrap_or(false)
    }

    fn try_load(&self, sections: &mut [&mut [u8]]) -> std::io::Result<bool> {
        if sections.len() > MAX_SECTIONS {
            return Ok(false);
        }
        let mut file = std::fs::File::open(&self.path)?;
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact(&mut header)?;
        let Some(want) = self.header(sections.iter().map(|s| s.len()), None) else {
            return Ok(false);
        };
        // Everything but the payload hash must match what this key and these lengths give.
        let hash_at = HEADER_USED - 16;
        if header[..hash_at] != want[..hash_at]
            || word(&header, HEADER_USED - 8) != hash(&header[..HEADER_USED - 8], 1)
        {
            return Ok(false);
        }
        let payload: u64 = sections.iter().map(|s| s.len() as u64).sum();
        if file.metadata()?.len() != HEADER_BYTES as u64 + payload {
            return Ok(false);
        }
        // Read on the pool's threads: the copy out of the page cache and the first touch of
        // the fresh pages go in parallel; then the payload is hashed in order.
        let ptrs: Vec<SendPtr<u8>> = sections
            .iter_mut()
            .map(|s| SendPtr(s.as_mut_ptr()))
            .collect();
        let lens: Vec<usize> = sections.iter().map(|s| s.len()).collect();
        if on_pool_parts(&lens, &|k, part, at| {
            // SAFETY: `part` lies inside section k (`on_pool_parts` splits within its length)
            // and is this thread's alone; the sections outlive the call.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(ptrs[k].get().add(part.start), part.len())
            };
            file.read_exact_at(dst, at)
        })
        .is_err()
        {
            return Ok(false);
        }
        let mut h = Hasher::new(2);
        for s in sections.iter() {
            h.update(s);
        }
        Ok(h.finish() == word(&header, hash_at))
    }

    /// Writes `sections` as this key's cache file (temporary file, then rename). Errors are
    /// returned for the caller to ignore or report.
    pub fn store(&self, sections: &[&[u8]]) -> std::io::Result<()> {
        let mut h = Hasher::new(2);
        for s in sections {
            h.update(s);
        }
        let header = self
            .header(sections.iter().map(|s| s.len()), Some(h.finish()))
            .ok_or_else(|| std::io::Error::other("too many sections"))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        // Written on the pool's threads (each a part of every section at its offset).
        let written = (|| {
            let f = std::fs::File::create(&tmp)?;
            f.write_all_at(&header, 0)?;
            let lens: Vec<usize> = sections.iter().map(|s| s.len()).collect();
            on_pool_parts(&lens, &|k, part, at| f.write_all_at(&sections[k][part], at))
        })();
        match written.and_then(|()| std::fs::rename(&tmp, &self.path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The header for this key and these section lengths (payload hash 0 when not given, and
    /// then no header hash either); None for too many sections.
    fn header(
        &self,
        lens: impl Iterator<Item = usize>,
        payload_hash: Option<u64>,
    ) -> Option<[u8; HEADER_BYTES]> {
        let mut words = Vec::with_capacity(KEY_WORDS + MAX_SECTIONS + 1);
        words.extend_from_slice(&self.key);
        let lens: Vec<u64> = lens.map(|l| l as u64).collect();
        if lens.len() > MAX_SECTIONS {
            return None;
        }
        words.extend((0..MAX_SECTIONS).map(|i| lens.get(i).copied().unwrap_or(0)));
        words.push(payload_hash.unwrap_or(0));
        let mut out = [0u8; HEADER_BYTES];
        out[..8].copy_from_slice(MAGIC);
        for (i, w) in words.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        if payload_hash.is_some() {
            let hh = hash(&out[..HEADER_USED - 8], 1);
            out[HEADER_USED - 8..HEADER_USED].copy_from_slice(&hh.to_le_bytes());
        }
        Some(out)
    }
}

/// A head the cache can hold: made of byte arrays whose lengths follow from rows and columns.
pub trait CachedHead: Sized {
    /// A head of zeros of this shape, to be filled through `byte_parts_mut`.
    fn zeroed(rows: usize, cols: usize) -> Self;
    fn byte_parts(&self) -> [&[u8]; 2];
    fn byte_parts_mut(&mut self) -> [&mut [u8]; 2];
}

/// The head of `rows` x `cols` from `slot` when it holds a valid one, else `make()`, written to
/// the slot for the next load (a failed write only costs that load its cache).
pub fn load_or_make<H: CachedHead>(
    slot: Option<&CacheSlot>,
    rows: usize,
    cols: usize,
    make: impl FnOnce() -> crate::error::Result<H>,
) -> crate::error::Result<H> {
    if let Some(slot) = slot {
        let mut head = H::zeroed(rows, cols);
        if slot.load(&mut head.byte_parts_mut()) {
            return Ok(head);
        }
    }
    let head = make()?;
    if let Some(slot) = slot {
        let _ = slot.store(&head.byte_parts());
    }
    Ok(head)
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (
        meta.dev(),
        meta.ino(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
    )
}

#[cfg(not(unix))]
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64, u64, u64) {
    let t = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    (0, 0, t.as_secs(), u64::from(t.subsec_nanos()))
}

/// `f(k, part, offset)` over the payload: sections of `lens` bytes one after another from the
/// end of the header, each split into one part per pool thread (`part`: a range of section k,
/// `offset`: where it lies in the file). The first error is returned.
fn on_pool_parts(
    lens: &[usize],
    f: &(dyn Fn(usize, Range<usize>, u64) -> std::io::Result<()> + Sync),
) -> std::io::Result<()> {
    let error = Mutex::new(None);
    let pool = pool::global();
    pool.run(pool.max_threads(), &|i, n| {
        let mut at = HEADER_BYTES as u64;
        for (k, &len) in lens.iter().enumerate() {
            let part = pool::split(len, 1 << 16, i, n);
            if let Err(e) = f(k, part.clone(), at + part.start as u64) {
                error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
            at += len as u64;
        }
    });
    match error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A 64-bit hash of `bytes` (`Hasher`).
fn hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = Hasher::new(seed);
    h.update(bytes);
    h.finish()
}

/// A fast checksum over streams of bytes: four lanes, each taking every fourth little-endian
/// word as `lane = rotl((lane ^ w) * K, 29)` (a bijection of the lane for a fixed word, so any
/// one changed word changes the result), the tail zero-padded, the length and lanes mixed at the
/// end. Not cryptographic: it detects damage, not tampering (the cache is our own file).
struct Hasher {
    lanes: [u64; 4],
    /// Bytes of a word group not yet taken (fewer than 32).
    pending: Vec<u8>,
    len: u64,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher {
    fn new(seed: u64) -> Hasher {
        let s = seed.wrapping_mul(K);
        Hasher {
            lanes: [s ^ 1, s ^ 2, s ^ 3, s ^ 4],
            pending: Vec::with_capacity(32),
            len: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.pending.is_empty() {
            let take = (32 - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < 32 {
                return;
            }
            let group: [u8; 32] = self.pending[..].try_into().expect("32 bytes");
            self.pending.clear();
            self.take(&group);
        }
        let mut groups = bytes.chunks_exact(32);
        for g in &mut groups {
            self.take(g);
        }
        self.pending.extend_from_slice(groups.remainder());
    }

    fn take(&mut self, group: &[u8]) {
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let w = word(group, 8 * i);
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
        }
    }

    fn finish(mut self) -> u64 {
        if !self.pending.is_empty() {
            let mut group = [0u8; 32];
            group[..self.pending.len()].copy_from_slice(&self.pending);
            self.take(&group);
        }
        let mut h = self.len.wrapping_mul(K);
        for lane in self.lanes {
            h = (h ^ lane).wrapping_mul(K).rotate_left(31);
        }
        h ^ (h >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("bitnet-head-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn slot(dir: &Path, head: u32) -> CacheSlot {
        let model = dir.join("model.gguf");
        std::fs::write(&model, b"not really a model").unwrap();
        let meta = std::fs::metadata(&model).unwrap();
        CacheSlot::new(&dir.join("heads"), &model, &meta, key(head))
    }

    fn key(head: u32) -> HeadKey {
        HeadKey {
            offset: 4096,
            len: 1000,
            stored_type: 1,
            rows: 10,
            cols: 64,
            head,
        }
    }

    fn payload() -> (Vec<u8>, Vec<u8>) {
        let a: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
        let b: Vec<u8> = (0..333u32).map(|i| (i * 7 % 13) as u8).collect();
        (a, b)
    }

    #[test]
    fn round_trip_and_rejects() {
        let dir = scratch("rt");
        let s = slot(&dir, 1);
        let (a, b) = payload();
        let (mut x, mut y) = (vec![0u8; a.len()], vec![0u8; b.len()]);
        assert!(!s.load(&mut [&mut x, &mut y]), "no file yet");
        s.store(&[&a, &b]).unwrap();
        assert!(s.load(&mut [&mut x, &mut y]));
        assert_eq!((&x, &y), (&a, &b));
        // Other lengths than stored, or another head type's key: not this head.
        let mut short = vec![0u8; a.len() - 1];
        assert!(!s.load(&mut [&mut short, &mut y]));
        let other = CacheSlot {
            path: s.path.clone(),
            ..slot(&dir, 2)
        };
        assert!(!other.load(&mut [&mut x, &mut y]));

        let good = std::fs::read(&s.path).unwrap();
        // Truncated anywhere: in the header, in the payload, by one byte.
        for cut in [10, HEADER_BYTES + 5, good.len() - 1] {
            std::fs::write(&s.path, &good[..cut]).unwrap();
            assert!(!s.load(&mut [&mut x, &mut y]), "truncated at {cut}");
        }
        // One flipped bit anywhere (header, first, last payload byte): rejected.
        for at in [
            3,
            8 + 8 * 4,
            HEADER_BYTES,
            HEADER_BYTES + 5000,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&s.path, &bad).unwrap();
            assert!(!s.load(&mut [&mut x, &mut y]), "flip at {at}");
        }
        // Extra bytes after the payload: rejected too.
        let mut long = good.clone();
        long.push(0);
        std::fs::write(&s.path, &long).unwrap();
        assert!(!s.load(&mut [&mut x, &mut y]));
        // Rewriting repairs the slot.
        s.store(&[&a, &b]).unwrap();
        assert!(s.load(&mut [&mut x, &mut y]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn model_change_invalidates() {
        let dir = scratch("mtime");
        let s = slot(&dir, 1);
        let (a, b) = payload();
        s.store(&[&a, &b]).unwrap();
        // The model file rewritten with other contents and length: a new key, same slot.
        let model = dir.join("model.gguf");
        std::fs::write(&model, b"another model, longer than before").unwrap();
        let meta = std::fs::metadata(&model).unwrap();
        let s2 = CacheSlot::new(&dir.join("heads"), &model, &meta, key(1));
        assert_eq!(s2.path, s.path);
        let (mut x, mut y) = (vec![0u8; a.len()], vec![0u8; b.len()]);
        assert!(!s2.load(&mut [&mut x, &mut y]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hash_streams_and_sees_one_word() {
        let (a, _) = payload();
        let mut h = Hasher::new(2);
        for part in a.chunks(13) {
            h.update(part);
        }
        assert_eq!(h.finish(), hash(&a, 2));
        let mut b = a.clone();
        b[4000] ^= 1;
        assert_ne!(hash(&a, 2), hash(&b, 2));
        assert_ne!(hash(&a[..100], 2), hash(&a[..101], 2));
        assert_ne!(
            hash(&[0u8; 5], 2),
            hash(&[0u8; 6], 2),
            "zero tail, other length"
        );
    }
}
