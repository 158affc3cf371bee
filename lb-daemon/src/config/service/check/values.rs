//! The values of a check table that need more than a type: the HTTP
//! request path, `Host`, expected statuses and body, and the command.

use std::path::PathBuf;

use toml::Spanned;

use super::super::super::errors::Checker;
use super::super::super::values::{Int, Text};
use super::STATUS_RANGE;

/// Longest `expect_body`: the checker looks at the first 64 KiB of a body.
const MAX_EXPECT_BODY: usize = 65_536;

impl Checker<'_> {
    /// `expect_body`: not empty, and within what the checker searches.
    pub(super) fn expect_body(&mut self, field: &str, text: &Text) -> Option<String> {
        let body = text.get_ref();
        let problem = if body.is_empty() {
            Some("must not be empty (leave it out to accept any body)".to_owned())
        } else if body.len() > MAX_EXPECT_BODY {
            Some(format!(
                "is {} bytes long; only the first {MAX_EXPECT_BODY} bytes of a body are \
                 searched",
                body.len()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(text.span().start, field, problem);
                None
            }
            None => Some(body.clone()),
        }
    }

    /// An HTTP request path: starts with `/`, nothing that would break the
    /// request line.
    pub(super) fn request_path(&mut self, field: &str, text: &Text) -> Option<String> {
        let path = text.get_ref();
        let problem = if !path.starts_with('/') {
            "is not a request path: it must start with \"/\""
        } else if path
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control() || c == ' ')
        {
            "contains a space, a control character or a non-ASCII character (write them \
             percent-encoded, e.g. %20)"
        } else {
            return Some(path.clone());
        };
        self.error(text.span().start, field, format!("{path:?} {problem}"));
        None
    }

    /// A `Host` header value: a host name or address, with an optional port.
    pub(super) fn host(&mut self, field: &str, text: &Text) -> Option<String> {
        let host = text.get_ref();
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
        {
            return Some(host.clone());
        }
        self.error(
            text.span().start,
            field,
            format!(
                "{host:?} is not a host name (letters, digits, '-' and '.', optionally \
                 followed by :PORT; an IPv6 address in brackets)"
            ),
        );
        None
    }

    /// `expect_status`: status codes, each at most once.
    pub(super) fn statuses(&mut self, field: &str, list: &Spanned<Vec<Int>>) -> Option<Vec<u16>> {
        let mut statuses = Vec::new();
        let mut valid = true;
        for (i, value) in list.get_ref().iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some(status) = self.int(&item, "status", value, STATUS_RANGE) else {
                valid = false;
                continue;
            };
            let status = status as u16;
            if let Some(first) = statuses.iter().position(|&s| s == status) {
                self.error(
                    value.span().start,
                    item,
                    format!("duplicate status {status} (also {field}[{first}])"),
                );
                valid = false;
            }
            statuses.push(status);
        }
        valid.then_some(statuses)
    }

    /// `command`: the program's absolute path, then its arguments; run
    /// directly (no shell), so nothing may contain a NUL.
    pub(super) fn command(
        &mut self,
        field: &str,
        list: &Spanned<Vec<Text>>,
    ) -> Option<(PathBuf, Vec<String>)> {
        let words = list.get_ref();
        let Some(program) = words.first() else {
            self.error(
                list.span().start,
                field,
                "the command is empty: give the program's absolute path and its arguments, \
                 e.g. [\"/usr/local/bin/check\", \"--quick\"]",
            );
            return None;
        };
        let mut valid = true;
        for (i, word) in words.iter().enumerate() {
            if word.get_ref().contains('\0') {
                self.error(
                    word.span().start,
                    format!("{field}[{i}]"),
                    "contains a NUL character, which cannot be passed to a program",
                );
                valid = false;
            }
        }
        let path = PathBuf::from(program.get_ref());
        if valid && !path.is_absolute() {
            self.error(
                program.span().start,
                format!("{field}[0]"),
                format!(
                    "{:?} is not an absolute path: the program is run directly, neither \
                     looked up in PATH nor run through a shell",
                    program.get_ref()
                ),
            );
            valid = false;
        }
        let args = words[1..].iter().map(|w| w.get_ref().clone()).collect();
        valid.then_some((path, args))
    }
}
