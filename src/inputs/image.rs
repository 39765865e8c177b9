//! PNG/JPEG → tensor by an `[inputs.NAME]` recipe. The algorithm, step by step (`scripts/preprocess_ref.py` is an
//! independent numpy implementation of exactly this, and the integration tests hold the two together):
//!
//! 1. **Decode** with the `image` crate. Pixels as stored: no EXIF rotation, no ICC colour management (Pillow and
//!    most training pipelines apply neither). Alpha is dropped, not composited. Every sample becomes an f32 on the
//!    0–255 scale: 8-bit samples as they are, 16-bit samples divided by 257 (65535 → 255 exactly, no rounding to
//!    8 bits, so the extra precision reaches the tensor).
//! 2. **Channels.** Gray → RGB/BGR repeats the gray value. RGB → GRAY is the ITU-R 601-2 luma transform that
//!    Pillow's `convert("L")` uses, `L = (299·R + 587·G + 114·B) / 1000`, computed in f32 and *not* rounded to an
//!    integer (Pillow rounds to 8 bits; we keep the fraction, a difference of at most half a level). BGR reverses
//!    the order. `mean` and `std` are then indexed in this, the tensor's, channel order.
//! 3. **Resize** (bilinear, f32, on the 0–255 values): every output pixel `d` along an axis of `n_in → n_out`
//!    samples the source at `s = (d + 0.5) · n_in / n_out − 0.5` (half-pixel centres, align_corners = false),
//!    `s` clamped to `[0, n_in − 1]`, interpolating between `floor(s)` and `min(floor(s) + 1, n_in − 1)`. That is
//!    OpenCV's `INTER_LINEAR` on a float image (no antialiasing; OpenCV's 8-bit path uses fixed-point weights and
//!    differs by rounding) and ONNX `Resize` (linear, half_pixel). Downscaling by more than 2× therefore aliases,
//!    as it does in those pipelines.
//!    - `stretch`: straight to H×W.
//!    - `letterbox`: `s = min(H/h, W/w)` (f64), the image resized to `(round(h·s), round(w·s))` (half away from
//!      zero, clamped to `1..=H`, `1..=W`) and placed at the **top-left** corner; the rest of the tensor is **0
//!      after normalisation**, i.e. the channel's mean. That is PP-OCR's recognition padding (the spec's example
//!      input); YOLO's centred, 114-grey letterbox is not what this does. Top-left keeps the mapping from tensor
//!      back to image coordinates a pure scale by `1/s`.
//! 4. **Normalise**: `v = px · scale`, then `(v − mean[c]) / std[c]` (f32).
//! 5. **Layout**: `NCHW` → `[1, C, H, W]`, `NHWC` → `[1, H, W, C]`; the tensor is always float32.

use std::path::Path;

use ::image::{DynamicImage, ImageReader};

use super::{Channels, ImageRecipe, InputError, Layout, Resize};
use crate::tensor::Tensor;

/// Interleaved (HWC) f32 pixels on the 0–255 scale, one or three channels.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pixels {
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) channels: usize,
    pub(crate) data: Vec<f32>,
}

/// Decodes an image file and applies `recipe` (which the caller has validated).
pub(crate) fn load_image(path: &Path, recipe: &ImageRecipe) -> Result<Tensor, InputError> {
    let decode_err = |source| InputError::ImageDecode { path: path.to_path_buf(), source };
    let reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| InputError::Io { path: path.to_path_buf(), source })?;
    let decoded = reader.decode().map_err(decode_err)?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(InputError::EmptyImage {
            path: path.to_path_buf(),
            width: decoded.width(),
            height: decoded.height(),
        });
    }
    Ok(preprocess(&decoded_pixels(decoded), recipe))
}

