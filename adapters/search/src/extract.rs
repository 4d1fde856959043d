//! Text extraction from the content types an upload may have (plain text, Markdown, HTML,
//! PDF, DOCX), bounded in what it reads and what it returns, so that no upload can make
//! indexing slow or large.

use std::io::Read as _;

/// Contents larger than this are indexed by their metadata alone.
pub const MAX_INPUT_BYTES: u64 = 32 * 1024 * 1024;
/// The most text kept from one document (in bytes of UTF-8).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// The most a DOCX's main part may inflate to (a zip bomb stops here).
const MAX_DOCX_XML_BYTES: u64 = 64 * 1024 * 1024;

/// What kind of document a content type is: the `type` facet and filter of search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `text/plain`
    Text,
    /// `text/markdown`
    Markdown,
    /// `text/html`
    Html,
    /// `application/pdf`
    Pdf,
    /// Word (`application/vnd.openxmlformats-officedocument.wordprocessingml.document`)
    Docx,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Text,
        Self::Markdown,
        Self::Html,
        Self::Pdf,
        Self::Docx,
    ];

    /// The kind of a content type (parameters such as `; charset=` ignored).
    pub fn of(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "text/plain" => Some(Self::Text),
            "text/markdown" => Some(Self::Markdown),
            "text/html" => Some(Self::Html),
            "application/pdf" => Some(Self::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Some(Self::Docx)
            }
            _ => None,
        }
    }

    /// The short name users filter by: `text`, `markdown`, `html`, `pdf`, `docx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }
}

/// Why no text could be had from a content.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The content type is not one search knows.
    #[error("no text extraction for this content type")]
    Unsupported,
    /// The content is not what its type says, or is damaged.
    #[error("the content cannot be read as {0}: {1}")]
    Malformed(&'static str, String),
    /// Extracting went past its memory, CPU or time limit ([`crate::sandbox`]).
    #[error("the extraction went past its limits: {0}")]
    Limit(String),
    /// No extractor could be started (the machine's fault, not the content's).
    #[error("no extractor could be started: {0}")]
    Unavailable(String),
}

/// The text of `content`, of type `content_type`, at most [`MAX_TEXT_BYTES`] long.
///
/// # Errors
/// [`ExtractError`] for an unknown type or a content that cannot be parsed.
pub fn extract(content_type: &str, content: &[u8]) -> Result<String, ExtractError> {
    let kind = Kind::of(content_type).ok_or(ExtractError::Unsupported)?;
    let text = match kind {
        Kind::Text => String::from_utf8_lossy(content).into_owned(),
        Kind::Markdown => markdown(&String::from_utf8_lossy(content)),
        Kind::Html => html(&String::from_utf8_lossy(content)),
        Kind::Pdf => pdf(content)?,
        Kind::Docx => docx(content)?,
    };
    Ok(truncate(normalize_space(&text), MAX_TEXT_BYTES))
}

fn markdown(source: &str) -> String {
    use pulldown_cmark::{Event, Parser, TagEnd};
    let mut out = String::new();
    for event in Parser::new(source) {
        match event {
            Event::Text(text) | Event::Code(text) => out.push_str(&text),
            Event::SoftBreak | Event::HardBreak | Event::End(TagEnd::Paragraph) => out.push(' '),
            Event::End(_) => out.push(' '),
            _ => {}
        }
    }
    out
}

/// The visible text of an HTML page: what scripts, styles and templates hold is not text.
fn html(source: &str) -> String {
    const HIDDEN: &[&str] = &["script", "style", "noscript", "template", "head"];
    let document = scraper::Html::parse_document(source);
    let mut out = String::new();
    for node in document.root_element().descendants() {
        let Some(text) = node.value().as_text() else {
            continue;
        };
        let hidden = node.ancestors().any(|a| {
            a.value()
                .as_element()
                .is_some_and(|e| HIDDEN.contains(&e.name()))
        });
        if !hidden {
            out.push_str(text);
            out.push(' ');
        }
    }
    out
}

/// The most one PDF stream may inflate to (each of its filters' layers counted apart).
const MAX_PDF_STREAM_BYTES: u64 = 256 * 1024 * 1024;

fn pdf(content: &[u8]) -> Result<String, ExtractError> {
    // The parser inflates streams without a bound (a few kilobytes can hold gigabytes):
    // measure every compressed stream first, within a bound, and refuse a bomb.
    check_pdf_streams(content)?;
    // The PDF parser has panicked on damaged files before: a panic is a damaged file here,
    // never a dead worker.
    let parsed = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(content));
    match parsed {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ExtractError::Malformed("pdf", e.to_string())),
        Err(_) => Err(ExtractError::Malformed("pdf", "the parser gave up".into())),
    }
}

/// Inflates every Flate-compressed stream of a PDF, layer by layer (a stream may name the
/// filter more than once), counting and discarding the output: any layer past
/// [`MAX_PDF_STREAM_BYTES`] makes the document a bomb. Raw bytes are scanned, not parsed,
/// so that object streams (which a parser inflates while loading) are measured too.
fn check_pdf_streams(content: &[u8]) -> Result<(), ExtractError> {
    let mut from = 0;
    while let Some(start) = find(content, b"stream", from) {
        let mut data = start + b"stream".len();
        from = data;
        // `endstream` is not a stream's start; the keyword ends its line.
        if start >= 3 && &content[start - 3..start] == b"end" {
            continue;
        }
        match content.get(data..data + 2) {
            Some([b'\r', b'\n']) => data += 2,
            Some([b'\n' | b'\r', _]) => data += 1,
            _ => continue,
        }
        let end = find(content, b"endstream", data).unwrap_or(content.len());
        let head_start = rfind(&content[..start], b"obj").unwrap_or(0);
        let head = &content[head_start..start];
        let layers = count(head, b"/FlateDecode") + count(head, b"/Fl ");
        // Only inner layers are held (to inflate again); the last is only measured.
        let mut held: Option<Vec<u8>> = None;
        for n in 1..=layers {
            let layer = held.as_deref().unwrap_or(&content[data..end]);
            match inflate_bounded(layer, n < layers)? {
                Some(inflated) => held = Some(inflated),
                // Not Flate after all, or damaged: the parser will say so.
                None => break,
            }
        }
        from = end;
    }
    Ok(())
}

