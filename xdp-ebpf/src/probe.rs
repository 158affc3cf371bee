//! Cost attribution for the benchmark: `LB_SKIP` at build time (a list of
//! words) leaves out steps of the new-flow path. Unset (every normal build)
//! nothing is left out. Only for timing: a build with skips is wrong.

const SKIP: &str = match option_env!("LB_SKIP") {
    Some(s) => s,
    None => "",
};

const fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let mut j = 0;
        while j < needle.len() && hay[i + j] == needle[j] {
            j += 1;
        }
        if j == needle.len() {
            return true;
        }
        i += 1;
    }
    false
}

pub const fn skip(step: &str) -> bool {
    contains(SKIP.as_bytes(), step.as_bytes())
}

pub const CT_FLAGS: u32 = if skip("ctpcpu") { 2 } else { 0 };
pub const HALF_FLAGS: u32 = if skip("halfpcpu") { 2 } else { 0 };
