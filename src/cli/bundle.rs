use std::fmt::Write as _;
use std::path::PathBuf;

use crate::bundle::sign::{self, PublicKey, SecretKey};
use crate::bundle::{self, SealReport};
use crate::error::{Failure, ResultExt};

/// Make, sign and check bundles: the folder (model.onnx, precision.toml, calib/, eval/) a device builds an engine from.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Seal(SealArgs),
    Sign(SignArgs),
    Verify(VerifyArgs),
}

/// Check a bundle folder and write its manifest, bundle.toml (every file with its size and sha256).
///
/// Writes a starter precision.toml first if the folder has none. Refuses a bundle that a device would refuse: a
/// model that does not load, a spec that does not parse or does not fit the model's inputs, sample files of unknown
/// kinds or wrong .npy shapes, calib/ and eval/ sharing a file, symbolic links.
#[derive(Debug, clap::Args)]
struct SealArgs {
    /// The bundle folder.
    dir: PathBuf,
}

/// Sign a sealed bundle: an ed25519 signature of bundle.toml, written to bundle.toml.sig.
///
/// The manifest holds every file's sha256, so the signature covers the whole bundle. The bundle must verify first
/// (every listed file matches, nothing unlisted, the spec parses): nobody signs a bundle a device would refuse.
/// Seal again after any change, then sign again. Make a key with `precisiond keygen --out PREFIX`; devices trust its
/// .pub file ([security] trusted_keys).
#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The bundle folder.
    dir: PathBuf,
    /// The secret key file (PREFIX.key from `precisiond keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

/// Check a bundle as a device does: every listed file matches bundle.toml, nothing is unlisted, the spec parses;
/// with --key, also that bundle.toml.sig is a good signature by one of the given keys.
#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The bundle folder.
    dir: PathBuf,
    /// A trusted public key file (PREFIX.pub); repeat for several. Without one, the signature is not checked.
    #[arg(long, value_name = "FILE.pub")]
    key: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Seal(args) => {
            let report = bundle::seal(&args.dir).context(|| format!("cannot seal {}", args.dir.display()))?;
            super::print(&render_seal(&report))
        }
        Command::Sign(args) => {
            let what = || format!("cannot sign {}", args.dir.display());
            let key = SecretKey::load(&args.key).context(what)?;
            let signed = sign::sign(&args.dir, &key).context(what)?;
            let verb = if signed.replaced { "replaced" } else { "wrote" };
            super::print(&format!(
                "{verb} {}: key {} signs bundle.toml (sha256 {})\n",
                signed.path.display(),
                signed.key,
                signed.manifest_sha256
            ))
        }
        Command::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let what = || format!("bundle {} is refused", args.dir.display());
    let trusted = args.key.iter().map(|path| PublicKey::load(path)).collect::<Result<Vec<_>, _>>().context(what)?;
    let opened = bundle::open(&args.dir).context(what)?;
    let mut out = format!(
        "{}: ok: {} files match bundle.toml (sha256 {})\n",
        args.dir.display(),
        opened.files().len(),
        opened.manifest_sha256()
    );
    if trusted.is_empty() {
        let present = args.dir.join(bundle::SIGNATURE).exists();
        let state = if present { "present, not checked" } else { "none, not checked" };
        let _ = writeln!(out, "signature: {state} (give --key FILE.pub to check it)");
    } else {
        let id = sign::verify_bundle(&opened, &trusted).context(what)?;
        let file = trusted.iter().find(|k| k.id() == id).and_then(PublicKey::file);
        let from = file.map_or(String::new(), |f| format!(" ({})", f.display()));
        let _ = writeln!(out, "signature: good, by key {id}{from}");
    }
    super::print(&out)
}

fn render_seal(r: &SealReport) -> String {
    let mut out = String::new();
    if r.starter_written {
        let _ =
            writeln!(out, "wrote a starter precision.toml from the model's inputs: review it before the bundle ships");
    }
    let verb = if r.unchanged { "unchanged" } else { "wrote" };
    let _ = writeln!(out, "{verb} {}: {} files, {}", r.manifest.display(), r.files, human_bytes(r.total_bytes));
    let used = if r.calib_used < r.calib_samples {
        format!(" ({} used: calibration.samples)", r.calib_used)
    } else {
        String::new()
    };
    let _ = writeln!(out, "samples: {} calibration{used}, {} evaluation", r.calib_samples, r.eval_samples);
    let _ = writeln!(out, "sha256: {}", r.manifest_sha256);
    if r.stale_signature {
        let _ = writeln!(out, "note: bundle.toml.sig signs the previous manifest; sign the bundle again");
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({n} bytes)", UNITS[unit])
}
