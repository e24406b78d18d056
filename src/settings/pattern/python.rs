//! Python `re` syntax rewritten for fancy-regex: a scanner that reads a pattern as Python's
//! parser (`sre_parse`, 3.11) does and writes the same pattern in the syntax fancy-regex reads
//! the same way.
//!
//! Most of Python's syntax passes through. Rewritten:
//! - `\Z` (Python: end of string) becomes `\z` (fancy-regex's `\Z` allows trailing newlines);
//! - `$` outside multi-line mode also matches before a final newline in Python, so a second
//!   form with `(?=\n?\z)` is written for names that end in one (see [`Translation`]);
//! - `(?P<name>...)` becomes a plain group and `(?P=name)`, `\1`, `(?(name)...)` refer to it
//!   by number (fancy-regex refuses numbered references once a group has a name);
//! - `(?#...)` comments and verbose-mode (`(?x)`) spaces and comments are dropped, so the
//!   output never depends on fancy-regex's own verbose rules (which differ inside classes);
//! - escapes become the characters they stand for (`\x41`, `\u00e9`, octal `\101`, `\0`,
//!   `[\b]` as backspace, `\<` as `<`, which is a word boundary in fancy-regex), and literal
//!   characters that fancy-regex or regex-syntax would read as syntax (`[[:alpha:]]`, `&&`,
//!   `~~` in classes, a `{` that is not a repetition) are escaped;
//! - `{,n}` and `{,}` get their lower bound written out;
//! - a conditional's "no" branch ends in `(?=)`, so that `(?(1))` stays a conditional;
//! - a quantified look-around or empty group, which fancy-regex cannot repeat, becomes what it
//!   amounts to (see `Scanner::zero_width_repeat`).
//!
//! What Python itself refuses is refused with Python's message ("multiple repeat", "bad escape
//! \q", "unknown group name", global flags not at the start, ...). Valid Python that cannot be
//! matched here is refused as unsupported: the `a` (ASCII) flag, `\N{...}` named characters
//! and surrogate code points. Look-behinds of variable width are accepted, where Python
//! requires a fixed width.

use std::collections::HashMap;

/// The pattern for fancy-regex, in the two forms `$` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    /// Exact for names that do not end in `\n` (every process and metric name in practice):
    /// there Python's `$` matches only at the end, as fancy-regex's does.
    pub plain: String,
    /// Exact for names that end in `\n`, where Python's `$` (outside multi-line mode) also
    /// matches before that newline: `$` written as `(?=\n?\z)`. `None` when the pattern has no
    /// such `$`, so `plain` is exact for every name.
    pub trailing_newline: Option<String>,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Python's `re` refuses it too: Python's message, and the position (in characters) it
    /// gives.
    Invalid { message: String, position: usize },
    /// Valid Python that cannot be matched here: what it is.
    Unsupported(String),
}

/// Characters `re.VERBOSE` skips.
const VERBOSE_SPACE: &[char] = &[' ', '\t', '\n', '\r', '\u{b}', '\u{c}'];
/// Python's `MAXREPEAT` (and `MAXGROUPS` is smaller still): larger numbers are errors there.
const MAX_REPEAT: u64 = u32::MAX as u64;

