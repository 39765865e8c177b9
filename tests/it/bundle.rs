//! Bundles made of real models and real samples: sealing (through the binary), opening, and every refusal naming
//! the file at fault; samples streamed into the real models.

use std::path::{Path, PathBuf};

use precisiond::bundle::{self, BundleError, manifest};
use precisiond::exec::{Executor, declared_inputs};
use precisiond::inputs::{ImageRecipe, load_input_file, read_npy, write_npy_file};
use precisiond::model::Model;
use precisiond::tensor::{Tensor, TensorData};

use crate::support::{self, asset, refused, run, tempdir};

const CLS_SHAPE: [usize; 4] = [1, 3, 48, 192];

/// Deterministic values in [-1, 1], different per `seed`.
fn wave(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.618 + seed).sin()).collect()
}

fn write_f32(path: &Path, shape: Vec<usize>, values: Vec<f32>) {
    write_npy_file(path, &Tensor::from_f32(shape, values).unwrap()).unwrap();
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}

/// The cls model with images and arrays in calib/ and eval/, no precision.toml, not sealed.
fn cls_folder(root: &Path) -> PathBuf {
    let dir = root.join("cls");
    copy(&support::model("cls"), &dir.join("model.onnx"));
    for image in ["astronaut.png", "chelsea.png", "coffee.png"] {
        copy(&asset(&format!("images/{image}")), &dir.join("calib").join(image));
    }
    copy(&asset("images/rocket.jpg"), &dir.join("eval/rocket.jpg"));
    let n: usize = CLS_SHAPE.iter().product();
    write_f32(&dir.join("calib/batch.npy"), vec![2, 3, 48, 192], wave(2 * n, 0.0));
    write_f32(&dir.join("calib/one.npy"), CLS_SHAPE.to_vec(), wave(n, 1.0));
    write_f32(&dir.join("eval/e.npy"), CLS_SHAPE.to_vec(), wave(n, 2.0));
    dir
}

const CLS_SHAPE_LINE: &str = "shape = [\"?\", 3, \"?\", \"?\"]";

