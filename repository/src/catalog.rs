//! The catalog page, `index.html`: every app of the repository with its name, summary, icon,
//! versions, channels (and rollouts), the permissions each release asks for, and the commands
//! that install it. Static HTML that works without JavaScript and on a phone; a small optional
//! script adds copy buttons (and fills in the page's own address when the publisher gave none).
//!
//! Invariants: every string that comes from a bundle or a document goes through [`escape`]
//! (text and attribute values alike; the page has no other way in); icons are embedded as
//! `data:` URIs only when their bytes are a PNG, JPEG, GIF, WebP or SVG image (base64, which
//! needs no escaping); the only links are relative paths to blobs (`blobs/sha256/<hex>`),
//! built from digests. Rendering is a pure function of its input.

use std::fmt::Write as _;

use bundle_format::BlobRef;

use crate::layout;
use crate::meta::{AppDoc, Channel, ReleaseDoc};

/// The largest icon embedded in the page.
pub const MAX_ICON: u64 = 256 * 1024;
/// What the commands say when the publisher gave no URL (the script replaces it).
pub const URL_PLACEHOLDER: &str = "https://REPOSITORY-URL/";

/// What the page shows.
#[derive(Debug)]
pub struct Catalog<'a> {
    /// The remote name the commands suggest.
    pub name: &'a str,
    /// The repository's public URL, when the publisher gave one.
    pub url: Option<&'a str>,
    /// The root's public keys (hex); the first is the one `capsa remote add` is shown with.
    pub keys: &'a [String],
    pub index_version: u64,
    /// Unix seconds.
    pub index_expires: u64,
    pub apps: Vec<CatalogApp<'a>>,
}

/// One app on the page.
#[derive(Debug)]
pub struct CatalogApp<'a> {
    pub doc: &'a AppDoc,
    /// The app document's blob (linked from the page).
    pub doc_blob: &'a BlobRef,
    pub icon: Option<Icon>,
}

/// An icon to embed.
#[derive(Debug, Clone)]
pub struct Icon {
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

impl Icon {
    /// An icon of these bytes, when they are an image type the page embeds and small enough.
    pub fn sniff(bytes: Vec<u8>) -> Option<Self> {
        if bytes.len() as u64 > MAX_ICON {
            return None;
        }
        let b = bytes.as_slice();
        let mime = if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
            "image/jpeg"
        } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
            "image/gif"
        } else if b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            "image/webp"
        } else if looks_like_svg(b) {
            "image/svg+xml"
        } else {
            return None;
        };
        Some(Self { mime, bytes })
    }
}

