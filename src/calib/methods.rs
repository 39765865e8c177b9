//! From statistics to ranges: the amax (clipping threshold) of an activation tensor by one of four methods, the
//! symmetric INT8 scale `amax / 127`, and per-channel weight scales.
//!
//! Every method works on an [`Observer`]'s |x| histogram, never on raw activations. Errors carry no tensor name;
//! the caller knows it and adds it as context.
//!
//! # Entropy (TensorRT EntropyCalibration2 as publicly described)
//!
//! TensorRT's implementation is closed; this follows NVIDIA's public description (GTC 2017 S7310, "8-bit Inference
//! with TensorRT") and its open re-implementation in pytorch-quantization, with the choices below written down.
//! Let `h[0..n)` be the histogram of |x| up to the last non-empty bin (`n <= 2048`), minus the exact zeros in bin 0.
//! For every candidate `i` in `128..=n` (the number of bins kept):
//!
//! 1. Reference `P`: `h[0..i)` with the outlier mass `sum(h[i..n))` added to `P[i-1]`, normalised to sum 1.
//! 2. Candidate `Q`: the unclipped `h[0..i)` merged into 128 levels, bin `j` going to level `floor(128 * j / i)`
//!    (groups of `floor(i/128)` or `ceil(i/128)` bins). Each level's mass is spread evenly over the bins of the level
//!    where `h` is non-zero; bins where `h` is zero stay zero. `Q` is normalised to sum 1 (so the clipped mass is
//!    missing from `Q` and present in `P`: that is the clipping penalty).
//! 3. `KL(P || Q) = sum over P[j] > 0 of P[j] * ln(P[j] / Q[j])`.
//!
//! Zeros: no additive smoothing is applied. A `P[j] = 0` term is 0 (`0 * ln 0 = 0`). `Q[j] = 0` with `P[j] > 0` can
//! only happen at `j = i-1` when `h[i-1] = 0` but outliers exist (a threshold inside an empty gap below the outliers);
//! its divergence is +infinity and the candidate is skipped, which is what pytorch-quantization gets from
//! `scipy.stats.entropy`. The epsilon smoothing of MXNet/TVM/onnxruntime is deliberately not used: with sparse tails
//! the epsilon exceeds the outlier mass, the log-ratio turns negative and thresholds inside empty gaps win. The
//! candidate `i = n` always has a finite divergence (`h[n-1] > 0`, no outliers), so a threshold always exists.
//!
//! The smallest divergence wins; ties go to the larger `i` (pytorch-quantization's "last argmin"), so the result is
//! deterministic. `amax = min(i * bin_width, absmax)`: the bin *edge*, because `P` was built by clipping exactly at
//! `i * bin_width` (every value at or above it folded into the last kept bin), so that is the threshold whose error
//! was measured; the GTC slide's `(i + 0.5) * width` would clip half a bin above it. The difference is at most
//! `0.5 / 2048` of the range. Clamping to absmax keeps the threshold inside the data after range growth.
//!
//! Exact zeros are left out of `h` because every symmetric scale reproduces 0 exactly, so they say nothing about the
//! threshold, yet `Q` would smear their spike over bin 0's whole level and push the search towards small thresholds
//! (pytorch-quantization works around the same spike by overwriting bin 0 with bin 1's count).
//!
//! The divergence of a candidate is computed in O(128) from prefix sums (mass, non-zero bin counts, `h ln h`) rather
//! than by building `P` and `Q`, making the search O(128 * n) instead of O(n^2); a test checks it against the direct
//! construction.
//!
//! # Percentile
//!
//! The smallest |x| with at least p% of the finite values at or below it. Exact zeros count as values at 0; inside
//! a bin the values are taken as spread evenly (the bin holding absmax ends at absmax), so the result is
//! interpolated rather than snapped to a bin edge.
//!
//! # Mse
//!
//! For each candidate `amax = min(i * bin_width, absmax)`, `i` in `128..=n` as for entropy, the expected squared error
//! of symmetric INT8 quantization over the histogram: every value rounds to the nearest multiple of `amax / 127`
//! and values above amax become amax, with each bin's values spread evenly over the bin; the integral is exact per
//! rounding cell. Exact zeros quantize without error and are left out. The smallest error wins, ties to the larger
//! threshold. Few but large outliers are often kept: clipping one value by 20 costs as much as rounding 400 values
//! by 1, so mse clips less than entropy when the tail is heavy.