/// `data` inflated (zlib) when `keep` (to inflate again), or only measured: `None` if it is
/// not a zlib stream; a Limit error past the bound (or past what memory allows).
fn inflate_bounded(data: &[u8], keep: bool) -> Result<Option<Vec<u8>>, ExtractError> {
    let bomb = || {
        ExtractError::Limit(format!(
            "a PDF stream inflates past {} MiB",
            MAX_PDF_STREAM_BYTES >> 20
        ))
    };
    let mut bounded = flate2::read::ZlibDecoder::new(data).take(MAX_PDF_STREAM_BYTES + 1);
    let mut kept = Vec::new();
    let inflated = if keep {
        bounded.read_to_end(&mut kept).map(|n| n as u64)
    } else {
        std::io::copy(&mut bounded, &mut std::io::sink())
    };
    match inflated {
        Ok(n) if n > MAX_PDF_STREAM_BYTES => Err(bomb()),
        Ok(_) => Ok(Some(kept)),
        Err(e) if e.kind() == std::io::ErrorKind::OutOfMemory => Err(bomb()),
        Err(_) => Ok(None),
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The text of a Word document's body: the runs of `word/document.xml`, a paragraph a line.
fn docx(content: &[u8]) -> Result<String, ExtractError> {
    let malformed = |e: &dyn std::fmt::Display| ExtractError::Malformed("docx", e.to_string());
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(content)).map_err(|e| malformed(&e))?;
    let part = archive
        .by_name("word/document.xml")
        .map_err(|e| malformed(&e))?;
    let mut xml = Vec::new();
    part.take(MAX_DOCX_XML_BYTES)
        .read_to_end(&mut xml)
        .map_err(|e| malformed(&e))?;
    let cut = xml.len() as u64 >= MAX_DOCX_XML_BYTES;
    let xml = String::from_utf8_lossy(&xml);
    word_text(&xml, cut).map_err(|e| malformed(&e))
}

/// The text of the body XML; when `cut` (read up to its bound, so it ends mid-way), the
/// text up to where it was cut.
fn word_text(xml: &str, cut: bool) -> Result<String, quick_xml::Error> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut in_text = false;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(_) if cut => return Ok(out),
            Err(e) => return Err(e),
        };
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) if matches!(e.local_name().as_ref(), "tab" | "br") => out.push(' '),
            Event::Text(text) if in_text => out.push_str(&text.xml10_content()),
            Event::GeneralRef(reference) if in_text => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(resolved) => resolved,
                    Err(_) if cut => return Ok(out),
                    Err(e) => return Err(e),
                };
                if let Some(c) = resolved {
                    out.push(c);
                } else if let Some(c) = predefined_entity(&reference) {
                    out.push(c);
                }
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// Runs of whitespace become one space; paragraph breaks stay one newline.
fn normalize_space(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let words = line.split_whitespace();
        let mut first = true;
        for word in words {
            if !first {
                out.push(' ');
            }
            out.push_str(word);
            first = false;
        }
        if !first {
            out.push('\n');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_ignore_parameters_and_case() {
        assert_eq!(Kind::of("Text/Plain; charset=utf-8"), Some(Kind::Text));
        assert_eq!(Kind::of("application/octet-stream"), None);
    }

    #[test]
    fn markdown_keeps_words_not_markup() {
        let text = extract(
            "text/markdown",
            b"# Quarterly *report*\n\n- `alpha` [link](http://x)",
        )
        .unwrap();
        assert_eq!(text, "Quarterly report alpha link");
    }

    #[test]
    fn html_drops_scripts_and_styles() {
        let page = "<html><head><title>T</title><style>p{}</style></head><body><p>Hello <b>world</b></p><script>var secret=1</script></body></html>";
        let text = extract("text/html", page.as_bytes()).unwrap();
        assert_eq!(text, "Hello world");
    }

    #[test]
    fn word_runs_with_entities() {
        let xml = r#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>Fish &amp; chips</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve"> &#x41;B</w:t></w:r></w:p><w:p><w:r><w:t>next</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(word_text(xml, false).unwrap(), "Fish & chips  AB\nnext\n");
    }

    #[test]
    fn a_body_cut_at_its_bound_keeps_the_text_before_the_cut() {
        let xml = r#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>kept</w:t></w:r></w:p><w:p><w:r><w:t>lo"#;
        assert_eq!(word_text(xml, true).unwrap(), "kept\nlo");
        assert!(word_text(&xml[..xml.len() - 6], false).is_err());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            extract("application/pdf", b"%PDF-1.4 garbage"),
            Err(ExtractError::Malformed("pdf", _))
        ));
        assert!(matches!(
            extract(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                b"PK nope"
            ),
            Err(ExtractError::Malformed("docx", _))
        ));
        assert!(matches!(
            extract("image/png", b""),
            Err(ExtractError::Unsupported)
        ));
    }

    #[test]
    fn text_is_truncated_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        let text = extract("text/plain", long.as_bytes()).unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES && text.len() >= MAX_TEXT_BYTES - 1);
    }
}
