//! The Python rules, one file each, listed in [`REGISTRY`], plus the small helpers they
//! share (literal values, string building, name matching).

mod audit_dangerous_call;
mod bind_all;
mod cert_validation;
mod cleartext_protocol;
mod code_injection;
mod command_injection;
mod cookie_flags;
mod debug_mode;
mod hardcoded_credential;
mod hardcoded_tmp;
mod insecure_random;
mod insecure_tls;
mod jinja2_autoescape;
mod jwt_verification;
mod ldap_injection;
mod markup_xss;
mod open_redirect;
mod path_traversal;
mod request_timeout;
mod sql_injection;
mod ssrf;
mod tar_extraction;
mod template_injection;
mod trust_boundary;
mod unsafe_deserialization;
mod unsafe_model_load;
mod url_regex_dot;
mod url_substring_check;
mod weak_cipher;
mod weak_hash;
mod weak_hash_algorithm;
mod weak_key_size;
mod world_writable;
mod xpath_injection;
mod xss_response;
mod xxe;

use crate::python::fields::fields;
use crate::python::syntax::{KindName, children, named_children};
use tree_sitter::Node;

use super::{Module, ScopeId};
use crate::rule::Rule;

/// Every Python rule, in the order `--list-rules` shows them.
pub static REGISTRY: &[&Rule] = &[
    &xss_response::RULE,
    &jinja2_autoescape::RULE,
    &template_injection::RULE,
    &world_writable::RULE,
    &tar_extraction::RULE,
    &sql_injection::RULE,
    &unsafe_deserialization::RULE,
    &url_regex_dot::RULE,
    &url_substring_check::RULE,
    &command_injection::RULE,
    &code_injection::RULE,
    &path_traversal::RULE,
    &open_redirect::RULE,
    &trust_boundary::RULE,
    &hardcoded_credential::RULE,
    &weak_hash::RULE,
    &insecure_random::RULE,
    &ssrf::RULE,
    &xxe::RULE,
    &ldap_injection::RULE,
    &xpath_injection::RULE,
    &markup_xss::RULE,
    &unsafe_model_load::RULE,
    &weak_cipher::RULE,
    &weak_hash_algorithm::RULE,
    &weak_key_size::RULE,
    &cert_validation::RULE,
    &insecure_tls::RULE,
    &cleartext_protocol::RULE,
    &cookie_flags::RULE,
    &jwt_verification::RULE,
    &debug_mode::RULE,
    &hardcoded_tmp::RULE,
    &bind_all::RULE,
    &request_timeout::RULE,
    &audit_dangerous_call::RULE,
];

/// Beyond this depth the helpers give up (hostile input stays cheap).
const MAX_DEPTH: usize = 24;

/// `name` is one of `candidates` or ends with `.candidate` (`sqlite3.Cursor.execute`
/// matches `execute`... only when the candidate is given with its dot-free last part).
pub(crate) fn name_is(name: &str, candidates: &[&str]) -> bool {
    candidates.iter().any(|c| {
        name == *c
            || (name.len() > c.len()
                && name.ends_with(c)
                && name.as_bytes()[name.len() - c.len() - 1] == b'.')
    })
}

/// The value of a string literal without interpolation, with implicit concatenation joined.
/// Escapes of non-raw strings are kept as written except `\\`, so a regex reads as the
/// regex engine sees it.
pub(crate) fn string_literal(m: &Module<'_>, node: Node<'_>) -> Option<String> {
    match node.kind_name() {
        "string" => {
            let mut out = String::new();
            let mut raw = false;
            for child in children(node) {
                match child.kind_name() {
                    "string_start" => raw = m.text(child).to_ascii_lowercase().contains('r'),
                    "string_content" | "escape_sequence" => out.push_str(m.text(child)),
                    "interpolation" => return None,
                    _ => {}
                }
            }
            Some(if raw { out } else { out.replace("\\\\", "\\") })
        }
        "concatenated_string" => {
            let mut out = String::new();
            for part in named_children(node) {
                out.push_str(&string_literal(m, part)?);
            }
            Some(out)
        }
        "parenthesized_expression" => node.named_child(0).and_then(|n| string_literal(m, n)),
        _ => None,
    }
}

/// A string literal, or a name whose visible binding is one.
pub(crate) fn string_value(m: &Module<'_>, node: Node<'_>, scope: ScopeId) -> Option<String> {
    if node.kind_name() == "identifier" {
        let value = m.binding(m.text(node), scope, node.start_byte())?.value?;
        return string_literal(m, value);
    }
    string_literal(m, node)
}