use std::fmt;
use std::str::FromStr;

use crate::calib::histogram::Observer;
use crate::calib::scales::ActivationScale;
use crate::error::Diagnose;

/// Percentile used when the method is given as plain `percentile` (pytorch-quantization's and ModelOpt's default).
pub const DEFAULT_PERCENTILE: f64 = 99.99;

/// Smallest number of bins a threshold may keep, as in the public EntropyCalibration2 description.
pub const START_BIN: usize = 128;

/// Quantization levels of |x| for signed INT8 (0..=127).
pub const LEVELS: usize = 128;

/// Largest INT8 magnitude used by symmetric quantization: `scale = amax / 127`.
pub const INT8_MAX: f32 = 127.0;

/// The scale used when `amax / 127` is smaller: 2^-24. An all-zero tensor has amax 0, but a scale must be positive
/// (TensorRT divides by it; Q/DQ nodes reject 0), and any positive scale represents zeros exactly. 2^-24 is a power of
/// two (exact in f32, f16 and as a reciprocal) and the smallest positive f16, so it survives a cast to half, while
/// only tensors with amax below 127 * 2^-24 (about 7.6e-6) are affected.
pub const MIN_SCALE: f32 = 5.960_464_5e-8;

/// How the clipping threshold (amax) of an activation tensor is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The largest |x| seen: nothing is clipped.
    MinMax,
    /// The |x| below which this percentage (0, 100] of the values lie, interpolated inside a histogram bin.
    Percentile(f64),
    /// TensorRT EntropyCalibration2 style KL-divergence minimisation (see the module docs).
    Entropy,
    /// The threshold with the smallest expected squared error (clipping plus rounding) over the histogram.
    Mse,
}

impl Default for Method {
    /// Entropy, the method of TensorRT's preferred calibrator.
    fn default() -> Self {
        Method::Entropy
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    #[error("no finite values were observed, so there is no range to calibrate")]
    NoData,
    #[error("percentile {0} is outside (0, 100]")]
    InvalidPercentile(f64),
    #[error("unknown calibration method `{0}`; expected entropy, minmax, mse, percentile or percentile:<p>")]
    UnknownMethod(String),
    #[error("axis {axis} is out of range for a weight of rank {rank}")]
    AxisOutOfRange { axis: usize, rank: usize },
    #[error("weight shape {shape:?} has more elements than fit in memory")]
    ShapeOverflow { shape: Vec<usize> },
    #[error("weight shape {shape:?} needs {expected} values, but {actual} were given")]
    ShapeMismatch { shape: Vec<usize>, expected: usize, actual: usize },
    #[error("weight value {value} at flat index {index} (channel {channel}) is not finite")]
    NonFiniteWeight { index: usize, channel: usize, value: f32 },
}

impl Diagnose for MethodError {}

impl Method {
    /// The method's name without its parameter: `entropy`, `minmax`, `mse` or `percentile`.
    pub fn kind(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
            Method::Mse => "mse",
        }
    }

    /// The clipping threshold for the tensor `observer` has seen. 0 for an all-zero tensor.
    pub fn amax(&self, observer: &Observer) -> Result<f32, MethodError> {
        if let Method::Percentile(p) = *self {
            check_percentile(p)?;
        }
        if observer.count() == 0 {
            return Err(MethodError::NoData);
        }
        let absmax = observer.absmax();
        if absmax == 0.0 {
            return Ok(0.0);
        }
        Ok(match *self {
            Method::MinMax => absmax,
            Method::Percentile(p) => percentile_amax(observer, p),
            Method::Entropy => entropy_amax(observer),
            Method::Mse => mse_amax(observer),
        })
    }

    /// amax and the symmetric INT8 scale derived from it.
    pub fn activation_scale(&self, observer: &Observer) -> Result<ActivationScale, MethodError> {
        let amax = self.amax(observer)?;
        Ok(ActivationScale { amax, scale: int8_scale(amax) })
    }
}

fn check_percentile(p: f64) -> Result<(), MethodError> {
    if p > 0.0 && p <= 100.0 { Ok(()) } else { Err(MethodError::InvalidPercentile(p)) }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Always with the number, so that a written method reads back as the same method.
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            other => f.write_str(other.kind()),
        }
    }
}

