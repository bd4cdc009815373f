//! Desktop integration: what an installed app exports into the user's XDG data directories
//! (desktop entry, icon, MIME package), kept in step with its current release, recorded in
//! `apps/<id>/exports.json`, and removed with it. Files are written atomically and only when
//! their content changes. Also `capsa integrate` (the `.capsa` file type itself).

pub mod desktop;
pub mod icons;
pub mod mime;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{io, StoreError};
use crate::layout::{write_atomic, Layout};
use crate::release::Release;

/// `$XDG_DATA_HOME` (the store lives in its `capsa/`).
pub fn data_home(layout: &Layout) -> PathBuf {
    layout.root.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// `$XDG_CONFIG_HOME`.
pub fn config_home() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".config")
        })
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    write_atomic(path, bytes, 0o644)
}

fn exports_record(layout: &Layout, id: &str) -> PathBuf {
    layout.app(id).join("exports.json")
}

fn recorded(layout: &Layout, id: &str) -> Vec<PathBuf> {
    fs::read(exports_record(layout, id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The icon file of the release, from its top-most layer that has it (as a regular file of
/// at most [`icons::MAX_ICON`] bytes). Read from the layers' trees, not their TOCs: every
/// command syncs the exports, and none of them should decode every TOC of every app.
fn icon_bytes(layout: &Layout, rel: &Release) -> Option<(Vec<u8>, String)> {
    let icon = rel.manifest.desktop.as_ref()?.icon.as_ref()?;
    rel.manifest.layers.iter().rev().find_map(|layer| {
        let tree = layout.layers().join(layer.digest.hex()).join("tree");
        let bytes = read_below(&tree, icon.as_str(), icons::MAX_ICON)?;
        Some((bytes, icon.file_name().to_owned()))
    })
}

/// The regular file `rel` (a bundle path) below `tree`, when it has at most `max` bytes:
/// every component opened from its parent's fd without following a symlink (so nothing
/// outside the tree is ever read), the file itself without blocking on a FIFO.
fn read_below(tree: &Path, rel: &str, max: u64) -> Option<Vec<u8>> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    use std::io::Read;
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let (parents, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (p.split('/').collect::<Vec<_>>(), n),
        None => (Vec::new(), rel),
    };
    let mut dir = open(tree, dir_flags, Mode::empty()).ok()?;
    for p in parents {
        dir = openat(&dir, p, dir_flags, Mode::empty()).ok()?;
    }
    let file_flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(&dir, name, file_flags, Mode::empty()).ok()?;
    let st = fstat(&fd).ok()?;
    if st.st_mode & SFlag::S_IFMT.bits() != SFlag::S_IFREG.bits() || st.st_size as u64 > max {
        return None;
    }
    let mut bytes = Vec::new();
    fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// Brings the app's exports in step with `rel`; returns the exported files and warnings.
pub fn sync_app(
    layout: &Layout,
    rel: &Release,
    exe: &Path,
) -> Result<(Vec<PathBuf>, Vec<String>), StoreError> {
    let m = &rel.manifest;
    let data = data_home(layout);
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    if let Some(d) = &m.desktop {
        let mut has_icon = false;
        if d.icon.is_some() {
            match icon_bytes(layout, rel)
                .ok_or_else(|| "not found in the app or too large".to_owned())
                .and_then(|(b, name)| icons::classify(&b, &name).map(|c| (b, c)))
            {
                Ok((bytes, (size, ext))) => {
                    let target = icons::target(&data, &size, &m.id, ext);
                    write_if_changed(&target, &bytes)?;
                    files.push(target);
                    has_icon = true;
                }
                Err(why) => warnings.push(format!("icon refused: {why}")),
            }
        }
        let entry = data.join("applications").join(format!("{}.desktop", m.id));
        write_if_changed(&entry, desktop::entry(m, exe, has_icon).as_bytes())?;
        files.push(entry);
        let (xml, w) = mime::package(&d.mime_definitions);
        warnings.extend(w);
        if let Some(xml) = xml {
            let p = data.join("mime/packages").join(format!("{}.xml", m.id));
            write_if_changed(&p, xml.as_bytes())?;
            files.push(p);
        }
    }
    for old in recorded(layout, &m.id) {
        if !files.contains(&old) {
            let _ = fs::remove_file(&old);
        }
    }
    write_if_changed(
        &exports_record(layout, &m.id),
        &serde_json::to_vec(&files).expect("serializes"),
    )?;
    Ok((files, warnings))
}

/// Removes every file the app exported and the defaults that name it.
pub fn remove_app(layout: &Layout, id: &str) -> Result<(), StoreError> {
    for f in recorded(layout, id) {
        match fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io { path: f, source: e })
            }
            _ => {}
        }
    }
    let _ = fs::remove_file(exports_record(layout, id));
    let list = config_home().join("mimeapps.list");
    if let Ok(text) = fs::read_to_string(&list) {
        let edited = mime::edit_mimeapps(&text, &format!("{id}.desktop"), &[]);
        if edited != text {
            write_atomic(&list, edited.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}

/// Removes exports of apps that are no longer installed (left by a killed uninstall).
pub fn remove_stale(layout: &Layout, installed: &[String]) -> Result<(), StoreError> {
    let apps = data_home(layout).join("applications");
    let Ok(rd) = fs::read_dir(&apps) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(text) = fs::read_to_string(&p) else {
            continue;
        };
        let Some(id) = text.lines().find_map(|l| l.strip_prefix("X-Capsa-App=")) else {
            continue;
        };
        if !installed.iter().any(|i| i == id)
            && p.file_name().and_then(|n| n.to_str()) == Some(&format!("{id}.desktop"))
        {
            fs::remove_file(&p).map_err(io(&p))?;
            let data = data_home(layout);
            let _ = fs::remove_file(data.join("mime/packages").join(format!("{id}.xml")));
            if let Ok(sizes) = fs::read_dir(data.join("icons/hicolor")) {
                for s in sizes.flatten() {
                    for ext in ["png", "svg"] {
                        let _ = fs::remove_file(s.path().join("apps").join(format!("{id}.{ext}")));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Makes the app the default handler of `types` in `mimeapps.list`.
pub fn set_defaults(id: &str, types: &[String]) -> Result<(), StoreError> {
    let list = config_home().join("mimeapps.list");
    let text = fs::read_to_string(&list).unwrap_or_default();
    write_atomic(
        &list,
        mime::edit_mimeapps(&text, &format!("{id}.desktop"), types).as_bytes(),
        0o644,
    )
}

/// Runs `update-desktop-database` and `update-mime-database` when they are installed.
pub fn refresh_databases_in(data: &Path) {
    let run = |prog: &str, dir: PathBuf| {
        if dir.is_dir() {
            let _ = Command::new(prog)
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    };
    run("update-desktop-database", data.join("applications"));
    run("update-mime-database", data.join("mime"));
}

pub fn refresh_databases() {
    refresh_databases_in(&data_home(&Layout::user()));
}

/// The MIME type of bundle files.
pub const BUNDLE_TYPE: &str = "application/vnd.capsa.bundle";

/// `capsa integrate`: registers `.capsa` files (glob and magic) with a `capsa` desktop entry
/// that runs them, and makes it their default handler; `remove` undoes all of it.
pub fn integrate(exe: &Path, remove: bool) -> Result<Vec<PathBuf>, StoreError> {
    let layout = Layout::user();
    let data = data_home(&layout);
    let entry = data.join("applications/capsa.desktop");
    let xml = data.join("mime/packages/capsa.xml");
    if remove {
        for f in [&entry, &xml] {
            let _ = fs::remove_file(f);
        }
        remove_defaults_for("capsa.desktop")?;
        refresh_databases_in(&data);
        return Ok(vec![entry, xml]);
    }
    let package = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mime-info xmlns=\"http://www.freedesktop.org/standards/shared-mime-info\">\n  <mime-type type=\"{BUNDLE_TYPE}\">\n    <comment>Capsa application bundle</comment>\n    <glob pattern=\"*.capsa\"/>\n    <magic priority=\"50\">\n      <match type=\"string\" value=\"\\x89CAPSA\\r\\n\" offset=\"0\"/>\n    </magic>\n  </mime-type>\n</mime-info>\n"
    );
    write_if_changed(&xml, package.as_bytes())?;
    let exec =
        format!("{} run %f", desktop::quote_arg(&exe.display().to_string())).replace('\\', "\\\\");
    let text = format!("[Desktop Entry]\nType=Application\nName=Capsa\nComment=Run an application bundle in a sandbox\nExec={exec}\nTerminal=false\nNoDisplay=true\nMimeType={BUNDLE_TYPE};\n");
    write_if_changed(&entry, text.as_bytes())?;
    set_defaults("capsa", &[BUNDLE_TYPE.to_owned()])?;
    refresh_databases_in(&data);
    Ok(vec![entry, xml])
}

fn remove_defaults_for(desktop: &str) -> Result<(), StoreError> {
    let list = config_home().join("mimeapps.list");
    if let Ok(text) = fs::read_to_string(&list) {
        write_atomic(
            &list,
            mime::edit_mimeapps(&text, desktop, &[]).as_bytes(),
            0o644,
        )?;
    }
    Ok(())
}
