//! Cost attribution for the benchmark: `LB_SKIP` at build time (a list of
//! words) leaves out steps of the new-flow path. Unset (every normal build)
//! nothing is left out. Only for timing: a build with skips is wrong. A
//! word matches only whole (`stats` is not `gstats`).

const SKIP: &str = match option_env!("LB_SKIP") {
    Some(s) => s,
    None => "",
};

/// Whether the space-separated list `hay` holds the word `needle`.
const fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let starts = i == 0 || hay[i - 1] == b' ';
        let ends = i + needle.len() == hay.len() || hay[i + needle.len()] == b' ';
        let mut j = 0;
        while j < needle.len() && hay[i + j] == needle[j] {
            j += 1;
        }
        if starts && ends && j == needle.len() {
            return true;
        }
        i += 1;
    }
    false
}

pub const fn skip(step: &str) -> bool {
    contains(SKIP.as_bytes(), step.as_bytes())
}
