//! Sampling: turning a row of logits into the next token, as llama.cpp's `llama_sampler_*`
//! samplers do, with the same results (same token, same candidate arrays) for the same input.
//!
//! A sampler works on `Candidates`, the mirror of `llama_token_data_array`: it may rescale
//! logits, compute probabilities, reorder, shrink `size`, set `sorted`, and the last one in a
//! chain sets `selected`. Samplers are built by the functions below, named after
//! `llama_sampler_init_*` and taking the same parameters; `Chain` runs several in order.
//!
//! - `rng`: `std::mt19937` and libstdc++'s distribution arithmetic, so seeded sampling draws the
//!   same numbers as the reference;
//! - `sort`: libstdc++'s `std::sort` / `std::partial_sort`, so ties come out in the same order;
//! - `samplers`: one struct per sampler; `penalties`: repetition penalties, DRY, logit bias.

pub mod grammar;
pub mod penalties;
pub mod rng;
pub mod samplers;
pub mod sort;

pub use penalties::{dry, dry_with_token_breakers, logit_bias, penalties, DryVocab};
pub use samplers::{
    dist, greedy, min_p, mirostat, mirostat_v2, temp, temp_ext, top_k, top_n_sigma, top_p, typical,
    xtc,
};

/// `LLAMA_DEFAULT_SEED`: as a seed, "pick a random one"; from `get_seed`, "no seed".
pub const DEFAULT_SEED: u32 = 0xFFFF_FFFF;

/// One candidate token; the same layout as `llama_token_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenData {
    pub id: i32,
    pub logit: f32,
    pub p: f32,
}

// The C layer hands `llama_token_data` arrays over as `TokenData` slices.
const _: () =
    assert!(std::mem::size_of::<TokenData>() == 12 && std::mem::align_of::<TokenData>() == 4);

/// Mirrors `llama_token_data_array`: `data[..size]` are the live candidates (a sampler may
/// shrink `size`, reorder, set `sorted`), `selected` = index into `data` of the chosen token or
/// -1.
///
/// One more freedom, as in C: a sampler may advance `data` itself (XTC drops the most likely
/// candidates by moving the array's start, like the reference moves its `data` pointer). A C
/// wrapper therefore writes back `data.as_ptr()` as well as `size`.
pub struct Candidates<'a> {
    pub data: &'a mut [TokenData],
    pub size: usize,
    pub selected: i64,
    pub sorted: bool,
}

impl<'a> Candidates<'a> {
    /// All of `data` live, nothing selected, not sorted.
    pub fn new(data: &'a mut [TokenData]) -> Candidates<'a> {
        let size = data.len();
        Candidates {
            data,
            size,
            selected: -1,
            sorted: false,
        }
    }

    /// The live candidates. `size` is clamped to the array, so a caller's inconsistent `size`
    /// cannot make a sampler read past it.
    pub fn live(&self) -> &[TokenData] {
        &self.data[..self.size.min(self.data.len())]
    }

    pub fn live_mut(&mut self) -> &mut [TokenData] {
        let n = self.size.min(self.data.len());
        &mut self.data[..n]
    }

    /// Drops the first `n` candidates by moving the start of `data` (the C pointer `data += n`).
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.data.len());
        let data = std::mem::take(&mut self.data);
        self.data = &mut data[n..];
        self.size = self.size.saturating_sub(n);
    }

    /// The selected token, when `selected` is a live index.
    pub fn selected_token(&self) -> Option<i32> {
        let i = usize::try_from(self.selected).ok()?;
        self.live().get(i).map(|d| d.id)
    }
}

/// One candidate per vocabulary entry, in id order, p = 0 (what `llama_sampler_sample` builds
/// from a row of logits).
pub fn candidates_from_logits(logits: &[f32]) -> Vec<TokenData> {
    logits
        .iter()
        .enumerate()
        .map(|(id, &logit)| TokenData {
            id: id as i32,
            logit,
            p: 0.0,
        })
        .collect()
}

