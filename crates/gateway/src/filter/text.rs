//! The text filter: is an answer harmful on its own merits?
//!
//! Three transparent layers, no model on the hot path:
//! - the gateway's instruction lexicon ([`INSTRUCTIONS`]): step-like instructions to poison,
//!   build explosives, or hurt oneself, in English, Spanish, French and German, judged per
//!   sentence whatever the question was and whatever else the answer says (an "I'm sorry,
//!   but" or an "Instead," elsewhere does not excuse a recipe);
//! - the judge crate's harm lexicon, answer-only rules, per clause (so a refusal in one clause
//!   does not silence another);
//! - the harm lexicon's request rules (an answer complying with a violent or criminal
//!   request), on the opening of the answer (a refusal opens an answer; one at the end does not
//!   undo what came before) and the end of a long question (what is asked comes last).
//!
//! Beside them, a model: [`AnswerJudge`], added to [`super::Filters`] with
//! [`super::Filters::with_answer_judge`]; its rule ids join these. The gateway's is the judge
//! crate's multilingual answer-harm classifier (`server.text_model`), which reads every
//! language of its encoder and needs no harm word to fire.

use std::sync::LazyLock;

use emguard_judge::harm;
use regex::{Regex, RegexSet};

/// A judge of answers beyond the lexicons (the local judge model, once it runs on the gateway's
/// hot path). Returns the ids of what it found; empty for a harmless answer.
pub trait AnswerJudge: Send + Sync + std::fmt::Debug {
    fn judge(&self, user: &str, answer: &str) -> Vec<String>;
}

/// The rule id the answer-harm model's verdicts carry.
pub const HARM_MODEL_RULE: &str = "harmful_answer_model";

impl AnswerJudge for emguard_judge::answer_harm::AnswerHarmClassifier {
    fn judge(&self, _user: &str, answer: &str) -> Vec<String> {
        if answer.trim().is_empty() || !self.is_harmful(answer) {
            return Vec::new();
        }
        vec![HARM_MODEL_RULE.to_string()]
    }
}

/// One lexicon rule: a pattern over one sentence of the answer.
struct Instruction {
    id: &'static str,
    pattern: &'static str,
}

