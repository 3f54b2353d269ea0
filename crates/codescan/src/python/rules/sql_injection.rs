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
        "def get_user(cursor, name):\n    cursor.execute(f\"SELECT * FROM users WHERE name = '{name}'\")\n    return cursor.fetchone()\n",
        "def find(db, email):\n    query = \"SELECT id FROM users WHERE email = '%s'\" % email\n    return db.execute(query).fetchall()\n",
        "def search(conn, term, limit):\n    query = \"SELECT * FROM items WHERE 1=1\"\n    query += \" AND title LIKE '%\" + term + \"%'\"\n    conn.cursor().execute(query)\n",
        "from sqlalchemy import text\ndef rows(session, table_id):\n    return session.execute(text('SELECT * FROM t WHERE id = {}'.format(table_id)))\n",
        "from flask import request\ndef lookup(cursor):\n    q = request.args['q']\n    cursor.execute(q)\n",
        "from django.db.models.expressions import RawSQL\ndef ordered(qs, column):\n    return qs.annotate(val=RawSQL('SELECT %s FROM t' % column, ()))\n",
        "def search(qs, term):\n    return qs.extra(where=[f\"title LIKE '%{term}%'\"])\n",
    ],
    safe: &[
        "def get_user(cursor, name):\n    cursor.execute(\"SELECT * FROM users WHERE name = ?\", (name,))\n    return cursor.fetchone()\n",
        "def find(db, email):\n    query = \"SELECT id FROM users WHERE email = %s\"\n    return db.execute(query, (email,)).fetchall()\n",
        "TABLE = 'items'\ndef all_items(conn):\n    conn.cursor().execute(f'SELECT * FROM {TABLE}')\n",
        "from sqlalchemy import text\ndef rows(session, table_id):\n    return session.execute(text('SELECT * FROM t WHERE id = :id'), {'id': table_id})\n",
        "def search(qs, term):\n    return qs.extra(where=['title LIKE %s'], params=[f'%{term}%'])\n",
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
