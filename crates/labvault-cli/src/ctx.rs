//! Global options and what every command needs: where the vault is, how to get secrets, how to
//! unlock.

use anyhow::{anyhow, Result};
use clap::Args;
use labvault_core::{
    Error as CoreError, ErrorCode, KdfParams, Passphrase, RecoveryKey, Unlock, Vault, VaultOptions,
};
use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Options valid for every subcommand.
#[derive(Args, Debug)]
pub struct GlobalOpts {
    /// Vault directory [default: $XDG_DATA_HOME/labvault/vault or ~/.local/share/labvault/vault].
    #[arg(long, global = true, env = "LABVAULT_VAULT", value_name = "DIR")]
    pub vault: Option<PathBuf>,
    /// Read the passphrase (and, where asked, the new passphrase / recovery key) from stdin, one per line.
    #[arg(long, global = true)]
    pub passphrase_stdin: bool,
    /// Never use the OS keyring to unlock, even if this device remembers the vault.
    #[arg(long, global = true)]
    pub no_keyring: bool,
}

/// An unlocked vault for the length of one command. Dropping it locks the vault through
/// [`Vault::close`], which records `auth.lock`, whether the command succeeded or failed, so
/// every CLI session shows up in the audit trail as exactly one unlock and one lock.
pub struct Session(Arc<Vault>);

impl Session {
    /// Takes ownership of a vault just unlocked (or created) by a command.
    /// Says so on stderr when the vault could only be opened read-only (its disk is full).
    pub fn new(v: Vault) -> Session {
        if let Some(why) = v.read_only_reason() {
            eprintln!("warning: {why}");
        }
        Session(Arc::new(v))
    }

    /// The vault for a task that shares it (the sync engine); the session still locks it.
    pub fn shared(&self) -> Arc<Vault> {
        self.0.clone()
    }
}

impl Deref for Session {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        &self.0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Per-invocation context shared by all commands.
pub struct Ctx {
    pub global: GlobalOpts,
    stdin_lines: RefCell<Option<std::io::StdinLock<'static>>>,
}

fn invalid(msg: &str) -> anyhow::Error {
    anyhow::Error::new(CoreError::InvalidArgument(msg.to_string()))
}

impl Ctx {
    pub fn new(global: GlobalOpts) -> Ctx {
        Ctx {
            global,
            stdin_lines: RefCell::new(None),
        }
    }

    /// The vault directory in use.
    pub fn vault_dir(&self) -> Result<PathBuf> {
        match &self.global.vault {
            Some(v) => Ok(v.clone()),
            None => labvault_core::default_vault_dir()
                .ok_or_else(|| invalid("cannot find a home directory; pass --vault DIR")),
        }
    }

    /// Options for the vault handle: the OS user, this program, and the KDF cost for new key
    /// files (`LABVAULT_KDF=floor` selects the minimum, for tests and scripts on slow machines).
    pub fn vault_options(&self) -> VaultOptions {
        let kdf = match std::env::var("LABVAULT_KDF").as_deref() {
            Ok("floor") => Some(KdfParams::FLOOR),
            _ => None,
        };
        VaultOptions {
            kdf,
            user_agent: format!("labvault-cli/{}", env!("CARGO_PKG_VERSION")),
            ..VaultOptions::default()
        }
    }

    pub fn stdin_line(&self, what: &str) -> Result<Zeroizing<String>> {
        let mut guard = self.stdin_lines.borrow_mut();
        let lock = guard.get_or_insert_with(|| std::io::stdin().lock());
        let mut line = Zeroizing::new(String::new());
        let n = lock.read_line(&mut line)?;
        if n == 0 {
            return Err(invalid(&format!(
                "--passphrase-stdin: no line for the {what}"
            )));
        }
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        Ok(line)
    }

    pub fn prompt(&self, prompt: &str, what: &str, env: &str) -> Result<Zeroizing<String>> {
        if !std::io::stdin().is_terminal() {
            return Err(invalid(&format!(
                "no {what}: stdin is not a terminal; use --passphrase-stdin or {env}"
            )));
        }
        Ok(Zeroizing::new(rpassword::prompt_password(prompt)?))
    }

