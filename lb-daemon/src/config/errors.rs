//! The errors of a config file and the one collector that gathers them all,
//! with their line, in file order.

use std::fmt;

use super::Environment;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (as given to [`super::parse`]/[`super::load`]).
    pub source_name: String,
    /// 1-based; 0 when the error is not about a line (the file cannot be
    /// read).
    pub line: usize,
    /// Dotted path such as `service[2].real[0].weight` (0-based indexes);
    /// empty for TOML syntax errors and I/O errors.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `{source}:{line}: {field}: {message}`, leaving out the line when 0
    /// and the field when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if self.line != 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order (never empty when
/// returned by [`super::parse`]/[`super::load`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Byte offset to 1-based line.
pub(super) struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    pub(super) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// Collects the errors of every section while they are read. Each section
/// adds its readers to it (`impl Checker` in the section's module); the
/// typed-value readers they share are in `values`.
pub(super) struct Checker<'a> {
    source: &'a str,
    pub(super) lines: Lines,
    pub(super) env: &'a dyn Environment,
    /// With the byte offset they are about, to sort them into file order.
    errors: Vec<(usize, ConfigError)>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(text: &str, source: &'a str, env: &'a dyn Environment) -> Self {
        Self {
            source,
            lines: Lines::new(text),
            env,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(
        &mut self,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let error = ConfigError {
            source_name: self.source.to_owned(),
            line: self.lines.line(offset),
            field: field.into(),
            message: message.into(),
        };
        self.errors.push((offset, error));
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors in file order (a stable sort: errors about one offset stay
    /// in the order they were found).
    pub(super) fn finish(&mut self) -> ConfigErrors {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|(offset, _)| *offset);
        ConfigErrors(errors.into_iter().map(|(_, e)| e).collect())
    }
}
