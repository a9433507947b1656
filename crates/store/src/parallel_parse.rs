//! Parsing an N-Triples or N-Quads upload on several threads: the load path's parse,
//! which is most of a load's work and is done before the writer lock is taken. The
//! document is read in pieces of whole lines (a statement of these formats never spans
//! a line break), each piece parsed on its own by a worker, and the pieces' quads put
//! back in document order.

use crate::error::{Result, StoreError};
use crate::ntriples::{LineGrammar, LineGrammarReader};
use crate::rdf_input::{
    check_lenient_quad, keeps_any_iri, parse_rdf_stream, parser, BlankNodeRenamer, BlankNodes,
};
use oxigraph::io::{RdfFormat, RdfParseError, RdfSyntaxError, TextPosition};
use oxigraph::model::{GraphName, Quad};
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

/// About how many bytes a piece holds (it ends at a line feed: a line longer than this
/// makes a longer piece).
const PIECE_BYTES: usize = 1 << 20;

/// The threads a load's parse uses: one per core (read once: finding out reads the
/// process's cgroup files, and every pulled batch asks).
pub fn parse_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Parses a whole document into its quads: the quads [`parse_rdf_stream`] hands over, in
/// the same order, or the error it stops with, its line counted from the document's
/// start. N-Triples and N-Quads are parsed on up to `threads` threads (the calling
/// thread reads); other formats, and `threads` below 2, as [`parse_rdf_stream`] does.
///
/// Rules it keeps:
/// - all or nothing: a document with an error anywhere gives that error, the first in
///   the document, and no quad;
/// - a blank node label names one node throughout the document, whatever piece it is in
///   (every piece is renamed with the same keys);
/// - reading ahead is bounded: at most `2 × threads` pieces of about [`PIECE_BYTES`]
///   wait for a worker; what grows is the quads, which are the caller's transaction.
pub fn parse_rdf_parallel(
    format: RdfFormat,
    data: impl Read,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    blank_nodes: BlankNodes,
    threads: usize,
) -> Result<Vec<Quad>> {
    parse(format, data, base_iri, graph, blank_nodes, threads, true).map(|(_, quads)| quads)
}

/// Checks a whole document as [`parse_rdf_parallel`] parses it, keeping no quad (memory
/// stays bounded whatever its size): answers how many quads it holds, or its first
/// error.
pub fn check_rdf_parallel(
    format: RdfFormat,
    data: impl Read,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    threads: usize,
) -> Result<usize> {
    parse(
        format,
        data,
        base_iri,
        graph,
        BlankNodes::Keep,
        threads,
        false,
    )
    .map(|(n, _)| n)
}

