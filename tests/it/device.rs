//! `precisiond device`: the contract JSON on a machine without GPU, the fake-fingerprint override, TensorRT found by
//! file name, and stand-in CUDA drivers (compiled here with `cc`) that lack symbols or answer unknown error codes.
//! The real GPU check is `scripts/device-check.sh`, run against nvidia-smi on a GPU machine.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support;

const FAKE: &str = "PRECISIOND_FAKE_FINGERPRINT";

/// Runs `precisiond ARGS` with `env` set (and no fake fingerprint unless `env` names one); (code, stdout, stderr).
fn device(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (i32, String, String) {
    let mut cmd = support::precisiond();
    cmd.arg("device").args(args).env_remove(FAKE);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn device_json(env: &[(&str, &std::ffi::OsStr)]) -> Value {
    let (code, out, err) = device(&["--json"], env);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Whether a CUDA driver library is anywhere the loader looks, judged without precisiond's own code.
fn machine_has_cuda_driver() -> bool {
    let in_cache = std::fs::read("/etc/ld.so.cache").is_ok_and(|b| b.windows(11).any(|w| w == b"/libcuda.so"));
    let in_path = std::env::var_os("LD_LIBRARY_PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcuda.so")))
            })
        })
    });
    in_cache || in_path
}

/// The top-level keys in the order printed.
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once('"'))
        .map(|(k, _)| k.to_owned())
        .collect()
}