/// [`cls_folder`], sealed: the starter spec written by a first seal, its placeholders filled, sealed again.
fn cls_bundle(root: &Path) -> PathBuf {
    let dir = cls_folder(root);
    match bundle::seal(&dir) {
        Err(BundleError::StarterNeedsEdits { .. }) => {}
        other => panic!("a first seal should stop at the starter's placeholders: {other:?}"),
    }
    fill_placeholders(&dir);
    bundle::seal(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn fill_placeholders(dir: &Path) {
    let spec = dir.join("precision.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains(CLS_SHAPE_LINE), "{text}");
    std::fs::write(&spec, text.replace(CLS_SHAPE_LINE, "shape = [1, 3, 48, 192]")).unwrap();
}

fn open_err(dir: &Path) -> BundleError {
    match bundle::open(dir) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn seal_writes_a_starter_then_seals_and_open_streams_samples_into_the_model() {
    let root = tempdir();
    let dir = cls_folder(root.path());

    let err = refused(
        &[&"bundle", &"seal", &dir],
        &["wrote a starter", "precision.toml:", "inputs.x.shape: dimension 0 is still the placeholder \"?\"", "hint: "],
    );
    assert!(err.contains(&dir.join("precision.toml").display().to_string()), "{err}");
    assert!(!dir.join("bundle.toml").exists(), "nothing sealed while the spec has placeholders");
    fill_placeholders(&dir);

    let (code, out, err) = run(&[&"bundle", &"seal", &dir]);
    assert_eq!(code, 0, "{err}");
    // model, spec, 5 calib files, 2 eval files.
    assert!(out.contains(&format!("wrote {}: 9 files, ", dir.join("bundle.toml").display())), "{out}");
    assert!(out.contains("samples: 6 calibration, 2 evaluation"), "{out}");
    assert!(!out.contains("starter"), "the spec was there this time: {out}");

    let text = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    let entries = manifest::parse(&text).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "calib/astronaut.png",
            "calib/batch.npy",
            "calib/chelsea.png",
            "calib/coffee.png",
            "calib/one.npy",
            "eval/e.npy",
            "eval/rocket.jpg",
            "model.onnx",
            "precision.toml"
        ]
    );
    let model_entry = &entries[7];
    assert_eq!(
        (model_entry.sha256.clone(), model_entry.size),
        manifest::sha256_file(&support::model("cls")).unwrap(),
        "the listed checksum is the model's"
    );

    // Sealing the same content again writes the same bytes.
    let (code, out, _) = run(&[&"bundle", &"seal", &dir]);
    assert_eq!(code, 0);
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.join("bundle.toml")).unwrap(), text);

    let b = bundle::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.dir(), dir);
    assert_eq!(b.model_path(), dir.join("model.onnx"));
    assert_eq!(b.manifest_sha256(), manifest::sha256_file(&dir.join("bundle.toml")).unwrap().0);
    let names = |files: &[PathBuf]| -> Vec<String> {
        files.iter().map(|f| f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned()).collect()
    };
    assert_eq!(
        names(b.calib_files()),
        ["calib/astronaut.png", "calib/batch.npy", "calib/chelsea.png", "calib/coffee.png", "calib/one.npy"]
    );
    assert_eq!(names(b.eval_files()), ["eval/e.npy", "eval/rocket.jpg"]);
    assert_eq!(b.spec().calibration.samples, 128);
    assert_eq!(b.spec().budget.cosine, Some(0.99));

    let model = Model::load(&b.model_path()).unwrap();
    let inputs = b.spec().input_shapes(&declared_inputs(&model)).unwrap();
    assert_eq!(inputs[0].1, CLS_SHAPE);
    let calib = b.calib_samples(&inputs);
    assert_eq!(calib.total().unwrap(), 6);
    let samples: Vec<Vec<Tensor>> = calib.collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(samples.len(), 6);
    let recipe: &ImageRecipe = &b.spec().inputs["x"];
    let astronaut = load_input_file(&dir.join("calib/astronaut.png"), Some(recipe), "x").unwrap();
    assert_eq!(samples[0][0], astronaut);
    let n: usize = CLS_SHAPE.iter().product();
    // batch.npy [2,3,48,192] gives two samples, in order.
    assert_eq!(samples[1][0].shape(), CLS_SHAPE);
    assert_eq!(samples[1][0].as_f32().unwrap(), &wave(2 * n, 0.0)[..n]);
    assert_eq!(samples[2][0].as_f32().unwrap(), &wave(2 * n, 0.0)[n..]);
    assert_eq!(samples[5][0].as_f32().unwrap(), &wave(n, 1.0)[..]);

    // The samples fit the real model: it runs on each and gives two class scores that sum to 1.
    let exec = Executor::new(&model, &[("x".to_string(), CLS_SHAPE.to_vec())]).unwrap();
    for sample in samples.iter().chain(&b.eval_samples(&inputs).collect::<Result<Vec<_>, _>>().unwrap()) {
        let out = exec.run(sample).unwrap_or_else(|e| panic!("{e}"));
        let scores = out[0].as_f32().unwrap();
        assert_eq!(scores.len(), 2);
        assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{scores:?}");
    }

    // calibration.samples caps the stream.
    let spec = dir.join("precision.toml");
    let text = std::fs::read_to_string(&spec).unwrap().replace("samples = 128", "samples = 4");
    std::fs::write(&spec, text).unwrap();
    bundle::seal(&dir).unwrap();
    let b = bundle::open(&dir).unwrap();
    assert_eq!(b.calib_samples(&inputs).total().unwrap(), 4);
    assert_eq!(b.calib_samples(&inputs).count(), 4);
}

#[test]
fn open_names_a_file_edited_after_sealing() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    let one = dir.join("calib/one.npy");
    let mut bytes = std::fs::read(&one).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&one, &bytes).unwrap();
    let e = open_err(&dir);
    assert!(matches!(e, BundleError::ChecksumDiffers { ref path, .. } if *path == one), "{e}");
    assert!(e.to_string().starts_with(&format!("{}: sha256 ", one.display())), "{e}");
    assert!(e.is_incomplete());

    bytes.push(0);
    std::fs::write(&one, &bytes).unwrap();
    let e = open_err(&dir);
    assert_eq!(
        e.to_string(),
        format!("{}: {} bytes, but bundle.toml lists {}", one.display(), bytes.len(), bytes.len() - 1)
    );
    let failure = precisiond::error::Failure::from(e);
    assert!(failure.to_string().contains("hint: a bundle still being copied is not ready yet"), "{failure}");
}

