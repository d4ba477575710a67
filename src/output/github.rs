//! GitHub Actions workflow commands: escaping for `::command::` lines.
//!
//! The runner decodes `%25`, `%0D`, `%0A` in data, and additionally `%3A`,
//! `%2C` in properties; anything else would be read as a new command or
//! property separator.

/// Escapes a workflow command's data part.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a workflow command's property value (`title=`, `file=`).
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("run 1: x, y"), "run 1%3A x%2C y");
    }
}