pub fn translate(pattern: &str) -> Result<Translation, Refusal> {
    let mut s = Scanner {
        chars: pattern.chars().collect(),
        pos: 0,
        plain: String::with_capacity(pattern.len() + 8),
        newline: String::new(),
        has_end_dollar: false,
        flags: Flags::default(),
        stack: Vec::new(),
        groups: Vec::new(),
        names: HashMap::new(),
        conditions: Vec::new(),
        prev: Item::Nothing,
        last_start: (0, 0),
        top_started: false,
    };
    s.run()?;
    Ok(Translation {
        trailing_newline: s.has_end_dollar.then_some(s.newline),
        plain: s.plain,
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    verbose: bool,
    multiline: bool,
}

/// The last item of the current branch, for Python's quantifier rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Start of the pattern, of a group or of an alternative: "nothing to repeat".
    Nothing,
    /// `^`, `$`, `\A`, `\Z`, `\b`, `\B`: "nothing to repeat" in Python too.
    Anchor,
    /// Already quantified: "multiple repeat".
    Repeat,
    /// A quantified look-around or empty group: "multiple repeat" too, and still zero-width
    /// for a group around it (see `zero_width_repeat`).
    ZeroWidthRepeat,
    /// A look-around group: Python repeats it, fancy-regex cannot (see `zero_width_repeat`).
    LookAround,
    /// `(?:)` or `(?i:)` with nothing inside: the same.
    EmptyGroup,
    Atom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Capture(usize),
    /// Non-capturing, atomic, or scoped flags.
    Plain,
    LookAround,
    /// `(?(id)yes|no)`, with the `|` seen so far.
    Conditional(u32),
}

struct Group {
    kind: Kind,
    /// Where its `(` is, for "unterminated subpattern".
    open: usize,
    /// Flags outside the group, restored at its `)`.
    outer: Flags,
    /// Output lengths (both forms) before its `(`, to wrap it when it is repeated.
    before: (usize, usize),
    /// Output length after the opening, to tell an empty group.
    start: usize,
}

struct Scanner {
    chars: Vec<char>,
    pos: usize,
    plain: String,
    newline: String,
    has_end_dollar: bool,
    flags: Flags,
    stack: Vec<Group>,
    /// Per group number (index + 1): closed yet?
    groups: Vec<bool>,
    names: HashMap<String, usize>,
    /// Numbered conditions with their positions: Python checks them at the end, so they may
    /// refer to a later group.
    conditions: Vec<(usize, usize)>,
    prev: Item,
    /// Where the last group starts in both outputs (see `Group::before`).
    last_start: (usize, usize),
    /// Something other than comments and global flags at the top level: global flags are
    /// refused after it.
    top_started: bool,
}

fn invalid(message: impl Into<String>, position: usize) -> Refusal {
    Refusal::Invalid {
        message: message.into(),
        position,
    }
}

fn unsupported(what: impl Into<String>) -> Refusal {
    Refusal::Unsupported(what.into())
}

/// Whether Python accepts `name` as a group name (`str.isidentifier`).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// A literal character outside a class, escaped where fancy-regex would read it as syntax
/// (`\<` and `\>` would be word boundaries there, so they stay unescaped).
fn literal(c: char) -> String {
    if "\\.+*?()|[]{}^$".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Writes to both forms.
    fn emit(&mut self, text: &str) {
        self.plain.push_str(text);
        self.newline.push_str(text);
    }

    fn item(&mut self, item: Item) {
        self.prev = item;
        if self.stack.is_empty() {
            self.top_started = true;
        }
    }

    fn run(&mut self) -> Result<(), Refusal> {
        while let Some(c) = self.next() {
            if self.flags.verbose {
                if VERBOSE_SPACE.contains(&c) {
                    continue;
                }
                if c == '#' {
                    while let Some(c) = self.next() {
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            match c {
                '|' => {
                    if let Some(Group {
                        kind: Kind::Conditional(bars),
                        ..
                    }) = self.stack.last_mut()
                    {
                        *bars += 1;
                        if *bars > 1 {
                            return Err(invalid(
                                "conditional backref with more than two branches",
                                self.pos - 1,
                            ));
                        }
                    }
                    self.emit("|");
                    self.item(Item::Nothing);
                }
                '(' => self.open_group()?,
                ')' => self.close_group()?,
                '[' => {
                    self.class()?;
                    self.item(Item::Atom);
                }
                '.' => {
                    self.emit(".");
                    self.item(Item::Atom);
                }
                '^' => {
                    self.emit("^");
                    self.item(Item::Anchor);
                }
                '$' => {
                    self.plain.push('$');
                    if self.flags.multiline {
                        self.newline.push('$');
                    } else {
                        self.newline.push_str("(?=\\n?\\z)");
                        self.has_end_dollar = true;
                    }
                    self.item(Item::Anchor);
                }
                '*' => self.quantifier(0, None, c, self.pos - 1)?,
                '+' => self.quantifier(1, None, c, self.pos - 1)?,
                '?' => self.quantifier(0, Some(1), c, self.pos - 1)?,
                '{' => {
                    let at = self.pos - 1;
                    match self.repeat_bounds()? {
                        Some((lo, hi)) => self.quantifier(lo, hi, c, at)?,
                        None => {
                            self.emit("\\{");
                            self.item(Item::Atom);
                        }
                    }
                }
                '\\' => self.escape()?,
                c => {
                    self.emit(&literal(c));
                    self.item(Item::Atom);
                }
            }
        }
        if let Some(group) = self.stack.last() {
            return Err(invalid("missing ), unterminated subpattern", group.open));
        }
        for &(group, position) in &self.conditions {
            if group > self.groups.len() {
                return Err(invalid(
                    format!("invalid group reference {group}"),
                    position,
                ));
            }
        }
        Ok(())
    }

    /// After a `{`: `Some((lo, hi))` for a repetition, `None` (nothing consumed) for a literal
    /// `{`, as Python decides.
    fn repeat_bounds(&mut self) -> Result<Option<(u64, Option<u64>)>, Refusal> {
        let start = self.pos;
        if self.peek() == Some('}') {
            return Ok(None);
        }
        let digits = |s: &mut Scanner| {
            let mut text = String::new();
            while let Some(c) = s.peek().filter(char::is_ascii_digit) {
                text.push(c);
                s.pos += 1;
            }
            text
        };
        let lo = digits(self);
        let hi = if self.eat(',') {
            digits(self)
        } else {
            lo.clone()
        };
        if !self.eat('}') {
            self.pos = start;
            return Ok(None);
        }
        let number = |text: &str| -> Result<Option<u64>, Refusal> {
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<u64>() {
                Ok(n) if n < MAX_REPEAT => Ok(Some(n)),
                _ => Err(invalid("the repetition number is too large", start)),
            }
        };
        let lo = number(&lo)?.unwrap_or(0);
        let hi = number(&hi)?;
        if hi.is_some_and(|hi| hi < lo) {
            return Err(invalid("min repeat greater than max repeat", start));
        }
        Ok(Some((lo, hi)))
    }

    /// A quantifier (its first character already read), with Python's checks on what it
    /// repeats, then its lazy `?` or possessive `+`.
    fn quantifier(
        &mut self,
        lo: u64,
        hi: Option<u64>,
        first: char,
        at: usize,
    ) -> Result<(), Refusal> {
        match self.prev {
            Item::Nothing | Item::Anchor => return Err(invalid("nothing to repeat", at)),
            Item::Repeat | Item::ZeroWidthRepeat => return Err(invalid("multiple repeat", at)),
            Item::LookAround | Item::EmptyGroup => {
                self.zero_width_repeat(lo, hi);
                return Ok(());
            }
            Item::Atom => {}
        }
        let text = match (first, lo, hi) {
            ('*' | '+' | '?', _, _) => first.to_string(),
            (_, lo, Some(hi)) if hi == lo => format!("{{{lo}}}"),
            (_, lo, Some(hi)) => format!("{{{lo},{hi}}}"),
            (_, lo, None) => format!("{{{lo},}}"),
        };
        self.emit(&text);
        if self.eat('?') {
            self.emit("?");
        } else if self.eat('+') {
            self.emit("+");
        }
        self.item(Item::Repeat);
        Ok(())
    }

    /// Python repeats a look-around or an empty group; fancy-regex cannot. Either is zero-width,
    /// so repeating it means holding once (a minimum of 1 or more) or being skippable (a
    /// minimum of 0): `(?=a)+` is `(?=a)`, `(?=a)*` is `(?:(?=a)|)`, tried in the quantifier's
    /// order (`(?:|(?=a))` when lazy, atomic when possessive) so captures inside it come out
    /// as in Python.
    fn zero_width_repeat(&mut self, lo: u64, hi: Option<u64>) {
        let lazy = self.eat('?');
        let possessive = !lazy && self.eat('+');
        if self.prev == Item::LookAround && lo == 0 {
            let (open, close) = if lazy || hi == Some(0) {
                ("(?:|", ")")
            } else if possessive {
                ("(?>", "|)")
            } else {
                ("(?:", "|)")
            };
            let (plain, newline) = self.last_start;
            self.plain.insert_str(plain, open);
            self.newline.insert_str(newline, open);
            self.emit(close);
        }
        self.item(Item::ZeroWidthRepeat);
    }

    fn open_group(&mut self) -> Result<(), Refusal> {
        let at = self.pos - 1;
        if !self.eat('?') {
            self.groups.push(false);
            let n = self.groups.len();
            return self.push(Kind::Capture(n), "(", at);
        }
        let Some(c) = self.next() else {
            return Err(invalid("unexpected end of pattern", self.pos));
        };
        match c {
            ':' => self.push(Kind::Plain, "(?:", at),
            '>' => self.push(Kind::Plain, "(?>", at),
            '=' => self.push(Kind::LookAround, "(?=", at),
            '!' => self.push(Kind::LookAround, "(?!", at),
            '<' if self.eat('=') => self.push(Kind::LookAround, "(?<=", at),
            '<' if self.eat('!') => self.push(Kind::LookAround, "(?<!", at),
            '<' => Err(self.unknown_extension("?<", at)),
            '#' => {
                loop {
                    match self.next() {
                        None => {
                            return Err(invalid("missing ), unterminated comment", at));
                        }
                        Some(')') => break,
                        Some('\\') => {
                            self.next();
                        }
                        Some(_) => {}
                    }
                }
                Ok(())
            }
            'P' if self.eat('<') => {
                let (name, start) = self.name('>', "missing >, unterminated name")?;
                let n = self.groups.len() + 1;
                if let Some(first) = self.names.insert(name.clone(), n) {
                    return Err(invalid(
                        format!(
                            "redefinition of group name '{name}' as group {n}; was group {first}"
                        ),
                        start,
                    ));
                }
                self.groups.push(false);
                self.push(Kind::Capture(n), "(", at)
            }
            'P' if self.eat('=') => {
                let (name, start) = self.name(')', "missing ), unterminated name")?;
                let Some(&n) = self.names.get(&name) else {
                    return Err(invalid(format!("unknown group name '{name}'"), start));
                };
                self.backref(n, start, start)
            }
            'P' => Err(self.unknown_extension("?P", at)),
            '(' => self.condition(at),
            c if "aiLmsux-".contains(c) => self.flags_group(c, at),
            _ => Err(self.unknown_extension("?", at)),
        }
    }

    fn unknown_extension(&mut self, head: &str, at: usize) -> Refusal {
        match self.peek_or_last(head) {
            Some(c) => invalid(format!("unknown extension {head}{c}"), at + 1),
            None => invalid("unexpected end of pattern", self.pos),
        }
    }

    /// The character after `(` + `head`: `(?<x` shows `x`; for `?` it is the one just read.
    fn peek_or_last(&self, head: &str) -> Option<char> {
        if head == "?" {
            self.chars.get(self.pos - 1).copied()
        } else {
            self.peek()
        }
    }

    fn push(&mut self, kind: Kind, text: &str, open: usize) -> Result<(), Refusal> {
        let before = (self.plain.len(), self.newline.len());
        self.emit(text);
        if self.stack.is_empty() {
            self.top_started = true;
        }
        self.stack.push(Group {
            kind,
            open,
            outer: self.flags,
            before,
            start: self.plain.len(),
        });
        self.prev = Item::Nothing;
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), Refusal> {
        let Some(group) = self.stack.pop() else {
            return Err(invalid("unbalanced parenthesis", self.pos - 1));
        };
        let empty = self.plain.len() == group.start;
        // A non-capturing group around a single look-around or empty group (quantified or not)
        // is one too, for fancy-regex, which unwraps it.
        let wraps_zero_width = matches!(
            self.prev,
            Item::LookAround | Item::EmptyGroup | Item::ZeroWidthRepeat
        ) && self.last_start.0 == group.start;
        let inner = match self.prev {
            Item::EmptyGroup => Item::EmptyGroup,
            _ => Item::LookAround,
        };
        self.last_start = group.before;
        if let Kind::Conditional(bars) = group.kind {
            // fancy-regex reads a conditional whose branches are both empty, `(?(1))`, as "group
            // 1 matched"; Python, as an empty match either way. An always-true look-ahead at the
            // end of the "no" branch keeps it a conditional, and changes nothing else.
            self.emit(if bars == 0 { "|(?=)" } else { "(?=)" });
        }
        self.emit(")");
        self.flags = group.outer;
        let item = match group.kind {
            Kind::Capture(n) => {
                self.groups[n - 1] = true;
                Item::Atom
            }
            Kind::LookAround => Item::LookAround,
            Kind::Plain if empty => Item::EmptyGroup,
            Kind::Plain if wraps_zero_width => inner,
            Kind::Plain | Kind::Conditional(_) => Item::Atom,
        };
        self.item(item);
        Ok(())
    }

    /// A group name up to `end`, checked as Python checks it, and where it starts.
    fn name(&mut self, end: char, unterminated: &str) -> Result<(String, usize), Refusal> {
        let start = self.pos;
        let mut name = String::new();
        loop {
            match self.next() {
                None => return Err(invalid(unterminated, start)),
                Some(c) if c == end => break,
                Some(c) => name.push(c),
            }
        }
        if name.is_empty() {
            return Err(invalid("missing group name", start));
        }
        if !is_identifier(&name) {
            return Err(invalid(
                format!("bad character in group name '{name}'"),
                start,
            ));
        }
        Ok((name, start))
    }

    /// A reference to group `n`, which must exist and be closed (Python's rule); the positions
    /// are those Python gives for each error.
    fn backref(&mut self, n: usize, missing_at: usize, open_at: usize) -> Result<(), Refusal> {
        match self.groups.get(n.wrapping_sub(1)) {
            None => return Err(invalid(format!("invalid group reference {n}"), missing_at)),
            Some(false) => return Err(invalid("cannot refer to an open group", open_at)),
            Some(true) => {}
        }
        // Delimited, so a digit after it stays a literal.
        self.emit(&format!("\\k<{n}>"));
        self.item(Item::Atom);
        Ok(())
    }

    /// `(?(id)yes|no)`, after `(?(`.
    fn condition(&mut self, at: usize) -> Result<(), Refusal> {
        let start = self.pos;
        let mut id = String::new();
        loop {
            match self.next() {
                None => return Err(invalid("missing ), unterminated name", start)),
                Some(')') => break,
                Some(c) => id.push(c),
            }
        }
        if id.is_empty() {
            return Err(invalid("missing group name", start));
        }
        let n = if id.chars().all(|c| c.is_ascii_digit()) {
            let n = id.parse::<usize>().unwrap_or(usize::MAX);
            if n == 0 {
                return Err(invalid("bad group number", start));
            }
            self.conditions.push((n, start));
            n
        } else if is_identifier(&id) {
            match self.names.get(&id) {
                Some(&n) => n,
                None => return Err(invalid(format!("unknown group name '{id}'"), start)),
            }
        } else {
            return Err(invalid(
                format!("bad character in group name '{id}'"),
                start,
            ));
        };
        self.push(Kind::Conditional(0), &format!("(?({n})"), at)
    }

    /// `(?flags)` (global) or `(?flags-flags:...)` (scoped), from its first flag character.
    fn flags_group(&mut self, first: char, at: usize) -> Result<(), Refusal> {
        let mut add = String::new();
        let mut del = String::new();
        let mut c = first;
        if c != '-' {
            loop {
                match c {
                    'L' => {
                        return Err(invalid(
                            "bad inline flags: cannot use 'L' flag with a str pattern",
                            self.pos,
                        ))
                    }
                    'a' => return Err(unsupported("the ASCII-only flag (?a)")),
                    _ => add.push(c),
                }
                c = match self.next() {
                    None => return Err(invalid("missing -, : or )", self.pos)),
                    Some(c) => c,
                };
                if ")-:".contains(c) {
                    break;
                }
                if !"aiLmsux".contains(c) {
                    let message = if c.is_alphabetic() {
                        "unknown flag"
                    } else {
                        "missing -, : or )"
                    };
                    return Err(invalid(message, self.pos - 1));
                }
            }
        }
        if c == ')' {
            if !self.stack.is_empty() || self.top_started {
                return Err(invalid(
                    "global flags not at the start of the expression",
                    at,
                ));
            }
            if add.contains('x') {
                self.flags.verbose = true;
            }
            if add.contains('m') {
                self.flags.multiline = true;
            }
            let kept: String = add.chars().filter(|c| "ims".contains(*c)).collect();
            if !kept.is_empty() {
                self.emit(&format!("(?{kept})"));
            }
            return Ok(());
        }
        if c == '-' {
            c = match self.next() {
                None => return Err(invalid("missing flag", self.pos)),
                Some(c) => c,
            };
            if !"aiLmsux".contains(c) {
                let message = if c.is_alphabetic() {
                    "unknown flag"
                } else {
                    "missing flag"
                };
                return Err(invalid(message, self.pos - 1));
            }
            loop {
                if "aLu".contains(c) {
                    return Err(invalid(
                        "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                        self.pos,
                    ));
                }
                del.push(c);
                c = match self.next() {
                    None => return Err(invalid("missing :", self.pos)),
                    Some(c) => c,
                };
                if c == ':' {
                    break;
                }
                if !"aiLmsux".contains(c) {
                    let message = if c.is_alphabetic() {
                        "unknown flag"
                    } else {
                        "missing :"
                    };
                    return Err(invalid(message, self.pos - 1));
                }
            }
        }
        if add.chars().any(|c| del.contains(c)) {
            return Err(invalid(
                "bad inline flags: flag turned on and off",
                self.pos - 1,
            ));
        }
        let keep = |set: &str| -> String { set.chars().filter(|c| "ims".contains(*c)).collect() };
        let (on, off) = (keep(&add), keep(&del));
        let text = if off.is_empty() {
            format!("(?{on}:")
        } else {
            format!("(?{on}-{off}:")
        };
        // `push` keeps the flags outside; the ones below apply inside the group.
        self.push(Kind::Plain, &text, at)?;
        if add.contains('x') {
            self.flags.verbose = true;
        }
        if del.contains('x') {
            self.flags.verbose = false;
        }
        if add.contains('m') {
            self.flags.multiline = true;
        }
        if del.contains('m') {
            self.flags.multiline = false;
        }
        Ok(())
    }
}

mod escape;

#[cfg(test)]
#[path = "python_tests.rs"]
mod tests;
