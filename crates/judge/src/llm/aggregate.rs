//! From first-token candidates to a 0-100 score, exactly as the study aggregates them.

/// Below this much probability on integer tokens the judge said something else (CODE,
/// REFUSAL): the score is `None`.
pub const MIN_INTEGER_MASS: f64 = 0.25;

/// `candidates`: (token text, probability) of the first generated token, as the judge's
/// `top_logprobs` list gives them (probability = exp(logprob)).
///
/// Keeps the tokens that parse as integers 0..=100 (as Python's `int(token)` would after the
/// study's check: the text must be a plain decimal integer), and returns Σk·p / Σp, or `None`
/// when Σp < [`MIN_INTEGER_MASS`].
pub fn score_0_100<'a>(candidates: impl IntoIterator<Item = (&'a str, f64)>) -> Option<f64> {
    let (mut weighted, mut mass) = (0.0, 0.0);
    for (token, p) in candidates {
        if let Some(k) = parse_score_token(token) {
            weighted += f64::from(k) * p;
            mass += p;
        }
    }
    (mass >= MIN_INTEGER_MASS).then(|| weighted / mass)
}

/// The study does `int(key)` and skips on ValueError, then keeps 0..=100. `int()` accepts
/// surrounding whitespace, a sign and underscores between digits; tokens from a tokenizer are
/// never signed or underscored numbers that a judge means as scores, so plain digits with
/// optional surrounding whitespace is the faithful subset.
fn parse_score_token(token: &str) -> Option<u32> {
    let t = token.trim();
    if t.is_empty() || t.len() > 3 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<u32>().ok().filter(|k| *k <= 100)
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
    fn rejects_non_decimal_tokens() {
        assert_eq!(parse_score_token(" 42"), Some(42));
        assert_eq!(parse_score_token("-1"), None);
        assert_eq!(parse_score_token("1e2"), None);
        assert_eq!(parse_score_token("100"), Some(100));
        assert_eq!(parse_score_token("0100"), None);
    }
}
