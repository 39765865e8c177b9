//! Bundle signatures (PRODUCT.md "Bundle": the optional `bundle.toml.sig`): ed25519 over the exact bytes of
//! `bundle.toml`. The manifest holds every other file's size and sha256, so signing it signs the whole bundle: a
//! changed listed file is caught by [`super::open`]'s checksums, a changed manifest by [`verify_signature`].
//!
//! Three one-line text formats, each `TAG FIELD…` separated by single spaces, base64 being the standard alphabet
//! with padding. Lines that are empty or start with `#` are comments, and exactly one other line must be there:
//!
//! ```text
//! PREFIX.key       precisiond-ed25519-secret <base64 of the 32-byte RFC 8032 secret key (seed)>
//! PREFIX.pub       precisiond-ed25519-public <base64 of the 32-byte public key>
//! bundle.toml.sig  precisiond-ed25519-signature <key id> <base64 of the 64-byte signature>
//! ```
//!
//! The key id is the first 8 bytes of the sha256 of the 32 public key bytes, as 16 lower-case hex digits. It is a
//! name, not a proof: it picks the trusted key to check with, so that "signed by a key we do not trust" and "the
//! manifest was changed after signing" are told apart; only the signature itself is trusted. Keys are plain RFC 8032
//! values, so another tool (OpenSSL, Python's `cryptography`) can sign a manifest for a fleet that trusts its key.
//!
//! `keygen` writes `PREFIX.key` with mode 0600 and never replaces an existing file: an overwritten secret key
//! cannot be recovered, and devices that trust its public half would refuse everything signed afterwards.

use std::fmt::{self, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{Bundle, BundleError, MANIFEST, SIGNATURE, manifest};
use crate::error::{Diagnose, Fault};
use crate::model::write_atomically;

pub const SECRET_TAG: &str = "precisiond-ed25519-secret";
pub const PUBLIC_TAG: &str = "precisiond-ed25519-public";
pub const SIGNATURE_TAG: &str = "precisiond-ed25519-signature";

/// Key and signature files are a line or three; anything bigger was named by mistake (a model, a log), and is not
/// read whole to find that out.
const MAX_TEXT_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{}: not signed: there is no {SIGNATURE}", dir.display())]
    Unsigned { dir: PathBuf },
    #[error("{}: not a precisiond signature: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
    #[error("{}: signed by key {key}, which is not trusted ({})", path.display(), trusted_list(trusted))]
    Untrusted { path: PathBuf, key: KeyId, trusted: Vec<KeyId> },
    #[error(
        "{}: the signature by key {key} does not match {}: the manifest was changed after it was signed",
        path.display(), manifest.display()
    )]
    BadSignature { path: PathBuf, manifest: PathBuf, key: KeyId },
    #[error("{}: changed while it was being read; nothing was signed", path.display())]
    Changed { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: already exists; keygen never replaces a key", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {problem}", path.display())]
    KeyFile { path: PathBuf, problem: String, hint: Option<String> },
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

fn trusted_list(trusted: &[KeyId]) -> String {
    match trusted {
        [] => "no key is trusted".into(),
        [one] => format!("the trusted key is {one}"),
        many => format!("the trusted keys are {}", many.iter().map(KeyId::to_string).collect::<Vec<_>>().join(", ")),
    }
}

impl Diagnose for SignatureError {
    fn fault(&self) -> Fault {
        match self {
            SignatureError::Read { source, .. } if source.kind() != io::ErrorKind::NotFound => Fault::Environment,
            SignatureError::Write { .. } | SignatureError::Random(_) => Fault::Environment,
            SignatureError::Bundle(e) => e.fault(),
            _ => Fault::Input,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            SignatureError::Unsigned { .. } => {
                Some("sign it where it is made: `precisiond bundle sign DIR --key FILE.key`".into())
            }
            SignatureError::Malformed { .. } => {
                Some("bundle.toml.sig is written by `precisiond bundle sign`; sign the bundle again".into())
            }
            SignatureError::Untrusted { .. } => Some(
                "sign with a trusted key, or trust the signer: its .pub file in [security] trusted_keys \
                 (or `--key FILE.pub`)"
                    .into(),
            ),
            SignatureError::BadSignature { .. } => Some(
                "if the bundle was sealed again on purpose, sign it again; otherwise it was altered on its way".into(),
            ),
            SignatureError::Changed { .. } => Some("wait until nothing writes to the bundle, then sign again".into()),
            SignatureError::Exists { .. } => {
                Some("choose another --out prefix, or move the old key files away first".into())
            }
            SignatureError::KeyFile { hint, .. } => hint.clone(),
            SignatureError::Bundle(e) => e.hint(),
            _ => None,
        }
    }
}