/// A value fixed in the code: literals, ALL_CAPS constants, names bound only to constants.
pub(crate) fn is_constant(m: &Module<'_>, node: Node<'_>, scope: ScopeId, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match node.kind_name() {
        "integer" | "float" | "true" | "false" | "none" => true,
        "string" | "concatenated_string" => {
            string_literal(m, node).is_some()
                // An f-string of constants: `f"echo {NAME}"`.
                || named_children(node).all(|c| match c.kind_name() {
                    "interpolation" => c.named_child(0).is_some_and(|e| is_constant(m, e, scope, depth + 1)),
                    "string" => is_constant(m, c, scope, depth + 1),
                    _ => true,
                })
        }
        "identifier" => {
            let name = m.text(node);
            if name.len() > 1 && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                return true;
            }
            let bindings = m.bindings_before(name, scope, node.start_byte());
            !bindings.is_empty()
                && bindings.iter().all(|b| {
                    !b.param && b.value.is_some_and(|v| v.id() != node.id() && is_constant(m, v, scope, depth + 1))
                })
        }
        // `a if COND else b` with a constant condition is the branch it picks.
        "conditional_expression" => match node.named_child(1).and_then(|c| m.const_truth(c, scope, 0)) {
            Some(true) => node.named_child(0).is_some_and(|v| is_constant(m, v, scope, depth + 1)),
            Some(false) => node.named_child(2).is_some_and(|v| is_constant(m, v, scope, depth + 1)),
            None => named_children(node).all(|c| is_constant(m, c, scope, depth + 1)),
        },
        "parenthesized_expression" | "tuple" | "list" | "binary_operator" | "subscript" | "slice" | "unary_operator" => {
            named_children(node).all(|c| is_constant(m, c, scope, depth + 1))
        }
        // Numbers cannot carry markup or SQL, whatever they were computed from.
        "call" => node.child_by_field_id(fields().function).is_some_and(|f| {
            matches!(m.callee_name(f).as_str(), "int" | "float" | "len" | "round" | "abs" | "bool" | "range")
                // String methods on constants with constant arguments: `','.join('?' * n)`.
                || f.kind_name() == "attribute"
                    && f.child_by_field_id(fields().object).is_some_and(|o| is_constant(m, o, scope, depth + 1))
                    && node.child_by_field_id(fields().arguments).is_some_and(|a| {
                        named_children(a).all(|c| is_constant(m, c, scope, depth + 1))
                    })
        }),
        _ => false,
    }
}

/// Whether the expression is built with HTML markup: some string literal in it, or in the
/// values of the names it uses, contains a tag.
pub(crate) fn has_markup(m: &Module<'_>, node: Node<'_>, scope: ScopeId, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match node.kind_name() {
        "string_content" => {
            let t = m.text(node);
            let b = t.as_bytes();
            // A tag, or one written entity-encoded (`&lt;h1&gt;`) as some answers do.
            b.windows(2).any(|w| {
                w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!')
            }) || t.contains("&lt;")
        }
        "identifier" => m
            .bindings_before(m.text(node), scope, node.start_byte())
            .iter()
            .any(|b| {
                b.value
                    .is_some_and(|v| v.id() != node.id() && has_markup(m, v, scope, depth + 1))
            }),
        _ => children(node).any(|c| has_markup(m, c, scope, depth + 1)),
    }
}

/// A string assembled at run time from non-constant parts: an f-string with a non-constant
/// field, `%` formatting, `.format()`, `+` concatenation or `+=`, or a name bound to one.
pub(crate) fn is_built_string(
    m: &Module<'_>,
    node: Node<'_>,
    scope: ScopeId,
    depth: usize,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match node.kind_name() {
        "string" => named_children(node).any(|c| {
            c.kind_name() == "interpolation"
                && c.named_child(0)
                    .is_some_and(|e| !is_constant(m, e, scope, depth + 1))
        }),
        "concatenated_string" | "parenthesized_expression" => {
            named_children(node).any(|c| is_built_string(m, c, scope, depth + 1))
        }
        // `query[:-5]` is as built as `query`.
        "subscript" => node
            .child_by_field_id(fields().value)
            .is_some_and(|v| is_built_string(m, v, scope, depth + 1)),
        "binary_operator" => {
            let op = node
                .child_by_field_id(fields().operator)
                .map(|o| m.text(o))
                .unwrap_or("");
            let (Some(left), Some(right)) = (
                node.child_by_field_id(fields().left),
                node.child_by_field_id(fields().right),
            ) else {
                return false;
            };
            match op {
                "%" => {
                    is_stringish(m, left, scope, depth) && !is_constant(m, right, scope, depth + 1)
                }
                "+" => {
                    is_built_string(m, left, scope, depth + 1)
                        || is_built_string(m, right, scope, depth + 1)
                        || ((is_stringish(m, left, scope, depth)
                            || is_stringish(m, right, scope, depth))
                            && !(is_constant(m, left, scope, depth + 1)
                                && is_constant(m, right, scope, depth + 1)))
                }
                _ => false,
            }
        }
        "call" => {
            let Some(func) = node.child_by_field_id(fields().function) else {
                return false;
            };
            let method = func
                .child_by_field_id(fields().attribute)
                .map(|a| m.text(a))
                .unwrap_or("");
            let on_string = func
                .child_by_field_id(fields().object)
                .is_some_and(|o| is_stringish(m, o, scope, depth));
            if func.kind_name() == "attribute"
                && on_string
                && matches!(method, "format" | "join" | "replace")
            {
                return node
                    .child_by_field_id(fields().arguments)
                    .is_some_and(|args| {
                        named_children(args).any(|arg| {
                            let value = if arg.kind_name() == "keyword_argument" {
                                arg.child_by_field_id(fields().value).unwrap_or(arg)
                            } else {
                                arg
                            };
                            !is_constant(m, value, scope, depth + 1)
                        })
                    });
            }
            // `buffer.getvalue()` of a `StringIO` written with non-constant text.
            method == "getvalue"
                && func.child_by_field_id(fields().object).is_some_and(|o| {
                    o.kind_name() == "identifier" && is_built_string(m, o, scope, depth + 1)
                })
        }
        "identifier" => m
            .bindings_before(m.text(node), scope, node.start_byte())
            .iter()
            .any(|b| {
                b.value.is_some_and(|v| {
                    v.id() != node.id()
                        && (is_built_string(m, v, scope, depth + 1)
                            || (b.augmented && !is_constant(m, v, scope, depth + 1)))
                })
            }),
        _ => false,
    }
}

