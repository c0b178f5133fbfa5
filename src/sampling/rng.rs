//! The reference's random numbers, bit for bit: `std::mt19937` and the libstdc++ (GCC 12)
//! arithmetic of `std::generate_canonical`, `std::uniform_real_distribution` and
//! `std::discrete_distribution`, which llama.cpp's seeded samplers draw through.

/// MT19937, the 32-bit Mersenne Twister (`std::mt19937`).
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937 {{ index: {} }}", self.index)
    }
}

const N: usize = 624;
const M: usize = 397;

impl Mt19937 {
    /// `std::mt19937(seed)`.
    pub fn new(seed: u32) -> Mt19937 {
        let mut rng = Mt19937 {
            state: [0; N],
            index: N,
        };
        rng.seed(seed);
        rng
    }

    /// `rng.seed(seed)`: the standard initialisation (multiplier 1812433253).
    pub fn seed(&mut self, seed: u32) {
        self.state[0] = seed;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % N] & LOWER);
            let mut next = self.state[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= MATRIX_A;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// The next 32-bit output (`rng()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// `std::generate_canonical<double, 53>(rng)`: two draws, `(u1 + u2 * 2^32) / 2^64` in double
/// (the sum rounds once), clamped below 1.
pub fn canonical_f64(rng: &mut Mt19937) -> f64 {
    let low = rng.next_u32() as f64;
    let high = rng.next_u32() as f64;
    let sum = low + high * 4_294_967_296.0;
    let r = sum / 18_446_744_073_709_551_616.0;
    if r >= 1.0 {
        f64::from_bits(1.0f64.to_bits() - 1)
    } else {
        r
    }
}

/// `std::generate_canonical<float, 24>(rng)`: one draw, rounded to float, divided by 2^32.
pub fn canonical_f32(rng: &mut Mt19937) -> f32 {
    let r = rng.next_u32() as f32 / 4_294_967_296.0f32;
    if r >= 1.0 {
        f32::from_bits(1.0f32.to_bits() - 1)
    } else {
        r
    }
}

/// `std::uniform_real_distribution<double>(0, 1)(rng)`.
pub fn uniform_f64(rng: &mut Mt19937) -> f64 {
    canonical_f64(rng) * (1.0 - 0.0) + 0.0
}

/// `std::uniform_real_distribution<float>(0, 1)(rng)`.
pub fn uniform_f32(rng: &mut Mt19937) -> f32 {
    canonical_f32(rng) * (1.0f32 - 0.0) + 0.0
}

/// `std::discrete_distribution<int>(weights)(rng)`, libstdc++'s way: with fewer than two
/// weights it returns 0 without drawing; otherwise the weights (as double) are divided by their
/// sum, accumulated into a cumulative table whose last entry is forced to 1, and the first
/// entry not below one canonical double is the answer.
pub fn discrete(rng: &mut Mt19937, weights: impl ExactSizeIterator<Item = f32>) -> usize {
    if weights.len() < 2 {
        return 0;
    }
    let mut cumulative: Vec<f64> = weights.map(|w| w as f64).collect();
    let sum: f64 = cumulative.iter().fold(0.0, |acc, &w| acc + w);
    let mut running = 0.0f64;
    for w in cumulative.iter_mut() {
        running += *w / sum;
        *w = running;
    }
    let last = cumulative.len() - 1;
    cumulative[last] = 1.0;
    let p = canonical_f64(rng);
    lower_bound(&cumulative, p)
}

/// `std::lower_bound`: the first index whose value is not less than `value`.
fn lower_bound(sorted: &[f64], value: f64) -> usize {
    let mut first = 0usize;
    let mut len = sorted.len();
    while len > 0 {
        let half = len >> 1;
        let middle = first + half;
        if sorted[middle] < value {
            first = middle + 1;
            len = len - half - 1;
        } else {
            len = half;
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard_10000th_output() {
        // The C++ standard ([rand.predef]) fixes the 10000th output of a default-constructed
        // mt19937 (seed 5489) at 4123659995.
        let mut rng = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn canonical_values_stay_below_one() {
        let mut rng = Mt19937::new(1);
        for _ in 0..10000 {
            let d = canonical_f64(&mut rng);
            assert!((0.0..1.0).contains(&d));
            let f = canonical_f32(&mut rng);
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn discrete_with_one_weight_does_not_draw() {
        let mut rng = Mt19937::new(7);
        let mut twin = rng.clone();
        assert_eq!(discrete(&mut rng, [0.3f32].into_iter()), 0);
        assert_eq!(rng.next_u32(), twin.next_u32());
    }

    #[test]
    fn discrete_never_picks_a_zero_weight() {
        let mut rng = Mt19937::new(3);
        for _ in 0..1000 {
            let i = discrete(&mut rng, [0.0f32, 1.0, 0.0, 2.0].into_iter());
            assert!(i == 1 || i == 3, "{i}");
        }
    }
}
