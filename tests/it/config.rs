//! `precisiond check-config FILE`, as the systemd unit's ExecStartPre runs it: the effective configuration and
//! exit 0, or every error with its line and exit 1; warnings (facts of the machine) never fail it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{run, tempdir};

/// A fake trtexec and a token in `dir`, so that the check finds the machine ready.
fn machine(dir: &Path) -> (PathBuf, PathBuf) {
    let trtexec = dir.join("trtexec");
    std::fs::write(&trtexec, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&trtexec, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "secret-token\n").unwrap();
    (trtexec, token)
}

fn keygen(prefix: &Path) -> String {
    let (code, out, err) = run(&[&"keygen", &"--out", &prefix]);
    assert_eq!(code, 0, "{err}");
    out.lines().find_map(|l| l.strip_prefix("key id: ")).unwrap().to_owned()
}

/// PRODUCT.md's example, pointed at files in `dir`.
fn contract_example(dir: &Path) -> (PathBuf, String) {
    let (trtexec, token) = machine(dir);
    let id = keygen(&dir.join("fleet"));
    let text = format!(
        r#"# /etc/precisiond/config.toml
inbox = "/var/lib/precisiond/inbox"       # one sub-folder per model (a bundle)
state_dir = "/var/lib/precisiond"          # engines/, live/, journal, outbox, timing caches
backend = "tensorrt"                        # tensorrt | cpu
trtexec = "{}"
keep_versions = 3
build_timeout = "30m"
[publish]
hook = "systemctl reload my-app"            # optional; run after a switch, non-zero exit → automatic rollback
triton_repository = "/models"               # optional: also publish into a Triton model repository
triton_url = "http://127.0.0.1:8000"        # optional: then POST /v2/repository/models/{{name}}/load
[upstream]
url = "https://fleet.example.com/v1/events" # optional: JSON events, durable outbox, retries
token_file = "{}"
otlp_url = "http://127.0.0.1:4318/v1/metrics"   # optional: OTLP/HTTP JSON metrics
[status]
listen = "127.0.0.1:9464"                   # /status (JSON), /metrics (Prometheus), /healthz
[security]
require_signature = true
trusted_keys = ["fleet.pub"]
"#,
        trtexec.display(),
        token.display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    (path, id)
}

#[test]
fn the_contract_example_is_ok_and_the_effective_configuration_is_shown() {
    let root = tempdir();
    let (path, id) = contract_example(root.path());
    let (code, out, err) = run(&[&"check-config", &path]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "", "no warning on a ready machine");
    let expected_start = format!("{}: ok\ninbox          /var/lib/precisiond/inbox\n", path.display());
    assert!(out.starts_with(&expected_start), "{out}");
    for line in [
        "state_dir      /var/lib/precisiond\n",
        &format!("backend        tensorrt, trtexec {}\n", root.path().join("trtexec").display()),
        "keep_versions  3\n",
        "build_timeout  30m\n",
        "debounce       500ms\n",
        "publish        live/<model> link; hook `systemctl reload my-app` (timeout 30s); Triton repository /models, loaded \
         through http://127.0.0.1:8000\n",
        "status         http://127.0.0.1:9464/ (/status, /metrics, /healthz)\n",
        &format!(
            "security       signature required, trusted: {id} ({}); bundle files at most 2048 MiB\n",
            root.path().join("fleet.pub").display()
        ),
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    assert!(out.contains("upstream       events to https://fleet.example.com/v1/events (token from "), "{out}");

    let (code, out, err) = run(&[&"check-config", &path, &"--json"]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["errors"], serde_json::json!([]));
    assert_eq!(json["warnings"], serde_json::json!([]));
    let c = &json["config"];
    assert_eq!(c["backend"], "tensorrt");
    assert_eq!(c["keep_versions"], 3);
    assert_eq!(c["build_timeout"], "30m");
    assert_eq!(c["status"]["listen"], "127.0.0.1:9464");
    assert_eq!(c["publish"]["triton_url"], "http://127.0.0.1:8000");
    assert_eq!(c["upstream"]["outbox_max_mib"], 64);
    assert_eq!(c["security"]["require_signature"], true);
    assert_eq!(c["security"]["trusted_keys"][0]["key_id"], id.as_str());
}

#[test]
fn every_error_is_reported_at_once_with_its_line() {
    let root = tempdir();
    let path = root.path().join("config.toml");
    std::fs::write(
        &path,
        "backend = \"cpu\"\nkeep_versions = 0\nbuild_timout = \"30m\"\n[status]\nlisten = \"localhost:9464\"\n\
         [security]\nrequire_signature = true\ntrusted_keys = [\"missing.pub\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(&[&"check-config", &path]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    let file = path.display().to_string();
    let expected = [
        format!("error: {file}: 4 errors\n"),
        format!("  {file}:2: keep_versions: 0 is less than 1; it must be at least 1\n"),
        format!("  {file}:3: unknown key `build_timout` in the top level; did you mean `build_timeout`?\n"),
        format!("  {file}:5: status.listen: \"localhost:9464\" is not an IP address and port\n"),
        "      hint: write e.g. \"127.0.0.1:9464\"".to_string(),
        format!("  {file}:8: security.trusted_keys: {}: cannot read: ", root.path().join("missing.pub").display()),
    ];
    let mut at = 0;
    for part in &expected {
        let found = err[at..].find(part.as_str()).unwrap_or_else(|| panic!("missing {part:?} after {at} in\n{err}"));
        at += found + part.len();
    }
    assert!(!err.contains("panicked"), "{err}");

    let (code, out, _) = run(&[&"check-config", &path, &"--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["config"], serde_json::Value::Null);
    let errors = json["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 5, 8]);
    assert_eq!(errors[0]["key"], "keep_versions");
    assert_eq!(errors[1]["key"], serde_json::Value::Null);
    assert!(errors[2]["hint"].as_str().unwrap().contains("127.0.0.1:9464"));
}

#[test]
fn a_missing_trtexec_warns_but_passes() {
    let root = tempdir();
    let path = root.path().join("config.toml");
    let missing = root.path().join("no/trtexec");
    std::fs::write(&path, format!("backend = \"tensorrt\"\ntrtexec = \"{}\"\n", missing.display())).unwrap();
    let (code, out, err) = run(&[&"check-config", &path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{}: ok\n", path.display())), "{out}");
    assert!(
        err.starts_with(&format!(
            "warning: {}:2: trtexec: {} does not exist: every tensorrt build will fail until it is there\n    hint: ",
            path.display(),
            missing.display()
        )),
        "{err}"
    );
    let (code, out, _) = run(&[&"check-config", &path, &"--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["warnings"][0]["line"], 2);
    assert_eq!(json["warnings"][0]["key"], "trtexec");
}

#[test]
fn a_missing_or_unparsable_file_is_named() {
    let root = tempdir();
    let missing = root.path().join("nope.toml");
    let (code, out, err) = run(&[&"check-config", &missing]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.starts_with(&format!("error: cannot read {}: ", missing.display())), "{err}");
    assert!(err.contains("hint: the packaged configuration is /etc/precisiond/config.toml"), "{err}");

    let broken = root.path().join("broken.toml");
    std::fs::write(&broken, "backend = \"cpu\"\n[security\n").unwrap();
    let (code, _, err) = run(&[&"check-config", &broken]);
    assert_eq!(code, 1);
    assert!(err.starts_with(&format!("error: {}:2: ", broken.display())), "{err}");
}

#[test]
fn the_new_commands_are_in_the_help() {
    let (code, out, _) = run(&[&"--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("check-config") && out.contains("keygen"), "{out}");
    let (code, out, _) = run(&[&"bundle", &"--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("sign") && out.contains("verify"), "{out}");
}
