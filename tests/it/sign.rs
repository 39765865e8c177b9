//! Signed bundles through the binary: `keygen`, `bundle sign`, `bundle verify`. A good signature by a trusted key
//! passes; an unsigned bundle, a changed manifest, a changed listed file and a key not trusted are each refused
//! with an error that says which.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{self, refused, run, tempdir};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), &target).unwrap();
        }
    }
}

/// A copy of the real sealed cls bundle, unsigned.
fn cls_copy(root: &Path) -> PathBuf {
    let dir = root.join("cls");
    copy_dir(&support::bundle("cls"), &dir);
    let _ = std::fs::remove_file(dir.join("bundle.toml.sig"));
    dir
}

/// `precisiond keygen --out ROOT/NAME`; returns the key id it printed.
fn keygen(root: &Path, name: &str) -> String {
    let (code, out, err) = run(&[&"keygen", &"--out", &root.join(name)]);
    assert_eq!(code, 0, "{err}");
    out.lines().find_map(|l| l.strip_prefix("key id: ")).unwrap_or_else(|| panic!("{out}")).to_owned()
}

fn sign(dir: &Path, key: &Path) {
    let (code, out, err) = run(&[&"bundle", &"sign", &dir, &"--key", &key]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bundle.toml.sig: key "), "{out}");
}

#[test]
fn keygen_sign_verify_round_trip() {
    let root = tempdir();
    let dir = cls_copy(root.path());

    let (code, out, err) = run(&[&"keygen", &"--out", &root.path().join("fleet")]);
    assert_eq!(code, 0, "{err}");
    let secret = root.path().join("fleet.key");
    let public = root.path().join("fleet.pub");
    assert!(out.contains(&format!("wrote {} (secret", secret.display())), "{out}");
    assert!(out.contains(&format!("wrote {} (public", public.display())), "{out}");
    let id = out.lines().find_map(|l| l.strip_prefix("key id: ")).unwrap();
    assert_eq!(id.len(), 16, "{out}");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let secret_text = std::fs::read_to_string(&secret).unwrap();
    let public_text = std::fs::read_to_string(&public).unwrap();
    assert!(secret_text.lines().any(|l| l.starts_with("precisiond-ed25519-secret ")), "{secret_text}");
    assert!(public_text.lines().any(|l| l.starts_with("precisiond-ed25519-public ")), "{public_text}");
    assert!(public_text.contains(id), "the .pub file names its key id in a comment");

    // Never overwritten, whichever half is named.
    for out in ["fleet", "fleet.key", "fleet.pub"] {
        refused(&[&"keygen", &"--out", &root.path().join(out)], &["fleet.key: already exists", "hint: "]);
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), secret_text);

    let (code, out, err) = run(&[&"bundle", &"sign", &dir, &"--key", &secret]);
    assert_eq!(code, 0, "{err}");
    let sig = dir.join("bundle.toml.sig");
    assert!(out.starts_with(&format!("wrote {}: key {id} signs bundle.toml (sha256 ", sig.display())), "{out}");
    let sig_text = std::fs::read_to_string(&sig).unwrap();
    assert!(sig_text.starts_with(&format!("precisiond-ed25519-signature {id} ")), "{sig_text}");
    assert_eq!(sig_text.lines().count(), 1);

    let (code, out, err) = run(&[&"bundle", &"verify", &dir, &"--key", &public]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{}: ok: ", dir.display())) && out.contains("files match bundle.toml"), "{out}");
    assert!(out.contains(&format!("signature: good, by key {id} ({})", public.display())), "{out}");

    // The signature is not a listed file: the bundle still opens, and the daemon's check passes.
    let bundle = precisiond::bundle::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let trusted = [precisiond::bundle::sign::PublicKey::load(&public).unwrap()];
    assert_eq!(precisiond::bundle::sign::verify_bundle(&bundle, &trusted).unwrap().to_string(), id);

    // Among several trusted keys, the signer is found; signing again replaces the signature.
    let other = keygen(root.path(), "other");
    let (code, out, err) =
        run(&[&"bundle", &"verify", &dir, &"--key", &root.path().join("other.pub"), &"--key", &public]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("signature: good, by key {id}")) && !out.contains(&other), "{out}");
    let (code, out, _) = run(&[&"bundle", &"sign", &dir, &"--key", &secret]);
    assert_eq!(code, 0);
    assert!(out.starts_with("replaced "), "{out}");
}

