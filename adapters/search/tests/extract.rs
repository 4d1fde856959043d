//! Text from real files: a PDF and a Word document built here byte by byte, as writers of
//! those formats lay them out.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::{DOCX, docx, pdf, pdf_bomb};
use gatehouse_adapter_search::extract::{ExtractError, MAX_TEXT_BYTES, extract};
use gatehouse_adapter_search::sandbox::{Limits, Sandbox};

#[test]
fn text_of_a_pdf() {
    let text = extract("application/pdf", &pdf("Invoice for quarterly widgets")).unwrap();
    assert!(text.contains("Invoice for quarterly widgets"), "{text:?}");
}

#[test]
fn text_of_a_word_document() {
    let text = extract(
        DOCX,
        &docx(&["Minutes of the board", "Budget &amp; hiring approved"]),
    )
    .unwrap();
    assert_eq!(text, "Minutes of the board\nBudget & hiring approved");
}

#[test]
fn a_word_document_without_its_body_is_malformed() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("other.xml", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(b"<x/>").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    assert!(matches!(
        extract(DOCX, &bytes),
        Err(ExtractError::Malformed("docx", _))
    ));
}

#[test]
fn a_truncated_pdf_is_malformed() {
    let whole = pdf("Invoice");
    assert!(matches!(
        extract("application/pdf", &whole[..whole.len() / 2]),
        Err(ExtractError::Malformed("pdf", _))
    ));
}

#[test]
fn a_pdf_whose_stream_inflates_past_its_bound_is_refused_before_parsing() {
    // Deterministic, whatever the process's memory: the streams are measured first.
    let outcome = extract("application/pdf", &pdf_bomb(1));
    match outcome {
        Err(ExtractError::Limit(why)) => assert!(why.contains("inflates past"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A PDF with a compressed stream of ordinary size still gives its text.
    let stream = b"BT /F1 24 Tf 72 700 Td (Deflated words) Tj ET";
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(stream).unwrap();
    let deflated = encoder.finish().unwrap();
    let document = common::pdf_with_contents("/Filter /FlateDecode", &deflated);
    let text = extract("application/pdf", &document).unwrap();
    assert!(text.contains("Deflated words"), "{text:?}");
}

/// The crate's extractor program, within `limits`.
fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(env!("CARGO_BIN_EXE_gatehouse-extract"), &[], limits)
}

/// Tight limits: what a bomb meets long before it has burst.
const TIGHT: Limits = Limits {
    memory_bytes: 512 * 1024 * 1024,
    cpu_seconds: 30,
    deadline: Duration::from_secs(60),
};

#[tokio::test]
async fn the_sandbox_extracts_what_the_parsers_do() {
    let sandbox = sandbox(TIGHT);
    let text = sandbox
        .extract("application/pdf", pdf("Invoice for quarterly widgets"))
        .await
        .unwrap();
    assert!(text.contains("Invoice for quarterly widgets"), "{text:?}");
    let text = sandbox
        .extract(DOCX, docx(&["Minutes", "Budget &amp; hiring"]))
        .await
        .unwrap();
    assert_eq!(text, "Minutes\nBudget & hiring");
    let truncated = pdf("Invoice");
    let half = truncated[..truncated.len() / 2].to_vec();
    assert!(matches!(
        sandbox.extract("application/pdf", half).await,
        Err(ExtractError::Malformed("pdf", _))
    ));
    assert!(matches!(
        sandbox.extract("image/png", vec![1, 2, 3]).await,
        Err(ExtractError::Unsupported)
    ));
}

#[tokio::test]
async fn a_pdf_inflating_to_gigabytes_is_stopped_in_its_own_process() {
    // 1 GiB of zeros deflated twice: a few kilobytes on disk.
    let bomb = pdf_bomb(1);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let sandbox = sandbox(TIGHT);
    let outcome = sandbox.extract("application/pdf", bomb).await;
    assert!(
        matches!(outcome, Err(ExtractError::Limit(_))),
        "{outcome:?}"
    );
    // Only the child died: the next document is extracted as ever.
    let text = sandbox
        .extract("application/pdf", pdf("Still here"))
        .await
        .unwrap();
    assert!(text.contains("Still here"));
}

#[tokio::test]
async fn a_docx_inflating_to_gigabytes_is_read_no_further_than_its_bound() {
    // 256 MiB of paragraphs (four times what is read of a body), compressed about a
    // thousand to one.
    let paragraph = b"<w:p><w:r><w:t>all work and no play</w:t></w:r></w:p>";
    let bomb = common::docx_with_body(paragraph, (256 << 20) / paragraph.len());
    assert!(bomb.len() < 8 * 1024 * 1024, "{} bytes", bomb.len());
    let outcome = sandbox(TIGHT).extract(DOCX, bomb).await;
    // Its body is read up to a bound (the text up to there is kept), and the text kept
    // is bounded too.
    let text = outcome.unwrap();
    assert!(text.starts_with("all work and no play\n"));
    assert!(text.len() <= MAX_TEXT_BYTES, "{} bytes", text.len());
}

#[tokio::test]
async fn html_nested_millions_deep_meets_a_limit_in_its_own_process() {
    // 32 MiB of unclosed elements: each one a node of the tree the parser builds.
    let html = "<div><span>".repeat(32 * 1024 * 1024 / 11).into_bytes();
    let outcome = sandbox(TIGHT).extract("text/html", html).await;
    assert!(
        matches!(outcome, Err(ExtractError::Limit(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_parser_that_hangs_is_killed_at_the_deadline() {
    // An extractor that never answers (and uses no CPU, so only the deadline can end it).
    let hanging = Sandbox::new(
        "/bin/sh",
        &["-c", "exec sleep 600", "extractor"],
        Limits {
            deadline: Duration::from_secs(1),
            ..TIGHT
        },
    );
    let outcome = hanging.extract("application/pdf", pdf("x")).await;
    match outcome {
        Err(ExtractError::Limit(why)) => assert!(why.contains("no answer within"), "{why}"),
        other => panic!("{other:?}"),
    }
}
