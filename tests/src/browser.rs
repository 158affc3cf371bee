//! A real headless browser (Debian's `chromium`, installed by `cargo xtask
//! setup`) run inside a lab namespace: the DOM of a page after its scripts
//! ran, or a screenshot of it.
//!
//! `--virtual-time-budget` lets the page's timers run ahead of the wall
//! clock (virtual time pauses while a fetch is under way), so a page that
//! polls every 2 s makes several polls in one short run.

use std::{
    io::Read,
    path::Path,
    process::Stdio,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{Lab, command_in};

/// How long one chromium run may take, wall time.
const RUN_LIMIT: Duration = Duration::from_mins(1);

/// The DOM of `url` after its scripts ran for `budget` of virtual time, as
/// chromium serialises it.
pub fn dump_dom(lab: &mut Lab, ns: &str, url: &str, budget: Duration) -> Result<String> {
    run(lab, ns, &["--dump-dom".to_owned()], url, budget)
}

/// Saves a PNG of `url` (window `width` x `height`) after `budget` of
/// virtual time to `path`.
pub fn screenshot(
    lab: &mut Lab,
    ns: &str,
    url: &str,
    budget: Duration,
    (width, height): (u32, u32),
    path: &Path,
) -> Result<()> {
    let _ = std::fs::remove_file(path);
    run(
        lab,
        ns,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_owned(),
        ],
        url,
        budget,
    )?;
    let png =
        std::fs::read(path).with_context(|| format!("no screenshot at {}", path.display()))?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        bail!("{} is not a PNG", path.display());
    }
    Ok(())
}

/// One chromium run with its own profile directory; its stdout.
fn run(lab: &mut Lab, ns: &str, what: &[String], url: &str, budget: Duration) -> Result<String> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = lab
        .dir()
        .join(format!("chromium-{}", RUNS.fetch_add(1, Ordering::Relaxed)));
    let mut args = vec![
        "chromium".to_owned(),
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        "--disable-extensions".into(),
        "--disable-background-networking".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--virtual-time-budget={}", budget.as_millis()),
    ];
    args.extend(what.iter().cloned());
    args.push(url.to_owned());
    let mut cmd = command_in(ns, &args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // The lab kills it if this test fails before it ends.
    let mut child = lab.spawn(&mut cmd)?;
    let mut stdout = child.stdout.take().context("chromium's stdout")?;
    let mut stderr = child.stderr.take().context("chromium's stderr")?;
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("chromium did not finish within {RUN_LIMIT:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    if !status.success() {
        bail!("chromium failed ({status}) on {url}:\n{err}");
    }
    Ok(out)
}

/// The attributes (name, value) of every element `<tag` whose opening tag
/// has `class="class"`, in document order, from serialised HTML (values
/// unescaped for `&amp;`, `&quot;`, `&lt;` and `&gt;`).
#[must_use]
pub fn elements(html: &str, tag: &str, class: &str) -> Vec<Vec<(String, String)>> {
    let open = format!("<{tag} class=\"{class}\"");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + 1 + tag.len()..];
        let end = after.find('>').unwrap_or(after.len());
        found.push(attributes(&after[..end]));
        rest = &after[end..];
    }
    found
}

/// The text of the element with `id="id"` (up to its first `<`).
#[must_use]
pub fn text_of_id<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(&rest[start..start + end])
}

fn attributes(mut text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start();
        let Some(eq) = text.find("=\"") else {
            return out;
        };
        let name = text[..eq].trim().to_owned();
        let value_start = eq + 2;
        let Some(len) = text[value_start..].find('"') else {
            return out;
        };
        let value = text[value_start..value_start + len]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.push((name, value));
        text = &text[value_start + len + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_their_attributes() {
        let html = r#"<tr class="service"><td>x</td></tr><tr class="real" data-real="10.0.0.2:80" data-state="up" data-cps="1.5"><td>a</td></tr><tr class="real" data-real="a&amp;b" data-state="down" data-cps=""></tr><span id="refreshes">4</span>"#;
        let rows = elements(html, "tr", "real");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            [
                ("class".into(), "real".into()),
                ("data-real".into(), "10.0.0.2:80".into()),
                ("data-state".into(), "up".into()),
                ("data-cps".into(), "1.5".into())
            ]
        );
        assert_eq!(rows[1][1].1, "a&b");
        assert_eq!(rows[1][3].1, "");
        assert_eq!(text_of_id(html, "refreshes"), Some("4"));
        assert_eq!(text_of_id(html, "nothing"), None);
    }
}