/// Samples of a decoded image on the 0–255 scale, alpha dropped (step 1).
pub(crate) fn decoded_pixels(img: DynamicImage) -> Pixels {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let from_u8 = |raw: &[u8], stride: usize, keep: usize| -> Vec<f32> {
        raw.chunks_exact(stride).flat_map(|px| px[..keep].iter().map(|&v| f32::from(v))).collect()
    };
    let from_u16 = |raw: &[u16], stride: usize, keep: usize| -> Vec<f32> {
        raw.chunks_exact(stride).flat_map(|px| px[..keep].iter().map(|&v| f32::from(v) / 257.0)).collect()
    };
    let (channels, data) = match img {
        DynamicImage::ImageLuma8(b) => (1, from_u8(b.as_raw(), 1, 1)),
        DynamicImage::ImageLumaA8(b) => (1, from_u8(b.as_raw(), 2, 1)),
        DynamicImage::ImageRgb8(b) => (3, from_u8(b.as_raw(), 3, 3)),
        DynamicImage::ImageRgba8(b) => (3, from_u8(b.as_raw(), 4, 3)),
        DynamicImage::ImageLuma16(b) => (1, from_u16(b.as_raw(), 1, 1)),
        DynamicImage::ImageLumaA16(b) => (1, from_u16(b.as_raw(), 2, 1)),
        DynamicImage::ImageRgb16(b) => (3, from_u16(b.as_raw(), 3, 3)),
        DynamicImage::ImageRgba16(b) => (3, from_u16(b.as_raw(), 4, 3)),
        // Neither PNG nor JPEG decodes to float; should another format arrive, its 0–1 floats are rescaled.
        other => (3, other.to_rgb32f().as_raw().iter().map(|v| v * 255.0).collect()),
    };
    Pixels { height, width, channels, data }
}

/// Steps 2–5 on decoded pixels. `recipe` must have passed [`ImageRecipe::validate`].
pub(crate) fn preprocess(src: &Pixels, recipe: &ImageRecipe) -> Tensor {
    let (c, h, w) = recipe.chw();
    let converted = convert_channels(src, recipe.channels);
    let (rh, rw) = match recipe.resize {
        Resize::Stretch => (h, w),
        Resize::Letterbox => letterbox_size(src.height, src.width, h, w),
    };
    let resized = resize_bilinear(&converted, rh, rw);
    let per_channel = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let mean: Vec<f32> = (0..c).map(|i| per_channel(&recipe.mean, i)).collect();
    let std: Vec<f32> = (0..c).map(|i| per_channel(&recipe.std, i)).collect();

    // Letterbox padding stays 0: the value after normalisation (module docs, step 3).
    let mut out = vec![0.0f32; c * h * w];
    for y in 0..rh {
        for x in 0..rw {
            for ch in 0..c {
                let px = resized.data[(y * rw + x) * c + ch];
                let v = (px * recipe.scale - mean[ch]) / std[ch];
                let at = match recipe.layout {
                    Layout::Nchw => (ch * h + y) * w + x,
                    Layout::Nhwc => (y * w + x) * c + ch,
                };
                out[at] = v;
            }
        }
    }
    let shape = match recipe.layout {
        Layout::Nchw => vec![1, c, h, w],
        Layout::Nhwc => vec![1, h, w, c],
    };
    Tensor::from_f32(shape, out).expect("the buffer is sized from the shape")
}

/// Step 2: decoded channels (1 or 3) → the recipe's channels, in the tensor's order.
fn convert_channels(src: &Pixels, target: Channels) -> Pixels {
    let data: Vec<f32> = match (src.channels, target) {
        (1, Channels::Gray) => src.data.clone(),
        (1, Channels::Rgb | Channels::Bgr) => src.data.iter().flat_map(|&v| [v, v, v]).collect(),
        (_, Channels::Gray) => {
            src.data.chunks_exact(src.channels).map(|p| (299.0 * p[0] + 587.0 * p[1] + 114.0 * p[2]) / 1000.0).collect()
        }
        (_, Channels::Rgb) => src.data.clone(),
        (_, Channels::Bgr) => src.data.chunks_exact(src.channels).flat_map(|p| [p[2], p[1], p[0]]).collect(),
    };
    Pixels { height: src.height, width: src.width, channels: target.count(), data }
}

/// The letterboxed image's size inside an `out_h × out_w` tensor (step 3).
pub fn letterbox_size(h: usize, w: usize, out_h: usize, out_w: usize) -> (usize, usize) {
    let s = (out_h as f64 / h as f64).min(out_w as f64 / w as f64);
    let fit = |n: usize, limit: usize| ((n as f64 * s).round() as usize).clamp(1, limit);
    (fit(h, out_h), fit(w, out_w))
}

/// Source taps of one output coordinate along one axis.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

fn taps(n_in: usize, n_out: usize) -> Vec<Tap> {
    let ratio = n_in as f64 / n_out as f64;
    let last = (n_in - 1) as f64;
    (0..n_out)
        .map(|d| {
            let s = ((d as f64 + 0.5) * ratio - 0.5).clamp(0.0, last);
            let lo = s.floor() as usize;
            Tap { lo, hi: (lo + 1).min(n_in - 1), frac: (s - lo as f64) as f32 }
        })
        .collect()
}

