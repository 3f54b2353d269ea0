// TEMPORARY profiling harness (to be removed).
use emguard_codescan::{Language, Scanner};
#[path = "../tests/support/shared.rs"]
mod shared;
#[inline(never)]
fn scan_all(rows: &[String]) -> usize {
    let s = Scanner::new();
    rows.iter()
        .filter(|r| !s.scan_answer(r, Language::Python).findings.is_empty())
        .count()
}
#[inline(never)]
fn parse_all(p: &mut tree_sitter::Parser, rows: &[String]) -> usize {
    rows.iter()
        .map(|r| p.parse(r, None).unwrap().root_node().child_count() as usize)
        .sum()
}
#[inline(never)]
fn walk_cursor(trees: &[tree_sitter::Tree]) -> usize {
    let mut n = 0;
    for t in trees {
        let mut c = t.walk();
        'outer: loop {
            n += c.node().kind_id() as usize;
            if c.goto_first_child() {
                continue;
            }
            while !c.goto_next_sibling() {
                if !c.goto_parent() {
                    break 'outer;
                }
            }
        }
    }
    n
}
#[inline(never)]
fn walk_child(trees: &[tree_sitter::Tree]) -> usize {
    let mut n = 0;
    for t in trees {
        let mut stack = vec![t.root_node()];
        while let Some(node) = stack.pop() {
            n += node.kind_id() as usize;
            for i in (0..node.child_count()).rev() {
                if let Some(c) = node.child(i as u32) {
                    stack.push(c);
                }
            }
        }
    }
    n
}
#[inline(never)]
fn walk_named(trees: &[tree_sitter::Tree]) -> usize {
    let mut n = 0;
    for t in trees {
        let mut stack = vec![t.root_node()];
        while let Some(node) = stack.pop() {
            n += node.kind_id() as usize;
            for i in (0..node.named_child_count()).rev() {
                if let Some(c) = node.named_child(i as u32) {
                    stack.push(c);
                }
            }
        }
    }
    n
}
#[inline(never)]
fn walk_children(trees: &[tree_sitter::Tree]) -> usize {
    let mut n = 0;
    let mut buf = Vec::new();
    for t in trees {
        let mut cursor = t.walk();
        let mut stack = vec![t.root_node()];
        while let Some(node) = stack.pop() {
            n += node.kind_id() as usize;
            buf.clear();
            buf.extend(node.children(&mut cursor));
            stack.extend(buf.drain(..).rev());
        }
    }
    n
}
fn main() {
    let dir = shared::shared_dir().unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map_or(usize::MAX, |a| a.parse().unwrap());
    let reps: usize = std::env::args().nth(2).map_or(1, |a| a.parse().unwrap());
    let mut rows = Vec::new();
    for f in [
        "insecure.jsonl",
        "secure.jsonl",
        "educational_insecure.jsonl",
    ] {
        rows.extend(shared::assistant_code(&dir.join(f)));
    }
    // interleave to sample all three files
    let step = (rows.len() / n.min(rows.len())).max(1);
    let mut rows: Vec<String> = rows.into_iter().step_by(step).collect();
    if std::env::var("NOPRINT").is_ok() {
        for r in &mut rows {
            *r = r.replace("print", "prinx");
        }
    }
    if std::env::var("PARSE_ONLY").is_ok() {
        let mut p = tree_sitter::Parser::new();
        p.set_language(&tree_sitter_python::LANGUAGE.into())
            .unwrap();
        if std::env::var("WALK").is_ok() {
            let trees: Vec<_> = rows.iter().map(|r| p.parse(r, None).unwrap()).collect();
            println!(
                "{} {} {} {}",
                walk_cursor(&trees),
                walk_child(&trees),
                walk_named(&trees),
                walk_children(&trees)
            );
            return;
        }
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t = std::time::Instant::now();
            parse_all(&mut p, &rows);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("parse only: {:.0}/s", rows.len() as f64 / best);
        return;
    }
    let mut best = f64::MAX;
    let mut flagged = 0;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        flagged = scan_all(&rows);
        best = best.min(t.elapsed().as_secs_f64());
    }
    if let Ok(out) = std::env::var("DUMP") {
        let s = Scanner::new();
        let mut text = String::new();
        for (i, r) in rows.iter().enumerate() {
            let res = s.scan_answer(r, Language::Python);
            text.push_str(&format!(
                "{i} {}\n",
                serde_json::to_string(&res.findings).unwrap()
            ));
            for n in &res.notes {
                text.push_str(&format!("{i} note {}:{} {}\n", n.line, n.column, n.message));
            }
        }
        std::fs::write(out, text).unwrap();
    }
    println!(
        "{} rows, {} flagged, best {:.3}s = {:.0}/s",
        rows.len(),
        flagged,
        best,
        rows.len() as f64 / best
    );
}
