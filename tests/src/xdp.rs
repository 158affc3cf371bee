//! XDP in the lab: the pass-through program on the switch side of a
//! director's veth, and tiny hand-made eBPF objects.
//!
//! A frame that a director sends with `XDP_TX` reaches the bridge only when
//! the veth's peer runs an XDP program of its own (see toolchain.md), so the
//! lab attaches one that returns `XDP_PASS`.

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};

use crate::netns::in_namespace;

/// The name of the program [`crate::Lab::attach_pass_program`] looks for.
pub const PASS_PROGRAM: &str = "xdp_pass";

/// Loads XDP program `program` from the eBPF ELF `object` and attaches it in
/// native (driver) mode to `ifname` inside namespace `ns`. Keep the returned
/// `Ebpf` alive: dropping it detaches the program.
pub fn attach_xdp(ns: &str, ifname: &str, object: &[u8], program: &str) -> Result<Ebpf> {
    in_namespace(ns, || -> Result<Ebpf> {
        let mut ebpf = Ebpf::load(object).context("parsing the eBPF object")?;
        let xdp: &mut Xdp = ebpf
            .program_mut(program)
            .ok_or_else(|| anyhow!("the eBPF object has no program named {program}"))?
            .try_into()
            .with_context(|| format!("{program} is not an XDP program"))?;
        xdp.load()
            .with_context(|| format!("loading {program} into the kernel"))?;
        xdp.attach(ifname, XdpMode::Driver)
            .with_context(|| format!("attaching {program} to {ifname}"))?;
        Ok(ebpf)
    })?
    .with_context(|| format!("XDP program {program} on {ifname} in namespace {ns}"))
}

/// A complete eBPF ELF object holding one XDP program, [`PASS_PROGRAM`], that
/// returns `XDP_PASS` (`r0 = 2; exit`), with license "GPL" and no BTF.
///
/// With it the lab needs no compiled eBPF crate: pass it to
/// [`crate::Lab::attach_pass_program`].
#[must_use]
pub fn pass_object() -> Vec<u8> {
    const XDP_PASS: u8 = 2;
    // Two BPF instructions, 8 bytes each: opcode, dst/src registers,
    // 16-bit offset, 32-bit immediate.
    let code: [u8; 16] = [
        0xb7, 0x00, 0x00, 0x00, XDP_PASS, 0x00, 0x00, 0x00, // mov64 r0, XDP_PASS
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
    ];
    xdp_object(PASS_PROGRAM, &code)
}

/// Wraps raw BPF instructions (`code`, 8 bytes each, no calls, maps or
/// relocations) into an eBPF ELF object that aya loads: one XDP program named
/// `program` in section `xdp`, license "GPL", no BTF. Meant for tiny test
/// programs written by hand.
#[must_use]
pub fn xdp_object(program: &str, code: &[u8]) -> Vec<u8> {
    assert!(
        code.len().is_multiple_of(8) && !code.is_empty(),
        "BPF code is a non-empty sequence of 8-byte instructions"
    );
    assert!(!program.contains('\0'), "program name contains NUL");
    let license = b"GPL\0";
    let strtab = [b"\0", program.as_bytes(), b"\0"].concat();
    let shstrtab = b"\0xdp\0license\0.symtab\0.strtab\0.shstrtab\0";

    // Symbol table: the null symbol, then the program (global function in
    // section 1 at offset 0).
    let mut symtab = vec![0u8; 24];
    symtab.extend_from_slice(&1u32.to_le_bytes()); // st_name: offset in .strtab
    symtab.push(0x12); // st_info: STB_GLOBAL << 4 | STT_FUNC
    symtab.push(0); // st_other
    symtab.extend_from_slice(&1u16.to_le_bytes()); // st_shndx
    symtab.extend_from_slice(&0u64.to_le_bytes()); // st_value
    symtab.extend_from_slice(&(code.len() as u64).to_le_bytes()); // st_size

    let mut out = vec![0u8; 64]; // ELF header, filled in below
    // Appends `data` at the next multiple of `align`; returns (offset, size).
    let place = |out: &mut Vec<u8>, data: &[u8], align: usize| {
        out.resize(out.len().next_multiple_of(align), 0);
        let offset = out.len() as u64;
        out.extend_from_slice(data);
        (offset, data.len() as u64)
    };
    let sections = [
        // Index 0: the all-zero null section.
        SectionHeader {
            align: 0,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: 1, // offsets into .shstrtab
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            place: place(&mut out, code, 8),
            align: 8,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: 5,
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_WRITE,
            place: place(&mut out, license, 1),
            ..SectionHeader::default()
        },
        SectionHeader {
            name: 13,
            kind: SHT_SYMTAB,
            place: place(&mut out, &symtab, 8),
            link: 4, // the string table's index
            info: 1, // index of the first global symbol
            align: 8,
            entsize: 24,
            ..SectionHeader::default()
        },
        SectionHeader {
            name: 21,
            kind: SHT_STRTAB,
            place: place(&mut out, &strtab, 1),
            ..SectionHeader::default()
        },
        SectionHeader {
            name: 29,
            kind: SHT_STRTAB,
            place: place(&mut out, shstrtab, 1),
            ..SectionHeader::default()
        },
    ];
    out.resize(out.len().next_multiple_of(8), 0);
    let shoff = out.len() as u64;
    for section in &sections {
        section.write(&mut out);
    }

    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(b"\x7fELF");
    header.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, System V ABI
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&1u16.to_le_bytes()); // e_type: relocatable
    header.extend_from_slice(&247u16.to_le_bytes()); // e_machine: EM_BPF
    header.extend_from_slice(&1u32.to_le_bytes()); // e_version
    header.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    header.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    header.extend_from_slice(&shoff.to_le_bytes()); // e_shoff
    header.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    header.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    header.extend_from_slice(&0u16.to_le_bytes()); // e_phentsize
    header.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    header.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    header.extend_from_slice(&(sections.len() as u16).to_le_bytes()); // e_shnum
    header.extend_from_slice(&5u16.to_le_bytes()); // e_shstrndx
    out[..64].copy_from_slice(&header);
    out
}

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

/// An ELF64 section header.
struct SectionHeader {
    name: u32,
    kind: u32,
    flags: u64,
    /// Offset and size in the file.
    place: (u64, u64),
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl Default for SectionHeader {
    fn default() -> Self {
        Self {
            name: 0,
            kind: 0,
            flags: 0,
            place: (0, 0),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        }
    }
}

impl SectionHeader {
    fn write(&self, out: &mut Vec<u8>) {
        let (offset, size) = self.place;
        out.extend_from_slice(&self.name.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // sh_addr
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&self.link.to_le_bytes());
        out.extend_from_slice(&self.info.to_le_bytes());
        out.extend_from_slice(&self.align.to_le_bytes());
        out.extend_from_slice(&self.entsize.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_object_parses_with_one_xdp_program() {
        // Parsing only (no program is loaded into the kernel here; the
        // integration tests attach it).
        let ebpf = Ebpf::load(&pass_object()).expect("aya rejected the object");
        let names: Vec<&str> = ebpf.programs().map(|(name, _)| name).collect();
        assert_eq!(names, [PASS_PROGRAM]);
        assert!(matches!(
            ebpf.program(PASS_PROGRAM),
            Some(aya::programs::Program::Xdp(_))
        ));
    }
}
