//! Calibration: activation statistics, scale selection, and the files that carry scales to TensorRT.
//!
//! - [`histogram`]: streaming per-tensor statistics ([`Observer`]), O(bins) memory per tensor.
//! - [`methods`]: amax from an observer ([`Method`]: minmax, percentile, entropy, mse), symmetric INT8 scales,
//!   per-channel weight scales. Pure numeric code, no I/O.
//! - [`cache`]: the TensorRT calibration cache (`TRT-<version>-<algorithm>` + `name: hex` lines), read and write.
//! - [`scales`]: `scales.json`, precisiond's own record of activation and weight scales.
//! - [`run`]: running the model over calibration samples (through `exec`) into a [`ScalesFile`].

pub mod cache;
pub mod histogram;
pub mod methods;
pub mod run;
pub mod scales;

pub use cache::{Algorithm, CacheEntry, CacheError, CacheHeader, CalibrationCache, TrtVersion};
pub use histogram::{NUM_BINS, Observer};
pub use methods::{DEFAULT_PERCENTILE, MIN_SCALE, Method, MethodError, int8_scale, per_channel_scales};
pub use scales::{ActivationScale, SCALES_FORMAT, ScalesError, ScalesFile, WeightScales};

/// Deterministic random numbers for the tests of this module (no `rand` dependency for three distributions).
#[cfg(test)]
pub(crate) mod test_support {
    /// splitmix64: tiny, full-period, and good enough for test data.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        pub fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal (Box-Muller; the second value is thrown away to keep the state simple).
        pub fn normal(&mut self) -> f64 {
            let u1 = 1.0 - self.uniform();
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }
}
