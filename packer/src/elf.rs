//! What the packer needs to know about one ELF object, read with goblin (never by running it).

use std::path::Path;

use goblin::elf::Elf;

/// `NT_GNU_ABI_TAG` (oldest kernel an object supports).
const NT_GNU_ABI_TAG: u32 = 1;
/// systemd's `.note.dlopen` type (owner `FDO`): JSON list of optional dlopen dependencies.
const NT_FDO_DLOPEN: u32 = 0x407c_0c0a;

/// The class and machine that must match between an object and its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElfKind {
    pub is_64: bool,
    pub machine: u16,
}

impl ElfKind {
    /// The manifest's `arch` name.
    pub fn arch(&self) -> Option<&'static str> {
        use goblin::elf::header::*;
        Some(match (self.machine, self.is_64) {
            (EM_X86_64, true) => "x86_64",
            (EM_AARCH64, true) => "aarch64",
            (EM_386, false) => "i686",
            (EM_ARM, false) => "armv7",
            (EM_RISCV, true) => "riscv64",
            (EM_PPC64, true) => "ppc64le",
            (EM_S390, true) => "s390x",
            _ => return None,
        })
    }

    /// Multiarch triple used in Debian's library directories.
    pub fn multiarch(&self) -> Option<&'static str> {
        Some(match self.arch()? {
            "x86_64" => "x86_64-linux-gnu",
            "aarch64" => "aarch64-linux-gnu",
            "i686" => "i386-linux-gnu",
            "armv7" => "arm-linux-gnueabihf",
            "riscv64" => "riscv64-linux-gnu",
            "ppc64le" => "powerpc64le-linux-gnu",
            "s390x" => "s390x-linux-gnu",
            _ => return None,
        })
    }
}

/// A dlopen dependency declared in `.note.dlopen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlopenNote {
    pub sonames: Vec<String>,
    /// `required`, `recommended` or `suggested`.
    pub priority: String,
}

/// The dynamic-linking facts of one object.
#[derive(Debug, Clone)]
pub struct ElfInfo {
    pub kind: ElfKind,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    /// `DF_1_NODEFLIB`: the cache and default directories are not searched for its deps.
    pub nodeflib: bool,
    /// Highest `GLIBC_x.y` version needed.
    pub max_glibc: Option<String>,
    /// Oldest kernel supported, from the ABI tag note.
    pub min_kernel: Option<(u32, u32, u32)>,
    pub dlopen: Vec<DlopenNote>,
    /// It calls `iconv_open`, so glibc's gconv modules may be loaded at run time.
    pub uses_iconv: bool,
}

/// True when the first bytes are the ELF magic.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Reads only the ELF identification (class, machine) of the file at `path`.
pub fn kind_of(path: &Path) -> Option<ElfKind> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let h = goblin::elf::Elf::parse_header(&head[..n]).ok()?;
    if !is_elf(&head)
        || !matches!(
            h.e_type,
            goblin::elf::header::ET_DYN | goblin::elf::header::ET_EXEC
        )
    {
        return None;
    }
    Some(ElfKind {
        is_64: h.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64,
        machine: h.e_machine,
    })
}

/// Compares `GLIBC_2.34`-style versions numerically.
pub fn version_key(v: &str) -> Vec<u32> {
    v.trim_start_matches("GLIBC_")
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

impl ElfInfo {
    /// Parses an ELF image. Returns `Ok(None)` for objects that are not loadable programs or
    /// libraries (relocatable objects, core files).
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, goblin::error::Error> {
        let elf = Elf::parse(bytes)?;
        if !matches!(
            elf.header.e_type,
            goblin::elf::header::ET_DYN | goblin::elf::header::ET_EXEC
        ) {
            return Ok(None);
        }
        let split = |v: &[&str]| -> Vec<String> {
            v.iter()
                .flat_map(|s| s.split(':'))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut max_glibc: Option<String> = None;
        if let Some(verneed) = &elf.verneed {
            for need in verneed.iter() {
                for aux in need.iter() {
                    let Some(name) = elf.dynstrtab.get_at(aux.vna_name) else {
                        continue;
                    };
                    if name.starts_with("GLIBC_2")
                        && max_glibc
                            .as_deref()
                            .is_none_or(|m| version_key(name) > version_key(m))
                    {
                        max_glibc = Some(name.to_owned());
                    }
                }
            }
        }
        let mut min_kernel = None;
        let mut dlopen = Vec::new();
        if let Some(notes) = elf.iter_note_headers(bytes) {
            for note in notes.flatten() {
                if note.n_type == NT_GNU_ABI_TAG && note.name == "GNU" && note.desc.len() >= 16 {
                    let w = |i: usize| {
                        u32::from_le_bytes(note.desc[i * 4..i * 4 + 4].try_into().expect("4"))
                    };
                    if w(0) == 0 {
                        min_kernel = Some((w(1), w(2), w(3)));
                    }
                } else if note.n_type == NT_FDO_DLOPEN && note.name == "FDO" {
                    dlopen.extend(parse_dlopen_note(note.desc));
                }
            }
        }
        let nodeflib = elf
            .dynamic
            .as_ref()
            .is_some_and(|d| d.info.flags_1 & goblin::elf::dynamic::DF_1_NODEFLIB != 0);
        let uses_iconv = elf
            .dynsyms
            .iter()
            .any(|s| s.st_shndx == 0 && elf.dynstrtab.get_at(s.st_name) == Some("iconv_open"));
        Ok(Some(Self {
            kind: ElfKind {
                is_64: elf.is_64,
                machine: elf.header.e_machine,
            },
            interpreter: elf.interpreter.map(str::to_owned),
            needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
            rpath: split(&elf.rpaths),
            runpath: split(&elf.runpaths),
            nodeflib,
            max_glibc,
            min_kernel,
            dlopen,
            uses_iconv,
        }))
    }
}

/// Parses the JSON payload of a `.note.dlopen` note (trailing NULs allowed). Malformed notes
/// are ignored: they are hints, and the object's own NEEDED list is authoritative.
fn parse_dlopen_note(desc: &[u8]) -> Vec<DlopenNote> {
    #[derive(serde::Deserialize)]
    struct Raw {
        soname: Vec<String>,
        #[serde(default)]
        priority: Option<String>,
    }
    let text = desc.split(|&b| b == 0).next().unwrap_or_default();
    serde_json::from_slice::<Vec<Raw>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|r| DlopenNote {
            sonames: r.soname,
            priority: r.priority.unwrap_or_else(|| "recommended".into()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_binary() {
        let bytes = std::fs::read("/bin/sh").expect("/bin/sh");
        let info = ElfInfo::parse(&bytes).unwrap().unwrap();
        assert!(info
            .interpreter
            .as_deref()
            .is_some_and(|i| i.contains("ld-")));
        assert!(info.needed.iter().any(|n| n == "libc.so.6"));
        assert!(info.max_glibc.is_some());
        assert!(info.kind.arch().is_some());
    }

    #[test]
    fn dlopen_notes_parse() {
        let n = parse_dlopen_note(
            br#"[{"feature":"x","soname":["libfoo.so.1","libfoo.so.0"],"priority":"required"}]"#,
        );
        assert_eq!(
            n,
            vec![DlopenNote {
                sonames: vec!["libfoo.so.1".into(), "libfoo.so.0".into()],
                priority: "required".into()
            }]
        );
        assert!(parse_dlopen_note(b"garbage").is_empty());
    }

    #[test]
    fn glibc_versions_compare_numerically() {
        assert!(version_key("GLIBC_2.34") > version_key("GLIBC_2.4"));
    }
}