#[test]
fn open_names_a_file_added_after_sealing_and_reseal_flags_a_stale_signature() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    let added = dir.join("eval/extra.npy");
    write_f32(&added, CLS_SHAPE.to_vec(), wave(CLS_SHAPE.iter().product(), 7.0));
    let e = open_err(&dir);
    assert_eq!(
        e.to_string(),
        format!("{}: not listed in bundle.toml (added after the bundle was sealed)", added.display())
    );
    assert!(!e.is_incomplete());
    let failure = precisiond::error::Failure::from(e);
    assert!(failure.to_string().contains("hint: seal the bundle again"), "{failure}");

    // Hidden files are never part of a bundle (temporary files of atomic writes, editor droppings).
    support::write(&dir.join("calib/.extra.npy.tmp-1"), b"partial");
    std::fs::create_dir(dir.join(".git")).unwrap();
    support::write(&dir.join(".git/HEAD"), b"ref");

    support::write(&dir.join("bundle.toml.sig"), b"an old signature");
    let (code, out, err) = run(&[&"bundle", &"seal", &dir]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 files") && out.contains("samples: 6 calibration, 3 evaluation"), "{out}");
    assert!(out.contains("note: bundle.toml.sig signs the previous manifest"), "{out}");
    let b = bundle::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.eval_files().len(), 3);
    assert!(!b.files().iter().any(|f| f.path.contains(".git") || f.path.contains("tmp") || f.path.ends_with(".sig")));
}

#[test]
fn open_names_a_missing_file_and_an_unsealed_bundle() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    let gone = dir.join("calib/coffee.png");
    std::fs::remove_file(&gone).unwrap();
    let e = open_err(&dir);
    assert_eq!(e.to_string(), format!("{}: listed in bundle.toml but missing", gone.display()));
    assert!(e.is_incomplete(), "a half-copied bundle is not ready yet, not broken");

    std::fs::remove_file(dir.join("bundle.toml")).unwrap();
    let e = open_err(&dir);
    assert!(matches!(e, BundleError::NoManifest { .. }) && e.is_incomplete(), "{e}");
    assert!(e.to_string().contains("no bundle.toml"), "{e}");
}

#[test]
fn symlinks_and_special_files_are_refused_by_name() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    let link = dir.join("eval/linked.png");
    std::os::unix::fs::symlink(asset("images/coins.png"), &link).unwrap();
    let e = open_err(&dir);
    assert_eq!(
        e.to_string(),
        format!("{}: a symbolic link; a bundle holds only regular files and folders", link.display())
    );
    refused(&[&"bundle", &"seal", &dir], &[&link.display().to_string(), "symbolic link", "hint: copy the file"]);
    std::fs::remove_file(&link).unwrap();

    // A linked folder is refused too: nothing inside a bundle may point outside it.
    let linked_dir = dir.join("calib/more");
    std::os::unix::fs::symlink(root.path(), &linked_dir).unwrap();
    assert!(matches!(open_err(&dir), BundleError::Symlink { ref path } if *path == linked_dir));
    std::fs::remove_file(&linked_dir).unwrap();

    let fifo = dir.join("calib/pipe.npy");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(status.success());
    refused(&[&"bundle", &"seal", &dir], &[&format!("{}: a named pipe", fifo.display())]);
    std::fs::remove_file(&fifo).unwrap();
    bundle::open(&dir).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn hand_edited_manifest_paths_that_leave_the_bundle_are_refused() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    // A real file outside the bundle, listed with its true checksum: still refused, by the path alone.
    let outside = root.path().join("outside.onnx");
    copy(&support::model("cls"), &outside);
    let (sha256, size) = manifest::sha256_file(&outside).unwrap();
    let original = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    for path in ["../outside.onnx", "calib/../../outside.onnx", &outside.display().to_string()] {
        let edited = format!("{original}\n[[file]]\npath = \"{path}\"\nsize = {size}\nsha256 = \"{sha256}\"\n");
        std::fs::write(dir.join("bundle.toml"), edited).unwrap();
        let e = open_err(&dir);
        assert!(matches!(e, BundleError::BadManifest { .. }), "{path}: {e}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("{}: listed path \"{path}\"", dir.join("bundle.toml").display())), "{text}");
        assert!(text.contains("`..`") || text.contains("absolute"), "{text}");
    }
    let edited = original.replacen("format = 1", "format = 7", 1);
    std::fs::write(dir.join("bundle.toml"), edited).unwrap();
    assert!(open_err(&dir).to_string().ends_with("manifest format 7; this precisiond reads format 1"));
    std::fs::write(dir.join("bundle.toml"), original).unwrap();
    bundle::open(&dir).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn empty_calib_is_refused_by_seal_and_open() {
    let root = tempdir();
    let dir = cls_bundle(root.path());
    let sealed = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    std::fs::remove_dir_all(dir.join("calib")).unwrap();
    std::fs::create_dir(dir.join("calib")).unwrap();
    refused(
        &[&"bundle", &"seal", &dir],
        &[&format!("{}: no calibration samples", dir.display()), "hint: put calibration inputs under calib/"],
    );
    assert_eq!(std::fs::read_to_string(dir.join("bundle.toml")).unwrap(), sealed, "a refused seal writes nothing");

    // A manifest that lists no calib/ file (written by hand or by another tool) is refused on open as well.
    let entries: Vec<manifest::Entry> =
        manifest::parse(&sealed).unwrap().into_iter().filter(|e| !e.path.starts_with("calib/")).collect();
    std::fs::write(dir.join("bundle.toml"), manifest::render(&entries)).unwrap();
    assert!(matches!(open_err(&dir), BundleError::NoCalibSamples { .. }));
}