/// Names a public key: the first 8 bytes of the sha256 of its 32 bytes, written as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    fn parse(text: &str) -> Option<KeyId> {
        if text.len() != 16 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut id = [0u8; 8];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyId(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A key that signatures are checked with; remembers the file it came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
    file: Option<PathBuf>,
}

impl PublicKey {
    /// Reads a `.pub` file (see the module documentation for the format).
    pub fn load(path: &Path) -> Result<PublicKey, SignatureError> {
        let text = read_text(path)?;
        let key_file =
            |problem: String, hint: Option<String>| SignatureError::KeyFile { path: path.to_owned(), problem, hint };
        let fields = fields(&text, PUBLIC_TAG).map_err(|problem| {
            let hint = (first_tag(&text) == Some(SECRET_TAG)).then(|| {
                "this is a secret key, which stays where bundles are signed; devices trust its .pub file".to_string()
            });
            key_file(problem, hint)
        })?;
        let [encoded] = fields.as_slice() else {
            return Err(key_file(format!("expected `{PUBLIC_TAG} BASE64` on one line"), None));
        };
        let bytes = decode::<32>(encoded).map_err(|p| key_file(format!("the public key {p}"), None))?;
        let mut key = PublicKey::from_bytes(&bytes).map_err(|p| key_file(p, None))?;
        key.file = Some(path.to_owned());
        Ok(key)
    }

    fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, String> {
        let key =
            VerifyingKey::from_bytes(bytes).map_err(|_| "the 32 bytes are not an ed25519 public key".to_string())?;
        // A small-order key verifies forged signatures under the lax rules; verify_strict refuses it anyway, but
        // a key that can never verify anything is better refused where it is configured.
        if key.is_weak() {
            return Err("a weak (small-order) ed25519 public key, which cannot be trusted".into());
        }
        Ok(PublicKey { id: KeyId::of(&key), key, file: None })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The file it was loaded from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The `.pub` file's content.
    pub fn to_text(&self) -> String {
        format!(
            "# precisiond public key (ed25519), key id {}: devices list this file in [security] trusted_keys.\n\
             {PUBLIC_TAG} {}\n",
            self.id,
            BASE64.encode(self.key.as_bytes())
        )
    }
}

/// The key bundles are signed with. Never printed: `Debug` shows only its id.
pub struct SecretKey {
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    /// Reads a `.key` file (see the module documentation for the format).
    pub fn load(path: &Path) -> Result<SecretKey, SignatureError> {
        let text = read_text(path)?;
        let key_file =
            |problem: String, hint: Option<String>| SignatureError::KeyFile { path: path.to_owned(), problem, hint };
        let fields = fields(&text, SECRET_TAG).map_err(|problem| {
            let hint = (first_tag(&text) == Some(PUBLIC_TAG))
                .then(|| "this is a public key; sign with the secret key written next to it (PREFIX.key)".to_string());
            key_file(problem, hint)
        })?;
        let [encoded] = fields.as_slice() else {
            return Err(key_file(format!("expected `{SECRET_TAG} BASE64` on one line"), None));
        };
        let seed = decode::<32>(encoded).map_err(|p| key_file(format!("the secret key {p}"), None))?;
        Ok(SecretKey { key: SigningKey::from_bytes(&seed) })
    }

    pub fn public(&self) -> PublicKey {
        let key = self.key.verifying_key();
        PublicKey { id: KeyId::of(&key), key, file: None }
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.key.verifying_key())
    }

    fn to_text(&self) -> String {
        format!(
            "# precisiond signing key (ed25519, SECRET), key id {}: signs bundles with `precisiond bundle sign`.\n\
             # Keep it where bundles are made; devices need only the .pub file.\n\
             {SECRET_TAG} {}\n",
            self.id(),
            BASE64.encode(self.key.as_bytes())
        )
    }
}

/// A new key pair from the operating system's random source.
pub fn generate() -> Result<SecretKey, SignatureError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignatureError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(SecretKey { key })
}

