//! Portable reference kernels. Every SIMD kernel is tested against these.
//!
//! Four independent accumulators keep the loop-carried dependency short (and let the compiler
//! vectorise on targets without an explicit SIMD module) while staying obviously correct.

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

pub(super) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..4 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `1 − Σ min(aᵢ, bᵢ) / Σ max(aᵢ, bᵢ)`, 0 when the maximum sums to 0: the Jaccard distance of
/// 0/1 vectors (every instruction set uses this one; eight lanes of minima and maxima
/// vectorise as they are, and the sums of 0/1 components are exact).
pub(super) fn jaccard(a: &[f32], b: &[f32]) -> f32 {
    let (mut lo, mut hi) = ([0.0f32; 8], [0.0f32; 8]);
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            lo[i] += x[i].min(y[i]);
            hi[i] += x[i].max(y[i]);
        }
    }
    let both: f32 = lo.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x.min(*y)).sum::<f32>();
    let either: f32 =
        hi.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x.max(*y)).sum::<f32>();
    // (either − both) / either rather than 1 − both / either: two exact integers and one
    // rounding, the float the packed form (`storage::BitVectors`) computes too.
    if either > 0.0 {
        (either - both) / either
    } else {
        0.0
    }
}

pub(super) fn l1(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.as_chunks::<4>();
    let (cb, rb) = b.as_chunks::<4>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..4 {
            acc[i] += (x[i] - y[i]).abs();
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y).abs()).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

pub(super) fn l2sq_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = i32::from(x) - i32::from(y);
            d * d
        })
        .sum()
}

pub(super) fn dot_u8i8(a: &[u8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}
