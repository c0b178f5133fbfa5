//! A persistent thread pool for the matmuls: workers are spawned once (one per core, less the
//! caller), spin briefly waiting for the next job and then sleep, so that dispatching a small
//! matrix-vector product costs well under a microsecond instead of a thread spawn.
//!
//! `run(n_threads, job)` calls `job(i, n)` for every i in 0..n, the caller doing i = 0, and
//! returns when all are done. One job runs at a time; a second caller meanwhile (another
//! context on another thread) runs its job alone on its own thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A job as the workers see it: the caller's closure with its lifetime erased (see `run`).
type Job = &'static (dyn Fn(usize, usize) + Sync);

struct Shared {
    /// Bumped once per job; workers wait for it to change.
    generation: AtomicUsize,
    /// The current job and its thread count, written before `generation` is bumped.
    job: Mutex<Option<(Job, usize)>>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// Workers asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Set when a worker's part of the job panicked.
    panicked: AtomicBool,
}

pub struct Pool {
    shared: Arc<Shared>,
    n_workers: usize,
    /// Held by the caller that owns the workers for the current job.
    busy: Mutex<()>,
}

/// How long an idle worker spins before it sleeps: long enough to cover the gap between two
/// matmuls of a forward pass, short enough not to burn a core between requests.
const SPIN: Duration = Duration::from_micros(300);

fn worker(shared: Arc<Shared>, index: usize) {
    let mut seen = 0usize;
    loop {
        // Wait for a new generation: spin, then sleep.
        // No sched_yield while spinning: a yield hands the core to any runnable process of
        // the machine for its whole time slice, so a worker that yields between two matmuls
        // of one forward pass comes back milliseconds late whenever anything else is running.
        let start = Instant::now();
        let mut spins = 0u32;
        while shared.generation.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut guard = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                while shared.generation.load(Ordering::SeqCst) == seen {
                    guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                break;
            }
        }
        seen = shared.generation.load(Ordering::Acquire);
        let job = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((job, n)) = job {
            if index < n {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index, n)));
                if r.is_err() {
                    shared.panicked.store(true, Ordering::SeqCst);
                }
            }
        }
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    fn new(n_threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            job: Mutex::new(None),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            panicked: AtomicBool::new(false),
        });
        let mut n_workers = 0;
        for index in 1..n_threads {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("bitnet-worker-{index}"))
                .spawn(move || worker(s, index));
            if spawned.is_err() {
                break;
            }
            n_workers += 1;
        }
        Pool {
            shared,
            n_workers,
            busy: Mutex::new(()),
        }
    }

    /// Threads a job can use: the workers plus the caller.
    pub fn max_threads(&self) -> usize {
        self.n_workers + 1
    }

    /// Runs `job(i, n)` for i in 0..n (n = `n_threads` capped by the pool size) and waits.
    pub fn run(&self, n_threads: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let n = n_threads.clamp(1, self.max_threads());
        if n == 1 {
            return job(0, 1);
        }
        let Ok(_busy) = self.busy.try_lock() else {
            return job(0, 1);
        };
        // SAFETY: the lifetime is erased only for the duration of this call: the job is
        // cleared and every worker has decremented `pending` (so has returned from it) before
        // `run` returns, and `busy` keeps any other caller from publishing a job meanwhile.
        let erased: Job = unsafe { std::mem::transmute::<_, Job>(job) };
        let s = &self.shared;
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((erased, n));
        s.pending.store(self.n_workers, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(0, n)));
        // Wait for the workers. Jobs hand out work in chunks (`chunks`), so a worker still busy
        // here is either finishing its last chunk (microseconds: spin) or off its core. Only
        // after a while is it worth giving this core away, in case the machine has more
        // runnable threads than cores and the late worker is waiting for this one.
        let start = Instant::now();
        let mut spins = 0u32;
        while s.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                std::thread::yield_now();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a thread-pool worker panicked");
        }
    }
}

/// The process-wide pool, one thread per available core (`BITNET_POOL_THREADS`, `crate::env`,
/// overrides).
pub fn global() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = crate::env::var(crate::env::POOL_THREADS)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
        Pool::new(n.clamp(1, 256))
    })
}

/// The threads a matmul uses unless told otherwise: every thread the pool has.
pub fn default_threads() -> usize {
    global().max_threads()
}

