//! Errors that point into `infra/`: file, line, column, field path, and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a file of `infra/` (1-based line and column; both 0 when the problem is about a
/// whole file or directory, e.g. one that does not exist).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// One problem in the environment's data.
///
/// Displays like rustc:
///
/// ```text
/// error: hostPort must be between 1 and 65535, not 0
///   --> infra/environment.yaml:24:15 (field cluster.kind.hostPort)
///   = help: pick a free port on this machine, e.g. 8080
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in (the infra directory joined with the file's relative path).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is not at a line (a missing file, an unknown `--env`).
    pub line: usize,
    /// 1-based column (in characters); 0 together with `line`.
    pub column: usize,
    /// Field path inside the file, e.g. `cluster.kind.hostPort`, `spec.listeners[0].port`,
    /// `metadata.labels["app.kubernetes.io/name"]`. Empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl ConfigError {
    /// An error at a location.
    pub fn new(
        location: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: location.file,
            line: location.line,
            column: location.column,
            field: field.into(),
            message: message.into(),
            help: None,
        }
    }

    /// An error about a whole file or directory (line and column 0).
    pub fn in_file(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(
            Location {
                file: file.into(),
                line: 0,
                column: 0,
            },
            field,
            message,
        )
    }

    /// Adds what to do.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> ConfigError {
        self.help = Some(help.into());
        self
    }

    /// The place this error points at.
    pub fn location(&self) -> Location {
        Location {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
        }
    }

    /// Whether this error is about `file` (compared as given).
    pub fn is_in(&self, file: &Path) -> bool {
        self.file == file
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        write!(f, "  --> {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, " (field {})", self.field)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One or more [`ConfigError`]s, in the order they were found (file by file).
///
/// Loading goes on after most errors, so that one run shows every problem it can.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }
}

impl From<ConfigError> for Errors {
    fn from(error: ConfigError) -> Errors {
        Errors(vec![error])
    }
}

impl IntoIterator for Errors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n\nerror: the environment has {} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}
