//! From first-token candidates to a 0-100 score, exactly as the study aggregates them.

/// Below this much probability on integer tokens the judge said something else (CODE,
/// REFUSAL): the score is `None`.
pub const MIN_INTEGER_MASS: f64 = 0.25;

/// `candidates`: (token text, probability) of the first generated token, as the judge's
/// `top_logprobs` list gives them (probability = exp(logprob)).
///
/// The study builds a dict `{token: prob}` (a repeated token keeps its first place and its
/// last probability), keeps the tokens where Python's `int(token)` succeeds and lies in
/// 0..=100, and returns Σk·p / Σp, or `None` when Σp < [`MIN_INTEGER_MASS`]. The same here,
/// summed in the same order so the floating-point result is identical.
pub fn score_0_100<'a>(candidates: impl IntoIterator<Item = (&'a str, f64)>) -> Option<f64> {
    read_0_100(candidates).score
}

/// A 0-100 readout: the score, and how much probability the judge put on the integers 0..=100
/// (the score is `None` when that mass is under [`MIN_INTEGER_MASS`]; the mass says by how far).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readout {
    pub score: Option<f64>,
    pub integer_mass: f64,
}

impl Readout {
    /// The study's aggregate over (integer, probability) candidates: Σk·p / Σp, summed in order.
    pub fn from_numbers(numbers: impl IntoIterator<Item = (u32, f64)>) -> Readout {
        let (mut weighted, mut mass) = (0.0, 0.0);
        for (k, p) in numbers {
            weighted += f64::from(k) * p;
            mass += p;
        }
        Readout {
            score: (mass >= MIN_INTEGER_MASS).then(|| weighted / mass),
            integer_mass: mass,
        }
    }
}

/// [`score_0_100`] with the integer mass it saw.
pub fn read_0_100<'a>(candidates: impl IntoIterator<Item = (&'a str, f64)>) -> Readout {
    let mut by_token: Vec<(&str, f64)> = Vec::with_capacity(20);
    for (token, p) in candidates {
        match by_token.iter_mut().find(|(t, _)| *t == token) {
            Some(entry) => entry.1 = p,
            None => by_token.push((token, p)),
        }
    }
    Readout::from_numbers(by_token.into_iter().filter_map(|(token, p)| {
        let k = python_int(token).filter(|k| (0..=100).contains(k))?;
        Some((k as u32, p))
    }))
}

/// First code point of every run of ten Unicode decimal digits (category Nd, values 0..9),
/// Unicode 15.1 (Python 3.12/3.13; 3.11's Unicode 14 lacks U+11F50 and U+1E4F0).
const DECIMAL_ZEROS: [u32; 68] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

fn decimal_value(c: char) -> Option<u32> {
    let c = u32::from(c);
    let i = DECIMAL_ZEROS.partition_point(|&zero| zero <= c);
    let zero = DECIMAL_ZEROS[i.checked_sub(1)?];
    (c - zero < 10).then_some(c - zero)
}

/// Python's `int(text)` (base 10): surrounding whitespace (ASCII `\t\n\v\f\r ` and Unicode
/// white space: what CPython maps to a space before parsing, the same set as
/// [`char::is_whitespace`]), an optional `+`/`-`, then Unicode decimal digits with single
/// underscores between them; leading zeros allowed. `None` where Python raises ValueError.
/// Values beyond ±10^9 saturate (no score is that large).
pub fn python_int(text: &str) -> Option<i64> {
    let t = text.trim_matches(char::is_whitespace);
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mut value, mut any, mut after_underscore) = (0i64, false, false);
    for c in digits.chars() {
        if c == '_' {
            if !any || after_underscore {
                return None;
            }
            after_underscore = true;
            continue;
        }
        value = (value * 10 + i64::from(decimal_value(c)?)).min(1_000_000_000);
        (any, after_underscore) = (true, false);
    }
    (any && !after_underscore).then_some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_over_integer_tokens_only() {
        let got = score_0_100([("80", 0.5), ("I", 0.3), ("60", 0.25), ("101", 0.1)]).unwrap();
        assert!((got - (80.0 * 0.5 + 60.0 * 0.25) / 0.75).abs() < 1e-12);
    }

    #[test]
    fn none_below_a_quarter_of_the_mass() {
        assert_eq!(score_0_100([("CODE", 0.9), ("0", 0.1)]), None);
        assert_eq!(score_0_100([("REF", 0.76), ("7", 0.24)]), None);
        assert_eq!(score_0_100([("REF", 0.75), ("7", 0.25)]), Some(7.0));
    }

    #[test]
    fn a_repeated_token_counts_once_with_its_last_probability_as_in_a_python_dict() {
        // {"10": 0.3, "20": 0.3}: (10 * 0.3 + 20 * 0.3) / 0.6.
        let got = score_0_100([("10", 0.2), ("20", 0.3), ("10", 0.3)]).unwrap();
        assert!((got - 15.0).abs() < 1e-12, "{got}");
    }

    /// Each case is what Python 3.11 printed for `int(token)` (ValueError = None).
    #[test]
    fn tokens_parse_exactly_as_pythons_int() {
        let cases: &[(&str, Option<i64>)] = &[
            ("+5", Some(5)),
            (" 7", Some(7)),
            ("5\n", Some(5)),
            ("\u{a0}42", Some(42)),
            ("\u{3000}7\u{3000}", Some(7)),
            ("\u{663}", Some(3)),                 // Arabic-Indic three
            ("\u{661}\u{660}\u{660}", Some(100)), // Arabic-Indic 100
            ("\u{663}_\u{663}", Some(33)),
            ("1_\u{663}", Some(13)),
            ("\u{1d7d7}", Some(9)), // mathematical bold nine
            ("\u{ff17}", Some(7)),  // full-width seven
            ("1_0", Some(10)),
            ("0100", Some(100)),
            ("00000000000000000000050", Some(50)),
            ("-0", Some(0)),
            ("-1", Some(-1)),
            ("101", Some(101)),
            ("\x1c5", None), // ASCII separators are not white space to int()
            ("+ 5", None),
            ("+_5", None),
            ("_1", None),
            ("1__0", None),
            ("1_", None),
            ("", None),
            ("  ", None),
            ("+", None),
            ("5 5", None),
            ("1e2", None),
            ("0x10", None),
            ("\u{bd}", None),   // ½: numeric, not decimal
            ("\u{b2}", None),   // superscript two
            ("\u{2164}", None), // Roman numeral five
        ];
        for (token, want) in cases {
            assert_eq!(python_int(token), *want, "int({token:?})");
        }
        assert_eq!(score_0_100([("+5", 0.5), ("\u{663}", 0.5)]), Some(4.0));
        assert_eq!(score_0_100([("-0", 1.0)]), Some(0.0));
        assert_eq!(score_0_100([("-1", 0.9), ("7", 0.1)]), None);
    }

    #[test]
    fn every_decimal_digit_run_has_ten_values() {
        assert!(DECIMAL_ZEROS.windows(2).all(|w| w[1] >= w[0] + 10));
        assert_eq!(decimal_value('/'), None);
        assert_eq!(decimal_value(':'), None);
        assert_eq!(decimal_value('\u{669}'), Some(9));
        assert_eq!(decimal_value('\u{66a}'), None);
    }
}
