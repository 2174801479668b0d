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

/// `s` with every control character escaped (`\u{1b}`, `\n`): a hostile file name cannot
/// send terminal escape sequences or fake extra lines through what the CLI prints.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

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
        ErrorCode::SyncRefused | ErrorCode::FeedDiverged => EXIT_SYNC_REFUSED,
        ErrorCode::ProjectLocked => EXIT_PROJECT_LOCKED,
    }
}

/// Exit status of sync: the tenant could not be reached (try again later).
pub const EXIT_SYNC_UNREACHABLE: u8 = 23;
/// Exit status of sync: sign-in, device approval or account problems.
pub const EXIT_SYNC_ACCOUNT: u8 = 24;
/// Exit status of sync: something from the tenant was refused (tampered, replayed, wrong
/// pin, diverged feed); nothing local was changed.
pub const EXIT_SYNC_REFUSED: u8 = 25;
/// Exit status of sync: the pass finished but some projects did not sync completely.
pub const EXIT_SYNC_INCOMPLETE: u8 = 26;
/// A shared project is locked on this device (offline lease ran out, or access revoked).
pub const EXIT_PROJECT_LOCKED: u8 = 27;

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
 23  tenant unreachable (sync; try again later)
 24  not signed in, device not approved or revoked, tenant refused the account
 25  sync_refused, feed_diverged, pin_mismatch (nothing local was changed)
 26  sync finished, some projects incomplete (`labvault sync status`)
 27  project_locked (a shared project past the offline lease: reconnect)
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
        eprintln!("error[{}]: {}", o.code, printable(&o.message));
        return ExitCode::from(o.exit);
    }
    if let Some(core) = e.downcast_ref::<labvault_core::Error>() {
        eprintln!("error[{}]: {}", core.code(), printable(&core.to_string()));
        return ExitCode::from(exit_code(core.code()));
    }
    if let Some(s) = e.downcast_ref::<labvault_sync::SyncError>() {
        let (code, exit) = crate::sync_cmd::sync_error(s);
        eprintln!("error[{code}]: {}", printable(&s.to_string()));
        return ExitCode::from(exit);
    }
    if let Some(c) = e.downcast_ref::<labvault_client::ClientError>() {
        let s = labvault_sync::SyncError::Client(clone_client_error(c));
        let (code, exit) = crate::sync_cmd::sync_error(&s);
        eprintln!("error[{code}]: {}", printable(&c.to_string()));
        return ExitCode::from(exit);
    }
    eprintln!("error[internal]: {}", printable(&format!("{e:#}")));
    ExitCode::from(1)
}

/// A copy of a client error (they are not `Clone`: a transport error holds no secret but is
/// rebuilt field by field here to be classified).
fn clone_client_error(c: &labvault_client::ClientError) -> labvault_client::ClientError {
    use labvault_client::ClientError as C;
    match c {
        C::InvalidPin(s) => C::InvalidPin(s.clone()),
        C::InvalidUrl(s) => C::InvalidUrl(s.clone()),
        C::PinMismatch {
            url,
            pinned,
            presented,
        } => C::PinMismatch {
            url: url.clone(),
            pinned: pinned.clone(),
            presented: presented.clone(),
        },
        C::Tls(s) => C::Tls(s.clone()),
        C::Unreachable {
            url,
            reason,
            timeout,
        } => C::Unreachable {
            url: url.clone(),
            reason: reason.clone(),
            timeout: *timeout,
        },
        C::Api {
            status,
            code,
            message,
            retry_after,
        } => C::Api {
            status: *status,
            code: *code,
            message: message.clone(),
            retry_after: *retry_after,
        },
        C::Malformed {
            url,
            status,
            detail,
        } => C::Malformed {
            url: url.clone(),
            status: *status,
            detail: detail.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain name.csv"), "plain name.csv");
        let hostile = "a\u{1b}]0;pwned\u{7}b\nskipped[fake]: c\r";
        let p = printable(hostile);
        assert!(!p.chars().any(char::is_control), "{p:?}");
        assert_eq!(p, "a\\u{1b}]0;pwned\\u{7}b\\nskipped[fake]: c\\r");
    }
}
