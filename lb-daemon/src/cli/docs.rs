//! The manual pages and shell completions the Debian package ships, made
//! from the sources that document each thing already: lbd(8) and lbctl(8)
//! from the clap definitions (`clap_mangen`, plus a COMMANDS section that
//! lists every subcommand with its arguments), lb.toml(5) from the annotated
//! `config/lb.toml` ([`config_page`]), completions for bash, zsh and fish
//! from the clap definitions (`clap_complete`). `lb-docs` writes them out.

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use clap::CommandFactory as _;
use clap_complete::Shell;

/// Writes `man/{lbd.8,lbctl.8,lb.toml.5}` and
/// `completions/{lbd,lbctl}.bash`, `_lbd`, `_lbctl` (zsh),
/// `{lbd,lbctl}.fish` under `out`; returns the files written.
pub fn generate(out: &Path, annotated_config: &str) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    let mut written = Vec::new();
    for (name, cmd, files) in [
        ("lbd", super::lbd::Cli::command(), LBD_FILES),
        ("lbctl", super::lbctl::Cli::command(), LBCTL_FILES),
    ] {
        let path = man.join(format!("{name}.8"));
        fs::write(&path, command_page(cmd.clone(), files)?)?;
        written.push(path);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut cmd = cmd.clone();
            let path = clap_complete::generate_to(shell, &mut cmd, name, &completions)?;
            written.push(path);
        }
    }
    let path = man.join("lb.toml.5");
    fs::write(&path, config_page(annotated_config))?;
    written.push(path);
    Ok(written)
}

const LBD_FILES: &str = "\
.TP\n\\fI/etc/lbd/lb.toml\\fR\nThe config file (see \\fBlb.toml\\fR(5)).\n\
.TP\n\\fI/run/lbd/lbd.sock\\fR\nThe admin socket \\fBlbctl\\fR(8) talks to (mode 0600).\n\
.TP\n\\fI/sys/fs/bpf/lbd\\fR\nThe pinned XDP program, links and maps: they outlive \\fBlbd\\fR, \
so a restarted \\fBlbd\\fR adopts them without dropping a flow; \\fBlbd teardown\\fR removes them.\n\
.SH SYSTEMD\n\
\\fBlbd.service\\fR runs \\fBlbd\\fR with \\fIType=notify\\fR: READY=1 once the data path is \
programmed and the admin socket is served, RELOADING=1 and READY=1 around a reload, STATUS= \
with a one-line summary, STOPPING=1 at a stop, and WATCHDOG=1 from the controller loop. \
\\fBsystemctl reload lbd\\fR runs \\fBlbctl reload\\fR, which fails (and logs the file:line \
error) when the new config is refused; the running config then stays. \\fBsystemctl stop lbd\\fR \
leaves the data path forwarding, and \\fBsystemctl restart lbd\\fR is a hitless restart.\n\
.SH SEE ALSO\n\\fBlbctl\\fR(8), \\fBlb.toml\\fR(5), \\fBsystemctl\\fR(1)\n";

const LBCTL_FILES: &str = "\
.TP\n\\fI/run/lbd/lbd.sock\\fR\nThe default admin socket (\\fB--socket\\fR or \\fBLBD_SOCKET\\fR \
to use another).\n\
.SH EXIT STATUS\n0 on success, 1 when \\fBlbd\\fR refused the request or could not be reached, \
2 for a bad argument; the reason is printed on one line as \\fIlbctl: reason\\fR.\n\
.SH SEE ALSO\n\\fBlbd\\fR(8), \\fBlb.toml\\fR(5)\n";