impl FromStr for Method {
    type Err = MethodError;

    fn from_str(text: &str) -> Result<Method, MethodError> {
        let unknown = || MethodError::UnknownMethod(text.to_owned());
        match text {
            "minmax" => Ok(Method::MinMax),
            "entropy" => Ok(Method::Entropy),
            "mse" => Ok(Method::Mse),
            "percentile" => Ok(Method::Percentile(DEFAULT_PERCENTILE)),
            _ => {
                let number = text.strip_prefix("percentile:").ok_or_else(unknown)?;
                let p: f64 = number.trim().parse().map_err(|_| unknown())?;
                check_percentile(p)?;
                Ok(Method::Percentile(p))
            }
        }
    }
}

/// The symmetric INT8 scale for a threshold: `amax / 127`, but never below [`MIN_SCALE`] (so never 0, and NaN
/// becomes [`MIN_SCALE`] too). `amax` is expected finite; an infinite one gives an infinite scale, which the cache
/// and `scales.json` writers refuse.
pub fn int8_scale(amax: f32) -> f32 {
    let scale = amax / INT8_MAX;
    if scale >= MIN_SCALE { scale } else { MIN_SCALE }
}

/// Per-output-channel weight scales: absmax over every element whose index along `axis` is the channel, divided by
/// 127 (with the [`MIN_SCALE`] floor, so an all-zero channel stays finite). `weights` is row-major with `shape`.
pub fn per_channel_scales(weights: &[f32], shape: &[usize], axis: usize) -> Result<Vec<f32>, MethodError> {
    if axis >= shape.len() {
        return Err(MethodError::AxisOutOfRange { axis, rank: shape.len() });
    }
    let product = |dims: &[usize]| dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let overflow = || MethodError::ShapeOverflow { shape: shape.to_vec() };
    let expected = product(shape).ok_or_else(overflow)?;
    // The inner product is checked on its own: with a zero dimension before the axis the total can be 0 while the
    // inner part overflows.
    let inner = product(&shape[axis + 1..]).ok_or_else(overflow)?;
    if expected != weights.len() {
        return Err(MethodError::ShapeMismatch { shape: shape.to_vec(), expected, actual: weights.len() });
    }
    let channels = shape[axis];
    let mut absmax = vec![0.0f32; channels];
    if inner > 0 {
        // Row-major: consecutive runs of `inner` values share one channel, and the channels cycle.
        for (run, chunk) in weights.chunks_exact(inner).enumerate() {
            let channel = run % channels;
            for (offset, &w) in chunk.iter().enumerate() {
                if !w.is_finite() {
                    return Err(MethodError::NonFiniteWeight { index: run * inner + offset, channel, value: w });
                }
                absmax[channel] = absmax[channel].max(w.abs());
            }
        }
    }
    Ok(absmax.into_iter().map(int8_scale).collect())
}

/// The histogram as f64 counts with the exact zeros taken out of bin 0, cut after the last non-empty bin.
fn histogram_without_zeros(observer: &Observer) -> Vec<f64> {
    let mut h: Vec<f64> = observer.bins().iter().map(|&c| c as f64).collect();
    h[0] -= observer.zeros() as f64;
    let used = h.iter().rposition(|&c| c > 0.0).map_or(0, |last| last + 1);
    h.truncate(used);
    h
}

fn percentile_amax(observer: &Observer, percentile: f64) -> f32 {
    let absmax = observer.absmax();
    if percentile >= 100.0 {
        return absmax;
    }
    let target = percentile / 100.0 * observer.count() as f64;
    let zeros = observer.zeros() as f64;
    if target <= zeros {
        return 0.0;
    }
    let width = observer.bin_width();
    let mut below = zeros;
    for (j, &count) in histogram_without_zeros(observer).iter().enumerate() {
        if count > 0.0 && below + count >= target {
            // The values of a bin are taken as spread evenly over it; the bin holding absmax ends at absmax, since
            // after range growth its upper edge can lie well above every value.
            let lo = j as f64 * width;
            let hi = ((j + 1) as f64 * width).min(f64::from(absmax));
            let value = lo + (target - below) / count * (hi - lo);
            return (value as f32).min(absmax);
        }
        below += count;
    }
    absmax
}

