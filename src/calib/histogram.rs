//! Streaming statistics of one tensor: running min/max/absmax, non-finite counts, and a histogram of |x| with a fixed
//! number of bins, so memory stays O(bins) however many samples are observed.
//!
//! # Range growth (one pass)
//!
//! The histogram always has [`NUM_BINS`] equal bins over `[0, range]`. The first batch with a non-zero value sets
//! `range` to that batch's absmax, exactly as TensorRT's EntropyCalibration2 does for its single histogram. When a
//! later batch has a larger absmax, the bins are widened by the smallest integer factor `k >= 2` with
//! `range * k >= new absmax`: new bin `j` is the sum of old bins `j*k .. j*k + k`. Because `k` is an integer the new
//! bin edges are a subset of the old ones, so no count is split or lost, and a value's bin after merging,
//! `floor(floor(x / w) / k)`, equals `floor(x / (k * w))`, the bin a direct histogram with the final width gives it.
//! Two things can move a value by one bin, never more: floating-point rounding at an edge, and a value equal to the
//! range at the time (it is counted in the last bin, as in numpy, and stays at the top of its merged bin).
//!
//! The price is resolution: after growth the data's absmax lies in `(range * (k-1)/k, range]`, so at least half of
//! the bins (1024) cover data. The pytorch-quantization and onnxruntime calibrators keep the width and add bins
//! instead, which makes memory grow with the ratio of the final to the first absmax; re-running the model for a
//! second pass (absmax first, histogram second) would double calibration time on a Jetson. Neither was wanted here.
//!
//! Exact zeros are also counted on their own (they stay in bin 0 too), because ReLU outputs and padding produce them
//! in bulk and the entropy and mse methods treat them specially (see `methods`).

/// Number of histogram bins, as in TensorRT's EntropyCalibration2.
pub const NUM_BINS: usize = 2048;

/// Running statistics of one tensor, fed batch by batch with [`Observer::observe`].
#[derive(Clone, Debug)]
pub struct Observer {
    bins: Vec<u64>,
    /// Upper edge of the last bin; 0 until a non-zero finite value is seen. f64 so that repeated growth by integer
    /// factors stays exact far beyond f32's mantissa.
    range: f64,
    finite: u64,
    zeros: u64,
    nan: u64,
    pos_inf: u64,
    neg_inf: u64,
    min: f32,
    max: f32,
    absmax: f32,
}

impl Default for Observer {
    fn default() -> Self {
        Observer::new()
    }
}

impl Observer {
    pub fn new() -> Observer {
        Observer {
            bins: vec![0; NUM_BINS],
            range: 0.0,
            finite: 0,
            zeros: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            absmax: 0.0,
        }
    }

    /// Adds one batch of values. NaN and ±Inf are counted (see [`Observer::non_finite`]) and otherwise ignored.
    pub fn observe(&mut self, values: &[f32]) {
        // Pass 1 finds the batch's absmax so that the bins can be widened before any value of the batch is binned;
        // binning first would need a second histogram for the batch. Locals instead of fields keep the loop in
        // registers.
        let (mut min, mut max, mut batch_absmax) = (self.min, self.max, 0.0f32);
        let (mut zeros, mut non_finite) = (0u64, 0u64);
        for &v in values {
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
                batch_absmax = batch_absmax.max(v.abs());
                zeros += u64::from(v == 0.0);
            } else {
                non_finite += 1;
                if v.is_nan() {
                    self.nan += 1;
                } else if v > 0.0 {
                    self.pos_inf += 1;
                } else {
                    self.neg_inf += 1;
                }
            }
        }
        let batch_finite = values.len() as u64 - non_finite;
        if batch_finite == 0 {
            return;
        }
        (self.min, self.max) = (min, max);
        self.zeros += zeros;
        self.finite += batch_finite;
        self.absmax = self.absmax.max(batch_absmax);
        if f64::from(batch_absmax) > self.range {
            self.grow(f64::from(batch_absmax));
        }

