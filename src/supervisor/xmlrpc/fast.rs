//! The fast path: a byte scanner for the replies a poll decodes every interval.
//!
//! Why a second reader: the general decoder (quick-xml events, a [`Value`] tree, then the typed
//! model) accepts everything XML-RPC allows and says precisely what is wrong with the rest, but
//! it is general: tokenizing costs it more than this whole reader, and a reply of a thousand
//! processes costs it some thirty thousand allocations (a string per member name and value, a
//! tree it throws away, the typed copies). supervisord writes its replies one way (Python's
//! marshaller: exact tags, a newline between elements, strings, ints and booleans), so this
//! reader recognises that subset byte by byte and hands out text borrowed from the reply, and
//! the typed decoder built on it (`decode::fast_processes`) goes straight to the model.
//!
//! The subset: an optional `<?xml version='1.0'?>`, exact tags without attributes, whitespace
//! only between elements, `string`/`int`/`i4`/`i8`/`boolean` scalars and untyped text, structs
//! and arrays, the five predefined entities and character references, XML 1.0 line ends,
//! UTF-8. At the first byte outside it (a comment, CDATA, a DTD, another entity, a fault, any
//! other type or tag, a malformed scalar, a truncated reply...) the reader answers `None`,
//! "not mine", without saying why: the caller then decodes the same bytes with the general
//! decoder, which decodes them or reports the error exactly as it did before the fast path
//! existed. So the fast path changes how fast a reply decodes, never what it decodes to, and
//! it has no error messages of its own to keep in step; tests/unit/xmlrpc_fast_path/ and the
//! fuzz targets hold both paths to the same results.
//!
//! Bounded on any input: one forward pass (every method moves `pos` forward or gives up), the
//! only recursion [`Reader::tree`]'s, a few levels deep; allocation only for the text kept.

use std::borrow::Cow;

use super::Value;

/// A scalar as the fast reader reads it; the general decoder would make the same [`Value`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Int(i64),
    Bool(bool),
    Str(Cow<'a, str>),
}

/// What a `<value>` holds: a whole scalar (read up to and including `</value>`), or the
/// opening of a struct (`<struct>` read) or an array (`<array><data>` read), whose content
/// the caller reads next with [`Reader::member`] or [`Reader::array_item`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item<'a> {
    Scalar(Scalar<'a>),
    Struct,
    Array,
}

/// A cursor over a reply body, validated as UTF-8 once so that text is sliced out of it
/// without validating each piece again.
pub(crate) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// The declarations Python's marshaller and its peers write; any other falls back.
const PROLOGS: [&[u8]; 2] = [b"<?xml version='1.0'?>", b"<?xml version=\"1.0\"?>"];

impl<'a> Reader<'a> {
    /// A reader past `<methodResponse><params><param>`; `None` for anything else, faults
    /// included (they are rare, and the general decoder reads them).
    pub(crate) fn params(body: &'a [u8]) -> Option<Self> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let text = std::str::from_utf8(body).ok()?;
        let bytes = text.as_bytes();
        let mut reader = Reader {
            text,
            bytes,
            pos: 0,
        };
        if let Some(prolog) = PROLOGS.iter().find(|p| bytes.starts_with(p)) {
            reader.pos = prolog.len();
        }
        reader.tag(b"<methodResponse>")?;
        reader.tag(b"<params>")?;
        reader.tag(b"<param>")?;
        Some(reader)
    }

    /// `</param></params></methodResponse>` and nothing but whitespace after it.
    pub(crate) fn end_params(mut self) -> Option<()> {
        self.tag(b"</param>")?;
        self.tag(b"</params>")?;
        self.tag(b"</methodResponse>")?;
        self.skip_space();
        (self.pos == self.bytes.len()).then_some(())
    }