fn entropy_amax(observer: &Observer) -> f32 {
    let absmax = observer.absmax();
    let h = histogram_without_zeros(observer);
    if h.len() < START_BIN {
        // Fewer used bins than levels: nothing to merge, and (given range growth keeps >= 1024 bins) only reachable
        // for degenerate data; keep everything.
        return absmax;
    }
    let kept = entropy_threshold_bins(&h);
    ((kept as f64 * observer.bin_width()) as f32).min(absmax)
}

/// Bins `[a, b)` of level `level` when `kept` bins are merged into [`LEVELS`] levels (bin j -> floor(128 j / kept)).
fn level_bounds(level: usize, kept: usize) -> (usize, usize) {
    ((level * kept).div_ceil(LEVELS), ((level + 1) * kept).div_ceil(LEVELS))
}

/// The number of kept bins `i` in `START_BIN..=h.len()` with the smallest KL(P||Q); `h.len() >= START_BIN`,
/// `h[last] > 0`.
fn entropy_threshold_bins(h: &[f64]) -> usize {
    let n = h.len();
    let mut mass = vec![0.0f64; n + 1];
    let mut nonzero = vec![0usize; n + 1];
    let mut h_ln_h = vec![0.0f64; n + 1];
    for (j, &c) in h.iter().enumerate() {
        mass[j + 1] = mass[j] + c;
        nonzero[j + 1] = nonzero[j] + usize::from(c > 0.0);
        h_ln_h[j + 1] = h_ln_h[j] + if c > 0.0 { c * c.ln() } else { 0.0 };
    }
    let total = mass[n];
    let mut best = (f64::INFINITY, n);
    for kept in START_BIN..=n {
        let inliers = mass[kept];
        let outliers = total - inliers;
        let edge = h[kept - 1];
        if edge == 0.0 {
            // P[kept-1] > 0 (outliers exist: h[n-1] > 0 lies beyond) while Q[kept-1] = 0: infinite divergence.
            continue;
        }
        let last = edge + outliers;
        // T * KL = sum h' ln h' - T ln T - sum over levels of (P-mass of the level) * ln q_level, where h' is h with
        // the outliers folded into the last kept bin and q_level = level mass / (non-zero bins * inliers).
        let mut scaled = h_ln_h[kept - 1] + last * last.ln() - total * total.ln();
        for level in 0..LEVELS {
            let (a, b) = level_bounds(level, kept);
            let level_mass = mass[b] - mass[a];
            if level_mass == 0.0 {
                continue;
            }
            let q = level_mass / ((nonzero[b] - nonzero[a]) as f64 * inliers);
            // The last kept bin always belongs to the last level (kept >= 128), and only there P differs from h.
            let p_mass = if b == kept { level_mass + outliers } else { level_mass };
            scaled -= p_mass * q.ln();
        }
        let divergence = scaled / total;
        if divergence <= best.0 {
            best = (divergence, kept);
        }
    }
    best.1
}

fn mse_amax(observer: &Observer) -> f32 {
    let absmax = f64::from(observer.absmax());
    let h = histogram_without_zeros(observer);
    let n = h.len();
    if n < START_BIN {
        return absmax as f32;
    }
    let errors = SquaredErrors::new(&h, observer.bin_width(), absmax);
    let mut best = (f64::INFINITY, absmax);
    for kept in START_BIN..=n {
        let amax = (kept as f64 * errors.width).min(absmax);
        let error = errors.total(amax);
        if error <= best.0 {
            best = (error, amax);
        }
    }
    best.1 as f32
}

/// Expected squared quantization error of a histogram for any threshold. Each bin's values are taken as spread
/// evenly over the bin (the bin holding absmax ends at absmax); exact zeros are left out, as they quantize exactly.
struct SquaredErrors<'a> {
    h: &'a [f64],
    width: f64,
    absmax: f64,
    /// Suffix sums of count, count * E[x] and count * E[x^2]: for bins wholly in the clipped region the error is
    /// E[(x - amax)^2] = E[x^2] - 2 amax E[x] + amax^2, so that region costs O(1) per threshold.
    s0: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
}

