//! The error of the two report parsers (malloc_info's XML, malloc_stats' text).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Which report: "malloc_info" or "malloc_stats".
    pub report: &'static str,
    pub detail: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} output could not be parsed: {}", self.report, self.detail)
    }
}

impl std::error::Error for ParseError {}
