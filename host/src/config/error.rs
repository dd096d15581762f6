//! What can be wrong with a configuration file, worded for the operator who has to fix it.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read the configuration file: {reason}", file.display())]
    Read {
        /// The file that was asked for.
        file: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// The file was read but breaks one or more rules.
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file that holds the problems.
        file: PathBuf,
        /// Every problem found, in file order where that is known.
        problems: Vec<Problem>,
    },
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted path of the field, such as `record_types.ticket.base_url`; empty for the file as a whole.
    pub field: String,
    /// The line the problem is on, when the parser could tell.
    pub line: Option<usize>,
    /// What is wrong and what was expected, lowercase without a trailing period.
    pub message: String,
}

impl ConfigError {
    /// The individual problems, for callers that want to list or test them.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

fn render(file: &std::path::Path, problems: &[Problem]) -> String {
    let file = file.display();
    match problems {
        [one] => format!("{file}: {one}"),
        many => {
            let mut out = format!("{file}: {} problems", many.len());
            for p in many {
                out.push_str("\n  ");
                out.push_str(&p.to_string());
            }
            out
        }
    }
}
