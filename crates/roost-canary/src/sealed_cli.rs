//! `roost-canary decrypt` and `encrypt`: a sealed rotation file by hand
//! (docs/encrypted-delivery.md), to check what an operator put in the
//! object store, or to make one for a test. The jobs agent calls
//! roost-sealed itself; these commands are for people and test suites.

use clap::Subcommand;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Certificates and keys are a few kilobytes; a file past this is not one.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Subcommand)]
pub enum Command {
    /// Decrypt a sealed certificate or key with the device's private key (the sample's RSA format, or Roost's EC P-256 format).
    Decrypt {
        /// The device's private key (PEM: PKCS#1, SEC1 or PKCS#8).
        #[arg(long)]
        key: PathBuf,
        /// The sealed file.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write what it holds (created 0600).
        #[arg(long = "out")]
        output: PathBuf,
        /// The scheme the job document names; refused if it does not fit the key [default: the key's].
        #[arg(long)]
        scheme: Option<String>,
    },
    /// Seal a file to a device's certificate or public key, in the format its key type takes.
    Encrypt {
        /// The device's certificate or public key (PEM).
        #[arg(long)]
        to: PathBuf,
        /// The file to seal.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the sealed file.
        #[arg(long = "out")]
        output: PathBuf,
    },
}

impl Command {
    pub fn run(self) -> ExitCode {
        let result = match self {
            Command::Decrypt {
                key,
                input,
                output,
                scheme,
            } => decrypt(&key, &input, &output, scheme.as_deref()),
            Command::Encrypt { to, input, output } => encrypt(&to, &input, &output),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("roost-canary: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

fn decrypt(key: &Path, input: &Path, output: &Path, scheme: Option<&str>) -> Result<(), String> {
    let key = read_text(key)?;
    let sealed = read(input)?;
    let opened = match scheme {
        Some(scheme) => roost_sealed::open_with_scheme(scheme, &key, &sealed),
        None => roost_sealed::open(&key, &sealed),
    }
    .map_err(|e| format!("{}: {e}", input.display()))?;
    write_private(output, &opened)
}

fn encrypt(to: &Path, input: &Path, output: &Path) -> Result<(), String> {
    let recipient = read_text(to)?;
    let scheme =
        roost_sealed::scheme_for(&recipient).map_err(|e| format!("{}: {e}", to.display()))?;
    let sealed = roost_sealed::seal(&recipient, &read(input)?)
        .map_err(|e| format!("{}: {e}", to.display()))?;
    write_private(output, &sealed)?;
    // The value for the job document's "encryption": {"scheme": ...}.
    println!("{scheme}");
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{}: {len} bytes, more than the {MAX_FILE_BYTES} a certificate or key file may have",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read(path)?)
        .map_err(|_| format!("{}: not a PEM file (not UTF-8 text)", path.display()))
}

/// Key material: created 0600, and narrowed to 0600 if it already existed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)
}