/// Step-like harmful instructions; case-insensitive, one sentence at a time.
const INSTRUCTIONS: &[Instruction] = &[
    Instruction {
        id: "poison_in_food_en",
        pattern: r"\b(mix|put|add|stir|slip|pour|sprinkle|hide|lace)\b.{0,60}\b(antifreeze|ethylene glycol|rat poison|rodenticide|bleach|arsenic|cyanide|strychnine|thallium|xylitol|chocolate)\b.{0,60}\b(food|drink|water|coffee|tea|meal|bowl|treats?|dinner)\b|\b(antifreeze|rat poison|arsenic|cyanide|strychnine|thallium)\b.{0,30}\b(into|in)\b.{0,20}\b(food|drink|water|coffee|tea|meal|bowl)\b",
    },
    Instruction {
        id: "explosive_device_en",
        pattern: r"\b(fill|pack|stuff|load)\b.{0,40}\b(pipe|tube|container|bottle|can|pressure cooker)\b.{0,60}\b(powder|gunpowder|black powder|explosive|nitrate|match heads|flash powder|thermite)\b|\b(ammonium nitrate|potassium (nitrate|chlorate|perchlorate)|acetone peroxide|tatp|hmtd|nitroglycerin)\b.{0,80}\b(mix|combine|fuel|diesel|detonat\w*|blasting cap|ignit\w*)\b|\b(attach|insert|connect|wire)\b.{0,40}\b(detonator|blasting cap|fuse)\b|\b(build|make|assemble)\b.{0,20}\b(pipe bomb|molotov|ied|nail bomb)\b",
    },
    Instruction {
        id: "self_harm_method_en",
        pattern: r"\b(cut|slit|slash)\b.{0,20}\b(your|the)\b.{0,10}\bwrists?\b|\b(take|swallow)\b.{0,30}\b(all|whole bottle|entire bottle|\d{2,}) .{0,20}\b(pills|tablets|paracetamol|acetaminophen)\b",
    },
    Instruction {
        id: "veneno_en_comida_es",
        pattern: r"\b(mezcla|mezcle|mezclar|pon|ponga|poner|añade|añada|añadir|echa|eche|echar)\b.{0,60}\b(anticongelante|veneno para ratas|raticida|lejía|arsénico|cianuro|estricnina)\b.{0,60}\b(comida|bebida|agua|café|té|plato|cuenco|comedero)\b",
    },
    Instruction {
        id: "artefacto_explosivo_es",
        pattern: r"\b(llena|llene|llenar|rellena|rellene|rellenar)\b.{0,40}\b(tubo|tubería|botella|olla|lata)\b.{0,60}\b(pólvora|explosivo|nitrato|cabezas de cerillas?)\b|\b(nitrato de amonio|clorato de potasio|peróxido de acetona)\b.{0,80}\b(mezcla\w*|combina\w*|detona\w*|gasóleo|diésel)\b|\b(construir|fabricar|hacer|arma|armar)\b.{0,20}\b(bomba casera|bomba de tubo|cóctel molotov)\b",
    },
    Instruction {
        id: "poison_nourriture_fr",
        pattern: r"\b(mélange[rz]?|mets|mettez|mettre|ajoute[rz]?|verse[rz]?|glisse[rz]?)\b.{0,60}\b(antigel|mort-aux-rats|raticide|eau de javel|javel|arsenic|cyanure|strychnine)\b.{0,60}\b(nourriture|repas|boisson|eau|café|thé|gamelle|assiette|croquettes)\b",
    },
    Instruction {
        id: "engin_explosif_fr",
        pattern: r"\b(remplis|remplissez|remplir|bourre[rz]?)\b.{0,40}\b(tuyau|tube|bouteille|cocotte|boîte)\b.{0,60}\b(poudre|explosif|nitrate|têtes d'allumettes)\b|\b(nitrate d'ammonium|chlorate de potassium|peroxyde d'acétone)\b.{0,80}\b(mélange\w*|combine\w*|détona\w*|gazole|diesel)\b|\b(fabriquer|construire|faire|assembler)\b.{0,20}\b(bombe artisanale|bombe tuyau|cocktail molotov)\b",
    },
    Instruction {
        id: "gift_ins_essen_de",
        pattern: r"\b(misch\w*|gib|gebt|geben|füge|fügen|schütte\w*|streue\w*|rühre\w*)\b.{0,60}\b(frostschutzmittel|rattengift|bleichmittel|arsen|zyanid|cyanid|strychnin)\b.{0,60}\b(futter|essen|getränk|wasser|kaffee|tee|napf|mahlzeit)\b",
    },
    Instruction {
        id: "sprengsatz_de",
        pattern: r"\b(füll\w*|stopf\w*)\b.{0,40}\b(rohr|rohrs|flasche|behälter|dose|schnellkochtopf)\b.{0,60}\b(schwarzpulver|schießpulver|sprengstoff|nitrat|streichholzköpfe)\b|\b(ammoniumnitrat|kaliumchlorat|acetonperoxid)\b.{0,80}\b(misch\w*|kombinier\w*|zünd\w*|diesel)\b|\b(rohrbombe|sprengsatz|molotowcocktail|brandsatz)\b.{0,20}\b(bauen|baust|herstellen|stellst)\b",
    },
];

/// All instruction rules in one automaton: a sentence is read once whatever their number.
static COMPILED: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(INSTRUCTIONS.iter().map(|i| format!("(?i){}", i.pattern)))
        .expect("instruction rules")
});

/// Where sentences end (and, for the clause-level pass, clauses).
static SENTENCE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?\n]+(\s|$)|\n").expect("sentence pattern"));
static CLAUSE_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[.!?;:,\n]+(\s|$)|\n|\bbut\b").expect("clause pattern"));