#[test]
fn calib_and_eval_sharing_a_file_is_refused_naming_both() {
    let root = tempdir();
    let dir = cls_folder(root.path());
    fill_placeholders_after_starter(&dir);
    let copy_in_eval = dir.join("eval/same_as_one.npy");
    copy(&dir.join("calib/one.npy"), &copy_in_eval);
    refused(
        &[&"bundle", &"seal", &dir],
        &[
            &format!("{} and {} have the same content", dir.join("calib/one.npy").display(), copy_in_eval.display()),
            "calib/ and eval/ must be disjoint",
        ],
    );
    assert!(!dir.join("bundle.toml").exists());
}

fn fill_placeholders_after_starter(dir: &Path) {
    assert!(matches!(bundle::seal(dir), Err(BundleError::StarterNeedsEdits { .. })));
    fill_placeholders(dir);
}

#[test]
fn a_spec_typo_fails_seal_at_the_workstation() {
    let root = tempdir();
    let dir = cls_folder(root.path());
    let spec = "[precision]\ndefault = \"int8\"\n\n[budget]\ncosin = 0.99\n\n[inputs.x]\nshape = [1, 3, 48, 192]\n";
    support::write(&dir.join("precision.toml"), spec.as_bytes());
    let err = refused(
        &[&"bundle", &"seal", &dir],
        &[&format!(
            "{}:5: unknown key `cosin` in [budget]; did you mean `cosine`?",
            dir.join("precision.toml").display()
        )],
    );
    assert!(!err.contains("starter"), "{err}");
    assert!(!dir.join("bundle.toml").exists(), "no manifest for a bundle whose spec does not parse");

    // A spec that parses but does not fit the model: its input is 3-channel.
    let spec = "[budget]\ncosine = 0.99\n\n[inputs.x]\nshape = [1, 1, 48, 192]\n";
    support::write(&dir.join("precision.toml"), spec.as_bytes());
    refused(
        &[&"bundle", &"seal", &dir],
        &["precision.toml:5: inputs.x.shape [1, 1, 48, 192]", "dimension 1 is 3 in the model"],
    );
    // And one naming an input the model does not have.
    let spec = "[budget]\ncosine = 0.99\n\n[inputs.image]\nshape = [1, 3, 48, 192]\n";
    support::write(&dir.join("precision.toml"), spec.as_bytes());
    refused(
        &[&"bundle", &"seal", &dir],
        &["precision.toml:4: [inputs.image] names no input of the model (its inputs: `x`)"],
    );
}

#[test]
fn samples_of_the_wrong_shape_or_not_finite_are_named() {
    let root = tempdir();
    let dir = cls_folder(root.path());
    fill_placeholders_after_starter(&dir);
    let wrong = dir.join("calib/wrong.npy");
    write_f32(&wrong, vec![1, 3, 192, 48], vec![0.0; 3 * 192 * 48]);
    refused(
        &[&"bundle", &"seal", &dir],
        &[&format!(
            "{}: shape 1x3x192x48 does not fit input `x`: expected 1x3x48x192, or Kx3x48x192 for K samples",
            wrong.display()
        )],
    );
    std::fs::remove_file(&wrong).unwrap();
    let notes = dir.join("eval/notes.txt");
    support::write(&notes, b"eval set v2");
    refused(&[&"bundle", &"seal", &dir], &[&format!("{}: unsupported sample file", notes.display())]);
    std::fs::remove_file(&notes).unwrap();
    let ints = dir.join("eval/ints.npy");
    write_npy_file(&ints, &Tensor::new(CLS_SHAPE.to_vec(), TensorData::I64(vec![0; 3 * 48 * 192])).unwrap()).unwrap();
    refused(
        &[&"bundle", &"seal", &dir],
        &[&format!("{}: dtype int64 does not fit input `x`, which is float32", ints.display())],
    );
    std::fs::remove_file(&ints).unwrap();

    // NaN is in the data, which sealing does not read: the stream names the file and the element.
    let n: usize = CLS_SHAPE.iter().product();
    let mut values = wave(2 * n, 3.0);
    values[n + 5 * 192 + 7] = f32::NAN;
    let nan = dir.join("calib/nan.npy");
    write_f32(&nan, vec![2, 3, 48, 192], values);
    bundle::seal(&dir).unwrap_or_else(|e| panic!("{e}"));
    let b = bundle::open(&dir).unwrap();
    let model = Model::load(&b.model_path()).unwrap();
    let inputs = b.spec().input_shapes(&declared_inputs(&model)).unwrap();
    let results: Vec<_> = b.calib_samples(&inputs).collect();
    // astronaut, batch ×2, chelsea, coffee, then nan.npy's first sample; its second holds the NaN.
    assert_eq!(results.len(), 7, "the stream ends at the error");
    assert!(results[..6].iter().all(Result::is_ok));
    let e = results[6].as_ref().unwrap_err();
    assert_eq!(e.to_string(), format!("{}: element [1, 0, 5, 7] is NaN; samples must be finite", nan.display()));
}

