//! Error reporting and exit codes: one distinct code per error class, so scripts can branch
//! without parsing messages. The table is also printed in `labvault --help`.

use labvault_core::ErrorCode;
use std::process::ExitCode;

/// A CLI-level outcome that is not a single core error (e.g. an import where some files were
/// skipped, a verify that found problems).
#[derive(Debug)]
pub struct Outcome {
    /// Code reported in `error[<code>]`.
    pub code: ErrorCode,
    /// Exit status.
    pub exit: u8,
    /// Message.
    pub message: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Outcome {}

/// Exit status when an import finished but skipped some files.
pub const EXIT_PARTIAL: u8 = 3;

/// Exit status per error code.
pub fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::Internal => 1,
        ErrorCode::WrongPassphrase
        | ErrorCode::WrongRecoveryKey
        | ErrorCode::InvalidRecoveryKey => 10,
        ErrorCode::Locked | ErrorCode::VaultBusy => 11,
        ErrorCode::NotFound => 12,
        ErrorCode::AlreadyExists => 13,
        ErrorCode::InvalidName | ErrorCode::InvalidArgument | ErrorCode::InvalidPolicy => 14,
        ErrorCode::Tampered | ErrorCode::Truncated => 15,
        ErrorCode::UnsupportedVersion | ErrorCode::CorruptKeyFile | ErrorCode::CorruptCatalog => 16,
        ErrorCode::KeyringUnavailable => 17,
        ErrorCode::NoSpace => 18,
        ErrorCode::SourceVanished | ErrorCode::Io => 19,
        ErrorCode::Cancelled => 20,
        ErrorCode::Erased => 21,
        ErrorCode::OnHold => 22,
    }
}

/// The `--help` footer.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success                       14 invalid_name, invalid_argument
  1  internal error                15 tampered, truncated
  2  usage error                   16 unsupported_version, corrupt_key_file, corrupt_catalog
  3  import done, some files       17 keyring_unavailable
     skipped (listed on stderr)    18 no_space
 10  wrong_passphrase,             19 source_vanished, io
     wrong/invalid_recovery_key    20 cancelled
 11  vault_busy, locked            21 erased
 12  not_found                     22 on_hold (legal hold)
 13  already_exists                14 also: invalid_policy
Errors are printed on stderr as `error[<code>]: <message>`.
Passphrase: interactive prompt, --passphrase-stdin, or LABVAULT_PASSPHRASE
(new passphrase for init/passwd/recover: LABVAULT_NEW_PASSPHRASE).";

/// Prints `error[<code>]: <message>` and returns the matching exit status.
pub fn report(e: &anyhow::Error) -> ExitCode {
    // `labvault ls --json | head`: the reader went away; that is not an error of ours.
    if e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    if let Some(o) = e.downcast_ref::<Outcome>() {
        eprintln!("error[{}]: {}", o.code, o.message);
        return ExitCode::from(o.exit);
    }
    if let Some(core) = e.downcast_ref::<labvault_core::Error>() {
        eprintln!("error[{}]: {core}", core.code());
        return ExitCode::from(exit_code(core.code()));
    }
    eprintln!("error[internal]: {e:#}");
    ExitCode::from(1)
}
