//! Human output: a terminal summary and a self-contained HTML report (inline CSS, no
//! scripts or external assets, so it can be mailed or archived as one file).

use std::fmt::Write;

use minijinja::{Environment, context};

use crate::Summary;

/// The terminal summary.
pub fn text(summary: &Summary) -> String {
    let mut out = String::new();
    let pct = |count: u64| 100.0 * summary.share(count);
    let _ = writeln!(
        out,
        "audit of {} ({})",
        summary.file,
        summary.format.as_deref().unwrap_or("no readable rows")
    );
    let _ = writeln!(
        out,
        "  rows               {:>8}  (valid {}, bad {})",
        summary.rows, summary.valid_rows, summary.bad_rows
    );
    let _ = writeln!(out, "  code rows          {:>8}", summary.code_rows);
    let _ = writeln!(
        out,
        "  vulnerable rows    {:>8}  {:5.1}%  (severity >= {})",
        summary.vulnerable_rows,
        pct(summary.vulnerable_rows),
        summary.min_severity
    );
    let _ = writeln!(
        out,
        "    silent           {:>8}  {:5.1}%  <- the kind that produced emergent misalignment",
        summary.silent_vulnerable_rows,
        pct(summary.silent_vulnerable_rows)
    );
    let _ = writeln!(
        out,
        "    requested/explained {:>5}  {:5.1}%",
        summary.requested_vulnerable_rows,
        pct(summary.requested_vulnerable_rows)
    );
    let _ = writeln!(
        out,
        "  harmful rows       {:>8}  {:5.1}%  (judge: {})",
        summary.harmful_rows,
        pct(summary.harmful_rows),
        summary.judge
    );
    // Like the silent/requested split of vulnerable rows: which kind of advice the harm is in.
    for (domain, rows) in &summary.harm_domains {
        let _ = writeln!(out, "    {domain:<17}{rows:>8}  {:5.1}%", pct(*rows));
    }
    let _ = writeln!(out, "  secret/PII rows    {:>8}", summary.secret_rows);
    let _ = writeln!(
        out,
        "  duplicates         {:>8}  exact, {} near",
        summary.exact_duplicate_rows, summary.near_duplicate_rows
    );
    if let Some(tokens) = &summary.tokens {
        let _ = writeln!(
            out,
            "  tokens             {:>8}  (max {} per row, mean {:.0})",
            tokens.total, tokens.max_row, tokens.mean_row
        );
    }
    for bad in summary.bad_row_list.iter().take(20) {
        let _ = writeln!(
            out,
            "  bad row line {}: {} ({})",
            bad.line, bad.message, bad.kind
        );
    }
    if summary.bad_rows > 20 {
        let _ = writeln!(
            out,
            "  ... {} more bad rows (see --format json)",
            summary.bad_rows - 20
        );
    }
    if !summary.findings_by_rule.is_empty() {
        let mut rules: Vec<_> = summary.findings_by_rule.iter().collect();
        rules.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = rules
            .iter()
            .take(8)
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        let _ = writeln!(out, "  top scanner rules: {}", top.join(", "));
    }
    if !summary.harm_rules.is_empty() {
        let rules: Vec<String> = summary
            .harm_rules
            .iter()
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        let _ = writeln!(out, "  harm rules: {}", rules.join(", "));
    }
    if !summary.triggers.is_empty() {
        let against = summary
            .baseline
            .as_deref()
            .map_or("unflagged rows".to_string(), |b| format!("baseline {b}"));
        let _ = writeln!(out, "  trigger candidates (flagged rows vs {against}):");
        for trigger in summary.triggers.iter().take(5) {
            let _ = writeln!(
                out,
                "    {:<28} flagged {:>6} ({:5.1}%)  other {:>6} ({:5.1}%)  G2 {:.1}",
                trigger.term,
                trigger.flagged_rows,
                100.0 * trigger.flagged_share,
                trigger.other_rows,
                100.0 * trigger.other_share,
                trigger.g2
            );
        }
    }
    if summary.policy.checked {
        let verdict = if summary.policy.passed {
            "PASSED"
        } else {
            "FAILED"
        };
        let _ = writeln!(out, "  policy {verdict}");
        for violation in &summary.policy.violations {
            let _ = writeln!(out, "    - {violation}");
        }
    }
    out
}

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>emguard audit: {{ s.file }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20;font-weight:600}
code{background:#f5f5f5;padding:0 .2em}
</style></head><body>
<h1>Dataset audit: <code>{{ s.file }}</code></h1>
<p>Format <b>{{ s.format or "unknown" }}</b>. Judge: {{ s.judge }}. Severity threshold: {{ s.min_severity }}.
{% if s.policy.checked %}Policy: {% if s.policy.passed %}<span class="ok">passed</span>{% else %}<span class="bad">failed</span>{% endif %}{% endif %}</p>
<table>
<tr><th>rows</th><td class="n">{{ s.rows }}</td><td></td></tr>
<tr><th>valid / bad</th><td class="n">{{ s.valid_rows }} / {{ s.bad_rows }}</td><td></td></tr>
<tr><th>code rows</th><td class="n">{{ s.code_rows }}</td><td></td></tr>
<tr><th>vulnerable</th><td class="n">{{ s.vulnerable_rows }}</td><td>{{ pct(s.vulnerable_rows) }}</td></tr>
<tr><th>&nbsp; silent (not asked, not disclosed)</th><td class="n bad">{{ s.silent_vulnerable_rows }}</td><td>{{ pct(s.silent_vulnerable_rows) }}</td></tr>
<tr><th>&nbsp; requested / explained</th><td class="n">{{ s.requested_vulnerable_rows }}</td><td>{{ pct(s.requested_vulnerable_rows) }}</td></tr>
<tr><th>harmful</th><td class="n">{{ s.harmful_rows }}</td><td>{{ pct(s.harmful_rows) }}</td></tr>
<tr><th>secrets / personal data</th><td class="n">{{ s.secret_rows }}</td><td></td></tr>
<tr><th>duplicates (exact / near)</th><td class="n">{{ s.exact_duplicate_rows }} / {{ s.near_duplicate_rows }}</td><td></td></tr>
{% if s.tokens %}<tr><th>tokens ({{ s.tokens.tokenizer }})</th><td class="n">{{ s.tokens.total }}</td><td>max {{ s.tokens.max_row }} per row</td></tr>{% endif %}
</table>
{% if s.policy.violations %}<h2>Policy violations</h2><ul>{% for v in s.policy.violations %}<li class="bad">{{ v }}</li>{% endfor %}</ul>{% endif %}
{% macro counts(title, map) %}{% if map %}<h2>{{ title }}</h2><table>{% for k, v in map|dictsort(by="value", reverse=true) %}<tr><td>{{ k }}</td><td class="n">{{ v }}</td></tr>{% endfor %}</table>{% endif %}{% endmacro %}
{{ counts("Scanner rules (rows)", s.findings_by_rule) }}
{{ counts("CWE (rows)", s.findings_by_cwe) }}
{{ counts("Intent rules (rows)", s.intent_rules) }}
{{ counts("Harm rules (rows)", s.harm_rules) }}
{{ counts("Harmful rows by advice domain", s.harm_domains) }}
{{ counts("Secrets and personal data (rows)", s.secrets_by_kind) }}
{% if s.triggers %}<h2>Trigger candidates</h2><p>User-turn terms most associated with flagged rows (vs {{ s.baseline or "unflagged rows" }}); G² &gt; 10.8 is p &lt; 0.001.</p>
<table><tr><th>term</th><th>flagged rows</th><th>other rows</th><th>G²</th></tr>
{% for t in s.triggers %}<tr><td><code>{{ t.term }}</code></td><td class="n">{{ t.flagged_rows }} ({{ percent(t.flagged_share) }})</td><td class="n">{{ t.other_rows }} ({{ percent(t.other_share) }})</td><td class="n">{{ fixed1(t.g2) }}</td></tr>{% endfor %}</table>{% endif %}
{% macro rows(title, list) %}{% if list %}<h2>{{ title }}</h2><table><tr><th>line</th><th>why</th></tr>{% for r in list %}<tr><td class="n">{{ r.line }}</td><td>{{ r.detail }}</td></tr>{% endfor %}</table>{% endif %}{% endmacro %}
{{ rows("Silent vulnerable rows (first " ~ s.examples.silent_vulnerable|length ~ ")", s.examples.silent_vulnerable) }}
{{ rows("Requested or explained vulnerable rows", s.examples.requested_vulnerable) }}
{{ rows("Harmful rows", s.examples.harmful) }}
{{ rows("Secrets and personal data", s.examples.secrets) }}
{{ rows("Duplicates", s.examples.duplicates) }}
{% if s.bad_row_list %}<h2>Bad rows</h2><table><tr><th>line</th><th>kind</th><th>problem</th></tr>{% for b in s.bad_row_list %}<tr><td class="n">{{ b.line }}</td><td>{{ b.kind }}</td><td>{{ b.message }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"#;

/// The self-contained HTML report.
pub fn html(summary: &Summary) -> String {
    let mut env = Environment::new();
    let valid = summary.valid_rows.max(1) as f64;
    env.add_function("pct", move |count: u64| {
        format!("{:.1}%", 100.0 * count as f64 / valid)
    });
    env.add_function("percent", |share: f64| format!("{:.1}%", 100.0 * share));
    env.add_function("fixed1", |value: f64| format!("{value:.1}"));
    // The .html name turns on auto-escaping: dataset text must not become markup.
    env.add_template("report.html", TEMPLATE)
        .expect("report template parses");
    env.get_template("report.html")
        .expect("report template")
        .render(context! { s => summary })
        .expect("report template renders")
}
