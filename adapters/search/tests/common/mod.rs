//! Documents built byte by byte, as writers of their formats lay them out: the real thing,
//! and decompression bombs.

#![allow(dead_code)] // Each test file uses some of these.

use std::io::Write as _;

pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// A one-page PDF showing `line` in Helvetica, with a correct cross-reference table.
pub fn pdf(line: &str) -> Vec<u8> {
    let stream = format!("BT /F1 24 Tf 72 700 Td ({line}) Tj ET");
    pdf_with_contents("", stream.as_bytes())
}

/// A one-page PDF whose page content stream is `stream`, its dictionary holding `filter`
/// (say `/Filter /FlateDecode`) beside its length.
pub fn pdf_with_contents(filter: &str, stream: &[u8]) -> Vec<u8> {
    let objects: [Vec<u8>; 5] = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        [
            format!("<< /Length {} {filter} >>\nstream\n", stream.len()).as_bytes(),
            stream,
            b"\nendstream",
        ]
        .concat(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A PDF of a few kilobytes whose content stream is `gib` GiB of zeros, deflated twice
/// (`/Filter [/FlateDecode /FlateDecode]`).
pub fn pdf_bomb(gib: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut once = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..gib * 1024 {
        once.write_all(&zeros).unwrap();
    }
    let once = once.finish().unwrap();
    let mut twice = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    twice.write_all(&once).unwrap();
    let twice = twice.finish().unwrap();
    pdf_with_contents("/Filter [/FlateDecode /FlateDecode]", &twice)
}

/// A Word document with these paragraphs.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>"))
        .collect();
    docx_with_body(body.as_bytes(), 1)
}

/// A Word document whose body is `body` repeated `times` times (a zip bomb when large).
pub fn docx_with_body(body: &[u8], times: usize) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_level(Some(9))
        .large_file(times * body.len() > u32::MAX as usize / 2);
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>").unwrap();
    for _ in 0..times {
        zip.write_all(body).unwrap();
    }
    zip.write_all(b"</w:body></w:document>").unwrap();
    zip.finish().unwrap().into_inner()
}
