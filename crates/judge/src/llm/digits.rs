//! The 0-100 readout for a tokenizer that writes numbers digit by digit (SmolLM2, Qwen, ...).
//!
//! The study reads the score off the first token's top-20 logprobs; with one token per digit
//! that token is only the first digit of "85". Here P(k) for k in 0..=100 is the probability of
//! k's whole digit sequence followed by a non-digit, read from the top-20 candidates after each
//! digit prefix (one greedy step per prefix). The arithmetic is kept apart from the model so it
//! can be checked on hand-made tables: the caller answers [`Continuation`]s with top tokens.

use super::aggregate::Readout;

/// Top next tokens (text, probability), most likely first.
pub type Top = Vec<(String, f64)>;

/// A prompt (by index) followed by digit tokens already written (their texts, concatenated).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Continuation {
    pub prompt: usize,
    pub text: String,
}

/// A first digit is expanded when it has at least this share of the most likely token's
/// probability (the rest cannot move a 0-100 mean by more than a fraction of a point).
const EXPAND_AT_LEAST: f64 = 0.01;

/// One readout per prompt from its first-token candidates (`first`) and `next`, which gives
/// the top tokens after each continuation it is asked about (in one batch per step).
///
/// Two-digit numbers other than 10 are taken to end after their second digit (a third digit
/// would make a 3-digit number the rubric does not allow); "10" is expanded once more for
/// 100. A leading 0 ends the number ("05" is not how a score is written). The aggregate is
/// the study's: Σk·P(k) / ΣP(k), `None` under [`super::MIN_INTEGER_MASS`].
pub fn digit_sequence_readout<E>(
    first: &[Top],
    mut next: impl FnMut(&[Continuation]) -> Result<Vec<Top>, E>,
) -> Result<Vec<Readout>, E> {
    let mut numbers: Vec<Vec<(u32, f64)>> = vec![Vec::new(); first.len()];
    // First digits worth expanding: (continuation, digit, probability).
    let mut prefixes = Vec::new();
    for (prompt, top) in first.iter().enumerate() {
        let best = top.iter().map(|t| t.1).fold(0.0, f64::max);
        for (token, p) in top {
            if let Some(d) = single_digit(token)
                && *p >= best * EXPAND_AT_LEAST
            {
                let text = token.clone();
                prefixes.push((Continuation { prompt, text }, d, *p));
            }
        }
    }
    let continuations: Vec<Continuation> = prefixes.iter().map(|p| p.0.clone()).collect();
    let second = next(&continuations)?;
    let mut tens = Vec::new();
    for ((at, k, p), top) in prefixes.iter().zip(&second) {
        numbers[at.prompt].push((*k, p * ends_here(top)));
        if *k == 0 {
            continue;
        }
        for (token, q) in top {
            if let Some(e) = single_digit(token) {
                match k * 10 + e {
                    10 => tens.push((
                        Continuation {
                            prompt: at.prompt,
                            text: format!("{}{token}", at.text),
                        },
                        p * q,
                    )),
                    two => numbers[at.prompt].push((two, p * q)),
                }
            }
        }
    }
    let continuations: Vec<Continuation> = tens.iter().map(|t| t.0.clone()).collect();
    let third = if continuations.is_empty() {
        Vec::new()
    } else {
        next(&continuations)?
    };
    for ((at, p), top) in tens.iter().zip(&third) {
        let zero: f64 = top
            .iter()
            .filter(|(t, _)| single_digit(t) == Some(0))
            .map(|t| t.1)
            .sum();
        numbers[at.prompt].push((10, p * ends_here(top)));
        numbers[at.prompt].push((100, p * zero));
    }
    Ok(numbers.into_iter().map(Readout::from_numbers).collect())
}

/// The probability that no further digit follows (tokens outside the top list count as
/// non-digits: the list holds the likely ones).
fn ends_here(top: &Top) -> f64 {
    let digits: f64 = top
        .iter()
        .filter(|(t, _)| single_digit(t).is_some())
        .map(|t| t.1)
        .sum();
    (1.0 - digits).max(0.0)
}