impl SquaredErrors<'_> {
    fn new(h: &[f64], width: f64, absmax: f64) -> SquaredErrors<'_> {
        let n = h.len();
        let mut errors =
            SquaredErrors { h, width, absmax, s0: vec![0.0; n + 1], s1: vec![0.0; n + 1], s2: vec![0.0; n + 1] };
        for j in (0..n).rev() {
            let (lo, hi) = errors.bounds(j);
            errors.s0[j] = errors.s0[j + 1] + h[j];
            errors.s1[j] = errors.s1[j + 1] + h[j] * (lo + hi) / 2.0;
            errors.s2[j] = errors.s2[j + 1] + h[j] * (lo * lo + lo * hi + hi * hi) / 3.0;
        }
        errors
    }

    fn bounds(&self, j: usize) -> (f64, f64) {
        (j as f64 * self.width, ((j + 1) as f64 * self.width).min(self.absmax))
    }

    /// Sum over all values of (x - q(x))^2, q rounding to multiples of amax/127 and clipping at amax.
    fn total(&self, amax: f64) -> f64 {
        let max_level = f64::from(INT8_MAX);
        let step = amax / max_level;
        // From `top` on every value rounds to level 127, i.e. to amax itself.
        let top = (max_level - 0.5) * step;
        let cell_end_of = |level: f64| if level >= max_level { f64::INFINITY } else { (level + 0.5) * step };
        // The rounding cell of the current bin's lower edge, advanced as the bins go up instead of recomputed with
        // a division and a floor per bin: this loop is the whole cost of the mse method.
        let (mut level, mut cell_end) = (0.0, 0.5 * step);
        let mut error = 0.0;
        let mut j = 0;
        while j < self.h.len() {
            let (lo, hi) = self.bounds(j);
            if lo >= top {
                break;
            }
            let count = self.h[j];
            j += 1;
            if count == 0.0 || hi <= lo {
                continue;
            }
            while lo >= cell_end {
                level += 1.0;
                cell_end = cell_end_of(level);
            }
            let (mut from, mut cell, mut end, mut integral) = (lo, level, cell_end, 0.0);
            loop {
                let to = hi.min(end);
                let (u, v) = (from - cell * step, to - cell * step);
                // The integral of (x - c)^2 over [from, to] is (v^3 - u^3) / 3 = (v - u)(u^2 + uv + v^2) / 3; the
                // factored form avoids cancelling two large cubes.
                integral += (v - u) * (u * u + u * v + v * v);
                if to >= hi {
                    break;
                }
                from = to;
                cell += 1.0;
                end = cell_end_of(cell);
            }
            error += count * integral / (3.0 * (hi - lo));
        }
        error + (self.s2[j] - 2.0 * amax * self.s1[j] + amax * amax * self.s0[j]).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::test_support::Rng;

    fn observe_all(values: &[f32]) -> Observer {
        let mut obs = Observer::new();
        for chunk in values.chunks(4096) {
            obs.observe(chunk);
        }
        obs
    }

    /// N(0, 1) samples plus a few large outliers: the case entropy calibration exists for.
    fn gaussian_with_outliers(seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut values: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32).collect();
        values.extend_from_slice(&[40.0, -35.0, 30.0, 25.0, -20.0]);
        values
    }

    #[test]
    fn minmax_is_absmax() {
        let obs = observe_all(&[0.5, -3.0, 2.0]);
        assert_eq!(Method::MinMax.amax(&obs).unwrap(), 3.0);
    }

    #[test]
    fn percentile_of_a_uniform_distribution_interpolates_inside_bins() {
        // 0.5/N, 1.5/N, ...: uniform on [0, 1], so the p-th percentile is p/100 up to one value's spacing.
        let n = 100_000;
        let values: Vec<f32> = (0..n).map(|k| (k as f32 + 0.5) / n as f32).collect();
        let obs = observe_all(&values);
        for p in [50.0, 90.0, 99.0, 99.9, 99.99] {
            let amax = Method::Percentile(p).amax(&obs).unwrap();
            assert!((f64::from(amax) - p / 100.0).abs() < 2e-5, "p{p}: {amax}");
        }
        assert_eq!(Method::Percentile(100.0).amax(&obs).unwrap(), obs.absmax());
    }

    #[test]
    fn percentile_of_a_gaussian_matches_the_normal_quantile() {
        let mut rng = Rng::new(11);
        let values: Vec<f32> = (0..400_000).map(|_| rng.normal() as f32).collect();
        let obs = observe_all(&values);
        // |x| of N(0,1): P(|x| <= 1.959964) = 0.95, P(|x| <= 2.575829) = 0.99.
        let p95 = Method::Percentile(95.0).amax(&obs).unwrap();
        let p99 = Method::Percentile(99.0).amax(&obs).unwrap();
        assert!((p95 - 1.959_964).abs() < 0.02, "{p95}");
        assert!((p99 - 2.575_829).abs() < 0.03, "{p99}");
    }

    #[test]
    fn percentile_counts_exact_zeros_as_data() {
        let mut values = vec![0.0f32; 900];
        values.extend((0..100).map(|k| 1.0 + k as f32 / 100.0));
        let obs = observe_all(&values);
        assert_eq!(Method::Percentile(50.0).amax(&obs).unwrap(), 0.0);
        let p95 = Method::Percentile(95.0).amax(&obs).unwrap();
        assert!((p95 - 1.5).abs() < 0.01, "{p95}");
    }

    #[test]
    fn invalid_percentiles_are_errors() {
        let obs = observe_all(&[1.0]);
        for p in [0.0, -1.0, 100.5, f64::NAN] {
            assert!(matches!(Method::Percentile(p).amax(&obs), Err(MethodError::InvalidPercentile(_))), "{p}");
        }
    }

    #[test]
    fn entropy_clips_outliers_of_a_gaussian_and_is_deterministic() {
        let values = gaussian_with_outliers(3);
        let obs = observe_all(&values);
        let amax = Method::Entropy.amax(&obs).unwrap();
        // Clearly below absmax (40) and above the bulk of N(0,1).
        assert!(amax > 2.5 && amax < 10.0, "entropy amax {amax}");
        assert_eq!(amax.to_bits(), Method::Entropy.amax(&obs).unwrap().to_bits());
        assert_eq!(amax.to_bits(), Method::Entropy.amax(&observe_all(&values)).unwrap().to_bits());
    }

    #[test]
    fn entropy_ignores_exact_zeros() {
        let mut values = gaussian_with_outliers(5).into_iter().map(f32::abs).collect::<Vec<_>>();
        let without = Method::Entropy.amax(&observe_all(&values)).unwrap();
        values.extend(std::iter::repeat_n(0.0, 1_000_000));
        let with = Method::Entropy.amax(&observe_all(&values)).unwrap();
        assert_eq!(without.to_bits(), with.to_bits());
    }

    #[test]
    fn entropy_keeps_everything_for_a_uniform_distribution() {
        let values: Vec<f32> = (0..100_000).map(|k| k as f32 / 100_000.0).collect();
        let obs = observe_all(&values);
        let amax = Method::Entropy.amax(&obs).unwrap();
        assert!(amax > 0.95 * obs.absmax(), "{amax}");
    }

    /// The O(n^2) construction of the module docs, written out literally: P, Q, KL per candidate.
    fn divergences_directly(h: &[f64]) -> Vec<f64> {
        let n = h.len();
        (START_BIN..=n)
            .map(|kept| {
                let mut p: Vec<f64> = h[..kept].to_vec();
                p[kept - 1] += h[kept..].iter().sum::<f64>();
                let mut q = vec![0.0; kept];
                for level in 0..LEVELS {
                    let members: Vec<usize> = (0..kept).filter(|&j| j * LEVELS / kept == level).collect();
                    let level_mass: f64 = members.iter().map(|&j| h[j]).sum();
                    let nonzero = members.iter().filter(|&&j| h[j] > 0.0).count();
                    for &j in &members {
                        if h[j] > 0.0 {
                            q[j] = level_mass / nonzero as f64;
                        }
                    }
                }
                let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
                let mut kl = 0.0;
                for j in 0..kept {
                    if p[j] > 0.0 {
                        if q[j] == 0.0 {
                            return f64::INFINITY;
                        }
                        kl += p[j] / ps * ((p[j] / ps) / (q[j] / qs)).ln();
                    }
                }
                kl
            })
            .collect()
    }

    #[test]
    fn prefix_sum_divergence_matches_the_direct_construction() {
        let mut rng = Rng::new(99);
        for case in 0..4 {
            // Sparse, gappy histograms of a few hundred bins exercise the empty-bin and infinite cases.
            let n = 300 + 37 * case;
            let mut h: Vec<f64> =
                (0..n).map(|j| if rng.uniform() < 0.3 { 0.0 } else { (1000.0 / (1.0 + j as f64)).floor() }).collect();
            h[n - 1] = 1.0;
            h[n - 2] = 0.0;
            let direct = divergences_directly(&h);
            let best_direct =
                (0..direct.len()).rev().min_by(|&a, &b| direct[a].total_cmp(&direct[b])).unwrap() + START_BIN;
            assert_eq!(entropy_threshold_bins(&h), best_direct, "case {case}");
            assert!(direct.iter().any(|d| d.is_infinite()), "case {case} should contain a gap candidate");
        }
    }

    #[test]
    fn mse_is_sane() {
        // Uniform data: clipping costs more than rounding saves, so the threshold stays near absmax.
        let uniform: Vec<f32> = (0..100_000).map(|k| k as f32 / 100_000.0).collect();
        let amax = Method::Mse.amax(&observe_all(&uniform)).unwrap();
        assert!(amax > 0.97, "uniform {amax}");
        // Gaussian: the bulk is kept, the thin tail clipped a little.
        let mut rng = Rng::new(8);
        let gaussian: Vec<f32> = (0..200_000).map(|_| rng.normal() as f32).collect();
        let obs = observe_all(&gaussian);
        let amax = Method::Mse.amax(&obs).unwrap();
        assert!(amax > 3.0 && amax < obs.absmax(), "gaussian {amax}, absmax {}", obs.absmax());
        assert_eq!(amax.to_bits(), Method::Mse.amax(&obs).unwrap().to_bits());
        // With outliers: whatever it picks must beat its neighbours and absmax on the raw samples.
        let values = gaussian_with_outliers(8);
        let amax = Method::Mse.amax(&observe_all(&values)).unwrap();
        let sample_mse = |amax: f32| {
            let step = f64::from(amax) / 127.0;
            values
                .iter()
                .map(|&x| {
                    let x = f64::from(x.abs());
                    let q = (x / step).round().min(127.0) * step;
                    (x - q) * (x - q)
                })
                .sum::<f64>()
        };
        let chosen = sample_mse(amax);
        for other in [amax * 0.8, amax * 1.2, 40.0, 4.0] {
            assert!(chosen <= sample_mse(other), "mse at {amax}: {chosen} > at {other}: {}", sample_mse(other));
        }
    }

    /// Mean of (x - q(x))^2 for x uniform on [lo, hi] by sampling, the reference for [`SquaredErrors`].
    fn sampled_mean_squared_error(rng: &mut Rng, lo: f64, hi: f64, step: f64) -> f64 {
        let samples = 100_000;
        let mut sum = 0.0;
        for _ in 0..samples {
            let x: f64 = lo + (hi - lo) * rng.uniform();
            let q = (x / step).round().min(127.0) * step;
            sum += (x - q) * (x - q);
        }
        sum / samples as f64
    }

    #[test]
    fn squared_error_matches_sampling() {
        let mut rng = Rng::new(4);
        // One bin at a time (the others empty), for thresholds that put it inside one cell, across cells, partly
        // clipped, and wholly clipped.
        let width = 0.01;
        let n = 300;
        for (bin, amax) in [(0, 1.5), (7, 1.5), (150, 1.5), (149, 1.5), (200, 1.5), (299, 1.5), (40, 0.2), (120, 2.99)]
        {
            let mut h = vec![0.0; n];
            h[bin] = 1.0;
            let absmax = n as f64 * width;
            let errors = SquaredErrors::new(&h, width, absmax);
            let (lo, hi) = errors.bounds(bin);
            let exact = errors.total(amax);
            let sampled = sampled_mean_squared_error(&mut rng, lo, hi, amax / 127.0);
            assert!((exact - sampled).abs() <= 0.03 * sampled + 1e-15, "bin {bin}, amax {amax}: {exact} vs {sampled}");
        }
    }

    #[test]
    fn all_zero_tensors_get_the_minimum_scale() {
        let obs = observe_all(&[0.0; 64]);
        for method in [Method::MinMax, Method::Percentile(99.99), Method::Entropy, Method::Mse] {
            let scale = method.activation_scale(&obs).unwrap();
            assert_eq!((scale.amax, scale.scale), (0.0, MIN_SCALE), "{method}");
        }
        assert_eq!(MIN_SCALE, 2f32.powi(-24));
        assert_eq!(int8_scale(f32::NAN), MIN_SCALE);
        assert_eq!(int8_scale(127.0), 1.0);
    }

    #[test]
    fn an_observer_without_finite_values_is_an_error() {
        let mut obs = Observer::new();
        obs.observe(&[f32::NAN]);
        assert!(matches!(Method::Entropy.amax(&obs), Err(MethodError::NoData)));
    }

    #[test]
    fn methods_parse_and_print() {
        for (text, method) in [
            ("minmax", Method::MinMax),
            ("entropy", Method::Entropy),
            ("mse", Method::Mse),
            ("percentile", Method::Percentile(DEFAULT_PERCENTILE)),
            ("percentile:99.9", Method::Percentile(99.9)),
        ] {
            let parsed: Method = text.parse().unwrap();
            assert_eq!(parsed, method);
            assert_eq!(parsed.to_string().parse::<Method>().unwrap(), method);
        }
        assert_eq!(Method::Percentile(99.99).to_string(), "percentile:99.99");
        assert!(matches!("kl".parse::<Method>(), Err(MethodError::UnknownMethod(_))));
        assert!(matches!("percentile:101".parse::<Method>(), Err(MethodError::InvalidPercentile(_))));
        assert!(matches!("percentile:x".parse::<Method>(), Err(MethodError::UnknownMethod(_))));
    }

    #[test]
    fn per_channel_scales_follow_the_axis() {
        // shape [2, 3, 2], axis 1: channel c is w[o][c][t].
        let weights: Vec<f32> = vec![1.0, -2.0, 0.0, 0.0, 3.0, 0.5, -4.0, 0.25, 0.0, 0.0, 1.0, -6.0];
        let scales = per_channel_scales(&weights, &[2, 3, 2], 1).unwrap();
        assert_eq!(scales, vec![4.0 / 127.0, MIN_SCALE, 6.0 / 127.0]);
        let scales = per_channel_scales(&weights, &[2, 3, 2], 0).unwrap();
        assert_eq!(scales, vec![3.0 / 127.0, 6.0 / 127.0]);
        let scales = per_channel_scales(&weights, &[2, 3, 2], 2).unwrap();
        assert_eq!(scales, vec![4.0 / 127.0, 6.0 / 127.0]);
    }

    #[test]
    fn per_channel_scales_reject_bad_input() {
        let w = [1.0f32; 6];
        assert!(matches!(per_channel_scales(&w, &[2, 3], 2), Err(MethodError::AxisOutOfRange { .. })));
        assert!(matches!(per_channel_scales(&w, &[2, 4], 0), Err(MethodError::ShapeMismatch { .. })));
        assert!(matches!(per_channel_scales(&w, &[usize::MAX, 2], 0), Err(MethodError::ShapeOverflow { .. })));
        assert!(matches!(per_channel_scales(&[], &[0, usize::MAX, 2], 0), Err(MethodError::ShapeOverflow { .. })));
        assert_eq!(per_channel_scales(&[], &[0, 4], 1).unwrap(), vec![MIN_SCALE; 4]);
        let err = per_channel_scales(&[1.0, f32::NAN, 0.0, 1.0], &[2, 2], 0).unwrap_err();
        assert!(matches!(err, MethodError::NonFiniteWeight { index: 1, channel: 0, .. }), "{err}");
    }

    #[test]
    fn range_growth_keeps_the_entropy_threshold_close() {
        // The same data, once binned over its final range at once and once grown from a narrow first batch.
        let values = gaussian_with_outliers(21);
        let direct = Method::Entropy.amax(&observe_all(&values)).unwrap();
        let mut grown = Observer::new();
        grown.observe(&[0.3]);
        grown.observe(&values);
        assert!(grown.range() > f64::from(grown.absmax()));
        let amax = Method::Entropy.amax(&grown).unwrap();
        let width = grown.bin_width() as f32;
        assert!((amax - direct).abs() <= 0.1 * direct + 2.0 * width, "grown {amax} vs direct {direct}");
    }
}
