//! A line of a program's output as the text a person would read: lenient with what programs
//! write (invalid UTF-8, NUL bytes, terminal colours), so nothing a program prints can break
//! the tail or the record.

/// The body of a record from a line's bytes (without its newline):
/// - bytes that are not UTF-8 become U+FFFD (the tail also stands one in for each byte
///   supervisord could not decode);
/// - ANSI escape sequences (colours, cursor moves: `ESC [ … final`, `ESC ] … BEL|ESC \`, and
///   two-byte `ESC x`) are removed, as a terminal would not show them;
/// - other control characters but the tab (NUL, a carriage return before the newline or in a
///   progress bar, DEL) are removed too: log backends show them badly, some refuse NUL.
pub fn readable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Skips the rest of an escape sequence whose ESC was just read.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        // CSI: parameters and intermediates, then one final byte in @..~.
        Some('[') => {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
        // OSC (window titles, hyperlinks): up to BEL or ESC \.
        Some(']') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        // A two-byte sequence (ESC c, ESC 7) or a lone ESC at the end.
        _ => {}
    }
}

/// `bytes` without a character cut off at its end (the start of a multi-byte character whose
/// last bytes are missing), so a cut line shows no replacement character where it was cut.
pub fn without_split_char_at_end(bytes: &[u8]) -> &[u8] {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let byte = bytes[n - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character starts further back
        }
        let needs = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needs > back {
            &bytes[..n - back]
        } else {
            bytes
        };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_controls_go_text_stays() {
        assert_eq!(
            readable(b"\x1b[1;31mERROR\x1b[0m disk full\r"),
            "ERROR disk full"
        );
        assert_eq!(
            readable(b"\x1b]0;title\x07ok \x1b]8;;http://x\x1b\\link"),
            "ok link"
        );
        assert_eq!(readable(b"a\0b\tc\x7f\x1bcd"), "ab\tcd");
        assert_eq!(readable("naïve 日本".as_bytes()), "naïve 日本");
    }

    #[test]
    fn invalid_utf8_becomes_the_replacement_character() {
        assert_eq!(readable(b"ok \xff\xfe end"), "ok \u{fffd}\u{fffd} end");
        assert_eq!(readable(b"cut \xe6\x97"), "cut \u{fffd}");
    }

    #[test]
    fn cuts_fall_between_characters() {
        let text = "ab日本".as_bytes(); // 2 + 3 + 3 bytes
        let cut = |n: usize| without_split_char_at_end(&text[..n]);
        assert_eq!(cut(8), text);
        assert_eq!(cut(7), "ab日".as_bytes());
        assert_eq!(cut(6), "ab日".as_bytes());
        assert_eq!(cut(5), "ab日".as_bytes());
        assert_eq!(cut(4), b"ab");
        assert_eq!(cut(3), b"ab");
        assert_eq!(cut(0), b"");
        assert_eq!(without_split_char_at_end("😀".as_bytes()), "😀".as_bytes());
        assert_eq!(without_split_char_at_end(b"x\xf0\x9f\x98"), b"x");
        // Not UTF-8 at all: left as it is, for the lossy decoding to mark.
        assert_eq!(
            without_split_char_at_end(b"\x80\x80\x80\x80\x80"),
            b"\x80\x80\x80\x80\x80"
        );
    }
}