        if self.range == 0.0 {
            // Every finite value so far is zero; they all belong to bin 0 whatever the range becomes.
            self.bins[0] += batch_finite;
            return;
        }
        let per_unit = NUM_BINS as f64 / self.range;
        let bins = &mut self.bins[..NUM_BINS];
        // `as usize` saturates, and x == range lands on NUM_BINS: both belong to the last bin.
        let index = |v: f32| ((f64::from(v.abs()) * per_unit) as usize).min(NUM_BINS - 1);
        if non_finite == 0 {
            for &v in values {
                bins[index(v)] += 1;
            }
        } else {
            for &v in values.iter().filter(|v| v.is_finite()) {
                bins[index(v)] += 1;
            }
        }
    }

    /// Widens the bins so that `[0, range]` contains `new_absmax` (see the module docs).
    fn grow(&mut self, new_absmax: f64) {
        if self.range == 0.0 {
            // Only zeros were seen: they sit in bin 0, which stays bin 0 for any range.
            self.range = new_absmax;
            return;
        }
        let mut factor = (new_absmax / self.range).ceil().max(2.0);
        while self.range * factor < new_absmax {
            factor += 1.0;
        }
        if factor >= NUM_BINS as f64 {
            let total: u64 = self.bins.iter().sum();
            self.bins.fill(0);
            self.bins[0] = total;
        } else {
            let k = factor as usize;
            // In place: bin j reads old bins from j*k >= j on, so nothing is overwritten before it is read.
            for j in 0..NUM_BINS {
                let start = j * k;
                self.bins[j] =
                    if start < NUM_BINS { self.bins[start..(start + k).min(NUM_BINS)].iter().sum() } else { 0 };
            }
        }
        self.range *= factor;
    }

    /// Counts of |x| per bin; bin `j` covers `[j * bin_width, (j + 1) * bin_width)`, the last one includes `range`.
    pub fn bins(&self) -> &[u64] {
        &self.bins
    }

    /// Upper edge of the histogram; 0 while only zeros (or nothing) have been seen.
    pub fn range(&self) -> f64 {
        self.range
    }

    pub fn bin_width(&self) -> f64 {
        self.range / NUM_BINS as f64
    }

    /// Number of finite values observed (the histogram's total mass).
    pub fn count(&self) -> u64 {
        self.finite
    }

    /// Number of finite values that were exactly zero (±0.0); they are included in bin 0 as well.
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    pub fn nan_count(&self) -> u64 {
        self.nan
    }

    pub fn pos_inf_count(&self) -> u64 {
        self.pos_inf
    }

    pub fn neg_inf_count(&self) -> u64 {
        self.neg_inf
    }

    /// NaN + Inf + -Inf: values that are in no statistic. The caller decides whether that is an error.
    pub fn non_finite(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf
    }

    /// Smallest finite value, if any was seen.
    pub fn min(&self) -> Option<f32> {
        (self.finite > 0).then_some(self.min)
    }

    /// Largest finite value, if any was seen.
    pub fn max(&self) -> Option<f32> {
        (self.finite > 0).then_some(self.max)
    }

    /// Largest finite |x|; 0 when nothing finite was seen.
    pub fn absmax(&self) -> f32 {
        self.absmax
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::test_support::Rng;

    /// A histogram of all values at once over `[0, range]`, the thing the streaming one must reproduce.
    fn direct_histogram(values: &[f32], range: f64) -> Vec<u64> {
        let mut bins = vec![0u64; NUM_BINS];
        for &v in values {
            let index = (f64::from(v.abs()) * NUM_BINS as f64 / range) as usize;
            bins[index.min(NUM_BINS - 1)] += 1;
        }
        bins
    }

    fn cumulative(bins: &[u64]) -> Vec<u64> {
        bins.iter()
            .scan(0u64, |acc, &b| {
                *acc += b;
                Some(*acc)
            })
            .collect()
    }

    #[test]
    fn growth_keeps_mass_and_matches_a_direct_histogram_within_one_bin() {
        let mut rng = Rng::new(7);
        let mut obs = Observer::new();
        let mut all = Vec::new();
        // Each batch is wider than the last, so the bins grow several times, by factors 2, 3 and more.
        for (batch, spread) in [0.5f32, 0.9, 2.5, 2.6, 11.0, 11.0, 400.0].iter().enumerate() {
            let values: Vec<f32> = (0..5000).map(|_| rng.normal() as f32 * spread).collect();
            obs.observe(&values);
            all.extend_from_slice(&values);
            assert_eq!(obs.bins().iter().sum::<u64>(), all.len() as u64, "mass after batch {batch}");
        }
        assert_eq!(obs.count(), all.len() as u64);
        let direct = direct_histogram(&all, obs.range());
        let (streamed, reference) = (cumulative(obs.bins()), cumulative(&direct));
        for j in 0..NUM_BINS {
            // Within one bin: the streamed CDF at edge j lies between the direct CDF one edge below and one above.
            let below = if j == 0 { 0 } else { reference[j - 1] };
            let above = reference[(j + 1).min(NUM_BINS - 1)];
            assert!(below <= streamed[j] && streamed[j] <= above, "bin {j}: {below} <= {} <= {above}", streamed[j]);
        }
        let absmax = all.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(obs.absmax(), absmax);
        assert!(obs.range() >= f64::from(absmax) && obs.range() < 2.0 * f64::from(absmax));
    }

    #[test]
    fn growth_is_exact_for_values_away_from_edges() {
        // Dyadic values at bin centres of the final histogram: the merged bins must equal the direct ones exactly.
        let mut obs = Observer::new();
        obs.observe(&[1.0, -0.25, 0.5]);
        assert_eq!(obs.range(), 1.0);
        let width = 4.0 / NUM_BINS as f32;
        let centres: Vec<f32> = (0..NUM_BINS).step_by(3).map(|j| (j as f32 + 0.5) * width).collect();
        obs.observe(&centres);
        assert_eq!(obs.range(), 4.0);
        let mut all = vec![-0.25, 0.5];
        all.extend_from_slice(&centres);
        let mut expected = direct_histogram(&all, 4.0);
        // 1.0 was the first batch's absmax, on the top edge and so in the last bin; merged by 4 that is bin 511,
        // where a direct histogram over [0, 4] puts it in bin 512: the one-bin difference the module docs allow.
        expected[NUM_BINS / 4 - 1] += 1;
        assert_eq!(obs.bins(), expected.as_slice());
    }

    #[test]
    fn huge_growth_collapses_into_bin_zero() {
        let mut obs = Observer::new();
        obs.observe(&[1e-20, 2e-20]);
        obs.observe(&[1e20]);
        assert_eq!(obs.bins()[0], 2);
        assert_eq!(obs.bins().iter().sum::<u64>(), 3);
        assert_eq!(obs.count(), 3);
        assert!(obs.range() >= 1e20);
    }

    #[test]
    fn non_finite_values_are_counted_apart() {
        let mut obs = Observer::new();
        obs.observe(&[f32::NAN, 1.0, f32::INFINITY, -2.0, f32::NEG_INFINITY, f32::NAN]);
        assert_eq!((obs.nan_count(), obs.pos_inf_count(), obs.neg_inf_count()), (2, 1, 1));
        assert_eq!(obs.non_finite(), 4);
        assert_eq!(obs.count(), 2);
        assert_eq!((obs.min(), obs.max(), obs.absmax()), (Some(-2.0), Some(1.0), 2.0));
        assert_eq!(obs.bins().iter().sum::<u64>(), 2);
    }

    #[test]
    fn zeros_before_the_first_non_zero_value_stay_in_bin_zero() {
        let mut obs = Observer::new();
        obs.observe(&[0.0, -0.0, 0.0]);
        assert_eq!((obs.range(), obs.absmax(), obs.zeros()), (0.0, 0.0, 3));
        obs.observe(&[3.0, 0.0]);
        assert_eq!(obs.bins()[0], 4);
        assert_eq!(obs.bins()[NUM_BINS - 1], 1);
        assert_eq!(obs.zeros(), 4);
    }

    #[test]
    fn empty_and_all_nan_batches_change_nothing_but_counts() {
        let mut obs = Observer::new();
        obs.observe(&[]);
        obs.observe(&[f32::NAN]);
        assert_eq!((obs.count(), obs.min(), obs.max(), obs.range()), (0, None, None, 0.0));
    }

    #[test]
    fn extreme_finite_values_do_not_overflow_the_range() {
        let mut obs = Observer::new();
        obs.observe(&[f32::MIN_POSITIVE / 4.0]);
        obs.observe(&[f32::MAX, f32::MIN]);
        assert!(obs.range().is_finite() && obs.range() >= f64::from(f32::MAX));
        assert_eq!(obs.count(), 3);
        assert_eq!(obs.bins()[NUM_BINS - 1], 2);
    }
}