/// Bilinear resize with half-pixel centres and border clamping (step 3). Sizes must be non-zero.
pub(crate) fn resize_bilinear(src: &Pixels, out_h: usize, out_w: usize) -> Pixels {
    let c = src.channels;
    let (ty, tx) = (taps(src.height, out_h), taps(src.width, out_w));
    let at = |y: usize, x: usize, ch: usize| src.data[(y * src.width + x) * c + ch];
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let mut data = Vec::with_capacity(out_h * out_w * c);
    for y in &ty {
        for x in &tx {
            for ch in 0..c {
                let top = lerp(at(y.lo, x.lo, ch), at(y.lo, x.hi, ch), x.frac);
                let bottom = lerp(at(y.hi, x.lo, ch), at(y.hi, x.hi, ch), x.frac);
                data.push(lerp(top, bottom, y.frac));
            }
        }
    }
    Pixels { height: out_h, width: out_w, channels: c, data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::load_input_file;

    fn gray(height: usize, width: usize, data: Vec<f32>) -> Pixels {
        Pixels { height, width, channels: 1, data }
    }

    fn recipe(toml_text: &str) -> ImageRecipe {
        let r: ImageRecipe = toml::from_str(toml_text).unwrap();
        r.validate().unwrap();
        r
    }

    fn assert_close(actual: &[f32], expected: &[f32]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() < 1e-5, "element {i}: {a} != {e}\n  actual {actual:?}\nexpected {expected:?}");
        }
    }

    #[test]
    fn taps_use_half_pixel_centres_and_clamp_at_borders() {
        // 2 → 4: s = (d + 0.5) / 2 − 0.5 = −0.25, 0.25, 0.75, 1.25 → clamped to 0, 0.25, 0.75, 1.
        let t = taps(2, 4);
        let got: Vec<(usize, usize, f32)> = t.iter().map(|t| (t.lo, t.hi, t.frac)).collect();
        assert_eq!(got, vec![(0, 1, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.0)]);
        // 4 → 2: s = 0.5, 2.5.
        let got: Vec<(usize, usize, f32)> = taps(4, 2).iter().map(|t| (t.lo, t.hi, t.frac)).collect();
        assert_eq!(got, vec![(0, 1, 0.5), (2, 3, 0.5)]);
        // Same size: the identity.
        assert!(taps(5, 5).iter().enumerate().all(|(d, t)| t.lo == d && t.frac == 0.0));
        // One source pixel: every output takes it.
        assert!(taps(1, 3).iter().all(|t| *t == Tap { lo: 0, hi: 0, frac: 0.0 }));
    }

    #[test]
    fn upscale_of_a_tiny_image_matches_hand_computed_values() {
        // [[0, 100], [200, 40]] → 4×4. Along each axis the weights of the two sources are
        // (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1), so row 1 = 0.75·row0 + 0.25·row1 of the x-interpolated rows.
        let src = gray(2, 2, vec![0.0, 100.0, 200.0, 40.0]);
        let out = resize_bilinear(&src, 4, 4);
        let r0 = [0.0, 25.0, 75.0, 100.0];
        let r3 = [200.0, 160.0, 80.0, 40.0];
        let mix = |a: f32, b: f32| -> [f32; 4] { std::array::from_fn(|i| a * r0[i] + b * r3[i]) };
        let expected: Vec<f32> = [r0, mix(0.75, 0.25), mix(0.25, 0.75), r3].concat();
        assert_close(&out.data, &expected);
        assert_eq!(expected[5], 0.75 * 25.0 + 0.25 * 160.0);
    }

    #[test]
    fn downscale_and_non_integer_ratio_match_hand_computed_values() {
        // 1×4 → 1×2: samples at 0.5 and 2.5.
        let out = resize_bilinear(&gray(1, 4, vec![10.0, 20.0, 40.0, 80.0]), 1, 2);
        assert_close(&out.data, &[15.0, 60.0]);
        // 1×3 → 1×2: ratio 1.5, s = 0.25 and 1.75.
        let out = resize_bilinear(&gray(1, 3, vec![0.0, 100.0, 200.0]), 1, 2);
        assert_close(&out.data, &[25.0, 175.0]);
        // 1×2 → 1×3: ratio 2/3, s = −1/6 → 0, 0.5, 7/6 → 1.
        let out = resize_bilinear(&gray(1, 2, vec![30.0, 90.0]), 1, 3);
        assert_close(&out.data, &[30.0, 60.0, 90.0]);
        // Channels are interpolated independently.
        let rgb = Pixels { height: 1, width: 2, channels: 3, data: vec![0.0, 10.0, 20.0, 100.0, 110.0, 120.0] };
        assert_close(&resize_bilinear(&rgb, 1, 1).data, &[50.0, 60.0, 70.0]);
    }

    #[test]
    fn channel_conversions() {
        let rgb = Pixels { height: 1, width: 2, channels: 3, data: vec![255.0, 0.0, 0.0, 10.0, 20.0, 30.0] };
        let g = convert_channels(&rgb, Channels::Gray);
        assert_close(&g.data, &[76.245, (2990.0 + 11740.0 + 3420.0) / 1000.0]);
        let b = convert_channels(&rgb, Channels::Bgr);
        assert_eq!(b.data, vec![0.0, 0.0, 255.0, 30.0, 20.0, 10.0]);
        let l = gray(1, 2, vec![7.0, 9.0]);
        assert_eq!(convert_channels(&l, Channels::Rgb).data, vec![7.0, 7.0, 7.0, 9.0, 9.0, 9.0]);
        assert_eq!(convert_channels(&l, Channels::Gray).data, vec![7.0, 9.0]);
    }

    #[test]
    fn letterbox_geometry() {
        // Wide 100×400 into 48×192: s = min(0.48, 0.48) → 48×192, no padding.
        assert_eq!(letterbox_size(100, 400, 48, 192), (48, 192));
        // Tall page 191×384 (h×w) into 48×192: s = min(48/191, 0.5) = 0.2513 → 48 × round(96.5) = 97.
        assert_eq!(letterbox_size(191, 384, 48, 192), (48, 97));
        // 400×600 into 640×640: s = 16/15 → 426.67 → 427 × 640.
        assert_eq!(letterbox_size(400, 600, 640, 640), (427, 640));
        // Extreme aspect ratios keep at least one row.
        assert_eq!(letterbox_size(1, 10000, 32, 32), (1, 32));
        assert_eq!(letterbox_size(3, 2, 3, 2), (3, 2));
    }

    #[test]
    fn letterbox_places_top_left_and_pads_with_zero_after_normalisation() {
        // A 2×4 image into 4×4: s = 1, image in rows 0–1, rows 2–3 padding.
        let src = Pixels { height: 2, width: 4, channels: 1, data: (0..8).map(|v| v as f32 * 10.0).collect() };
        let r = recipe(
            "shape = [1, 1, 4, 4]\nchannels = \"GRAY\"\nresize = \"letterbox\"\nscale = 0.1\nmean = [2.0]\nstd = [4.0]",
        );
        let t = preprocess(&src, &r);
        let px = |v: f32| (v * 0.1 - 2.0) / 4.0;
        let mut expected: Vec<f32> = (0..8).map(|v| px(v as f32 * 10.0)).collect();
        expected.extend([0.0; 8]);
        assert_close(t.as_f32().unwrap(), &expected);

        // A 4×2 image into 2×4 NHWC RGB: s = 0.5 → 2×1 at column 0; columns 1–3 padding.
        let src =
            Pixels { height: 4, width: 2, channels: 1, data: vec![0.0, 0.0, 0.0, 0.0, 100.0, 100.0, 100.0, 100.0] };
        let r = recipe(
            "shape = [1, 2, 4, 3]\nlayout = \"NHWC\"\nresize = \"letterbox\"\nscale = 1.0\nmean = [1.0, 2.0, 3.0]",
        );
        let t = preprocess(&src, &r);
        assert_eq!(t.shape(), &[1, 2, 4, 3]);
        // Row 0 of the 2×1 result samples source rows at s = 0.5·2 − 0.5 = 0.5 → 0, row 1 at 2.5 → 100.
        let mut expected = vec![0.0f32; 24];
        expected[..3].copy_from_slice(&[-1.0, -2.0, -3.0]);
        expected[12..15].copy_from_slice(&[99.0, 98.0, 97.0]);
        assert_close(t.as_f32().unwrap(), &expected);
    }

    #[test]
    fn normalisation_layout_and_channel_order() {
        // 1×2 RGB pixels, no resize: check NCHW vs NHWC placement and that BGR indexes mean/std in BGR order.
        let src = Pixels { height: 1, width: 2, channels: 3, data: vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0] };
        let base = "scale = 1.0\nmean = [1.0, 2.0, 3.0]\nstd = [1.0, 2.0, 4.0]\n";
        let t = preprocess(&src, &recipe(&format!("{base}shape = [1, 3, 1, 2]")));
        assert_eq!(t.shape(), &[1, 3, 1, 2]);
        assert_close(t.as_f32().unwrap(), &[9.0, 39.0, 9.0, 24.0, 6.75, 14.25]);
        let t = preprocess(&src, &recipe(&format!("{base}shape = [1, 1, 2, 3]\nlayout = \"NHWC\"")));
        assert_close(t.as_f32().unwrap(), &[9.0, 9.0, 6.75, 39.0, 24.0, 14.25]);
        let t =
            preprocess(&src, &recipe(&format!("{base}shape = [1, 1, 2, 3]\nlayout = \"NHWC\"\nchannels = \"BGR\"")));
        assert_close(t.as_f32().unwrap(), &[29.0, 9.0, 1.75, 59.0, 24.0, 9.25]);
        // Default recipe: px / 255.
        let t = preprocess(&gray(1, 1, vec![255.0]), &recipe("shape = [1, 1, 1, 1]\nchannels = \"GRAY\""));
        assert_close(t.as_f32().unwrap(), &[1.0]);
    }

    fn save(img: DynamicImage, dir: &Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        img.save(&p).unwrap();
        p
    }

    #[test]
    fn alpha_is_dropped_and_16_bit_samples_are_divided_by_257() {
        let dir = tempfile::tempdir().unwrap();
        let r = recipe("shape = [1, 3, 1, 2]\nscale = 1.0");
        let rgba = ::image::RgbaImage::from_raw(2, 1, vec![1, 2, 3, 0, 4, 5, 6, 255]).unwrap();
        let p = save(DynamicImage::ImageRgba8(rgba), dir.path(), "a.png");
        let t = load_input_file(&p, Some(&r), "x").unwrap();
        assert_eq!(t.as_f32().unwrap(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);

        let rgb16 =
            ::image::ImageBuffer::<::image::Rgb<u16>, _>::from_raw(2, 1, vec![0, 257, 65535, 1000, 2, 40000]).unwrap();
        let p = save(DynamicImage::ImageRgb16(rgb16), dir.path(), "b.png");
        let t = load_input_file(&p, Some(&r), "x").unwrap();
        assert_close(t.as_f32().unwrap(), &[0.0, 1000.0 / 257.0, 1.0, 2.0 / 257.0, 255.0, 40000.0 / 257.0]);

        let la16 = ::image::ImageBuffer::<::image::LumaA<u16>, _>::from_raw(2, 1, vec![514, 0, 65535, 7]).unwrap();
        let p = save(DynamicImage::ImageLumaA16(la16), dir.path(), "c.png");
        let g = recipe("shape = [1, 1, 1, 2]\nchannels = \"GRAY\"\nscale = 1.0");
        assert_close(load_input_file(&p, Some(&g), "x").unwrap().as_f32().unwrap(), &[2.0, 255.0]);
    }

    #[test]
    fn jpeg_and_png_decode_to_the_same_kind_of_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let img = ::image::RgbImage::from_fn(16, 8, |x, y| ::image::Rgb([(x * 16) as u8, (y * 32) as u8, 128]));
        let png = save(DynamicImage::ImageRgb8(img.clone()), dir.path(), "i.png");
        let jpg = save(DynamicImage::ImageRgb8(img), dir.path(), "i.JPEG");
        let r = recipe("shape = [1, 3, 8, 16]\nscale = 1.0");
        let a = load_input_file(&png, Some(&r), "x").unwrap();
        let b = load_input_file(&jpg, Some(&r), "x").unwrap();
        let worst = a.as_f32().unwrap().iter().zip(b.as_f32().unwrap()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // Lossy, so only close: this checks the JPEG path is wired, not the codec.
        assert!(worst < 16.0, "{worst}");
    }

    #[test]
    fn truncated_png_is_a_decode_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let img = ::image::RgbImage::from_fn(32, 32, |x, y| ::image::Rgb([x as u8, y as u8, 0]));
        let p = save(DynamicImage::ImageRgb8(img), dir.path(), "t.png");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_input_file(&p, Some(&recipe("shape = [1, 3, 4, 4]")), "x").unwrap_err();
        assert!(matches!(e, InputError::ImageDecode { .. }), "{e}");
    }
}
