//! Embeds the XDP object that `cargo xtask` built (path in `LB_XDP_OBJECT`).
//! Without it the crate still builds (for `cargo check`, clippy, editors), but
//! the binaries then refuse to load, saying how to build properly.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rerun-if-env-changed=LB_XDP_OBJECT");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xdp.o");
    match env::var_os("LB_XDP_OBJECT") {
        Some(path) => {
            println!("cargo::rerun-if-changed={}", path.to_string_lossy());
            fs::copy(&path, &out)
                .unwrap_or_else(|e| panic!("LB_XDP_OBJECT={}: {e}", path.to_string_lossy()));
        }
        None => {
            println!(
                "cargo::warning=LB_XDP_OBJECT is not set: building without the XDP program \
                 (use `cargo xtask build`)"
            );
            fs::write(&out, b"").expect("write empty object");
        }
    }
}