#[test]
fn an_unsigned_bundle_is_refused_when_keys_are_given() {
    let root = tempdir();
    let dir = cls_copy(root.path());
    keygen(root.path(), "fleet");
    refused(
        &[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.pub")],
        &[&format!("{}: not signed: there is no bundle.toml.sig", dir.display()), "hint: sign it"],
    );
    // Without keys, only the files are checked, and the output says the signature was not.
    let (code, out, err) = run(&[&"bundle", &"verify", &dir]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("signature: none, not checked (give --key FILE.pub to check it)"), "{out}");

    std::fs::write(dir.join("bundle.toml.sig"), "precisiond-ed25519-signature 0011 AAAA\n").unwrap();
    refused(
        &[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.pub")],
        &["bundle.toml.sig: not a precisiond signature: `0011` is not a key id", "hint: "],
    );
}

#[test]
fn a_manifest_changed_after_signing_is_refused() {
    let root = tempdir();
    let dir = cls_copy(root.path());
    let id = keygen(root.path(), "fleet");
    sign(&dir, &root.path().join("fleet.key"));
    // One byte of the manifest's comment: every listed file still matches, so only the signature can tell.
    let manifest = dir.join("bundle.toml");
    let mut bytes = std::fs::read(&manifest).unwrap();
    assert_eq!(&bytes[..3], b"# b");
    bytes[2] = b'B';
    std::fs::write(&manifest, &bytes).unwrap();
    precisiond::bundle::open(&dir).unwrap_or_else(|e| panic!("the listed files still match: {e}"));
    refused(
        &[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.pub")],
        &[
            &format!("the signature by key {id} does not match {}", manifest.display()),
            "the manifest was changed after it was signed",
            "hint: if the bundle was sealed again on purpose, sign it again",
        ],
    );
}

#[test]
fn a_listed_file_changed_after_signing_is_refused_and_cannot_be_signed() {
    let root = tempdir();
    let dir = cls_copy(root.path());
    keygen(root.path(), "fleet");
    let secret = root.path().join("fleet.key");
    sign(&dir, &secret);
    let sig_before = std::fs::read(dir.join("bundle.toml.sig")).unwrap();
    let model = dir.join("model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let says = [format!("{}: sha256 ", model.display()), "differs from the".to_string()];
    refused(&[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.pub")], &[&says[0], &says[1]]);
    // Nobody signs a bundle that a device would refuse; the old signature stays as it was.
    let err = refused(&[&"bundle", &"sign", &dir, &"--key", &secret], &[&says[0]]);
    assert!(err.starts_with(&format!("error: cannot sign {}", dir.display())), "{err}");
    assert_eq!(std::fs::read(dir.join("bundle.toml.sig")).unwrap(), sig_before);
}

#[test]
fn a_signature_by_a_key_not_trusted_is_refused() {
    let root = tempdir();
    let dir = cls_copy(root.path());
    let signer = keygen(root.path(), "laptop");
    let fleet = keygen(root.path(), "fleet");
    sign(&dir, &root.path().join("laptop.key"));
    refused(
        &[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.pub")],
        &[
            &format!("signed by key {signer}, which is not trusted (the trusted key is {fleet})"),
            "hint: sign with a trusted key",
        ],
    );
}

#[test]
fn key_files_mixed_up_are_named() {
    let root = tempdir();
    let dir = cls_copy(root.path());
    keygen(root.path(), "fleet");
    let public = root.path().join("fleet.pub");
    refused(
        &[&"bundle", &"sign", &dir, &"--key", &public],
        &[&format!("{}: a `precisiond-ed25519-public` file", public.display()), "hint: this is a public key"],
    );
    assert!(!dir.join("bundle.toml.sig").exists());
    refused(
        &[&"bundle", &"verify", &dir, &"--key", &root.path().join("fleet.key")],
        &["a `precisiond-ed25519-secret` file", "hint: this is a secret key"],
    );
    refused(&[&"bundle", &"sign", &dir, &"--key", &root.path().join("nope.key")], &["nope.key: cannot read"]);
}
