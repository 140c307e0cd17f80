//! The `tollgate` command's exit codes, decided once, at the binary's edge, from the
//! error that ended the command.

use crate::config::ConfigError;
use crate::store::StoreError;

/// The table `tollgate --help` ends with (and the README repeats).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (a listener that cannot bind, an I/O error, a bug)
  2  usage: an unknown command or flag, a value tollgate cannot accept, or values that
     do not fit together (a key's user and project in different organizations)
  3  configuration: the config file cannot be read, parsed or validated
  4  not found: an id (or a model name, for `pricing`) matches nothing
  5  conflict: the name is already taken, or the change would drop spend history
  6  database unavailable: it cannot be reached or opened, or failed mid-command";

/// Exit code: any failure the table does not name.
pub const FAILURE: u8 = 1;
/// Exit code: the command line asked for something that cannot be (clap uses 2 too).
pub const USAGE: u8 = 2;
/// Exit code: the configuration is unreadable or invalid.
pub const CONFIG: u8 = 3;
/// Exit code: an id or name matches nothing.
pub const NOT_FOUND: u8 = 4;
/// Exit code: the write conflicts with what the database holds.
pub const CONFLICT: u8 = 5;
/// Exit code: the database cannot be reached or used.
pub const DATABASE: u8 = 6;

/// A value on the command line that tollgate cannot accept (clap checks the rest).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Something named on the command line that does not exist outside the database (a
/// model name without a price).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// The exit code for the error that ended a command: the first cause in its chain that
/// the table names.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.chain().find_map(classify).unwrap_or(FAILURE)
}

fn classify(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.is::<UsageError>() {
        return Some(USAGE);
    }
    if cause.is::<NotFound>() {
        return Some(NOT_FOUND);
    }
    if cause.is::<ConfigError>() {
        return Some(CONFIG);
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return Some(store_code(e));
    }
    if cause.is::<sqlx::Error>() {
        return Some(DATABASE);
    }
    None
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::NotFound(_) => NOT_FOUND,
        StoreError::Conflict(_) => CONFLICT,
        StoreError::Invalid(_) => USAGE,
        StoreError::UnsupportedUrl(_) => CONFIG,
        StoreError::Database(_) | StoreError::Migrate(_) => DATABASE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_named_cause_decides() {
        let e = anyhow::Error::new(StoreError::NotFound("user")).context("archiving");
        assert_eq!(exit_code(&e), NOT_FOUND);
        let e =
            anyhow::Error::new(StoreError::Database(sqlx::Error::PoolTimedOut)).context("opening database");
        assert_eq!(exit_code(&e), DATABASE);
        let e = anyhow::Error::new(ConfigError::Parse { path: "server".into(), message: "bad".into() });
        assert_eq!(exit_code(&e.context("loading configuration")), CONFIG);
        let e = anyhow::Error::new(UsageError("--limit must be > 0".into()));
        assert_eq!(exit_code(&e), USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("listener cannot bind")), FAILURE);
    }
}