    /// The next `<value>`.
    pub(crate) fn value(&mut self) -> Option<Item<'a>> {
        self.skip_space();
        if !self.eat(b"<value>") {
            return self
                .eat(b"<value/>")
                .then_some(Item::Scalar(Scalar::Str(Cow::Borrowed(""))));
        }
        self.value_content()
    }

    /// What follows `<value>`.
    #[inline(always)]
    fn value_content(&mut self) -> Option<Item<'a>> {
        if self.bytes.get(self.pos) != Some(&b'<') {
            // Whitespace before a type element is ignored, whatever its line ends; anything
            // else is untyped text, which is a string.
            let start = self.pos;
            self.skip_space();
            let typed = self.bytes.get(self.pos) == Some(&b'<')
                && self.bytes.get(self.pos + 1) != Some(&b'/');
            if !typed {
                self.pos = start;
                let text = self.text()?;
                if self.eat(b"</value>") {
                    return Some(Item::Scalar(Scalar::Str(text)));
                }
                if !text.bytes().all(is_space) {
                    return None;
                }
            }
        }
        let scalar = match self.bytes.get(self.pos + 1) {
            Some(b'/') => {
                return self
                    .eat(b"</value>")
                    .then_some(Item::Scalar(Scalar::Str(Cow::Borrowed(""))));
            }
            Some(b's') => {
                if self.eat(b"<string>") {
                    let text = self.text()?;
                    self.eat(b"</string>").then_some(())?;
                    Scalar::Str(text)
                } else if self.eat(b"<string/>") {
                    Scalar::Str(Cow::Borrowed(""))
                } else if self.eat(b"<struct>") {
                    return Some(Item::Struct);
                } else {
                    return None;
                }
            }
            Some(b'i') => {
                let int = if self.eat(b"<int>") {
                    self.scalar_text(b"</int>")
                } else if self.eat(b"<i4>") {
                    self.scalar_text(b"</i4>")
                } else if self.eat(b"<i8>") {
                    self.scalar_text(b"</i8>")
                } else {
                    None
                };
                Scalar::Int(parse_int(trim_space(int?))?)
            }
            Some(b'b') => {
                self.eat(b"<boolean>").then_some(())?;
                match trim_space(self.scalar_text(b"</boolean>")?) {
                    b"1" => Scalar::Bool(true),
                    b"0" => Scalar::Bool(false),
                    _ => return None,
                }
            }
            Some(b'a') => {
                self.eat(b"<array>").then_some(())?;
                self.tag(b"<data>")?;
                return Some(Item::Array);
            }
            _ => return None,
        };
        if !self.eat(b"</value>") {
            self.tag(b"</value>")?;
        }
        Some(Item::Scalar(scalar))
    }

    /// The next item of an array whose `<array><data>` was read; `Some(None)` when the array
    /// ends (its `</data></array></value>` read).
    pub(crate) fn array_item(&mut self) -> Option<Option<Item<'a>>> {
        if self.eat(b"\n<value>") {
            return self.value_content().map(Some);
        }
        self.skip_space();
        if self.eat(b"</data>") {
            self.tag(b"</array>")?;
            self.tag(b"</value>")?;
            return Some(None);
        }
        self.value().map(Some)
    }

    /// The next member of a struct whose `<struct>` was read: its name and the start of its
    /// value; `Some(None)` when the struct ends (its `</struct></value>` read). After the
    /// value (and, for a struct or an array, its content), [`member_end`](Self::member_end).
    pub(crate) fn member(&mut self) -> Option<Option<(Cow<'a, str>, Item<'a>)>> {
        // Each run of tags is first tried as supervisord writes it, a newline between lines,
        // in one comparison; then tag by tag, with any whitespace between, to the same place.
        if !self.eat(b"\n<member>\n<name>") {
            self.skip_space();
            if self.eat(b"</struct>") {
                self.tag(b"</value>")?;
                return Some(None);
            }
            self.eat(b"<member>").then_some(())?;
            self.tag(b"<name>")?;
        }
        let name = self.text()?;
        let value = if self.eat(b"</name>\n<value>") {
            self.value_content()?
        } else {
            self.eat(b"</name>").then_some(())?;
            self.value()?
        };
        Some(Some((name, value)))
    }

    /// `</member>`.
    pub(crate) fn member_end(&mut self) -> Option<()> {
        if self.eat(b"\n</member>") {
            return Some(());
        }
        self.tag(b"</member>")
    }

    /// A whole value as a [`Value`], its opening already read as `item`, for the small
    /// answers around the process array (`getState`'s struct, strings, a fault struct).
    /// `depth` bounds the nesting (the recursion) at a few levels; deeper falls back.
    pub(crate) fn tree(&mut self, item: Item<'a>, depth: usize) -> Option<Value> {
        Some(match item {
            Item::Scalar(Scalar::Int(i)) => Value::Int(i),
            Item::Scalar(Scalar::Bool(b)) => Value::Bool(b),
            Item::Scalar(Scalar::Str(s)) => Value::String(s.into_owned()),
            Item::Struct => {
                let depth = depth.checked_sub(1)?;
                let mut members = Vec::new();
                while let Some((name, item)) = self.member()? {
                    let value = self.tree(item, depth)?;
                    self.member_end()?;
                    members.push((name.into_owned(), value));
                }
                Value::Struct(members)
            }
            Item::Array => {
                let depth = depth.checked_sub(1)?;
                let mut items = Vec::new();
                while let Some(item) = self.array_item()? {
                    items.push(self.tree(item, depth)?);
                }
                Value::Array(items)
            }
        })
    }

    fn skip_space(&mut self) {
        while self.bytes.get(self.pos).copied().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// Reads `literal` if it comes next.
    #[inline]
    fn eat<const N: usize>(&mut self, literal: &[u8; N]) -> bool {
        let next = self
            .bytes
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>());
        if next == Some(literal) {
            self.pos += N;
            true
        } else {
            false
        }
    }

    /// Whitespace, then `literal`.
    #[inline]
    fn tag<const N: usize>(&mut self, literal: &[u8; N]) -> Option<()> {
        self.skip_space();
        self.eat(literal).then_some(())
    }

    /// The raw text of an int or boolean, up to its end tag (read too). Any `<` other than
    /// the end tag, and any reference (not a digit), makes the caller give up.
    fn scalar_text<const N: usize>(&mut self, end_tag: &[u8; N]) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.pos..)?;
        let end = memchr::memchr(b'<', rest)?;
        self.pos += end;
        self.eat(end_tag).then_some(())?;
        rest.get(..end)
    }

    /// Text up to the next `<`, references resolved and line ends normalised; borrowed when
    /// there is neither, as supervisord's text nearly always is. `None` on an entity or
    /// reference it does not resolve, or no `<` at all.
    fn text(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        let end = start + find_text_end(self.bytes.get(start..)?)?;
        if self.bytes.get(end) != Some(&b'<') {
            return self.text_with_references();
        }
        self.pos = end;
        // Both ends are ASCII bytes, so char boundaries.
        self.text.get(start..end).map(Cow::Borrowed)
    }

    /// Kept out of line: [`text`](Self::text) is hot, this is rare.
    #[inline(never)]
    fn text_with_references(&mut self) -> Option<Cow<'a, str>> {
        let mut out = String::new();
        loop {
            let start = self.pos;
            let rest = self.bytes.get(start..)?;
            let end = find_text_end(rest)?;
            out.push_str(self.text.get(start..start + end)?);
            self.pos += end;
            match rest.get(end..)? {
                [b'<', ..] => return Some(Cow::Owned(out)),
                reference @ [b'&', ..] => {
                    let (c, len) = resolve(reference)?;
                    out.push(c);
                    self.pos += len;
                }
                // XML 1.0 line ends, as quick-xml normalises them: `\r\n` and `\r` are `\n`.
                // (A `\r` from a reference is kept: it went through the arm above.)
                [b'\r', b'\n', ..] => {
                    out.push('\n');
                    self.pos += 2;
                }
                _ => {
                    out.push('\n');
                    self.pos += 1;
                }
            }
        }
    }
}

