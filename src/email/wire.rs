//! A mail's body encoded for the wire once, with each reader's parts left open.
//!
//! Encoding a digest's parts as quoted-printable for every reader was most of the worker's CPU
//! at real digest sizes (a 54 KB digest: 22% encoding, 11% line endings, 8% choosing the
//! encoding; bench/RESULTS.md). Here the fixed text between the reader's parts is encoded once,
//! each piece ending in a soft line break ("=" CRLF), so that a piece encoded on its own can
//! follow it from the start of a line: a reader's copy is the fixed pieces with their name and
//! links, encoded alone, in between. Decoding removes the soft breaks and gives back exactly
//! the text the templates rendered.

/// What goes into one reader's copy at a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Name,
    Unsubscribe,
    Confirm,
}

#[derive(Debug, Clone)]
enum Piece {
    /// Already encoded, ending at the start of a line.
    Fixed(String),
    Open(Slot),
}

/// A body with its fixed text encoded and its reader's parts open.
#[derive(Debug, Clone)]
pub struct EncodedBody {
    pieces: Vec<Piece>,
    fixed_len: usize,
}

impl EncodedBody {
    /// Splits `text` at the `marks` (each with the slot it stands for) and encodes the rest.
    pub fn new(text: &str, marks: &[(&str, Slot)]) -> EncodedBody {
        let mut pieces = Vec::new();
        let mut rest = text;
        loop {
            let next = marks
                .iter()
                .filter_map(|(mark, slot)| rest.find(mark).map(|at| (at, mark.len(), *slot)))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, slot)) => {
                    if at > 0 {
                        pieces.push(Piece::Fixed(encode_piece(&rest[..at])));
                    }
                    pieces.push(Piece::Open(slot));
                    rest = &rest[at + len..];
                }
                None => {
                    if !rest.is_empty() {
                        pieces.push(Piece::Fixed(encode_piece(rest)));
                    }
                    break;
                }
            }
        }
        let fixed_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Fixed(s) => s.len(),
                Piece::Open(_) => 0,
            })
            .sum();
        EncodedBody { pieces, fixed_len }
    }

    /// One reader's body, quoted-printable, with `fill` giving each slot's text.
    pub fn fill<'a>(&self, fill: impl Fn(Slot) -> &'a str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fixed_len + 512);
        for piece in &self.pieces {
            match piece {
                Piece::Fixed(encoded) => out.extend_from_slice(encoded.as_bytes()),
                Piece::Open(slot) => out.extend_from_slice(encode_piece(fill(*slot)).as_bytes()),
            }
        }
        // The body ends where its text ends, not in a soft break (which some decoders refuse
        // at the very end). An encoder never ends a body in one of its own.
        if out.ends_with(b"=\r\n") {
            out.truncate(out.len() - 3);
        }
        out
    }
}

/// Quoted-printable of `text` (line ends made CRLF, as lettre makes them), ending at the start of
/// a line: after its own hard line break, or after a soft one added here.
fn encode_piece(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut crlf = String::with_capacity(text.len() + text.len() / 32);
    let mut previous = '\0';
    for c in text.chars() {
        if c == '\n' && previous != '\r' {
            crlf.push('\r');
        }
        crlf.push(c);
        previous = c;
    }
    let mut encoded = quoted_printable::encode_to_str(crlf);
    if !encoded.ends_with("\r\n") {
        encoded.push_str("=\r\n");
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8]) -> String {
        let decoded =
            quoted_printable::decode(body, quoted_printable::ParseMode::Strict).expect("valid QP");
        String::from_utf8(decoded).unwrap()
    }

    const MARKS: &[(&str, Slot)] = &[("@NAME@", Slot::Name), ("@LINK@", Slot::Unsubscribe)];

    #[test]
    fn a_filled_body_decodes_to_the_text_with_the_readers_parts() {
        let long = "x".repeat(300);
        let text = format!(
            "Hello @NAME@,\n.leading dot\nä ö ü = 100% {long}\nUnsubscribe: @LINK@\n@NAME@ again @LINK@"
        );
        let body = EncodedBody::new(&text, MARKS);
        let link = "https://news.clinic.example/unsubscribe?token=ab12";
        for name in [
            "Zoë Brandt",
            "",
            "=?x?= ",
            ". dot first",
            &"long name ".repeat(20),
        ] {
            let filled = body.fill(|slot| match slot {
                Slot::Name => name,
                _ => link,
            });
            let expected = text
                .replace("@NAME@", name)
                .replace("@LINK@", link)
                .replace('\n', "\r\n");
            assert_eq!(decode(&filled), expected, "{name:?}");
            for line in filled.split(|b| *b == b'\n') {
                assert!(line.len() <= 77, "a line of {} bytes", line.len());
                assert!(line.is_ascii());
            }
        }
    }

    #[test]
    fn text_without_marks_is_one_piece() {
        let body = EncodedBody::new("plain\ntext", MARKS);
        assert_eq!(decode(&body.fill(|_| "")), "plain\r\ntext");
    }
}
