//! The values of a check table that need more than a type: the HTTP
//! request path, `Host`, expected statuses and body, and the command.

use std::net::IpAddr;
use std::path::PathBuf;

use toml::Spanned;

use super::super::super::errors::Checker;
use super::super::super::values::{Int, Text};
use super::STATUS_RANGE;
use crate::health::dns;

/// Longest UDP `payload` and `expect_reply`: what fits in one datagram
/// without fragmentation on any usual link.
const MAX_DATAGRAM_TEXT: usize = 1400;

/// Longest `expect_body`: the checker looks at the first 64 KiB of a body.
const MAX_EXPECT_BODY: usize = 65_536;

impl Checker<'_> {
    /// A UDP check's `payload` or `expect_reply`: not empty, one datagram.
    pub(super) fn datagram_text(&mut self, field: &str, text: &Text) -> Option<String> {
        let value = text.get_ref();
        let problem = if value.is_empty() {
            "must not be empty".to_owned()
        } else if value.len() > MAX_DATAGRAM_TEXT {
            format!(
                "is {} bytes long (at most {MAX_DATAGRAM_TEXT}: one unfragmented datagram)",
                value.len()
            )
        } else {
            return Some(value.clone());
        };
        self.error(text.span().start, field, problem);
        None
    }

    /// A DNS check's `query_name`.
    pub(super) fn query_name(&mut self, field: &str, text: &Text) -> Option<String> {
        let name = text.get_ref();
        match dns::check_name(name) {
            Ok(()) => Some(name.strip_suffix('.').unwrap_or(name).to_owned()),
            Err(problem) => {
                self.error(
                    text.span().start,
                    field,
                    format!("{name:?} is not a DNS name: it {problem}"),
                );
                None
            }
        }
    }

    /// A DNS check's `query_type`, by name.
    pub(super) fn query_type(&mut self, field: &str, text: &Text) -> Option<u16> {
        let name = text.get_ref();
        let code = dns::type_code(name);
        if code.is_none() {
            let known: Vec<&str> = dns::TYPES.iter().map(|(n, _)| *n).collect();
            self.error(
                text.span().start,
                field,
                format!(
                    "unknown query type {name:?} (expected one of {})",
                    known.join(", ")
                ),
            );
        }
        code
    }

    /// A DNS check's `expect_rcode`, by name.
    pub(super) fn expect_rcode(&mut self, field: &str, text: &Text) -> Option<u8> {
        let name = text.get_ref();
        let code = dns::rcode_code(name);
        if code.is_none() {
            let known: Vec<&str> = dns::RCODES.iter().map(|(n, _)| *n).collect();
            self.error(
                text.span().start,
                field,
                format!(
                    "unknown response code {name:?} (expected one of {})",
                    known.join(", ")
                ),
            );
        }
        code
    }

    /// A DNS check's `expect_address`: an IPv4 or IPv6 address.
    pub(super) fn expect_address(&mut self, field: &str, text: &Text) -> Option<IpAddr> {
        let value = text.get_ref();
        let addr = value.parse::<IpAddr>().ok();
        if addr.is_none() {
            self.error(
                text.span().start,
                field,
                format!("{value:?} is not an IPv4 or IPv6 address"),
            );
        }
        addr
    }

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