/// A raw pointer that may cross to pool threads (each thread writes a disjoint part).
#[derive(Clone, Copy)]
pub struct SendPtr<T>(pub *mut T);
// SAFETY: only used to hand disjoint output ranges to pool threads within one `run`.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// `f(out rows, x rows)` over the rows (of `cols` values) of `out` and `x`, the rows split
/// between up to `threads` pool threads when there are at least 4. For row-wise steps (norms,
/// activations, residuals) whose arithmetic per row does not depend on the split.
pub fn rows_mut(
    out: &mut [f32],
    x: &[f32],
    cols: usize,
    threads: usize,
    f: &(dyn Fn(&mut [f32], &[f32]) + Sync),
) {
    let n = out.len() / cols;
    assert!(x.len() >= n * cols);
    if n < 4 || threads <= 1 {
        return f(out, &x[..n * cols]);
    }
    let ptr = SendPtr(out.as_mut_ptr());
    global().run(threads, &|i, nt| {
        let rows = split(n, 1, i, nt);
        // SAFETY: thread i gets rows `rows` of `out` alone (split gives disjoint ranges) and
        // `out` outlives `run`.
        let o = unsafe {
            std::slice::from_raw_parts_mut(ptr.get().add(rows.start * cols), rows.len() * cols)
        };
        f(o, &x[rows.start * cols..rows.end * cols]);
    });
}

/// `f(part)` over nearly equal parts of `out` (starts aligned to 16 values), one per pool
/// thread, for element-wise steps when `out` is long enough to be worth splitting.
pub fn parts_mut(out: &mut [f32], threads: usize, f: &(dyn Fn(&mut [f32]) + Sync)) {
    if out.len() < 1 << 14 || threads <= 1 {
        return f(out);
    }
    let (ptr, len) = (SendPtr(out.as_mut_ptr()), out.len());
    global().run(threads, &|i, nt| {
        let part = split(len, 16, i, nt);
        // SAFETY: thread i gets range `part` of `out` alone (split gives disjoint ranges) and
        // `out` outlives `run`.
        f(unsafe { std::slice::from_raw_parts_mut(ptr.get().add(part.start), part.len()) });
    });
}

/// `f(range)` over `0..len` in chunks of `chunk` (the last one shorter), on up to `threads`
/// pool threads that each take the next chunk as they finish the last. A thread the machine
/// takes off its core for a time slice then holds up only its current chunk: the others take
/// the rest, where a fixed split would leave them waiting for it at the end.
pub fn chunks(
    threads: usize,
    len: usize,
    chunk: usize,
    f: &(dyn Fn(std::ops::Range<usize>) + Sync),
) {
    let chunk = chunk.max(1);
    if threads <= 1 || len <= chunk {
        return f(0..len);
    }
    let next = AtomicUsize::new(0);
    global().run(threads, &|_, _| loop {
        let start = next.fetch_add(chunk, Ordering::Relaxed);
        if start >= len {
            break;
        }
        f(start..(start + chunk).min(len));
    });
}

/// A chunk size for `chunks`: about `per_thread` chunks per thread, a multiple of `align`, at
/// least `min`.
pub fn chunk_len(len: usize, threads: usize, per_thread: usize, align: usize, min: usize) -> usize {
    (len / (threads.max(1) * per_thread))
        .next_multiple_of(align)
        .max(min)
}

/// Splits `0..len` into `n` nearly equal ranges whose starts are multiples of `align`; part `i`.
pub fn split(len: usize, align: usize, i: usize, n: usize) -> std::ops::Range<usize> {
    let units = len.div_ceil(align);
    let (lo, hi) = (units * i / n, units * (i + 1) / n);
    (lo * align).min(len)..(hi * align).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once() {
        let pool = Pool::new(3);
        for n in 1..=4 {
            let hits: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..100 {
                pool.run(n, &|i, nn| {
                    assert_eq!(nn, n.min(3));
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (i, h) in hits.iter().enumerate() {
                let want = if i < n.min(3) { 100 } else { 0 };
                assert_eq!(h.load(Ordering::Relaxed), want, "n {n} index {i}");
            }
        }
    }

    #[test]
    fn wakes_after_sleeping() {
        let pool = Pool::new(2);
        let count = AtomicUsize::new(0);
        pool.run(2, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(5)); // the worker is asleep by now
        pool.run(2, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn split_covers_aligned() {
        for len in [0, 1, 7, 64, 100, 2560] {
            for n in 1..5 {
                let parts: Vec<_> = (0..n).map(|i| split(len, 16, i, n)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[n - 1].end, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                    assert!(w[1].start % 16 == 0 || w[1].start == len);
                }
            }
        }
    }
}