    /// Whether a passphrase is supplied non-interactively (then the keyring is not tried).
    fn passphrase_given(&self) -> bool {
        self.global.passphrase_stdin || std::env::var_os("LABVAULT_PASSPHRASE").is_some()
    }

    /// The current passphrase.
    pub fn passphrase(&self) -> Result<Passphrase> {
        let s = if self.global.passphrase_stdin {
            self.stdin_line("passphrase")?
        } else if let Ok(p) = std::env::var("LABVAULT_PASSPHRASE") {
            Zeroizing::new(p)
        } else {
            self.prompt("Vault passphrase: ", "passphrase", "LABVAULT_PASSPHRASE")?
        };
        Ok(Passphrase::new(s.to_string()))
    }

    /// A new passphrase (asked twice when interactive).
    /// The passphrase of a vault being created: as [`Ctx::new_passphrase`], and a script that
    /// sets `LABVAULT_PASSPHRASE` (as for every other command) works too.
    pub fn initial_passphrase(&self) -> Result<Passphrase> {
        if !self.global.passphrase_stdin && std::env::var_os("LABVAULT_NEW_PASSPHRASE").is_none() {
            if let Ok(p) = std::env::var("LABVAULT_PASSPHRASE") {
                if p.trim().is_empty() {
                    return Err(invalid("the new passphrase is empty"));
                }
                return Ok(Passphrase::new(p));
            }
        }
        self.new_passphrase()
    }

    pub fn new_passphrase(&self) -> Result<Passphrase> {
        let s = if self.global.passphrase_stdin {
            self.stdin_line("new passphrase")?
        } else if let Ok(p) = std::env::var("LABVAULT_NEW_PASSPHRASE") {
            Zeroizing::new(p)
        } else {
            let a = self.prompt(
                "New passphrase: ",
                "new passphrase",
                "LABVAULT_NEW_PASSPHRASE",
            )?;
            let b = self.prompt(
                "Repeat new passphrase: ",
                "new passphrase",
                "LABVAULT_NEW_PASSPHRASE",
            )?;
            if *a != *b {
                return Err(invalid("the two passphrases differ"));
            }
            a
        };
        if s.trim().is_empty() {
            return Err(invalid("the new passphrase is empty"));
        }
        Ok(Passphrase::new(s.to_string()))
    }

    /// The recovery key, typed by the user.
    pub fn recovery_key(&self) -> Result<RecoveryKey> {
        let s = if self.global.passphrase_stdin {
            self.stdin_line("recovery key")?
        } else if let Ok(p) = std::env::var("LABVAULT_RECOVERY_KEY") {
            Zeroizing::new(p)
        } else {
            self.prompt("Recovery key: ", "recovery key", "LABVAULT_RECOVERY_KEY")?
        };
        RecoveryKey::parse(&s)
            .map_err(|e| anyhow::Error::new(CoreError::InvalidRecoveryKey(e.to_string())))
    }

    /// Unlocks the vault: with a supplied passphrase if there is one, else from the OS keyring
    /// if this device remembers the vault, else by prompting. The session locks the vault
    /// (recording `auth.lock`) when the command drops it.
    pub fn unlock(&self) -> Result<Session> {
        let dir = self.vault_dir()?;
        if labvault_core::layout::vault_data_without_key(&dir) {
            return Err(anyhow::Error::new(
                labvault_core::layout::missing_key_file_error(&dir),
            ));
        }
        if !labvault_core::vault_exists(&dir) {
            return Err(anyhow::Error::new(CoreError::NotFound(format!(
                "a vault at {} (create one with `labvault init`)",
                dir.display()
            ))));
        }
        if !self.passphrase_given() && !self.global.no_keyring {
            match Vault::unlock(&dir, Unlock::Keyring, self.vault_options()) {
                Ok(v) => return Ok(Session::new(v)),
                Err(e) if e.code() == ErrorCode::KeyringUnavailable => {
                    tracing::debug!("keyring not usable: {e}");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let p = self.passphrase()?;
        Vault::unlock(&dir, Unlock::Passphrase(&p), self.vault_options())
            .map(Session::new)
            .map_err(|e| anyhow!(e))
    }
}