/// The quads of a document (none unless `keep`) and how many there are.
fn parse(
    format: RdfFormat,
    data: impl Read,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    blank_nodes: BlankNodes,
    threads: usize,
    keep: bool,
) -> Result<(usize, Vec<Quad>)> {
    if !keeps_any_iri(format) || threads < 2 {
        let mut quads = Vec::new();
        let count = parse_rdf_stream(format, data, base_iri, graph, blank_nodes, |quad| {
            if keep {
                quads.push(quad);
            }
            Ok(())
        })?;
        return Ok((count, quads));
    }
    // Refused here as the serial parse refuses it (an invalid base IRI).
    parser(format, base_iri, graph).map(drop)?;
    let renamer = BlankNodeRenamer::default();
    // The index of the first piece known to hold an error: later pieces are not parsed.
    let first_error = AtomicUsize::new(usize::MAX);
    let (pieces, waiting) = sync_channel::<Piece>(2 * threads);
    let waiting = Mutex::new(waiting);
    let (read, mut parsed) = std::thread::scope(|scope| {
        let workers: Vec<_> =
            (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            // The lock is held only while waiting for the next piece.
                            let next = waiting.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok(piece) = next else {
                                return done;
                            };
                            if piece.index > first_error.load(Ordering::SeqCst) {
                                continue;
                            }
                            let quads = parse_piece(format, &piece, base_iri, graph, |quad| {
                                match blank_nodes {
                                    BlankNodes::Rename => renamer.rename(quad),
                                    BlankNodes::Keep => quad,
                                }
                            });
                            if quads.is_err() {
                                first_error.fetch_min(piece.index, Ordering::SeqCst);
                            }
                            let quads = quads.map(|quads| match keep {
                                true => (quads.len(), quads),
                                false => (quads.len(), Vec::new()),
                            });
                            done.push((piece.index, quads));
                        }
                    })
                })
                .collect();
        let read = cut_into_pieces(data, &pieces, &first_error);
        drop(pieces);
        let mut parsed = Vec::new();
        for worker in workers {
            match worker.join() {
                Ok(done) => parsed.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (read, parsed)
    });
    parsed.sort_unstable_by_key(|(index, _)| *index);
    // The first error in the document: a piece's, else the reader's (every piece before
    // the place it failed was read and parsed).
    if let Some((_, Err(e))) = parsed.iter().find(|(_, quads)| quads.is_err()) {
        return Err(StoreError::InvalidRdf(e.clone()));
    }
    read.map_err(|e| StoreError::InvalidRdf(e.to_string()))?;
    let count = parsed
        .iter()
        .map(|(_, piece)| piece.as_ref().map_or(0, |(n, _)| *n))
        .sum();
    let mut quads = Vec::with_capacity(if keep { count } else { 0 });
    for (_, piece) in parsed {
        quads.extend(piece.expect("errors were answered above").1);
    }
    Ok((count, quads))
}

/// Whole lines of a document.
struct Piece {
    index: usize,
    bytes: Vec<u8>,
    /// Line feeds before it in the document ([`LineGrammar`] counts these).
    feeds_before: u64,
    /// Line jumps before it as oxttl counts them (`\n`, `\r\n` and a lone `\r`).
    jumps_before: u64,
}

/// Reads `data` into pieces that end at a line feed and sends them in order, until the
/// end, a piece known to hold an error, or no worker left to take them.
fn cut_into_pieces(
    mut data: impl Read,
    pieces: &SyncSender<Piece>,
    first_error: &AtomicUsize,
) -> std::io::Result<()> {
    let (mut index, mut feeds_before, mut jumps_before) = (0, 0, 0);
    let mut carried = Vec::new();
    loop {
        if first_error.load(Ordering::SeqCst) != usize::MAX {
            return Ok(());
        }
        let mut bytes = std::mem::take(&mut carried);
        let mut end = false;
        // Until a line feed past the first PIECE_BYTES, or the end.
        loop {
            let want = (PIECE_BYTES.saturating_sub(bytes.len())).max(64 << 10);
            if data.by_ref().take(want as u64).read_to_end(&mut bytes)? == 0 {
                end = true;
                break;
            }
            if bytes.len() >= PIECE_BYTES && memrchr_feed(&bytes).is_some() {
                break;
            }
        }
        if !end {
            let cut = memrchr_feed(&bytes).expect("found above") + 1;
            carried = bytes[cut..].to_vec();
            bytes.truncate(cut);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let feeds = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        let jumps = line_jumps(&bytes);
        let piece = Piece {
            index,
            bytes,
            feeds_before,
            jumps_before,
        };
        if pieces.send(piece).is_err() {
            return Ok(());
        }
        if end {
            return Ok(());
        }
        index += 1;
        feeds_before += feeds;
        jumps_before += jumps;
    }
}

fn memrchr_feed(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

/// Line jumps as oxttl counts them: `\n`, `\r\n` and a lone `\r` are one each.
fn line_jumps(bytes: &[u8]) -> u64 {
    let mut jumps = 0;
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => jumps += 1,
            b'\r' if bytes.get(at + 1) != Some(&b'\n') => jumps += 1,
            _ => {}
        }
    }
    jumps
}