/// A section-8 page from a clap command: what `clap_mangen` renders, a
/// COMMANDS section with every subcommand (usage, what it does, its
/// arguments), and FILES and the rest from `files`.
fn command_page(mut cmd: clap::Command, files: &str) -> io::Result<String> {
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration")
        .source(format!("lbd {}", crate::VERSION));
    // Not `render`: its SUBCOMMANDS section points at pages of their own
    // (lbctl-real(8)) that we don't ship; COMMANDS below has them all.
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    let mut page = String::from_utf8(page).map_err(io::Error::other)?;
    page.push_str(".SH COMMANDS\n");
    commands_section(&cmd, &mut page);
    let mut version = Vec::new();
    man.render_version_section(&mut version)?;
    page.push_str(&String::from_utf8(version).map_err(io::Error::other)?);
    page.push_str(".SH FILES\n");
    page.push_str(files);
    Ok(page)
}

/// Every leaf subcommand of `cmd`, depth first.
fn commands_section(cmd: &clap::Command, page: &mut String) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        if sub.has_subcommands() {
            commands_section(sub, page);
            continue;
        }
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").trim();
        let _ = writeln!(page, ".TP\n\\fB{}\\fR", escape(usage));
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = writeln!(page, "{}", escape(&about));
        for arg in sub.get_arguments() {
            if arg.is_global_set() || arg.is_hide_set() || arg.get_id() == "help" {
                continue;
            }
            let Some(help) = arg.get_help() else { continue };
            let name = match (arg.get_long(), arg.get_value_names()) {
                (Some(long), _) => format!("--{long}"),
                (None, Some(names)) => format!("<{}>", names.join(" ")),
                (None, None) => arg.get_id().to_string(),
            };
            let _ = writeln!(
                page,
                ".RS\n.TP\n\\fI{}\\fR\n{}\n.RE",
                escape(&name),
                escape(&help.to_string())
            );
        }
    }
}

/// Escapes text for roff: backslashes, and a `.` or `'` that would start
/// a request at the beginning of a line.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    text.lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One piece of the comment text waiting for the option it describes.
enum Para {
    Text(Vec<String>),
    Verbatim(Vec<String>),
}

/// lb.toml(5) from the annotated config: its opening comment is the
/// description; each table (`[daemon]`, also a commented-out `# [vrrp]`) a
/// subsection; each option (`key = default`, also commented out) an entry
/// with the comment above it as its text; comment lines indented by two
/// spaces stay verbatim; from the first `[[service]]` on the file is shown
/// as the example it is.
#[must_use]
pub fn config_page(annotated: &str) -> String {
    let mut page = format!(
        ".TH LB.TOML 5 \"\" \"lbd {}\" \"File Formats\"\n\
         .SH NAME\nlb.toml \\- configuration file of lbd, the XDP load balancer\n\
         .SH SYNOPSIS\n\\fI/etc/lbd/lb.toml\\fR\n.SH DESCRIPTION\n",
        crate::VERSION
    );
    let mut pending: Vec<Para> = Vec::new();
    let mut lines = annotated.lines();
    let mut example = Vec::new();
    for line in lines.by_ref() {
        let trimmed = line.trim();
        if trimmed == "[[service]]" {
            flush(&mut page, &mut pending);
            example.push(line);
            break;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            if is_table(comment) {
                flush(&mut page, &mut pending);
                let _ = writeln!(page, ".SS \"{}\" (commented out above)", escape(comment));
            } else if is_option(comment) {
                option(&mut page, comment, &mut pending);
            } else if comment.trim().is_empty() {
                pending.push(Para::Text(Vec::new()));
            } else if comment.starts_with("  ") {
                match pending.last_mut() {
                    Some(Para::Verbatim(v)) => v.push(comment.to_owned()),
                    _ => pending.push(Para::Verbatim(vec![comment.to_owned()])),
                }
            } else {
                match pending.last_mut() {
                    Some(Para::Text(t)) => t.push(comment.to_owned()),
                    _ => pending.push(Para::Text(vec![comment.to_owned()])),
                }
            }
        } else if is_table(trimmed) {
            flush(&mut page, &mut pending);
            let _ = writeln!(page, ".SS \"{}\"", escape(trimmed));
        } else {
            option(&mut page, trimmed, &mut pending);
        }
    }
    example.extend(lines);
    flush(&mut page, &mut pending);
    page.push_str(".SH EXAMPLE\n.EX\n");
    for line in example {
        let _ = writeln!(page, "{}", escape(line));
    }
    page.push_str(
        ".EE\n.SH FILES\n\\fI/etc/lbd/lb.toml\\fR (a conffile: upgrades keep your edits)\n\
         .SH SEE ALSO\n\\fBlbd\\fR(8), \\fBlbctl\\fR(8)\n",
    );
    page
}