/// The digit a token stands for, when it is exactly one digit (surrounding spaces allowed).
pub fn single_digit(token: &str) -> Option<u32> {
    let t = token.trim();
    let mut chars = t.chars();
    let d = chars.next()?.to_digit(10)?;
    chars.next().is_none().then_some(d)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn top(tokens: &[(&str, f64)]) -> Top {
        tokens.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    /// Reads prompt 0 from a table: its first-token candidates, and the candidates after each
    /// digit prefix. A continuation missing from the table fails the test.
    fn read(first: Top, after: &[(&str, Top)]) -> (Readout, Vec<String>) {
        let table: HashMap<&str, &Top> = after.iter().map(|(k, v)| (*k, v)).collect();
        let mut asked = Vec::new();
        let out = digit_sequence_readout(&[first], |continuations| {
            continuations
                .iter()
                .map(|c| {
                    assert_eq!(c.prompt, 0);
                    asked.push(c.text.clone());
                    table
                        .get(c.text.as_str())
                        .map(|t| (*t).clone())
                        .ok_or_else(|| format!("not in the table: {:?}", c.text))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .unwrap();
        (out[0], asked)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_single_digit_is_a_digit_then_a_non_digit() {
        let (r, asked) = read(
            top(&[("7", 0.9), ("I", 0.1)]),
            &[("7", top(&[("<|im_end|>", 0.95), ("5", 0.05)]))],
        );
        // 7 with 0.9 * 0.95, 75 with 0.9 * 0.05.
        let (p7, p75) = (0.9 * 0.95, 0.9 * 0.05);
        assert!(close(r.integer_mass, p7 + p75), "{r:?}");
        assert!(close(
            r.score.unwrap(),
            (7.0 * p7 + 75.0 * p75) / (p7 + p75)
        ));
        assert_eq!(asked, ["7"]);
    }

    #[test]
    fn two_digits_multiply_along_the_sequence() {
        let (r, _) = read(
            top(&[("8", 0.6), ("2", 0.4)]),
            &[
                ("8", top(&[("5", 0.5), ("0", 0.3), (".", 0.2)])),
                ("2", top(&[("0", 1.0)])),
            ],
        );
        let numbers = [(85.0, 0.3), (80.0, 0.18), (8.0, 0.12), (20.0, 0.4)];
        let mass: f64 = numbers.iter().map(|n| n.1).sum();
        let mean = numbers.iter().map(|(k, p)| k * p).sum::<f64>() / mass;
        assert!(close(r.integer_mass, mass), "{r:?}");
        assert!(close(r.score.unwrap(), mean), "{r:?}");
    }

    #[test]
    fn one_zero_zero_is_a_hundred_and_one_zero_then_a_non_digit_is_ten() {
        let (r, asked) = read(
            top(&[("1", 1.0)]),
            &[
                ("1", top(&[("0", 1.0)])),
                ("10", top(&[("0", 0.75), ("\n", 0.25)])),
            ],
        );
        assert!(close(r.integer_mass, 1.0), "{r:?}");
        assert!(close(r.score.unwrap(), 100.0 * 0.75 + 10.0 * 0.25), "{r:?}");
        assert_eq!(asked, ["1", "10"]);
    }

    #[test]
    fn a_non_digit_first_token_carries_no_number_and_a_leading_zero_ends_the_number() {
        // "The ..." is no number; "0" then "5" is read as 0 (and "05" not at all).
        let (r, asked) = read(
            top(&[("The", 0.5), ("0", 0.5)]),
            &[("0", top(&[("5", 0.2), ("!", 0.8)]))],
        );
        assert!(close(r.integer_mass, 0.5 * 0.8), "{r:?}");
        assert_eq!(r.score, Some(0.0));
        assert_eq!(asked, ["0"]);
    }

    #[test]
    fn under_a_quarter_of_the_mass_on_numbers_is_none_with_the_mass_reported() {
        let (r, _) = read(
            top(&[("I", 0.8), ("5", 0.2)]),
            &[("5", top(&[("<|im_end|>", 0.9), ("0", 0.1)]))],
        );
        assert_eq!(r.score, None);
        assert!(close(r.integer_mass, 0.2), "{r:?}");
    }

    #[test]
    fn unlikely_first_digits_are_not_expanded() {
        // "9" has under 1% of the best token's probability: no step is spent on it.
        let (r, asked) = read(
            top(&[("4", 0.995), ("9", 0.005)]),
            &[("4", top(&[("\n", 1.0)]))],
        );
        assert_eq!(asked, ["4"]);
        assert_eq!(r.score, Some(4.0));
    }

    #[test]
    fn single_digits_are_exactly_one_digit() {
        assert_eq!(single_digit(" 7"), Some(7));
        assert_eq!(single_digit("42"), None);
        assert_eq!(single_digit("a"), None);
        assert_eq!(single_digit(""), None);
    }
}
