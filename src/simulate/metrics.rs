//! Accuracy of an output against its FP32 reference: the budget metrics of the precision spec.
//!
//! Each function compares one output tensor of one sample; aggregation over samples (mean or min) and over
//! outputs (the worst) is done by the caller, so that every bound of the budget is checked per output.

/// Cosine similarity of two equally long vectors. Two all-zero vectors are identical (1.0); one all-zero vector
/// against a non-zero one is 0.0.
pub fn cosine(reference: &[f32], candidate: &[f32]) -> f64 {
    let (mut dot, mut nr, mut nc) = (0.0f64, 0.0f64, 0.0f64);
    for (&r, &c) in reference.iter().zip(candidate) {
        let (r, c) = (r as f64, c as f64);
        dot += r * c;
        nr += r * r;
        nc += c * c;
    }
    if nr == 0.0 && nc == 0.0 {
        return 1.0;
    }
    if nr == 0.0 || nc == 0.0 {
        return 0.0;
    }
    (dot / (nr.sqrt() * nc.sqrt())).clamp(-1.0, 1.0)
}

/// Signal-to-quantization-noise ratio in dB: 10·log10(Σr² / Σ(r−c)²). Identical outputs give +∞ (written as a
/// large finite number by serializers that cannot carry infinity).
pub fn sqnr_db(reference: &[f32], candidate: &[f32]) -> f64 {
    let (mut signal, mut noise) = (0.0f64, 0.0f64);
    for (&r, &c) in reference.iter().zip(candidate) {
        let (r, c) = (r as f64, c as f64);
        signal += r * r;
        noise += (r - c) * (r - c);
    }
    if noise == 0.0 {
        return f64::INFINITY;
    }
    if signal == 0.0 {
        return f64::NEG_INFINITY;
    }
    10.0 * (signal / noise).log10()
}

pub fn max_abs(reference: &[f32], candidate: &[f32]) -> f64 {
    reference.iter().zip(candidate).map(|(&r, &c)| (r as f64 - c as f64).abs()).fold(0.0, f64::max)
}

/// Share of positions whose argmax over the last axis (of length `classes`) agrees: per class vector for
/// classifiers ([N, C]), per time step for sequence decoders ([N, T, C]). Ties go to the lowest index, as numpy's.
pub fn argmax_agreement(reference: &[f32], candidate: &[f32], classes: usize) -> f64 {
    if classes == 0 || reference.is_empty() {
        return 1.0;
    }
    let argmax = |v: &[f32]| {
        let mut best = 0;
        for (i, &x) in v.iter().enumerate() {
            if x > v[best] {
                best = i;
            }
        }
        best
    };
    let positions = reference.len() / classes;
    let agree = reference
        .chunks_exact(classes)
        .zip(candidate.chunks_exact(classes))
        .filter(|(r, c)| argmax(r) == argmax(c))
        .count();
    agree as f64 / positions as f64
}

/// Intersection over union of the masks `value > threshold`. Two empty masks agree perfectly (1.0).
pub fn mask_iou(reference: &[f32], candidate: &[f32], threshold: f32) -> f64 {
    let (mut inter, mut union) = (0u64, 0u64);
    for (&r, &c) in reference.iter().zip(candidate) {
        let (a, b) = (r > threshold, c > threshold);
        inter += (a && b) as u64;
        union += (a || b) as u64;
    }
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0]), 1.0);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[1.0, 0.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn sqnr_of_known_noise() {
        // signal power 4 per element, noise power 0.04: ratio 100 → 20 dB
        let r = [2.0f32, -2.0, 2.0, -2.0];
        let c = [2.2f32, -1.8, 1.8, -2.2];
        assert!((sqnr_db(&r, &c) - 20.0).abs() < 1e-4, "{}", sqnr_db(&r, &c));
        assert_eq!(sqnr_db(&r, &r), f64::INFINITY);
    }

    #[test]
    fn argmax_per_position_and_ties() {
        let r = [0.1, 0.9, 0.5, 0.5, 0.7, 0.3];
        let c = [0.2, 0.8, 0.4, 0.6, 0.7, 0.7];
        // positions: [0.1,0.9]→1 vs 1; [0.5,0.5]→0 vs 1; [0.7,0.3]→0 vs tie→0
        assert!((argmax_agreement(&r, &c, 2) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn iou_of_thresholded_masks() {
        let r = [0.9, 0.8, 0.1, 0.0];
        let c = [0.9, 0.2, 0.6, 0.0];
        assert!((mask_iou(&r, &c, 0.3) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(mask_iou(&[0.0], &[0.1], 0.3), 1.0);
        assert!((max_abs(&r, &c) - 0.6).abs() < 1e-6);
    }
}
