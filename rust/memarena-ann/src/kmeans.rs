//! Seeded k-means (Lloyd) with an optional balance constraint, and parallel
//! nearest-centroid assignment.

use memarena_core::rng::Rng;

use crate::metric::norm_sq;
use crate::simd::kernels;

/// For each row of `data`, its `m` nearest centroids by squared L2 as
/// `(distance, centroid)`, ascending; `n * m` pairs. Runs on `threads`.
pub(crate) fn nearest(
    data: &[f32],
    centroids: &[f32],
    dim: usize,
    m: usize,
    threads: usize,
) -> Vec<(f32, u32)> {
    let n = data.len() / dim;
    let k = centroids.len() / dim;
    let m = m.min(k);
    let cn: Vec<f32> = centroids.chunks_exact(dim).map(norm_sq).collect();
    let mut out = vec![(0.0f32, 0u32); n * m];
    if n == 0 || m == 0 {
        return out;
    }
    // Points in blocks of `B`, each block scored against all centroids by one
    // blocked matrix product (`|x|^2 + |c|^2 - 2 x.c`).
    const B: usize = 16;
    let work = |row0: usize, chunk: &mut [(f32, u32)]| {
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(m + 1);
        let mut dots = vec![0.0f32; B * k];
        for (b, ob) in chunk.chunks_mut(B * m).enumerate() {
            let nb = ob.len() / m;
            let xs = &data[(row0 + b * B) * dim..(row0 + b * B + nb) * dim];
            (kernels().dot_block)(xs, nb, centroids, &mut dots[..nb * k]);
            for ((x, o), row) in xs
                .chunks_exact(dim)
                .zip(ob.chunks_mut(m))
                .zip(dots.chunks_exact(k))
            {
                let xn = norm_sq(x);
                best.clear();
                for (c, &dp) in row.iter().enumerate() {
                    let d = (xn + cn[c] - 2.0 * dp).max(0.0);
                    if best.len() < m || d < best[m - 1].0 {
                        let pos = best.partition_point(|b| b.0 <= d);
                        best.insert(pos, (d, c as u32));
                        best.truncate(m);
                    }
                }
                o.copy_from_slice(&best);
            }
        }
    };
    let threads = threads.clamp(1, n);
    if threads == 1 {
        work(0, &mut out);
    } else {
        let per = n.div_ceil(threads);
        let work = &work;
        std::thread::scope(|s| {
            for (i, chunk) in out.chunks_mut(per * m).enumerate() {
                s.spawn(move || work(i * per, chunk));
            }
        });
    }
    out
}

/// Default thread count: all available cores.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Trains `k` centroids on (a seeded sample of at most `max_points` rows of)
/// `data` with `iters` Lloyd iterations. With `balanced`, every assignment
/// step caps cluster sizes at `ceil(n / k * (1 + slack))`: points are placed
/// greedily, strongest preference first, into the nearest of their 8 closest
/// centroids that still has room (the balanced clustering of SPANN).
pub(crate) fn train(
    data: &[f32],
    dim: usize,
    k: usize,
    iters: usize,
    seed: u64,
    balanced: bool,
    max_points: usize,
) -> memarena_core::Result<Vec<f32>> {
    let n_all = data.len() / dim;
    let mut rng = Rng::seed_from_u64(seed);
    // Seeded sample without replacement (partial Fisher-Yates over indices).
    let n = n_all.min(max_points.max(k));
    let mut idx: Vec<usize> = (0..n_all).collect();
    for i in 0..n {
        let j = i + rng.below((n_all - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(n);
    idx.sort_unstable();
    let sample: Vec<f32> = idx
        .iter()
        .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    // Initialise on distinct sample points.
    let mut centroids: Vec<f32> = Vec::with_capacity(k * dim);
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + rng.below((n - i) as u64) as usize;
        order.swap(i, j);
        centroids.extend_from_slice(&sample[order[i] * dim..(order[i] + 1) * dim]);
    }
    while centroids.len() < k * dim {
        // fewer points than centroids: duplicate with jitter
        let c = rng.below(n.max(1) as u64) as usize;
        let base = if n > 0 {
            sample[c * dim..(c + 1) * dim].to_vec()
        } else {
            vec![0.0; dim]
        };
        centroids.extend(base.iter().map(|x| x + 1e-3 * rng.normal() as f32));
    }
    if n == 0 {
        return Ok(centroids);
    }
    let th = threads();
    let m = if balanced { 8.min(k) } else { 1 };
    let mut assign = vec![0u32; n];
    for _ in 0..iters.max(1) {
        // Stoppable between rounds (see `memarena_core::cancel`).
        memarena_core::cancel::check_now()?;
        let near = nearest(&sample, &centroids, dim, m, th);
        if balanced {
            balanced_assign(&near, m, k, 0.1, &mut assign);
        } else {
            for (i, a) in assign.iter_mut().enumerate() {
                *a = near[i * m].1;
            }
        }
        // Update.
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a as usize] += 1;
            let s = &mut sums[a as usize * dim..(a as usize + 1) * dim];
            s.iter_mut()
                .zip(&sample[i * dim..(i + 1) * dim])
                .for_each(|(s, x)| *s += *x as f64);
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..dim {
                    centroids[c * dim + d] = (sums[c * dim + d] / counts[c] as f64) as f32;
                }
            }
        }
        // Empty clusters: split the largest one (faiss's strategy).
        for c in 0..k {
            if counts[c] == 0 {
                let big = (0..k).max_by_key(|&j| counts[j]).unwrap_or(0);
                let src: Vec<f32> = centroids[big * dim..(big + 1) * dim].to_vec();
                for d in 0..dim {
                    let eps =
                        1e-3 * (1.0 + src[d].abs()) * if rng.below(2) == 0 { 1.0 } else { -1.0 };
                    centroids[c * dim + d] = src[d] + eps;
                    centroids[big * dim + d] = src[d] - eps;
                }
                counts[c] = counts[big] / 2;
                counts[big] -= counts[c];
            }
        }
    }
    Ok(centroids)
}

/// Greedy capacity-constrained assignment from each point's `m` nearest
/// centroids (`near`, `n * m`, ascending).
fn balanced_assign(near: &[(f32, u32)], m: usize, k: usize, slack: f64, assign: &mut [u32]) {
    let n = assign.len();
    let cap = ((n as f64 / k as f64) * (1.0 + slack)).ceil().max(1.0) as usize;
    let mut sizes = vec![0usize; k];
    let mut order: Vec<usize> = (0..n).collect();
    // strongest preference (largest regret of losing the first choice) first
    let regret = |i: usize| {
        if m > 1 {
            near[i * m + 1].0 - near[i * m].0
        } else {
            0.0
        }
    };
    order.sort_by(|&a, &b| regret(b).total_cmp(&regret(a)).then(a.cmp(&b)));
    for i in order {
        let choice = near[i * m..(i + 1) * m]
            .iter()
            .find(|(_, c)| sizes[*c as usize] < cap)
            .map(|&(_, c)| c)
            .unwrap_or_else(|| {
                (0..k as u32)
                    .min_by_key(|&c| sizes[c as usize])
                    .unwrap_or(0)
            });
        sizes[choice as usize] += 1;
        assign[i] = choice;
    }
}