/// Where [`write_keypair`] put the two halves.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// `PREFIX.key` and `PREFIX.pub` (a trailing `.key` or `.pub` on the prefix is dropped, so that `--out fleet.key`
/// does not give `fleet.key.key`).
pub fn key_files(prefix: &Path) -> KeyFiles {
    let mut stem = prefix.as_os_str().to_owned();
    let text = prefix.to_string_lossy();
    if let Some(cut) = text.strip_suffix(".key").or_else(|| text.strip_suffix(".pub")) {
        stem = cut.into();
    }
    let with = |ext: &str| {
        let mut name = stem.clone();
        name.push(ext);
        PathBuf::from(name)
    };
    KeyFiles { secret: with(".key"), public: with(".pub") }
}

/// Writes `key` to `PREFIX.key` (mode 0600) and its public half to `PREFIX.pub`. Each file appears whole or not at
/// all, neither replaces an existing file, and if the public half cannot be written the secret one is removed again.
pub fn write_keypair(prefix: &Path, key: &SecretKey) -> Result<KeyFiles, SignatureError> {
    let files = key_files(prefix);
    for path in [&files.secret, &files.public] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(SignatureError::Exists { path: path.clone() });
        }
    }
    write_new(&files.secret, key.to_text().as_bytes(), 0o600)?;
    if let Err(e) = write_new(&files.public, key.public().to_text().as_bytes(), 0o644) {
        let _ = fs::remove_file(&files.secret);
        return Err(e);
    }
    Ok(files)
}

/// Writes a new file atomically without ever replacing one: the content goes to a hidden temporary file created
/// with `mode`, then a hard link gives it its name, which fails if the name is taken (rename would replace it).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignatureError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match result {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(SignatureError::Exists { path: path.to_owned() }),
        Err(source) => Err(SignatureError::Write { path: path.to_owned(), source }),
        Ok(()) => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| SignatureError::Write { path: path.to_owned(), source }),
    }
}

/// What [`sign`] did.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The signature file written.
    pub path: PathBuf,
    pub key: KeyId,
    /// sha256 of the manifest signed.
    pub manifest_sha256: String,
    /// A signature was there before and was replaced.
    pub replaced: bool,
}

/// Signs the bundle in `dir`: the bundle must open (every listed file matches, nothing unlisted, the spec parses),
/// so that nobody signs a bundle a device would refuse anyway; then the exact bytes of `bundle.toml` that were
/// verified are signed into `bundle.toml.sig`.
pub fn sign(dir: &Path, key: &SecretKey) -> Result<Signed, SignatureError> {
    let bundle = super::open(dir)?;
    let manifest_path = dir.join(MANIFEST);
    let bytes =
        fs::read(&manifest_path).map_err(|source| SignatureError::Read { path: manifest_path.clone(), source })?;
    // open() read the manifest too: sign only the bytes it verified, not a newer manifest sealed in between.
    if manifest::sha256_bytes(&bytes) != bundle.manifest_sha256() {
        return Err(SignatureError::Changed { path: manifest_path });
    }
    let signature = key.key.sign(&bytes);
    let path = dir.join(SIGNATURE);
    let replaced = fs::symlink_metadata(&path).is_ok();
    let text = format!("{SIGNATURE_TAG} {} {}\n", key.id(), BASE64.encode(signature.to_bytes()));
    write_atomically(&path, text.as_bytes()).map_err(|source| SignatureError::Write { path: path.clone(), source })?;
    Ok(Signed { path, key: key.id(), manifest_sha256: bundle.manifest_sha256().to_owned(), replaced })
}

/// Checks `dir/bundle.toml.sig` against the current bytes of `dir/bundle.toml` with the `trusted` keys; returns the
/// signer. Says which of four things is wrong: no signature, a signature file that is not one, a signer that is not
/// trusted, a signature that does not match (the manifest was changed). The listed files are [`super::open`]'s
/// business; a daemon that opened the bundle uses [`verify_bundle`] so that both checks cover the same manifest.
pub fn verify_signature(dir: &Path, trusted: &[PublicKey]) -> Result<KeyId, SignatureError> {
    let manifest_path = dir.join(MANIFEST);
    let bytes = match fs::read(&manifest_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BundleError::NoManifest { dir: dir.to_owned() }.into());
        }
        Err(source) => return Err(SignatureError::Read { path: manifest_path, source }),
    };
    verify_manifest(dir, &bytes, trusted)
}

