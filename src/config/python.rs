//! Python's `repr()` and `str()` of YAML values, for Datadog's messages that embed them
//! (`'proc_names' should be a list of strings. e.g. ['not-a-list']`): users compare our text
//! with the Agent's.

use serde_yaml::Value;

/// `repr(value)` as Python 3 prints it.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_repr(f),
            _ => n.to_string(),
        },
        Value::String(s) => str_repr(s),
        Value::Sequence(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Mapping(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Tagged(t) => repr(&t.value),
    }
}

/// `str(value)`, i.e. `%s`: strings as they are, everything else as `repr`.
pub fn str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Python switches to exponent notation outside 1e-4 <= |f| < 1e16.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn matches_python_repr() {
        assert_eq!(repr(&y("not-a-list")), "'not-a-list'");
        assert_eq!(
            repr(&y("[1e20, 1.5, 1.0e-5, 100.0, .inf, 5, ~, true]")),
            "[1e+20, 1.5, 1e-05, 100.0, inf, 5, None, True]"
        );
        assert_eq!(repr(&y("\"it's\"")), "\"it's\"");
        assert_eq!(repr(&y("'a\"b'")), "'a\"b'");
        assert_eq!(repr(&y("'x\\y'")), "'x\\\\y'");
        assert_eq!(repr(&y("{a: [1]}")), "{'a': [1]}");
        assert_eq!(repr(&y("\"tab\\there\"")), "'tab\\there'");
    }

    #[test]
    fn str_is_raw_for_strings_only() {
        assert_eq!(str(&y("invalid_status")), "invalid_status");
        assert_eq!(str(&y("5")), "5");
        assert_eq!(str(&y("[a]")), "['a']");
        assert_eq!(str(&y("~")), "None");
    }
}