#[test]
fn device_json_without_gpu_is_the_contract_with_nulls() {
    let (code, out, err) = device(&["--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let keys = top_level_keys(&out);
    assert_eq!(keys[..4], ["gpus", "cuda_driver", "tensorrt", "l4t"], "contract keys first, in order: {out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert!(json["gpus"].is_array(), "{json}");
    assert!(json["key"].as_str().is_some_and(|k| k.starts_with("fp1-") && k.len() == 20), "{json}");
    for gpu in json["gpus"].as_array().unwrap() {
        for key in ["name", "compute_capability", "driver_version", "memory_total_bytes", "uuid"] {
            assert!(gpu.get(key).is_some(), "{key} missing: {gpu}");
        }
    }
    if !machine_has_cuda_driver() {
        assert_eq!(json["gpus"], json!([]), "{json}");
        assert_eq!(json["cuda_driver"], Value::Null, "{json}");
        let notes: Vec<&str> = json["notes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(notes.iter().any(|n| n.contains("no CUDA driver library")), "the reason should be noted: {notes:?}");
    }

    let (code, text, err) = device(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("fingerprint:    fp1-"), "{text}");
    if !machine_has_cuda_driver() {
        assert!(text.contains("GPUs:           none") && text.contains("CUDA driver:    none"), "{text}");
    }
}

fn orin_nano() -> Value {
    json!({
        "gpus": [{
            "name": "Orin",
            "compute_capability": "8.7",
            "driver_version": null,
            "memory_total_bytes": 7_990_464u64 * 1024,
            "uuid": "GPU-6e2f1b3a-0c4d-5e6f-8a9b-0c1d2e3f4a5b",
            "integrated": true,
            "memory_free_bytes": 3_000_000_000u64
        }],
        "cuda_driver": "12.6",
        "tensorrt": "10.3.0",
        "l4t": "36.4.3"
    })
}

#[test]
fn fake_fingerprint_replaces_the_device_and_a_firmware_update_changes_the_key() {
    let dir = support::tempdir();
    let fake = dir.path().join("fingerprint.json");
    support::write(&fake, orin_nano().to_string().as_bytes());
    let env = [(FAKE, fake.as_os_str())];

    let first = device_json(&env);
    for key in ["gpus", "cuda_driver", "tensorrt", "l4t"] {
        assert_eq!(first[key], orin_nano()[key], "{key}");
    }
    assert!(first["notes"][0].as_str().unwrap().contains("fake"), "{first}");
    assert_eq!(device_json(&env)["key"], first["key"], "the same device gives the same key");

    // Fed back as it printed, the document gives the same device (key, notes, mem_available_bytes are ignored).
    support::write(&fake, first.to_string().as_bytes());
    let again = device_json(&env);
    assert_eq!(again["key"], first["key"]);
    assert_eq!(again["notes"], first["notes"]);

    // JetPack 6.2 → a newer TensorRT and L4T: a new key.
    let mut updated = orin_nano();
    updated["tensorrt"] = json!("10.7.0");
    updated["l4t"] = json!("36.4.4");
    support::write(&fake, updated.to_string().as_bytes());
    let after = device_json(&env);
    assert_eq!(after["tensorrt"], "10.7.0");
    assert_ne!(after["key"], first["key"]);

    let (code, text, err) = device(&[], &env);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("Orin (compute capability 8.7, 7.6 GiB, 2.8 GiB free, integrated)"), "{text}");
    assert!(text.contains("TensorRT:       10.7.0") && text.contains("L4T:            36.4.4"), "{text}");
}

#[test]
fn an_unusable_fake_fingerprint_is_the_users_error() {
    let dir = support::tempdir();
    let missing = dir.path().join("missing.json");
    let garbage = dir.path().join("garbage.json");
    support::write(&garbage, b"\xff\x00 not json");
    let misspelt = dir.path().join("misspelt.json");
    let mut wrong = orin_nano();
    wrong["tensorrt_version"] = wrong["tensorrt"].take();
    support::write(&misspelt, wrong.to_string().as_bytes());
    for (path, says) in
        [(&missing, "cannot read"), (&garbage, "is not a device fingerprint"), (&misspelt, "tensorrt_version")]
    {
        let (code, out, err) = device(&["--json"], &[(FAKE, path.as_os_str())]);
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.starts_with("error: ") && err.contains(FAKE) && err.contains(says), "{err}");
        assert!(err.contains("hint: "), "{err}");
    }
}

#[test]
fn tensorrt_version_comes_from_the_libnvinfer_file_the_links_resolve_to() {
    let dir = support::tempdir();
    support::write(&dir.path().join("libnvinfer.so.10.3.0"), b"");
    std::os::unix::fs::symlink("libnvinfer.so.10.3.0", dir.path().join("libnvinfer.so.10")).unwrap();
    std::os::unix::fs::symlink("libnvinfer.so.10", dir.path().join("libnvinfer.so")).unwrap();
    support::write(&dir.path().join("libnvinfer_plugin.so.10.7.0"), b"");
    // Not a library at all: loading it fails, and that is just "no driver".
    support::write(&dir.path().join("libcuda.so"), b"garbage");
    let json = device_json(&[("LD_LIBRARY_PATH", dir.path().as_os_str())]);
    assert_eq!(json["tensorrt"], "10.3.0", "{json}");
    let notes = json["notes"].to_string();
    assert!(notes.contains("libnvinfer.so.10.3.0"), "the note names the file: {notes}");
}

/// Builds a stand-in `libcuda.so` from C source into `dir`.
fn stand_in_driver(dir: &Path, source: &str) {
    let c = dir.join("libcuda.c");
    support::write(&c, source.as_bytes());
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(dir.join("libcuda.so"))
        .arg(&c)
        .output()
        .expect("cc runs (the Rust toolchain links with it)");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_old_driver_without_device_gives_its_version_and_the_reason() {
    let dir = support::tempdir();
    stand_in_driver(
        dir.path(),
        r#"
        int cuDriverGetVersion(int *v) { *v = 11040; return 0; }
        int cuInit(unsigned flags) { return 100; }
        int cuGetErrorName(int code, const char **name) { *name = "CUDA_ERROR_NO_DEVICE"; return code == 100 ? 0 : 1; }
        "#,
    );
    let json = device_json(&[("LD_LIBRARY_PATH", dir.path().as_os_str())]);
    assert_eq!(json["gpus"], json!([]), "{json}");
    assert_eq!(json["cuda_driver"], "11.4", "{json}");
    let notes = json["notes"].to_string();
    assert!(notes.contains("cuInit failed: CUDA_ERROR_NO_DEVICE (100)"), "{notes}");
}

#[test]
fn missing_symbols_and_unknown_error_codes_never_panic() {
    let dir = support::tempdir();
    // Device 0 answers everything but the v1 UUID call and contexts (absent); device 1 fails with 46, an error code
    // CUDA 11.4's list lacks; cuGetErrorName is absent too.
    stand_in_driver(
        dir.path(),
        r#"
        #include <string.h>
        typedef struct { char bytes[16]; } CUuuid;
        int cuDriverGetVersion(int *v) { *v = 12060; return 0; }
        int cuInit(unsigned flags) { return 0; }
        int cuDeviceGetCount(int *n) { *n = 2; return 0; }
        int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return 0; }
        int cuDeviceGetName(char *name, int len, int d) {
            if (d == 1) return 46;
            strncpy(name, "Stand-in GPU", len); return 0;
        }
        int cuDeviceGetAttribute(int *v, int attr, int d) {
            switch (attr) { case 75: *v = 8; return 0; case 76: *v = 7; return 0; case 18: *v = 1; return 0; }
            return 1;
        }
        int cuDeviceTotalMem_v2(size_t *bytes, int d) { *bytes = (size_t)8 << 30; return 0; }
        int cuDeviceGetUuid_v2(CUuuid *u, int d) {
            for (int i = 0; i < 16; i++) u->bytes[i] = (char)(0xf0 + i); return 0;
        }
        "#,
    );
    let env = [("LD_LIBRARY_PATH", dir.path().as_os_str())];
    let json = device_json(&env);
    assert_eq!(json["cuda_driver"], "12.6", "{json}");
    assert_eq!(
        json["gpus"],
        json!([{
            "name": "Stand-in GPU",
            "compute_capability": "8.7",
            "driver_version": json["gpus"][0]["driver_version"].clone(),
            "memory_total_bytes": 8u64 << 30,
            "uuid": "GPU-f0f1f2f3-f4f5-f6f7-f8f9-fafbfcfdfeff",
            "integrated": true,
            "memory_free_bytes": null
        }]),
        "{json}"
    );
    let notes = json["notes"].to_string();
    assert!(notes.contains("cuDeviceGetName failed: CUDA_ERROR_DEVICE_UNAVAILABLE (46)"), "{notes}");

    let (code, text, err) = device(&[], &env);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("GPU 0:          Stand-in GPU (compute capability 8.7, 8.0 GiB, integrated)"), "{text}");
}
