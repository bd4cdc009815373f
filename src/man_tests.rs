//! Keeps `man/` in step with the CLI definition: the committed pages must equal freshly
//! generated ones. Regenerate with `CAPSA_UPDATE_MAN=1 cargo test -p capsa man_pages`.

use std::path::Path;

use clap::CommandFactory;

fn render(cmd: &clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .expect("render man page");
    out
}

#[test]
fn man_pages_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut pages = vec![("capsa.1".to_owned(), render(&cmd))];
    for sub in cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
    {
        let name = format!("capsa-{}", sub.get_name());
        let page = sub.clone().name(name.clone());
        pages.push((format!("{name}.1"), render(&page)));
        // Nested commands (`capsa repo init`) get their own pages, as their parent's lists.
        for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("{name}-{}", nested.get_name());
            let page = nested.clone().name(name.clone());
            pages.push((format!("{name}.1"), render(&page)));
        }
    }
    let update = std::env::var_os("CAPSA_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in &pages {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, bytes).unwrap();
        } else if std::fs::read(&path).ok().as_ref() != Some(bytes) {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run CAPSA_UPDATE_MAN=1 cargo test -p capsa man_pages"
    );
}
