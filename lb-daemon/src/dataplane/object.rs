//! The XDP object embedded at build time.

/// The ELF object built by `cargo xtask build-ebpf`, or empty when this
/// binary was built without it.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp.o"));

/// The embedded object, or an error telling how to get one.
pub fn xdp_object() -> Result<&'static [u8], super::DataplaneError> {
    if OBJECT.is_empty() {
        Err(super::DataplaneError::NoObject)
    } else {
        Ok(OBJECT)
    }
}