/// [`verify_signature`] for a bundle that [`super::open`] verified: the signature must sign the very manifest that
/// open checked every file against.
pub fn verify_bundle(bundle: &Bundle, trusted: &[PublicKey]) -> Result<KeyId, SignatureError> {
    let manifest_path = bundle.dir().join(MANIFEST);
    let bytes =
        fs::read(&manifest_path).map_err(|source| SignatureError::Read { path: manifest_path.clone(), source })?;
    if manifest::sha256_bytes(&bytes) != bundle.manifest_sha256() {
        return Err(SignatureError::Changed { path: manifest_path });
    }
    verify_manifest(bundle.dir(), &bytes, trusted)
}

fn verify_manifest(dir: &Path, manifest_bytes: &[u8], trusted: &[PublicKey]) -> Result<KeyId, SignatureError> {
    let path = dir.join(SIGNATURE);
    let malformed = |problem: String| SignatureError::Malformed { path: path.clone(), problem };
    match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SignatureError::Unsigned { dir: dir.to_owned() }),
        Err(source) => return Err(SignatureError::Read { path, source }),
        // A bundle holds no links (see the module documentation of bundle); the signature is no exception.
        Ok(meta) if !meta.file_type().is_file() => return Err(malformed("not a regular file".into())),
        Ok(_) => {}
    }
    let text = read_text(&path).map_err(|e| match e {
        SignatureError::KeyFile { problem, .. } => malformed(problem),
        other => other,
    })?;
    let fields = fields(&text, SIGNATURE_TAG).map_err(&malformed)?;
    let [id, encoded] = fields.as_slice() else {
        return Err(malformed(format!("expected `{SIGNATURE_TAG} KEY-ID BASE64` on one line")));
    };
    let id = KeyId::parse(id).ok_or_else(|| malformed(format!("`{id}` is not a key id (16 lower-case hex digits)")))?;
    let signature = Signature::from_bytes(&decode::<64>(encoded).map_err(|p| malformed(format!("the signature {p}")))?);
    let Some(key) = trusted.iter().find(|k| k.id == id) else {
        return Err(SignatureError::Untrusted { path, key: id, trusted: trusted.iter().map(|k| k.id).collect() });
    };
    key.key.verify_strict(manifest_bytes, &signature).map_err(|_| SignatureError::BadSignature {
        path,
        manifest: dir.join(MANIFEST),
        key: id,
    })?;
    Ok(id)
}

/// A small text file; what makes it unusable is a [`SignatureError::KeyFile`] problem naming it.
fn read_text(path: &Path) -> Result<String, SignatureError> {
    let read = |source| SignatureError::Read { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    File::open(path).map_err(read)?.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
    let problem =
        |problem: &str| SignatureError::KeyFile { path: path.to_owned(), problem: problem.into(), hint: None };
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(problem("larger than 64 KiB, far too large for a key or signature file"));
    }
    String::from_utf8(bytes).map_err(|_| problem("not text"))
}

/// The fields after `tag` on the one line that is not empty or a comment.
fn fields<'a>(text: &'a str, tag: &str) -> Result<Vec<&'a str>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(line) = lines.next() else {
        return Err(format!("empty; expected a line starting with `{tag}`"));
    };
    if lines.next().is_some() {
        return Err(format!("more than one line that is not a comment; expected one `{tag}` line"));
    }
    let mut parts = line.split_ascii_whitespace();
    match parts.next() {
        Some(found) if found == tag => Ok(parts.collect()),
        Some(found) if found.starts_with("precisiond-") => Err(format!("a `{found}` file, not `{tag}`")),
        _ => Err(format!("expected a line starting with `{tag}`")),
    }
}

fn first_tag(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?.split_ascii_whitespace().next()
}

