//! Random and hostile input through the library call: it must never panic and must report
//! positions inside the input. (The cargo-fuzz target in `fuzz/` explores further.)

use emguard_codescan::{Language, ScanResult, Scanner, all_rules};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn assert_positions_inside(text: &str, result: &ScanResult) {
    let lines = text.lines().count().max(1) + 1;
    for f in &result.findings {
        assert!(
            f.line >= 1 && f.line <= lines && f.end_line >= f.line,
            "bad position {f:?} for {} lines",
            lines
        );
        assert!(f.column >= 1);
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let scanner = Scanner::new();
    let seeds: Vec<&str> = all_rules()
        .flat_map(|r| r.vulnerable.iter().chain(r.safe.iter()).copied())
        .collect();
    let tokens = [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "'",
        "\"",
        "\"\"\"",
        "f'{",
        "\\",
        "\n",
        "    ",
        ":",
        "=",
        "+",
        "%",
        "lambda",
        "\u{0}",
        "é",
        "🦀",
        "```python\n",
        "```\n",
        "def f(",
        "class C:",
        "@app.route('/')\n",
    ];
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..4000 {
        let mut text = seeds[rng.random_range(0..seeds.len())].to_string();
        for _ in 0..rng.random_range(1..6) {
            let mut at = rng.random_range(0..=text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.random_range(0..3) {
                0 => text.insert_str(at, tokens[rng.random_range(0..tokens.len())]),
                1 => {
                    let mut end = (at + rng.random_range(1..20)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let other = seeds[rng.random_range(0..seeds.len())];
                    text.insert_str(at, other);
                }
            }
        }
        assert_positions_inside(&text, &scanner.scan(&text, Language::Python));
        assert_positions_inside(&text, &scanner.scan_answer(&text, Language::Python));
    }
}

#[test]
fn hostile_shapes_are_scanned_without_panic() {
    let scanner = Scanner::new();
    let deep_parens = format!("x = {}1{}\n", "(".repeat(20_000), ")".repeat(20_000));
    let deep_calls = format!(
        "import os\nos.system({}'a'{})\n",
        "f(".repeat(5_000),
        ")".repeat(5_000)
    );
    let deep_blocks: String = (0..500)
        .map(|i| format!("{}if x:\n", "    ".repeat(i)))
        .collect::<String>()
        + &"    ".repeat(500)
        + "os.chmod('a', 0o777)\n";
    let long_concat = format!(
        "q = 'SELECT ' + {}x\ncursor.execute(q)\n",
        "a + ".repeat(10_000)
    );
    let unclosed = "def f(:\n    return '''\n".repeat(200);
    // Each entry read from the one before: replaying the container for every read would
    // take minutes without the replay budget.
    let chained_entries =
        "from flask import request\ndef f():\n    d = {}\n    d['k'] = request.args['x']\n"
            .to_string()
            + &(0..2_000)
                .map(|i| format!("    d['k{i}'] = d['k{}'] + d.get('k')\n", i.max(1) - 1))
                .collect::<String>()
            + "    eval(d['k1999'])\n";
    // Many names and many stores: each store looks for other names bound to the container,
    // each read searches the text since the binding for other uses of the name.
    let many_names = "from flask import request\ndef f():\n    d = {}\n".to_string()
        + &(0..4_000)
            .map(|i| {
                format!("    v{i} = d\n    d['k{i}'] = request.args['x']\n    eval(d['k0'])\n")
            })
            .collect::<String>();
    for text in [
        many_names,
        deep_parens,
        deep_calls,
        deep_blocks,
        long_concat,
        unclosed,
        chained_entries,
        String::new(),
        "\u{feff}\0\0".to_string(),
    ] {
        let result = scanner.scan(&text, Language::Python);
        assert_positions_inside(&text, &result);
    }
}

#[test]
fn scanning_is_the_same_from_many_threads() {
    let scanner = Scanner::new();
    let fixtures: Vec<&str> = all_rules()
        .flat_map(|r| r.vulnerable.iter().copied())
        .collect();
    let expected: Vec<ScanResult> = fixtures
        .iter()
        .map(|f| scanner.scan(f, Language::Python))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for (fixture, want) in fixtures.iter().zip(&expected) {
                    assert_eq!(&scanner.scan(fixture, Language::Python), want);
                }
            });
        }
    });
}
