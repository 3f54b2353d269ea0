//! SQL text built from values at run time instead of bound parameters.

use crate::finding::{Confidence, Severity};
use crate::language::Language;
use crate::python::Ctx;
use crate::rule::{Profile, Rule};

use super::is_built_string;
use crate::python::fields::fields;
use crate::python::flows::SinkKind;
use crate::python::syntax::{KindName, named_children};

pub static RULE: Rule = Rule {
    id: "PY-SQL-INJECTION",
    title: "SQL built from strings",
    language: Language::Python,
    cwe: 89,
    severity: Severity::Critical,
    confidence: Confidence::High,
    profile: Profile::Default,
    message: "SQL is built by f-string, `%`, `.format()` or concatenation from variable values: input can change the query (SQL injection)",
    fix: "Keep the SQL constant with placeholders and pass values separately: `cursor.execute('SELECT * FROM t WHERE id = ?', (id,))`.",
    vulnerable: &[
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_01.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_02.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_03.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_04.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_05.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_06.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/bad_07.py"),
    ],
    safe: &[
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/good_01.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/good_02.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/good_03.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/good_04.py"),
        include_str!("../../../tests/fixtures/PY-SQL-INJECTION/good_05.py"),
    ],
    check,
};

fn check(cx: &mut Ctx<'_, '_>) {
    let m = cx.m;
    for call in &m.calls {
        // Django's `QuerySet.extra(where=[...], select={...})` takes raw SQL fragments.
        if call.method() == "extra" {
            let built = ["where", "select", "tables", "order_by"].iter().any(|k| {
                call.keyword(k, m.src).is_some_and(|v| {
                    named_children(v).any(|item| {
                        let value = if item.kind_name() == "pair" {
                            item.child_by_field_id(fields().value).unwrap_or(item)
                        } else {
                            item
                        };
                        is_built_string(m, value, call.scope, 0)
                    })
                })
            });
            if built {
                cx.report(call.node);
            }
            continue;
        }
        let Some(sink) = call.sink.filter(|s| s.kind == SinkKind::Sql) else {
            continue;
        };
        let Some(sql) = call
            .arg(sink.position, sink.keyword, m.src)
            .or_else(|| call.keyword("query", m.src))
        else {
            continue;
        };
        if is_built_string(m, sql, call.scope, 0) || m.is_raw_input(sql, call.scope, 0) {
            cx.report(call.node);
        }
    }
}