/// Where text ends or needs more than copying: the first `<`, `&` or `\r`.
///
/// Most text in a reply is short (names, numbers, states), where a call to `memchr3` costs
/// more than the search: the first bytes are tested eight at a time in a word, and only longer
/// text goes to `memchr3`'s vector search.
#[inline(always)]
fn find_text_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` equal to `b` becomes a set high bit; bytes above the first match may
    // be flagged falsely (borrows), so only the lowest flag is trusted.
    let flags = |word: u64, b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let mut at = 0;
    while at < 32 {
        let Some(chunk) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) else {
            let rest = bytes.get(at..)?;
            return rest
                .iter()
                .position(|&b| matches!(b, b'<' | b'&' | b'\r'))
                .map(|i| at + i);
        };
        let word = u64::from_le_bytes(*chunk);
        let found = flags(word, b'<') | flags(word, b'&') | flags(word, b'\r');
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr3(b'<', b'&', b'\r', bytes.get(at..)?).map(|i| at + i)
}

/// XML's whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_space(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    text.get(start..end).unwrap_or_default()
}

/// What `str::parse::<i64>` accepts, which is what the general decoder applies: an optional
/// sign, then at least one ASCII digit, within range.
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// The character a reference at the start of `at` stands for, and the reference's length:
/// the five predefined entities and character references as quick-xml resolves them
/// (decimal, or hexadecimal after a lowercase `x`; no sign; not NUL; a valid scalar value).
/// `None` for anything else, which the general decoder then resolves or refuses.
fn resolve(at: &[u8]) -> Option<(char, usize)> {
    // `&#x10FFFF;` and `&#1114111;` are the longest this resolves.
    let window = at.get(..at.len().min(12))?;
    let semicolon = window.iter().position(|&b| b == b';')?;
    let c = match window.get(1..semicolon)? {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"apos" => '\'',
        b"quot" => '"',
        [b'#', b'x', hex @ ..] => char_reference(hex, 16)?,
        [b'#', decimal @ ..] => char_reference(decimal, 10)?,
        _ => return None,
    };
    Some((c, semicolon + 1))
}

