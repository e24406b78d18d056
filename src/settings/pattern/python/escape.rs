//! Escapes and character classes of Python's syntax (`\x41`, `\u00e9`, octal, `\0`,
//! `\N{...}`, which is refused; class members and ranges), written for fancy-regex.

use super::*;

/// A literal character inside a class, escaped where regex-syntax would read it as syntax
/// (nested classes, `&&`, `--`, `~~`).
pub(super) fn class_literal(c: char) -> String {
    if "\\[]^-&~".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// One member of a character class.
pub(super) enum Member {
    Char(char),
    /// `\d`, `\W` and the like, written as is.
    Category(char),
}

impl Scanner {
    /// Exactly `n` hex digits after `\x`, `\u` or `\U`, as a character.
    pub(super) fn hex(&mut self, n: usize, escape: char, at: usize) -> Result<char, Refusal> {
        let mut text = String::new();
        while text.len() < n {
            match self.peek().filter(char::is_ascii_hexdigit) {
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
                None => break,
            }
        }
        if text.len() != n {
            return Err(invalid(format!("incomplete escape \\{escape}{text}"), at));
        }
        let value = u32::from_str_radix(&text, 16).unwrap_or(u32::MAX);
        match char::from_u32(value) {
            Some(c) => Ok(c),
            None if (0xD800..=0xDFFF).contains(&value) => Err(unsupported(format!(
                "the surrogate \\{escape}{text} (it never occurs in a valid name)"
            ))),
            None => Err(invalid(format!("bad escape \\{escape}{text}"), at)),
        }
    }

    /// `\N{...}`: Python looks the name up in the Unicode database, which is not at hand.
    pub(super) fn named_char(&mut self) -> Refusal {
        if self.peek() != Some('{') {
            return invalid("missing {", self.pos);
        }
        unsupported("named characters (\\N{...})")
    }

    /// Up to `max` more octal digits after `first`.
    pub(super) fn octal(&mut self, first: char, max: usize) -> u32 {
        let mut value = first.to_digit(8).unwrap_or(0);
        for _ in 0..max {
            match self.peek().and_then(|c| c.to_digit(8)) {
                Some(d) => {
                    value = value * 8 + d;
                    self.pos += 1;
                }
                None => break,
            }
        }
        value
    }

    pub(super) fn octal_char(value: u32, text: &str, at: usize) -> Result<char, Refusal> {
        if value > 0o377 {
            return Err(invalid(
                format!("octal escape value \\{text} outside of range 0-0o377"),
                at,
            ));
        }
        Ok(char::from_u32(value).unwrap_or('\0'))
    }

    /// An escape outside a class, after the `\`.
    pub(super) fn escape(&mut self) -> Result<(), Refusal> {
        let at = self.pos - 1;
        let Some(c) = self.next() else {
            return Err(invalid("bad escape (end of pattern)", at));
        };
        let ch = match c {
            'A' | 'b' | 'B' => {
                self.emit(&format!("\\{c}"));
                self.item(Item::Anchor);
                return Ok(());
            }
            'Z' => {
                self.emit("\\z");
                self.item(Item::Anchor);
                return Ok(());
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.emit(&format!("\\{c}"));
                self.item(Item::Atom);
                return Ok(());
            }
            'a' => '\u{7}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            'x' => self.hex(2, c, at)?,
            'u' => self.hex(4, c, at)?,
            'U' => self.hex(8, c, at)?,
            'N' => return Err(self.named_char()),
            '0' => {
                let start = self.pos;
                let value = self.octal('0', 2);
                let text: String = self.chars[start - 1..self.pos].iter().collect();
                Self::octal_char(value, &text, at)?
            }
            '1'..='9' => {
                let start = self.pos - 1;
                if let Some(d2) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    let d3 = self.peek().filter(|d| d.is_digit(8));
                    if let (true, true, Some(_)) = (c.is_digit(8), d2.is_digit(8), d3) {
                        self.pos += 1;
                        let text: String = self.chars[start..self.pos].iter().collect();
                        let value = u32::from_str_radix(&text, 8).unwrap_or(u32::MAX);
                        let ch = Self::octal_char(value, &text, at)?;
                        self.emit(&literal(ch));
                        self.item(Item::Atom);
                        return Ok(());
                    }
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let n = text.parse::<usize>().unwrap_or(usize::MAX);
                return self.backref(n, at + 1, at);
            }
            c if c.is_ascii_alphabetic() => {
                return Err(invalid(format!("bad escape \\{c}"), at));
            }
            c => c,
        };
        self.emit(&literal(ch));
        self.item(Item::Atom);
        Ok(())
    }

    /// A class member that is an escape, after the `\`.
    pub(super) fn class_escape(&mut self) -> Result<Member, Refusal> {
        let at = self.pos - 1;
        let Some(c) = self.next() else {
            return Err(invalid("unterminated character set", at));
        };
        Ok(Member::Char(match c {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => return Ok(Member::Category(c)),
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            'x' => self.hex(2, c, at)?,
            'u' => self.hex(4, c, at)?,
            'U' => self.hex(8, c, at)?,
            'N' => return Err(self.named_char()),
            '0'..='7' => {
                let start = self.pos - 1;
                let value = self.octal(c, 2);
                let text: String = self.chars[start..self.pos].iter().collect();
                Self::octal_char(value, &text, at)?
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(invalid(format!("bad escape \\{c}"), at));
            }
            c => c,
        }))
    }

    /// A class, after the `[`, as Python reads it: `]` first is literal, `-` at either end is
    /// literal, ranges only between characters.
    pub(super) fn class(&mut self) -> Result<(), Refusal> {
        let start = self.pos - 1;
        let mut out = String::from("[");
        if self.eat('^') {
            out.push('^');
        }
        let mut first = true;
        loop {
            let this_at = self.pos;
            let member = match self.next() {
                None => return Err(invalid("unterminated character set", start)),
                Some(']') if !first => break,
                Some('\\') => self.class_escape()?,
                Some(c) => Member::Char(c),
            };
            first = false;
            if self.peek() == Some('-') && self.peek_at(1).is_some() {
                self.pos += 1;
                if self.peek() == Some(']') {
                    self.pos += 1;
                    Self::member(&mut out, &member);
                    out.push_str("\\-");
                    break;
                }
                let that = match self.next() {
                    Some('\\') => self.class_escape()?,
                    Some(c) => Member::Char(c),
                    None => return Err(invalid("unterminated character set", start)),
                };
                let (Member::Char(lo), Member::Char(hi)) = (&member, &that) else {
                    let text: String = self.chars[this_at..self.pos].iter().collect();
                    return Err(invalid(format!("bad character range {text}"), this_at));
                };
                if hi < lo {
                    let text: String = self.chars[this_at..self.pos].iter().collect();
                    return Err(invalid(format!("bad character range {text}"), this_at));
                }
                out.push_str(&class_literal(*lo));
                out.push('-');
                out.push_str(&class_literal(*hi));
            } else {
                Self::member(&mut out, &member);
            }
        }
        out.push(']');
        self.emit(&out);
        Ok(())
    }

    pub(super) fn member(out: &mut String, member: &Member) {
        match member {
            Member::Char(c) => out.push_str(&class_literal(*c)),
            Member::Category(c) => {
                out.push('\\');
                out.push(*c);
            }
        }
    }
}