/// The quads of one piece, as the serial parse reads them (the same checks, in the same
/// order), errors naming the document's lines.
fn parse_piece(
    format: RdfFormat,
    piece: &Piece,
    base_iri: Option<&str>,
    graph: Option<&GraphName>,
    rename: impl Fn(Quad) -> Quad,
) -> std::result::Result<Vec<Quad>, String> {
    let parser = parser(format, base_iri, graph).map_err(|e| e.to_string())?;
    let mut quads = Vec::with_capacity(piece.bytes.len() / 80);
    let mut take = |quad: std::result::Result<Quad, RdfParseError>| {
        let quad = quad.map_err(|e| match e {
            RdfParseError::Syntax(e) => in_document(&e, piece.jumps_before),
            e => e.to_string(),
        })?;
        check_lenient_quad(&quad)?;
        quads.push(rename(quad));
        Ok::<_, String>(())
    };
    let grammar = || LineGrammar::at_line(piece.feeds_before + 1);
    if grammar().feed(&piece.bytes).is_ok() {
        for quad in parser.for_slice(&piece.bytes) {
            take(quad.map_err(RdfParseError::from))?;
        }
    } else {
        // The text check refuses something: read through it as the serial parse does,
        // so that whichever error comes first there comes first here.
        let reader = LineGrammarReader::with_grammar(&piece.bytes[..], grammar());
        for quad in parser.for_reader(reader) {
            take(quad)?;
        }
    }
    Ok(quads)
}

/// A syntax error of a piece as the parse of the whole document says it: the same
/// text, with the lines counted from the document's start.
fn in_document(error: &RdfSyntaxError, lines_before: u64) -> String {
    let text = error.to_string();
    let Some(at) = error.location() else {
        return text;
    };
    let shift = |p: &TextPosition| TextPosition {
        line: p.line + lines_before,
        ..*p
    };
    let moved = shift(&at.start)..shift(&at.end);
    match text.strip_prefix(&where_text(&at)) {
        Some(rest) => format!("{}{rest}", where_text(&moved)),
        None => text,
    }
}