fn char_reference(digits: &[u8], radix: u32) -> Option<char> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let mut code: u32 = 0;
    for &b in digits {
        let digit = char::from(b).to_digit(radix)?;
        code = code.checked_mul(radix)?.checked_add(digit)?;
    }
    if code == 0 {
        return None;
    }
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(value_xml: &str) -> String {
        format!(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n{value_xml}\n</param>\n</params>\n</methodResponse>\n"
        )
    }

    /// One whole value read by the fast reader, `None` when it leaves the reply to the
    /// general decoder.
    fn fast(body: &str) -> Option<Value> {
        let mut reader = Reader::params(body.as_bytes())?;
        let item = reader.value()?;
        let value = reader.tree(item, 4)?;
        reader.end_params()?;
        Some(value)
    }

    fn general(body: &str) -> Value {
        match super::super::decode_response(body.as_bytes()) {
            Ok(Ok(value)) => value,
            other => panic!("the general decoder refused {body:?}: {other:?}"),
        }
    }

    #[test]
    fn accepted_values_match_the_general_decoder() {
        for value_xml in [
            "<value><int>42</int></value>",
            "<value><i4>-7</i4></value>",
            "<value><i8>-9223372036854775808</i8></value>",
            "<value><int> +5 </int></value>",
            "<value><int>\n007\t</int></value>",
            "<value><boolean>1</boolean></value>",
            "<value><boolean> 0 </boolean></value>",
            "<value><string>mysql</string></value>",
            "<value><string/></value>",
            "<value><string></string></value>",
            "<value>bare text</value>",
            "<value>  </value>",
            "<value></value>",
            "<value/>",
            "<value>\n  <int>3</int>\n</value>",
            "<value>&#32;<int>3</int></value>",
            "<value><string>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &#233;&#xE9;&#x1F980;</string></value>",
            "<value><string>tab\there &#13; é 🦀 ]]> > \u{1}\u{0}\u{FFFE}\u{FFFF}</string></value>",
            "<value><string>line\r\nend\rx\r\r\n&#13;\n\r</string></value>",
            "<value>bare\rtext&amp;\r</value>",
            "<value>\r\n<int>1</int>\r\n</value>",
            "<value>\r\n</value>",
            "<value><struct>\n<member>\n<name>b</name>\n<value><int>1</int></value>\n</member>\n\
             <member><name>a&amp;</name><value/></member></struct></value>",
            "<value><array><data>\n<value><array><data>\n</data></array></value>\n\
             <value><struct>\n</struct></value>\n</data></array></value>",
        ] {
            let body = reply(value_xml);
            assert_eq!(fast(&body), Some(general(&body)), "{value_xml}");
        }
        let mut bom = String::from("\u{FEFF}");
        bom.push_str(&reply("<value><int>1</int></value>"));
        assert_eq!(fast(&bom), Some(Value::Int(1)));
        let plain =
            "<methodResponse><params><param><value>x</value></param></params></methodResponse>";
        assert_eq!(fast(plain), Some(general(plain)));
    }

    /// Each falls back: valid replies the reader leaves to the general decoder, and invalid
    /// ones whose error only the general decoder words.
    #[test]
    fn anything_outside_the_subset_falls_back() {
        for value_xml in [
            // Valid, but not what the fast reader knows.
            "<value><string>x<![CDATA[y]]></string></value>",
            "<value><string>x<!-- c -->y</string></value>",
            "<value><string>&#X41;</string></value>",
            "<value><string>&#00000000065;</string></value>",
            "<value><int>&#49;</int></value>",
            "<value><double>1.5</double></value>",
            "<value><dateTime.iso8601>20240101T00:00:00</dateTime.iso8601></value>",
            "<value><base64>aGk=</base64></value>",
            "<value><nil/></value>",
            "<value><ex:i8>1</ex:i8></value>",
            "<value><struct/></value>",
            "<value><array><data/></array></value>",
            "<value><struct><member><name/><value/></member></struct></value>",
            "<value type=\"x\"><int>1</int></value>",
            "<value ><int>1</int></value>",
            "<value><int>1</int ></value>",
            "<value><array><data><value><array><data><value><array><data><value><array><data>\
             <value><array><data></data></array></value></data></array></value></data></array></value>\
             </data></array></value></data></array></value>",
            // Invalid: the general decoder's error.
            "<value><string>&lol;</string></value>",
            "<value><string>&#0;</string></value>",
            "<value><string>&#xD800;</string></value>",
            "<value><string>a & b</string></value>",
            "<value><int>1</i4></value>",
            "<value><int>+</int></value>",
            "<value><int>9223372036854775808</int></value>",
            "<value><int></int></value>",
            "<value><boolean>true</boolean></value>",
            "<value>x<int>1</int></value>",
            "<value><int>1</int>x</value>",
            "<value><float>1</float></value>",
            "<value><struct><member><value><int>1</int></value></member></struct></value>",
        ] {
            let body = reply(value_xml);
            assert_eq!(fast(&body), None, "{value_xml}");
        }
        for body in [
            String::new(),
            "<?xml version='1.0' encoding='ISO-8859-1'?><methodResponse><params><param><value>x</value></param></params></methodResponse>".to_owned(),
            "<!DOCTYPE x><methodResponse><params><param><value>x</value></param></params></methodResponse>".to_owned(),
            " <?xml version='1.0'?><methodResponse><params><param><value>x</value></param></params></methodResponse>".to_owned(),
            format!("{}<!-- trailing -->", reply("<value>x</value>")),
            format!("{}x", reply("<value>x</value>")),
            reply("<value>x</value>").replace("</methodResponse>", ""),
            "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n\
             <name>faultCode</name>\n<value><int>10</int></value>\n</member>\n<member>\n\
             <name>faultString</name>\n<value><string>BAD_NAME</string></value>\n</member>\n\
             </struct></value>\n</fault>\n</methodResponse>\n"
                .to_owned(),
        ] {
            assert_eq!(fast(&body), None, "{body}");
        }
        let mut invalid_utf8 = reply("<value><string>caf</string></value>").into_bytes();
        let at = invalid_utf8.iter().position(|&b| b == b'f').unwrap_or(0);
        invalid_utf8.insert(at + 1, 0xE9);
        let read = Reader::params(&invalid_utf8).and_then(|mut r| r.value());
        assert_eq!(read, None);
    }

    #[test]
    fn every_prefix_of_a_reply_falls_back() {
        let body = reply(
            "<value><array><data>\n<value><struct>\n<member>\n<name>name</name>\n\
             <value><string>a&amp;b</string></value>\n</member>\n<member>\n<name>pid</name>\n\
             <value><int>7</int></value>\n</member>\n</struct></value>\n</data></array></value>",
        );
        assert!(fast(&body).is_some());
        for cut in 0..body.trim_end().len() {
            assert_eq!(fast(body.get(..cut).unwrap_or_default()), None, "{cut}");
        }
    }

    #[test]
    fn text_end_is_the_first_special_byte() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&b| matches!(b, b'<' | b'&' | b'\r'));
        for filler in [b'a', 0x80, 0xFF, b'=' - 1, b'<' + 1, b'\r' - 1, 0x00] {
            for len in 0..80 {
                let plain = vec![filler; len];
                assert_eq!(find_text_end(&plain), naive(&plain));
                for at in 0..len {
                    for special in [b'<', b'&', b'\r'] {
                        let mut bytes = plain.clone();
                        if let Some(b) = bytes.get_mut(at) {
                            *b = special;
                        }
                        // A second special byte later must not win.
                        if let Some(b) = bytes.get_mut(at + 3) {
                            *b = b'<';
                        }
                        assert_eq!(find_text_end(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn int_parsing_matches_the_standard_parser() {
        for text in [
            "0",
            "-0",
            "+0",
            "007",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "+",
            "-",
            "",
            "+-1",
            "1_000",
            "١",
            "12a",
        ] {
            assert_eq!(
                parse_int(text.as_bytes()),
                text.parse::<i64>().ok(),
                "{text}"
            );
        }
    }
}