/// An expression that is a string: a literal, or a name bound to a string expression.
fn is_stringish(m: &Module<'_>, node: Node<'_>, scope: ScopeId, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match node.kind_name() {
        "string" | "concatenated_string" => true,
        "parenthesized_expression" => node
            .named_child(0)
            .is_some_and(|n| is_stringish(m, n, scope, depth + 1)),
        "binary_operator" => node
            .child_by_field_id(fields().left)
            .is_some_and(|n| is_stringish(m, n, scope, depth + 1)),
        "identifier" => m
            .binding(m.text(node), scope, node.start_byte())
            .and_then(|b| b.value)
            .is_some_and(|v| {
                v.id() != node.id()
                    && matches!(
                        v.kind_name(),
                        "string" | "concatenated_string" | "binary_operator"
                    )
                    && is_stringish(m, v, scope, depth + 1)
            }),
        _ => false,
    }
}

/// The integer value of a literal (`0o777`, `511`, `0777`), a name bound to one, or an
/// `|` of them; `stat` permission constants count with their values.
pub(crate) fn int_value(
    m: &Module<'_>,
    node: Node<'_>,
    scope: ScopeId,
    depth: usize,
) -> Option<u32> {
    if depth > MAX_DEPTH {
        return None;
    }
    match node.kind_name() {
        "integer" => {
            let t = m.text(node).replace('_', "").to_ascii_lowercase();
            if let Some(oct) = t.strip_prefix("0o") {
                u32::from_str_radix(oct, 8).ok()
            } else if let Some(hex) = t.strip_prefix("0x") {
                u32::from_str_radix(hex, 16).ok()
            } else if t.len() > 1 && t.starts_with('0') {
                u32::from_str_radix(&t[1..], 8).ok()
            } else {
                t.parse().ok()
            }
        }
        "identifier" => {
            let value = m.binding(m.text(node), scope, node.start_byte())?.value?;
            (value.id() != node.id())
                .then(|| int_value(m, value, scope, depth + 1))
                .flatten()
        }
        "attribute" => stat_constant(m.text(node).rsplit('.').next().unwrap_or("")),
        "binary_operator" => {
            let op = node
                .child_by_field_id(fields().operator)
                .map(|o| m.text(o))?;
            let left = int_value(m, node.child_by_field_id(fields().left)?, scope, depth + 1)?;
            let right = int_value(m, node.child_by_field_id(fields().right)?, scope, depth + 1)?;
            match op {
                "|" | "+" => Some(left | right),
                "&" => Some(left & right),
                _ => None,
            }
        }
        "parenthesized_expression" => int_value(m, node.named_child(0)?, scope, depth + 1),
        _ => None,
    }
}

fn stat_constant(name: &str) -> Option<u32> {
    Some(match name {
        "S_IRWXU" => 0o700,
        "S_IRUSR" => 0o400,
        "S_IWUSR" => 0o200,
        "S_IXUSR" => 0o100,
        "S_IRWXG" => 0o070,
        "S_IRGRP" => 0o040,
        "S_IWGRP" => 0o020,
        "S_IXGRP" => 0o010,
        "S_IRWXO" => 0o007,
        "S_IROTH" => 0o004,
        "S_IWOTH" => 0o002,
        "S_IXOTH" => 0o001,
        _ => return None,
    })
}

/// Whether the function (or module) text of `scope` contains any of `needles`.
pub(crate) fn scope_mentions(m: &Module<'_>, scope: ScopeId, needles: &[&str]) -> bool {
    let text = m.text(m.scopes[scope].node);
    needles.iter().any(|n| text.contains(n))
}

/// Words that make a name a secret's name (compared ignoring ASCII case).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "token",
    "private_key",
    "access_key",
    "auth_key",
];

/// Whether `name` (an identifier, attribute or key) names a secret: contains one of
/// [`SECRET_WORDS`], compared in place (this runs on every keyword argument).
pub(crate) fn names_secret(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_WORDS.iter().any(|word| {
        name.windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    })
}

/// Whether a secret's name occurs anywhere in `text`: the same test as [`names_secret`],
/// faster on a whole source.
pub(crate) fn mentions_secret(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| lower.contains(word))
}