/// Exactly `N` bytes of base64; the error completes "the public key …".
fn decode<const N: usize>(encoded: &str) -> Result<[u8; N], String> {
    let bytes = BASE64.decode(encoded).map_err(|e| format!("is not valid base64 ({e})"))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        let mut s = String::new();
        let _ = write!(s, "is {} bytes long; ed25519 uses {N}", bytes.len());
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 8032 §7.1, test 2: the files hold plain RFC 8032 values, so other tools' keys and signatures work.
    #[test]
    fn rfc8032_vector_through_the_file_formats() {
        let seed = hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        let public = hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let signature = hex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("k.key");
        std::fs::write(&key_path, format!("{SECRET_TAG} {}\n", BASE64.encode(&seed))).unwrap();
        let secret = SecretKey::load(&key_path).unwrap();
        assert_eq!(secret.public().key.as_bytes().as_slice(), public.as_slice());
        assert_eq!(secret.key.sign(&[0x72]).to_bytes().as_slice(), signature.as_slice());

        let pub_path = dir.path().join("k.pub");
        std::fs::write(&pub_path, secret.public().to_text()).unwrap();
        let loaded = PublicKey::load(&pub_path).unwrap();
        assert_eq!(loaded.id(), secret.id());
        assert_eq!(loaded.file(), Some(pub_path.as_path()));
        let id = hex(&loaded.id().to_string());
        assert_eq!(id.as_slice(), &Sha256::digest(&public)[..8]);
        assert_eq!(KeyId::parse(&loaded.id().to_string()), Some(loaded.id()));
        assert!(
            format!("{secret:?}").starts_with("SecretKey(") && !format!("{secret:?}").contains(&BASE64.encode(&seed))
        );
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn key_problem(result: Result<impl fmt::Debug, SignatureError>) -> (String, Option<String>) {
        match result {
            Err(e @ SignatureError::KeyFile { .. }) => (e.to_string(), e.hint()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_files_say_what_is_wrong_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let key = generate().unwrap();
        let secret = write(d, "a.key", &key.to_text());
        let public = write(d, "a.pub", &key.public().to_text());

        let (msg, hint) = key_problem(PublicKey::load(&secret));
        assert!(msg.contains("a.key: a `precisiond-ed25519-secret` file, not `precisiond-ed25519-public`"), "{msg}");
        assert!(hint.unwrap().contains("devices trust its .pub file"));
        let (msg, hint) = key_problem(SecretKey::load(&public));
        assert!(msg.contains("not `precisiond-ed25519-secret`"), "{msg}");
        assert!(hint.unwrap().contains("sign with the secret key"));

        let cases = [
            ("", "empty; expected a line starting with `precisiond-ed25519-public`"),
            ("# only a comment\n\n", "empty"),
            ("ssh-ed25519 AAAAC3Nz user@host\n", "expected a line starting with `precisiond-ed25519-public`"),
            ("precisiond-ed25519-public\n", "expected `precisiond-ed25519-public BASE64` on one line"),
            ("precisiond-ed25519-public a b\n", "on one line"),
            ("precisiond-ed25519-public !!!!\n", "the public key is not valid base64"),
            ("precisiond-ed25519-public AAAA\n", "the public key is 3 bytes long; ed25519 uses 32"),
            ("precisiond-ed25519-public x\nprecisiond-ed25519-public y\n", "more than one line"),
        ];
        for (text, needle) in cases {
            let path = write(d, "bad.pub", text);
            let (msg, _) = key_problem(PublicKey::load(&path));
            assert!(msg.starts_with(&path.display().to_string()) && msg.contains(needle), "{text:?}: {msg}");
        }
        // The identity point is small-order: a key that would accept forgeries under lax rules.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let path = write(d, "weak.pub", &format!("{PUBLIC_TAG} {}\n", BASE64.encode(identity)));
        assert!(key_problem(PublicKey::load(&path)).0.contains("weak"));
        let path = write(d, "big.pub", &"#".repeat(70_000));
        assert!(key_problem(PublicKey::load(&path)).0.contains("far too large"));
        std::fs::write(d.join("bin.pub"), [0xff, 0xfe, 0]).unwrap();
        assert!(key_problem(PublicKey::load(&d.join("bin.pub"))).0.ends_with("bin.pub: not text"));

        let e = PublicKey::load(&d.join("missing.pub")).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}: cannot read", d.join("missing.pub").display())), "{e}");
        assert_eq!(e.fault(), Fault::Input);
    }

    #[test]
    fn keypair_files_are_private_whole_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = generate().unwrap();
        let files = write_keypair(&dir.path().join("fleet"), &key).unwrap();
        assert_eq!(files.secret, dir.path().join("fleet.key"));
        assert_eq!(files.public, dir.path().join("fleet.pub"));
        let mode = std::fs::metadata(&files.secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SecretKey::load(&files.secret).unwrap().id(), key.id());
        assert_eq!(PublicKey::load(&files.public).unwrap().id(), key.id());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");

        let before = std::fs::read(&files.secret).unwrap();
        let other = generate().unwrap();
        assert_ne!(other.id(), key.id());
        let e = write_keypair(&dir.path().join("fleet.key"), &other).unwrap_err();
        assert!(matches!(e, SignatureError::Exists { ref path } if *path == files.secret), "{e}");
        assert_eq!(std::fs::read(&files.secret).unwrap(), before);

        // Only the .pub exists: nothing is written, the secret is not created beside a foreign public key.
        std::fs::remove_file(&files.secret).unwrap();
        let e = write_keypair(&dir.path().join("fleet"), &other).unwrap_err();
        assert!(matches!(e, SignatureError::Exists { ref path } if *path == files.public), "{e}");
        assert!(!files.secret.exists());
        // The no-replace write refuses even when the early check is raced.
        let e = write_new(&files.public, b"x", 0o644).unwrap_err();
        assert!(matches!(e, SignatureError::Exists { .. }), "{e}");

        let e = write_keypair(&dir.path().join("no/such/dir/k"), &other).unwrap_err();
        assert!(matches!(e, SignatureError::Write { .. }) && e.fault() == Fault::Environment, "{e}");
        assert_eq!(key_files(Path::new("keys/fleet.v2.pub")).secret, Path::new("keys/fleet.v2.key"));
    }

    /// A folder with a bundle.toml (what verify_signature reads; the listed files are open()'s business).
    fn signed_manifest(key: &SecretKey) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "format = 1\n").unwrap();
        let signature = key.key.sign(b"format = 1\n");
        let text = format!("{SIGNATURE_TAG} {} {}\n", key.id(), BASE64.encode(signature.to_bytes()));
        std::fs::write(dir.path().join(SIGNATURE), text).unwrap();
        dir
    }

    #[test]
    fn verify_tells_the_four_failures_apart() {
        let key = generate().unwrap();
        let other = generate().unwrap();
        let dir = signed_manifest(&key);
        let d = dir.path();
        assert_eq!(verify_signature(d, &[other.public(), key.public()]).unwrap(), key.id());

        let e = verify_signature(d, &[other.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::Untrusted { key: k, .. } if k == key.id()), "{e}");
        assert!(e.to_string().ends_with(&format!("which is not trusted (the trusted key is {})", other.id())), "{e}");
        assert!(verify_signature(d, &[]).unwrap_err().to_string().contains("no key is trusted"));

        std::fs::write(d.join(MANIFEST), "format = 2\n").unwrap();
        let e = verify_signature(d, &[key.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("the manifest was changed after it was signed"), "{e}");
        std::fs::write(d.join(MANIFEST), "format = 1\n").unwrap();

        let sig = d.join(SIGNATURE);
        let good = std::fs::read_to_string(&sig).unwrap();
        let cases = [
            (good.replace(SIGNATURE_TAG, PUBLIC_TAG), "a `precisiond-ed25519-public` file"),
            (good.replacen(&key.id().to_string(), "XYZ", 1), "`XYZ` is not a key id"),
            (format!("{SIGNATURE_TAG} {}\n", key.id()), "KEY-ID BASE64"),
            (format!("{SIGNATURE_TAG} {} AAAA\n", key.id()), "the signature is 3 bytes long; ed25519 uses 64"),
            (String::new(), "empty"),
        ];
        for (text, needle) in cases {
            std::fs::write(&sig, &text).unwrap();
            let e = verify_signature(d, &[key.public()]).unwrap_err();
            assert!(matches!(e, SignatureError::Malformed { .. }), "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
        std::fs::remove_file(&sig).unwrap();
        std::os::unix::fs::symlink("/dev/null", &sig).unwrap();
        assert!(verify_signature(d, &[key.public()]).unwrap_err().to_string().contains("not a regular file"));

        std::fs::remove_file(&sig).unwrap();
        let e = verify_signature(d, &[key.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::Unsigned { .. }), "{e}");
        assert!(e.hint().unwrap().contains("precisiond bundle sign"));

        std::fs::remove_file(d.join(MANIFEST)).unwrap();
        let e = verify_signature(d, &[key.public()]).unwrap_err();
        assert!(matches!(e, SignatureError::Bundle(BundleError::NoManifest { .. })), "{e}");
    }

    #[test]
    fn a_signature_is_bound_to_every_byte_of_the_manifest() {
        let key = generate().unwrap();
        let dir = signed_manifest(&key);
        // Appending a comment or a newline changes no entry, yet it is not what was signed.
        for changed in ["format = 1\n\n", "format = 1\n# note\n", "format = 1"] {
            std::fs::write(dir.path().join(MANIFEST), changed).unwrap();
            let e = verify_signature(dir.path(), &[key.public()]).unwrap_err();
            assert!(matches!(e, SignatureError::BadSignature { .. }), "{changed:?}: {e}");
        }
    }
}
