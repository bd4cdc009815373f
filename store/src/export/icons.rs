//! Icons: a PNG (square, 16 to 1024 pixels) or an SVG from the app's own files, at most
//! 1 MiB, copied to `icons/hicolor/<size>/apps/<app-id>.png|svg`. Anything else is refused
//! with a warning; the app installs without an icon.

use std::path::PathBuf;

/// Largest icon accepted.
pub const MAX_ICON: u64 = 1 << 20;

/// The hicolor subdirectory and extension for an icon's bytes, or why it is refused.
pub fn classify(bytes: &[u8], name: &str) -> Result<(String, &'static str), String> {
    if bytes.len() as u64 > MAX_ICON {
        return Err("larger than 1 MiB".into());
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
        let w = u32::from_be_bytes(bytes[16..20].try_into().expect("4"));
        let h = u32::from_be_bytes(bytes[20..24].try_into().expect("4"));
        if w != h || !(16..=1024).contains(&w) {
            return Err(format!(
                "a {w}x{h} PNG (icons are square, 16 to 1024 pixels)"
            ));
        }
        return Ok((format!("{w}x{h}"), "png"));
    }
    if name.ends_with(".svg")
        && String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).contains("<svg")
    {
        return Ok(("scalable".into(), "svg"));
    }
    Err("not a PNG or SVG image".into())
}

/// Where an icon of `id` goes.
pub fn target(data_home: &std::path::Path, size_dir: &str, id: &str, ext: &str) -> PathBuf {
    data_home
        .join("icons/hicolor")
        .join(size_dir)
        .join("apps")
        .join(format!("{id}.{ext}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b
    }

    #[test]
    fn accepts_square_pngs_and_svgs_only() {
        assert_eq!(classify(&png(48, 48), "a.png").unwrap().0, "48x48");
        assert!(classify(&png(48, 47), "a.png").is_err());
        assert!(classify(&png(100000, 100000), "a.png").is_err());
        assert_eq!(
            classify(b"<?xml?><svg></svg>", "a.svg").unwrap().0,
            "scalable"
        );
        assert!(classify(b"<svg>", "a.png").is_err());
        assert!(classify(&vec![0u8; 2 << 20], "a.svg").is_err());
    }
}