/// `[name]` or `[[name]]`.
fn is_table(text: &str) -> bool {
    let inner = text.trim_start_matches('[').trim_end_matches(']');
    text.starts_with('[')
        && text.ends_with(']')
        && !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
}

/// `key = value`.
fn is_option(text: &str) -> bool {
    text.split_once(" = ").is_some_and(|(key, _)| {
        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

/// An option entry: the `key = default` line, then the text above it.
fn option(page: &mut String, line: &str, pending: &mut Vec<Para>) {
    let _ = writeln!(page, ".TP\n\\fB{}\\fR", escape(line));
    paragraphs(page, pending, false);
}

/// The text waiting for an option, as paragraphs of their own.
fn flush(page: &mut String, pending: &mut Vec<Para>) {
    paragraphs(page, pending, true);
}

fn paragraphs(page: &mut String, pending: &mut Vec<Para>, standalone: bool) {
    let mut first = true;
    for para in pending.drain(..) {
        match para {
            Para::Text(lines) if lines.is_empty() => {}
            Para::Text(lines) => {
                if standalone || !first {
                    page.push_str(if standalone { ".PP\n" } else { ".IP\n" });
                }
                let _ = writeln!(page, "{}", escape(&lines.join("\n")));
                first = false;
            }
            Para::Verbatim(lines) => {
                page.push_str(".IP\n.EX\n");
                for line in lines {
                    let _ = writeln!(page, "{}", escape(&line));
                }
                page.push_str(".EE\n");
                first = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{config_page, is_option, is_table};

    const ANNOTATED: &str = include_str!("../../../config/lb.toml");

    #[test]
    fn every_option_and_table_of_the_annotated_config_is_on_the_page() {
        let page = config_page(ANNOTATED);
        let mut seen = 0;
        for line in ANNOTATED.lines() {
            let text = line.trim().trim_start_matches("# ");
            if is_option(text) || is_table(text) {
                let key = text.split(" = ").next().unwrap();
                assert!(
                    page.contains(&super::escape(key)),
                    "{key} is not on the page"
                );
                seen += 1;
            }
        }
        assert!(
            seen > 40,
            "only {seen} options found: is config/lb.toml parsed?"
        );
        for section in [
            ".SS \"[daemon]\"",
            ".SS \"[dataplane]\"",
            ".SS \"[timeouts]\"",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        assert!(page.contains(".SS \"[vrrp]\" (commented out above)"));
        assert!(page.contains(".SH EXAMPLE\n.EX\n[[service]]"));
    }

    #[test]
    fn an_option_gets_the_comment_above_it() {
        let page = config_page(
            "# Header.\n\n[daemon]\n# The socket.\n# Absolute path.\nadmin_socket = \"/x\"\n",
        );
        assert!(
            page.contains(".TP\n\\fBadmin_socket = \"/x\"\\fR\nThe socket.\nAbsolute path.\n"),
            "{page}"
        );
        assert!(page.contains(".PP\nHeader.\n.SS \"[daemon]\""), "{page}");
    }

    #[test]
    fn roff_requests_in_the_text_are_escaped() {
        let page = config_page("# .start of a line\n# 'quote\n# back\\slash\n[daemon]\n");
        assert!(page.contains("\\&.start"), "{page}");
        assert!(page.contains("\\&'quote"), "{page}");
        assert!(page.contains("back\\eslash"), "{page}");
    }
}