/// A sampler: the Rust side of `llama_sampler_i`.
pub trait Sampler: Send {
    fn name(&self) -> &'static str;
    fn accept(&mut self, _token: i32) {}
    fn apply(&mut self, cur: &mut Candidates<'_>);
    fn reset(&mut self) {}
    fn clone_box(&self) -> Box<dyn Sampler>;
    /// `llama_sampler_get_seed`: the seed in use (the drawn one when created with
    /// `DEFAULT_SEED`) for dist and mirostat v1/v2, the last such seed in a chain, else
    /// `DEFAULT_SEED`.
    fn get_seed(&self) -> u32 {
        DEFAULT_SEED
    }
}

impl Clone for Box<dyn Sampler> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A sampler that does nothing, under a name: what the reference returns for a sampler whose
/// parameters disable it (e.g. `top_k(0)` is "?top-k").
#[derive(Clone, Debug)]
pub struct Empty {
    pub name: &'static str,
}

impl Sampler for Empty {
    fn name(&self) -> &'static str {
        self.name
    }
    fn apply(&mut self, _cur: &mut Candidates<'_>) {}
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

pub(crate) fn empty(name: &'static str) -> Box<dyn Sampler> {
    Box::new(Empty { name })
}

/// Samplers run one after another (`llama_sampler_chain`).
#[derive(Clone, Default)]
pub struct Chain {
    samplers: Vec<Box<dyn Sampler>>,
}

impl Chain {
    pub fn new() -> Chain {
        Chain::default()
    }

    /// `llama_sampler_chain_add`.
    pub fn add(&mut self, sampler: Box<dyn Sampler>) {
        self.samplers.push(sampler);
    }

    /// Builder form of `add`.
    pub fn with(mut self, sampler: Box<dyn Sampler>) -> Chain {
        self.add(sampler);
        self
    }

    /// `llama_sampler_chain_n`.
    pub fn len(&self) -> usize {
        self.samplers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samplers.is_empty()
    }

    /// `llama_sampler_chain_get`.
    pub fn get(&self, i: usize) -> Option<&dyn Sampler> {
        self.samplers.get(i).map(|s| s.as_ref())
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Box<dyn Sampler>> {
        self.samplers.get_mut(i)
    }

    /// `llama_sampler_chain_remove`: takes the sampler out (None when out of range).
    pub fn remove(&mut self, i: usize) -> Option<Box<dyn Sampler>> {
        (i < self.samplers.len()).then(|| self.samplers.remove(i))
    }

    /// `llama_sampler_sample` over a row of logits: candidates in id order, apply, accept the
    /// selected token. None when the chain selected nothing valid (e.g. no selecting sampler at
    /// its end, or no logits).
    pub fn sample(&mut self, logits: &[f32]) -> Option<i32> {
        let mut data = candidates_from_logits(logits);
        let mut cur = Candidates::new(&mut data);
        self.apply(&mut cur);
        let token = cur.selected_token()?;
        self.accept(token);
        Some(token)
    }
}

impl Sampler for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }
    fn accept(&mut self, token: i32) {
        for s in &mut self.samplers {
            s.accept(token);
        }
    }
    fn apply(&mut self, cur: &mut Candidates<'_>) {
        for s in &mut self.samplers {
            s.apply(cur);
        }
    }
    fn reset(&mut self) {
        for s in &mut self.samplers {
            s.reset();
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
    fn get_seed(&self) -> u32 {
        self.samplers
            .iter()
            .rev()
            .map(|s| s.get_seed())
            .find(|&seed| seed != DEFAULT_SEED)
            .unwrap_or(DEFAULT_SEED)
    }
}

/// The reference's `get_rng_seed`: `DEFAULT_SEED` draws a random seed, any other is used as is.
pub fn resolve_seed(seed: u32) -> u32 {
    if seed != DEFAULT_SEED {
        return seed;
    }
    use std::hash::{BuildHasher, Hasher};
    // RandomState is keyed from the operating system's random source once per process and
    // varies per instance; mix in the clock for good measure.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish() as u32
}