/// The start of oxttl's text for a syntax error (`TurtleSyntaxError`'s `Display`).
fn where_text(at: &Range<TextPosition>) -> String {
    let (start, end) = (&at.start, &at.end);
    if start.offset + 1 >= end.offset {
        format!(
            "Parser error at line {} column {}",
            start.line + 1,
            start.column + 1
        )
    } else if start.line == end.line {
        format!(
            "Parser error at line {} between columns {} and {}",
            start.line + 1,
            start.column + 1,
            end.column + 1
        )
    } else {
        format!(
            "Parser error between line {} column {} and line {} column {}",
            start.line + 1,
            start.column + 1,
            end.line + 1,
            end.column + 1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(doc: &[u8], format: RdfFormat) -> Result<Vec<Quad>> {
        parse_rdf_parallel(format, doc, None, None, BlankNodes::Keep, 1)
    }

    fn parallel(doc: &[u8], format: RdfFormat, threads: usize) -> Result<Vec<Quad>> {
        parse_rdf_parallel(format, doc, None, None, BlankNodes::Keep, threads)
    }

    /// Several pieces' worth of statements, with blank nodes, literals and comments.
    fn document(lines: usize) -> String {
        let mut doc = String::new();
        for i in 0..lines {
            match i % 5 {
                0 => doc.push_str(&format!(
                    "<http://e.com/s{i}> <http://e.com/p> _:b{} .\n",
                    i % 11
                )),
                1 => doc.push_str(&format!(
                    "_:b{} <http://e.com/p> \"long text {i} {}\"@en .\r\n",
                    i % 13,
                    "x".repeat(i % 300)
                )),
                2 => doc.push_str("# a comment line\n"),
                3 => doc.push_str(&format!(
                    "<http://e.com/s{i}> <http://e.com/n> \"{i}\"^^<http://www.w3.org/2001/XMLSchema#integer> .\n"
                )),
                _ => doc.push_str(&format!("<http://e.com/a\\u0020{i}> <http://e.com/p> <http://e.com/o> .\n")),
            }
        }
        doc
    }

    #[test]
    fn parallel_parse_gives_the_serial_parse_quads_in_order() {
        let doc = document(40_000);
        assert!(doc.len() > 3 * PIECE_BYTES, "several pieces");
        let whole = serial(doc.as_bytes(), RdfFormat::NTriples).unwrap();
        for threads in [2, 3, 8] {
            assert_eq!(
                parallel(doc.as_bytes(), RdfFormat::NTriples, threads).unwrap(),
                whole
            );
        }
        let mut quads = doc.replace(" .\n", " <http://e.com/g> .\n");
        // The last line without its line feed.
        quads.push_str("<http://e.com/s> <http://e.com/p> <http://e.com/o> .");
        let whole = serial(quads.as_bytes(), RdfFormat::NQuads).unwrap();
        assert_eq!(
            parallel(quads.as_bytes(), RdfFormat::NQuads, 2).unwrap(),
            whole
        );
        assert_eq!(
            check_rdf_parallel(RdfFormat::NQuads, quads.as_bytes(), None, None, 2).unwrap(),
            whole.len()
        );
    }

    #[test]
    fn blank_nodes_keep_their_identity_across_pieces_within_a_document() {
        let mut doc = String::new();
        for i in 0..60_000 {
            doc.push_str(&format!(
                "<http://e.com/s{i}> <http://e.com/p> _:shared .\n"
            ));
        }
        let quads = parse_rdf_parallel(
            RdfFormat::NTriples,
            doc.as_bytes(),
            None,
            None,
            BlankNodes::Rename,
            4,
        )
        .unwrap();
        assert_eq!(quads.len(), 60_000);
        assert!(
            quads.iter().all(|q| q.object == quads[0].object),
            "one node"
        );
        assert_ne!(quads[0].object.to_string(), "_:shared", "renamed");
        let again = parse_rdf_parallel(
            RdfFormat::NTriples,
            doc.as_bytes(),
            None,
            None,
            BlankNodes::Rename,
            4,
        )
        .unwrap();
        assert_ne!(
            again[0].object, quads[0].object,
            "another document, another node"
        );
    }

    #[test]
    fn an_error_late_in_a_document_is_the_serial_parse_error_and_nothing_is_returned() {
        let doc = document(40_000);
        let bad_lines = [
            "<http://e.com/s> <http://e.com/p> \"unterminated .\n",
            "<http://e.com/a b> <http://e.com/p> <http://e.com/o> .\n",
            "<http://e.com/s> <http://e.com/p> <http://e.com/o> <http://e.com/o2> .\n",
            "<relative> <http://e.com/p> <http://e.com/o> .\n",
            "<http://e.com/s> <http://e.com/p> \"x\"@1bad-tag! .\n",
        ];
        for bad in bad_lines {
            for at in [0, 17_000, 39_999] {
                let mut lines: Vec<&str> = doc.split_inclusive('\n').collect();
                lines.insert(at, bad);
                // A second error later still: the first one is answered.
                lines.push(bad_lines[0]);
                let text = lines.concat();
                let expected = serial(text.as_bytes(), RdfFormat::NTriples).unwrap_err();
                let got = parallel(text.as_bytes(), RdfFormat::NTriples, 2).unwrap_err();
                assert_eq!(got.to_string(), expected.to_string(), "{bad} at {at}");
                let checked =
                    check_rdf_parallel(RdfFormat::NTriples, text.as_bytes(), None, None, 3)
                        .unwrap_err();
                assert_eq!(checked.to_string(), expected.to_string());
                if !bad.starts_with("<relative>") && !bad.contains("bad-tag") {
                    assert!(
                        got.to_string().contains(&format!("line {}", at + 1)),
                        "names the document's line: {got}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_formats_are_parsed_as_before() {
        let doc = "@prefix e: <http://e.com/> . e:s e:p [ e:q 1 ] .";
        let quads = parallel(doc.as_bytes(), RdfFormat::Turtle, 4).unwrap();
        assert_eq!(quads.len(), 2);
    }
}