fn looks_like_svg(b: &[u8]) -> bool {
    let head = &b[..b.len().min(1024)];
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    (t.starts_with("<?xml") || t.starts_with("<svg") || t.starts_with("<!--"))
        && text.contains("<svg")
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `YYYY-MM-DD` of Unix seconds (UTC).
pub fn date(secs: u64) -> String {
    // Howard Hinnant's civil-from-days.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn size(n: u64) -> String {
    bundle_format::limits::human_size(n)
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,sans-serif;line-height:1.45;margin:0;padding:1rem;color:#1b1b1b;background:#f6f6f4}\
main,header{max-width:56rem;margin:0 auto}\
h1{font-size:1.6rem;margin:.2rem 0}\
article{background:#fff;border:1px solid #ddd;border-radius:.5rem;padding:1rem;margin:1rem 0}\
.head{display:flex;gap:1rem;align-items:center}\
.head img{width:64px;height:64px;flex:none}\
.head h2{margin:0;font-size:1.3rem}\
.id{color:#555;font-size:.9rem;margin:0;overflow-wrap:anywhere}\
h3{font-size:1rem;margin:1rem 0 .3rem}\
pre{background:#1f2430;color:#f2f2f2;padding:.6rem .8rem;border-radius:.3rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;margin:.3rem 0}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:.92rem}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}td.date{white-space:nowrap}\
.yanked{color:#a40000}\
button.copy{font:inherit;padding:.2rem .8rem;border-radius:.3rem;border:1px solid #888;background:#fff;cursor:pointer}\
.muted{color:#555;font-size:.9rem}\
";

const SCRIPT: &str = r#"(function(){
var base=location.href.replace(/[#?].*$/,"").replace(/[^\/]*$/,"");
document.querySelectorAll("code[data-url]").forEach(function(c){
 c.textContent=c.textContent.split(c.getAttribute("data-url")).join(base);});
document.querySelectorAll("button.copy").forEach(function(b){
 var c=document.getElementById(b.getAttribute("data-for"));
 b.hidden=false;
 b.addEventListener("click",function(){
  var done=function(){b.textContent="Copied";setTimeout(function(){b.textContent="Copy";},1500);};
  if(navigator.clipboard&&navigator.clipboard.writeText){navigator.clipboard.writeText(c.textContent).then(done,function(){select(c);});}
  else{select(c);}
  function select(el){var r=document.createRange();r.selectNodeContents(el);var s=getSelection();s.removeAllRanges();s.addRange(r);try{document.execCommand("copy");done();}catch(e){}}
 });
});
})();"#;

/// Renders the whole page.
pub fn render(c: &Catalog<'_>) -> String {
    let mut h = String::new();
    let title = format!("{} \u{2014} Capsa repository", c.name);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n\
         <p class=\"muted\">A Capsa repository: {} app{}, index version {}, signed metadata valid until {}.</p>\n",
        escape(&title),
        escape(c.name),
        c.apps.len(),
        if c.apps.len() == 1 { "" } else { "s" },
        c.index_version,
        date(c.index_expires),
    );
    let url = c.url.unwrap_or(URL_PLACEHOLDER);
    let data_url = if c.url.is_none() {
        format!(" data-url=\"{}\"", escape(URL_PLACEHOLDER))
    } else {
        String::new()
    };
    let key = c.keys.first().map(String::as_str).unwrap_or("");
    h.push_str("<h2>Add this repository once</h2>\n");
    command_block(
        &mut h,
        "cmd-remote",
        &format!("capsa remote add {} {} --key {}", c.name, url, key),
        &data_url,
    );
    h.push_str(
        "<p class=\"muted\">Trust comes from the key alone: compare it with the one the \
         publisher gave you elsewhere.</p>\n</header>\n<main>\n",
    );
    if c.apps.is_empty() {
        h.push_str("<p>No apps are published yet.</p>\n");
    }
    for (i, app) in c.apps.iter().enumerate() {
        render_app(&mut h, c.name, i, app);
    }
    let _ = write!(h, "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    h
}

/// A `<pre><code>` block with an id and a copy button the script reveals.
fn command_block(h: &mut String, id: &str, text: &str, extra: &str) {
    let _ = writeln!(
        h,
        "<pre><code id=\"{id}\"{extra}>{}</code></pre>\n<button type=\"button\" class=\"copy\" data-for=\"{id}\" hidden>Copy</button>",
        escape(text)
    );
}

fn render_app(h: &mut String, remote: &str, i: usize, app: &CatalogApp<'_>) {
    let d = app.doc;
    let _ = write!(
        h,
        "<article id=\"app-{}\">\n<div class=\"head\">",
        escape(&d.app)
    );
    if let Some(icon) = &app.icon {
        let _ = write!(
            h,
            "<img alt=\"\" src=\"data:{};base64,{}\">",
            icon.mime,
            base64(&icon.bytes)
        );
    }
    let _ = writeln!(
        h,
        "<div><h2>{}</h2><p class=\"id\">{}</p></div></div>",
        escape(&d.name),
        escape(&d.app)
    );
    if !d.summary.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", escape(&d.summary));
    }
    h.push_str("<h3>Install</h3>\n");
    command_block(
        h,
        &format!("cmd-install-{i}"),
        &format!("capsa install {} --remote {remote}", d.app),
        "",
    );
    if let Some((name, rel)) = shown_release(d) {
        let _ = writeln!(
            h,
            "<h3>Permissions asked</h3>\n<p>{} <span class=\"muted\">(version {}, {}, channel {})</span></p>",
            permissions(rel, "none (no network, no host files, no devices)"),
            escape(&rel.version),
            size(rel.bundle.size),
            escape(name)
        );
    }
    render_channels(h, d);
    render_versions(h, d);
    let _ = writeln!(
        h,
        "<p class=\"muted\"><a href=\"{}\">App document</a> (signed through the index; {} bytes)</p>\n</article>",
        escape(&layout::blob(&app.doc_blob.digest)),
        app.doc_blob.size
    );
}

/// The release the page describes first: what the `stable` channel (else the first channel)
/// gives most clients (its fallback when its release is yanked or its rollout halted), else
/// the newest release.
fn shown_release(d: &AppDoc) -> Option<(&str, &ReleaseDoc)> {
    let pick = d
        .channels
        .get_key_value("stable")
        .or_else(|| d.channels.iter().next());
    let Some((name, c)) = pick else {
        return d.releases.last().map(|r| ("none", r));
    };
    let main = d.release(c.release)?;
    let halted = c.rollout.as_ref().is_some_and(|r| r.halted);
    if main.yanked.is_some() || halted {
        if let Some(f) = c.fallback.and_then(|f| d.release(f)) {
            return Some((name.as_str(), f));
        }
    }
    Some((name.as_str(), main))
}

fn permissions(r: &ReleaseDoc, none: &str) -> String {
    if r.permissions.is_empty() {
        none.into()
    } else {
        r.permissions
            .iter()
            .map(|p| format!("<code>{}</code>", escape(p)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn version_of(d: &AppDoc, seq: u64) -> String {
    d.release(seq)
        .map_or_else(|| format!("#{seq}"), |r| escape(&r.version))
}

fn channel_text(d: &AppDoc, c: &Channel) -> String {
    let mut t = version_of(d, c.release);
    if d.release(c.release).is_some_and(|r| r.yanked.is_some()) {
        t.push_str(" (yanked)");
    }
    match (&c.rollout, c.fallback) {
        (Some(r), fb) if r.halted => {
            let _ = write!(t, ", rollout halted at {}%", r.percent);
            if let Some(f) = fb {
                let _ = write!(t, ": everyone gets {}", version_of(d, f));
            }
        }
        (Some(r), fb) => {
            let _ = write!(t, " to {}% of clients", r.percent);
            if let Some(f) = fb {
                let _ = write!(t, ", the others {}", version_of(d, f));
            }
        }
        (None, Some(f)) => {
            let _ = write!(t, " (fallback {})", version_of(d, f));
        }
        (None, None) => {}
    }
    t
}

fn render_channels(h: &mut String, d: &AppDoc) {
    if d.channels.is_empty() {
        return;
    }
    h.push_str("<h3>Channels</h3>\n<ul>\n");
    for (name, c) in &d.channels {
        let _ = writeln!(
            h,
            "<li><b>{}</b>: {}</li>",
            escape(name),
            channel_text(d, c)
        );
    }
    h.push_str("</ul>\n");
}

fn render_versions(h: &mut String, d: &AppDoc) {
    h.push_str(
        "<h3>Versions</h3>\n<div class=\"scroll\"><table>\n\
         <tr><th>Version</th><th>Added</th><th>Size</th><th>Permissions</th><th>Status</th></tr>\n",
    );
    for r in d.releases.iter().rev() {
        let status = match &r.yanked {
            Some(why) => format!("<span class=\"yanked\">yanked: {}</span>", escape(why)),
            None => "available".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"date\">{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
            escape(&r.version),
            date(r.added),
            size(r.bundle.size),
            permissions(r, "none")
        );
    }
    h.push_str("</table></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{DocKind, Rollout};
    use bundle_format::Digest;
    use std::collections::BTreeMap;

    #[test]
    fn escape_covers_markup_quotes_and_ampersands() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn base64_and_dates() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_735_689_600), "2025-01-01");
    }

    fn hostile_doc() -> AppDoc {
        let d = Digest::of(b"x");
        let blob = BlobRef { digest: d, size: 1 };
        let rel = |seq, v: &str, yanked: Option<&str>| ReleaseDoc {
            seq,
            version: v.into(),
            manifest: d,
            bundle: blob,
            head: blob,
            tail: blob,
            permissions: vec!["filesystem=/srv/<b>&\"x\"".into()],
            added: 0,
            yanked: yanked.map(String::from),
        };
        AppDoc {
            kind: DocKind::App,
            app: "org.example.Evil".into(),
            publisher: "00".repeat(32),
            name: "<script>alert(1)</script>".into(),
            summary: "\"quoted\" & 'single' <img src=x onerror=alert(1)>".into(),
            icon: None,
            releases: vec![
                rel(1, "1.0<i>", None),
                rel(2, "2.0\"", Some("<b>bad</b> & broken")),
            ],
            channels: BTreeMap::from([(
                "stable".into(),
                Channel {
                    release: 2,
                    fallback: Some(1),
                    rollout: Some(Rollout {
                        percent: 50,
                        seed: "s".into(),
                        halted: false,
                    }),
                },
            )]),
        }
    }

    #[test]
    fn every_string_from_a_document_is_escaped() {
        let doc = hostile_doc();
        let blob = BlobRef {
            digest: Digest::of(b"doc"),
            size: 3,
        };
        let keys = vec!["ab".repeat(32)];
        let page = render(&Catalog {
            name: "test",
            url: None,
            keys: &keys,
            index_version: 7,
            index_expires: 0,
            apps: vec![CatalogApp {
                doc: &doc,
                doc_blob: &blob,
                icon: Icon::sniff(b"\x89PNG\r\n\x1a\nrest".to_vec()),
            }],
        });
        // The only script is the page's own; no document string reaches the page raw.
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<img src=x"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
        assert!(page.contains("yanked: &lt;b&gt;bad&lt;/b&gt; &amp; broken"));
        assert!(page.contains("1.0&lt;i&gt;"));
        assert!(page.contains("filesystem=/srv/&lt;b&gt;&amp;&quot;x&quot;"));
        assert!(page.contains("to 50% of clients"));
        assert!(page.contains("src=\"data:image/png;base64,"));
        assert!(page.contains(&format!("href=\"blobs/sha256/{}\"", blob.digest.hex())));
        assert!(page.contains("capsa install org.example.Evil --remote test"));
        assert!(page.contains("name=\"viewport\""));
        // Unknown icon bytes are not embedded.
        assert!(Icon::sniff(b"<html>".to_vec()).is_none());
        assert!(Icon::sniff(vec![0x89; MAX_ICON as usize + 1]).is_none());
    }
}