#[test]
fn digits_arrays_hold_k_samples_per_file_in_order() {
    let root = tempdir();
    let dir = root.path().join("digits");
    copy(&support::model("digits_cnn"), &dir.join("model.onnx"));
    copy(&asset("data/digits_train_x.npy"), &dir.join("calib/digits_train_x.npy"));
    copy(&asset("data/digits_test_x.npy"), &dir.join("eval/digits_test_x.npy"));
    let err = refused(&[&"bundle", &"seal", &dir], &["wrote a starter", "placeholder"]);
    assert!(err.contains("inputs.x.shape: dimension 0"), "only the batch is open in [?,1,8,8]:\n{err}");
    let spec = dir.join("precision.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("channels = \"GRAY\""), "a 1-channel NCHW input:\n{text}");
    std::fs::write(&spec, text.replace("shape = [\"?\", 1, 8, 8]", "shape = [1, 1, 8, 8]")).unwrap();
    let (code, out, err) = run(&[&"bundle", &"seal", &dir]);
    assert_eq!(code, 0, "{err}");
    // calib: 256 arrays in one file, of which calibration.samples = 128 are used; eval: 359 in one file.
    assert!(out.contains("samples: 256 calibration (128 used: calibration.samples), 359 evaluation"), "{out}");
    assert!(out.contains(": 4 files, "), "{out}");

    let b = bundle::open(&dir).unwrap();
    let model = Model::load(&b.model_path()).unwrap();
    let inputs = b.spec().input_shapes(&declared_inputs(&model)).unwrap();
    let calib: Vec<Vec<Tensor>> = b.calib_samples(&inputs).collect::<Result<_, _>>().unwrap();
    assert_eq!(calib.len(), 128);
    let all = read_npy(&asset("data/digits_train_x.npy")).unwrap();
    let all = all.as_f32().unwrap();
    for (k, sample) in calib.iter().enumerate() {
        assert_eq!(sample[0].shape(), &[1, 1, 8, 8]);
        assert_eq!(sample[0].as_f32().unwrap(), &all[k * 64..(k + 1) * 64], "sample {k}");
    }

    // Every eval sample, in order, against the labels: the model's recorded held-out accuracy comes back.
    let labels = read_npy(&asset("data/digits_test_y.npy")).unwrap();
    let TensorData::I64(labels) = labels.data() else { panic!("labels are int64") };
    let exec = Executor::new(&model, &[("x".to_string(), vec![1, 1, 8, 8])]).unwrap();
    let mut correct = 0;
    let mut seen = 0;
    for (sample, &label) in b.eval_samples(&inputs).zip(labels) {
        let logits = exec.run(&sample.unwrap()).unwrap();
        let logits = logits[0].as_f32().unwrap();
        let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        correct += usize::from(best as i64 == label);
        seen += 1;
    }
    assert_eq!(seen, 359);
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(asset("models/digits_cnn.json")).unwrap()).unwrap();
    let expected = (recorded["heldout_accuracy"].as_f64().unwrap() * 359.0).round() as usize;
    assert_eq!(correct, expected, "argmax over the streamed eval samples matches the recorded accuracy");
}

#[test]
fn seal_refuses_a_folder_without_a_model() {
    let root = tempdir();
    refused(&[&"bundle", &"seal", &root.path().join("nope")], &["no such bundle folder"]);
    let dir = root.path().join("empty");
    std::fs::create_dir(&dir).unwrap();
    refused(&[&"bundle", &"seal", &dir], &[&format!("{}: no model.onnx", dir.display())]);
    support::write(&dir.join("model.onnx"), b"not a model");
    refused(&[&"bundle", &"seal", &dir], &["model.onnx is not a valid ONNX model"]);
    assert!(!dir.join("precision.toml").exists(), "no starter for a model that does not load");
}
