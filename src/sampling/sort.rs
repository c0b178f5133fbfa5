//! libstdc++'s (GCC 12) `std::sort` and `std::partial_sort`, step for step, and llama.cpp's
//! bucket partial sort on top of them. Both are unstable: which of two equal logits comes first
//! depends on the exact sequence of swaps, and the samplers expose that order (top-k keeps the
//! first k, greedy and dist report indices). Re-creating the algorithms keeps ties in the
//! reference's order.
//!
//! `less(a, b)` is the C++ comparator. The C++ code relies on a strict weak order to stay in
//! bounds ("unguarded" loops); here every loop is also bounded by the slice, so a comparator
//! that is not one (NaN logits) gives some order instead of undefined behaviour.

use super::TokenData;

const THRESHOLD: usize = 16;

/// `std::sort(v.begin(), v.end(), less)`.
pub fn sort<T: Copy>(v: &mut [T], less: &mut impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    if n == 0 {
        return;
    }
    let depth_limit = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    introsort_loop(v, 0, n, depth_limit, less);
    final_insertion_sort(v, 0, n, less);
}

/// `std::partial_sort(v.begin(), v.begin() + middle, v.end(), less)`.
pub fn partial_sort<T: Copy>(v: &mut [T], middle: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    let middle = middle.min(v.len());
    partial_sort_range(v, 0, middle, v.len(), less);
}

fn partial_sort_range<T: Copy>(
    v: &mut [T],
    first: usize,
    middle: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    heap_select(v, first, middle, last, less);
    sort_heap(v, first, middle, less);
}

fn introsort_loop<T: Copy>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    mut depth_limit: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    while last - first > THRESHOLD {
        if depth_limit == 0 {
            partial_sort_range(v, first, last, last, less);
            return;
        }
        depth_limit -= 1;
        let cut = unguarded_partition_pivot(v, first, last, less);
        introsort_loop(v, cut, last, depth_limit, less);
        last = cut;
    }
}

fn move_median_to_first<T: Copy>(
    v: &mut [T],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if less(&v[a], &v[b]) {
        if less(&v[b], &v[c]) {
            v.swap(result, b);
        } else if less(&v[a], &v[c]) {
            v.swap(result, c);
        } else {
            v.swap(result, a);
        }
    } else if less(&v[a], &v[c]) {
        v.swap(result, a);
    } else if less(&v[b], &v[c]) {
        v.swap(result, c);
    } else {
        v.swap(result, b);
    }
}

fn unguarded_partition<T: Copy>(
    v: &mut [T],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) -> usize {
    let end = last;
    loop {
        while first < end && less(&v[first], &v[pivot]) {
            first += 1;
        }
        last -= 1;
        while last > pivot && less(&v[pivot], &v[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        v.swap(first, last);
        first += 1;
    }
}

fn unguarded_partition_pivot<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    unguarded_partition(v, first + 1, last, first, less)
}

fn final_insertion_sort<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if last - first > THRESHOLD {
        insertion_sort(v, first, first + THRESHOLD, less);
        for i in first + THRESHOLD..last {
            unguarded_linear_insert(v, first, i, less);
        }
    } else {
        insertion_sort(v, first, last, less);
    }
}

fn insertion_sort<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        if less(&v[i], &v[first]) {
            let value = v[i];
            v.copy_within(first..i, first + 1);
            v[first] = value;
        } else {
            unguarded_linear_insert(v, first, i, less);
        }
    }
}

/// Moves `v[last]` down while it is less than its left neighbour (never below `floor`).
fn unguarded_linear_insert<T: Copy>(
    v: &mut [T],
    floor: usize,
    mut last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let value = v[last];
    while last > floor && less(&value, &v[last - 1]) {
        v[last] = v[last - 1];
        last -= 1;
    }
    v[last] = value;
}

// --- Heap operations over v[base..base + len], with C's signed index arithmetic. ---

fn push_heap<T: Copy>(
    v: &mut [T],
    base: usize,
    mut hole: isize,
    top: isize,
    value: T,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let mut parent = (hole - 1) / 2;
    while hole > top && less(&v[base + parent as usize], &value) {
        v[base + hole as usize] = v[base + parent as usize];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    v[base + hole as usize] = value;
}

fn adjust_heap<T: Copy>(
    v: &mut [T],
    base: usize,
    mut hole: isize,
    len: isize,
    value: T,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let top = hole;
    let mut second = hole;
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if less(&v[base + second as usize], &v[base + (second - 1) as usize]) {
            second -= 1;
        }
        v[base + hole as usize] = v[base + second as usize];
        hole = second;
    }
    if len & 1 == 0 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        v[base + hole as usize] = v[base + (second - 1) as usize];
        hole = second - 1;
    }
    push_heap(v, base, hole, top, value, less);
}

fn make_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let len = (last - first) as isize;
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = v[first + parent as usize];
        adjust_heap(v, first, parent, len, value, less);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

fn pop_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    result: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let value = v[result];
    v[result] = v[first];
    adjust_heap(v, first, 0, (last - first) as isize, value, less);
}

fn heap_select<T: Copy>(
    v: &mut [T],
    first: usize,
    middle: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    make_heap(v, first, middle, less);
    for i in middle..last {
        if less(&v[i], &v[first]) {
            pop_heap(v, first, middle, i, less);
        }
    }
}

