//! Output is compared whole by default; a substring check is the exception
//! and says why. This fails on a `stdout_has(`/`stderr_has(` call with no
//! `// substring: <reason>` line in the two lines above it, so a new
//! unexplained one cannot slip in.

use std::path::Path;

const CALLS: [&str; 2] = ["stdout_has(", "stderr_has("];
const REASON: &str = "// substring:";

/// The 1-based lines of `source` holding a check without a reason. A line
/// that continues a chain of checks (`.stdout_has(…)` right below another
/// explained check) shares the reason of the chain.
fn unexplained(source: &str) -> Vec<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let mut explained = vec![false; lines.len()];
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if !CALLS.iter().any(|c| code.contains(c)) || is_definition(code) {
            continue;
        }
        let reason_above = lines[i.saturating_sub(2)..i]
            .iter()
            .any(|l| l.trim_start().starts_with(REASON));
        let continues_chain = i > 0 && explained[i - 1] && code.trim_start().starts_with('.');
        explained[i] = reason_above || continues_chain;
        if !explained[i] {
            missing.push(i + 1);
        }
    }
    missing
}

fn is_definition(code: &str) -> bool {
    CALLS.iter().any(|c| code.contains(&format!("fn {c}")))
}

#[test]
fn every_substring_check_in_the_e2e_suite_says_why() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let mut found = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // This file's own examples are checks only in a string.
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with(file!()) {
            files += 1;
            let source = std::fs::read_to_string(&path).unwrap();
            for line in unexplained(&source) {
                found.push(format!("{}:{line}", path.display()));
            }
        }
    }
    // An empty or wrong directory would make this pass vacuously.
    assert!(
        files > 20,
        "found only {files} test files in {}",
        dir.display()
    );
    assert!(
        found.is_empty(),
        "substring checks without a `{REASON} <reason>` line above them:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reason_check_flags_what_it_should() {
    let src = "\
r.ok().stdout_has(\"a\");
// substring: the rest is an id
r.ok()
    .stdout_has(\"b\")
    .stderr_has(\"c\");
let x = 1;
r.stderr_has(\"d\");
";
    assert_eq!(unexplained(src), vec![1, 7]);
    // A reason three lines up is too far away to be about this call.
    assert_eq!(
        unexplained("// substring: far\n\n\nr.stdout_has(\"a\");\n"),
        vec![4]
    );
    assert_eq!(
        unexplained("pub fn stdout_has(&self, s: &str) {}\n"),
        Vec::<usize>::new()
    );
}