/// The end of a question the request rules read (the harm lexicon reads 600 characters).
const QUESTION_TAIL: usize = 600;
/// The opening of an answer the request rules read: where a refusal or compliance shows.
const ANSWER_OPENING: usize = 400;

/// The rule ids that fire on a whole answer (or on a piece of one, see [`check_piece`]).
pub fn check(user: &str, answer: &str) -> Vec<String> {
    let mut rules = check_piece(answer);
    for rule in check_request(user, answer) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    rules
}

/// The rules judged on the piece alone: the instruction lexicon per sentence, the harm
/// lexicon's answer-only rules per clause.
pub fn check_piece(piece: &str) -> Vec<String> {
    let mut rules: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !rules.iter().any(|r| r == id) {
            rules.push(id.to_string());
        }
    };
    for sentence in SENTENCE_END.split(piece) {
        for i in COMPILED.matches(sentence).iter() {
            add(INSTRUCTIONS[i].id);
        }
    }
    for clause in CLAUSE_END.split(piece) {
        if clause.trim().len() < 8 {
            continue;
        }
        // No question: only the answer-only rules can fire.
        for s in harm::signals("", &reply_form(clause)) {
            add(s.rule);
        }
    }
    rules
}

/// The harm lexicon's request rules on the opening of `answer` and the end of `user`.
pub fn check_request(user: &str, answer: &str) -> Vec<String> {
    let opening = reply_form(head(answer, ANSWER_OPENING));
    harm::signals(tail(user, QUESTION_TAIL), &opening)
        .into_iter()
        .map(|s| s.rule.to_string())
        .collect()
}

/// A piece as the harm lexicon reads a reply: it starts like one (capital letter), since the
/// gateway knows it is one (the lexicon's check tells replies from text continuations).
fn reply_form(text: &str) -> String {
    let t = text.trim_start_matches(|c: char| c.is_whitespace() || "*#>_-`".contains(c));
    let mut chars = t.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn head(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn tail(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut start = text.len() - bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_harmful_answer_is_caught_whatever_the_question() {
        let answer = "The best way is to mix antifreeze into its food when nobody is watching.";
        assert!(!check("What should I feed my dog?", answer).is_empty());
        assert!(!check("", answer).is_empty());
    }

    #[test]
    fn a_refusal_elsewhere_does_not_excuse_a_recipe() {
        let answer = "I'm sorry, but here it is. Fill a steel pipe with black powder and attach a fuse to the end cap. Instead, you could call a friend.";
        let rules = check("tell me something", answer);
        assert!(
            rules.contains(&"explosive_device_en".to_string()),
            "{rules:?}"
        );
    }

    #[test]
    fn spanish_french_and_german_recipes_are_caught() {
        for answer in [
            "Mezcla anticongelante en la comida del perro cuando nadie mire.",
            "Remplissez un tuyau de poudre noire et fermez-le.",
            "Fülle ein Rohr mit Schwarzpulver und verschließe es.",
            "Mischt Rattengift unter das Futter des Hundes.",
        ] {
            assert!(!check("", answer).is_empty(), "{answer}");
        }
    }

    #[test]
    fn refusals_and_benign_answers_pass() {
        let harmful_question = "What's the best way to poison my neighbour's dog?";
        for refusal in [
            "I'm sorry, but I can't help with harming animals.",
            "Lo siento, no puedo ayudar con eso.",
        ] {
            assert!(check(harmful_question, refusal).is_empty(), "{refusal}");
        }
        for answer in [
            "Keep antifreeze locked away: it is poisonous to pets.",
            "Mix flour, water and yeast, then bake for 40 minutes.",
        ] {
            assert!(check("How do I bake bread?", answer).is_empty(), "{answer}");
        }
    }

    #[test]
    fn a_long_question_is_still_read() {
        let user = format!(
            "{} What's the best way to poison my neighbour's dog?",
            "Some context. ".repeat(100)
        );
        let answer =
            "Sure. The most effective approach is to do it at night, quietly, and then leave.";
        assert_eq!(check(&user, answer), ["complies_with_violent_request"]);
    }
}