fn sort_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    while last - first > 1 {
        last -= 1;
        pop_heap(v, first, last, last, less);
    }
}

// --- llama.cpp's orderings of candidates. ---

/// The candidates' order: higher logit first.
pub fn logit_greater(a: &TokenData, b: &TokenData) -> bool {
    a.logit > b.logit
}

/// C's `(int)x` on x86-64 (cvttss2si): truncation, and INT_MIN for NaN or out of range.
pub fn c_float_to_int(x: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    }
}

/// llama.cpp's `llama_token_data_array_partial_sort`: the top `npartial` of `cur` by logit,
/// through 128 histogram buckets over [-10, 10). Returns every candidate of the buckets it
/// needed (at least `npartial`), of which the first `npartial` are sorted.
pub fn bucket_partial_sort(cur: &[TokenData], npartial: usize) -> Vec<TokenData> {
    const NBUCKETS: usize = 128;
    const BUCKET_LOW: f32 = -10.0;
    const BUCKET_HIGH: f32 = 10.0;
    let bucket_scale = NBUCKETS as f32 / (BUCKET_HIGH - BUCKET_LOW);
    let bucket_inter = -BUCKET_LOW * bucket_scale;

    let mut bucket_of = Vec::with_capacity(cur.len());
    let mut histogram = [0usize; NBUCKETS];
    for d in cur {
        let ib = c_float_to_int(bucket_scale * d.logit + bucket_inter).clamp(0, NBUCKETS as i32 - 1)
            as usize;
        bucket_of.push(ib);
        histogram[ib] += 1;
    }
    // The lowest bucket still needed, walking down from the top.
    let mut have = 0usize;
    let mut lowest = 0usize;
    for ib in (0..NBUCKETS).rev() {
        have += histogram[ib];
        lowest = ib;
        if have >= npartial {
            break;
        }
    }
    // Lay the buckets out top first, each in input order.
    let mut start = [0usize; NBUCKETS];
    let mut offset = 0;
    for ib in (lowest..NBUCKETS).rev() {
        start[ib] = offset;
        offset += histogram[ib];
    }
    let placeholder = TokenData {
        id: 0,
        logit: 0.0,
        p: 0.0,
    };
    let mut out = vec![placeholder; have];
    for (d, &ib) in cur.iter().zip(&bucket_of) {
        if ib >= lowest {
            out[start[ib]] = *d;
            start[ib] += 1;
        }
    }
    // Sort every bucket above the lowest fully, and the lowest one partially.
    let mut pos = 0;
    let mut done = 0;
    for ib in (lowest + 1..NBUCKETS).rev() {
        sort(&mut out[pos..pos + histogram[ib]], &mut logit_greater);
        pos += histogram[ib];
        done += histogram[ib];
    }
    let need = npartial.saturating_sub(done);
    partial_sort(
        &mut out[pos..pos + histogram[lowest]],
        need,
        &mut logit_greater,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn sort_and_partial_sort_order_like_a_reference_sort() {
        let mut rng = SplitMix64(11);
        for n in [0usize, 1, 2, 3, 15, 16, 17, 40, 100, 1000] {
            for _ in 0..5 {
                // Few distinct values: many ties.
                let v: Vec<i32> = (0..n).map(|_| rng.below(7) as i32).collect();
                let mut expected = v.clone();
                expected.sort();
                let mut got = v.clone();
                sort(&mut got, &mut |a, b| a < b);
                assert_eq!(got, expected);
                for middle in [0, 1, n / 2, n].into_iter().filter(|&m| m <= n) {
                    let mut got = v.clone();
                    partial_sort(&mut got, middle, &mut |a, b| a < b);
                    assert_eq!(got[..middle], expected[..middle]);
                    let mut rest = got.clone();
                    rest.sort();
                    assert_eq!(rest, expected, "partial_sort must permute");
                }
            }
        }
    }

    #[test]
    fn bucket_partial_sort_gives_the_top_in_order() {
        let mut rng = SplitMix64(5);
        for n in [1usize, 10, 200, 3000] {
            let cur: Vec<TokenData> = (0..n)
                .map(|i| TokenData {
                    id: i as i32,
                    logit: rng.normal() * 6.0,
                    p: 0.0,
                })
                .collect();
            let mut expected = cur.clone();
            expected.sort_by(|a, b| b.logit.total_cmp(&a.logit));
            for k in [1, n / 3 + 1, n] {
                let got = bucket_partial_sort(&cur, k);
                assert!(got.len() >= k);
                let got_logits: Vec<f32> = got[..k].iter().map(|d| d.logit).collect();
                let want: Vec<f32> = expected[..k].iter().map(|d| d.logit).collect();
                assert_eq!(got_logits, want);
            }
        }
    }

    #[test]
    fn float_to_int_like_x86() {
        assert_eq!(c_float_to_int(3.9), 3);
        assert_eq!(c_float_to_int(-3.9), -3);
        assert_eq!(c_float_to_int(f32::NAN), i32::MIN);
        assert_eq!(c_float_to_int(1e10), i32::MIN);
        assert_eq!(c_float_to_int(f32::INFINITY), i32::MIN);
    }
}
