use std::path::PathBuf;

use crate::bundle::sign;
use crate::error::{Failure, ResultExt};

/// Make an ed25519 key pair for signing bundles: PREFIX.key (secret, mode 0600) and PREFIX.pub.
///
/// Sign with the secret key where bundles are made (`precisiond bundle sign DIR --key PREFIX.key`); devices trust
/// the public key (list PREFIX.pub in [security] trusted_keys of the daemon configuration). Existing files are never
/// replaced. Both files are one line of text: `precisiond-ed25519-secret BASE64` / `precisiond-ed25519-public
/// BASE64` (plain RFC 8032 keys), after comment lines starting with `#`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write: PREFIX.key and PREFIX.pub (a trailing .key or .pub is dropped).
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let what = || format!("cannot make a key pair at {}", args.out.display());
    let key = sign::generate().context(what)?;
    let files = sign::write_keypair(&args.out, &key).context(what)?;
    super::print(&format!(
        "wrote {} (secret: keep it where bundles are signed, never on a device)\n\
         wrote {} (public: devices list it in [security] trusted_keys)\n\
         key id: {}\n",
        files.secret.display(),
        files.public.display(),
        key.id()
    ))
}
