//! The JUnit XML report GitLab, Jenkins and GitHub test reporters read: one
//! `<testsuite>` per scenario, one `<testcase>` per run, a `<failure>` for
//! each failed run. quick-xml does the escaping; characters XML 1.0 cannot
//! carry at all (NUL, most C0 controls) are replaced first.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::error::{Error, Result};
use crate::results::{excerpt, AttemptRecord, TraceRecord};

/// The suite-level facts (known before the cases are streamed).
pub(crate) struct Suite<'a> {
    pub(crate) name: &'a str,
    pub(crate) tests: usize,
    pub(crate) failures: usize,
    pub(crate) time_ms: u64,
    /// `YYYY-MM-DDTHH:MM:SS` (the JUnit schema's timestamp has no zone).
    pub(crate) timestamp: String,
    /// The labels of the runs never started (`--max-failures`), written
    /// after the others as `<skipped/>` cases.
    pub(crate) skipped: Vec<String>,
}

/// Replaces characters that are not allowed in XML 1.0 documents.
pub(crate) fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let ok = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}');
    if s.chars().all(ok) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| if ok(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

/// Caps long text so one chatty run cannot blow up the report.
fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes]", &s[..end], s.len() - end)
}

fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Streams the report: `records` is called with a callback per record.
pub(crate) fn write(
    path: &Path,
    suite: &Suite<'_>,
    records: impl FnOnce(&mut dyn FnMut(TraceRecord) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut w = Writer::new_with_indent(BufWriter::new(file), b' ', 2);
    let io = |e: std::io::Error| Error::io("write", path, e);
    let tests = (suite.tests + suite.skipped.len()).to_string();
    let failures = suite.failures.to_string();
    let skipped = suite.skipped.len().to_string();
    let time = seconds(suite.time_ms);
    let name = xml_safe(suite.name);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
        ("time", time.as_str()),
    ];
    w.write_event(Event::Start(
        BytesStart::new("testsuites")
            .with_attributes([("name", "fluxloop")].into_iter().chain(counts)),
    ))
    .map_err(io)?;
    w.write_event(Event::Start(BytesStart::new("testsuite").with_attributes(
        [("name", name.as_ref())].into_iter().chain(counts).chain([
            ("timestamp", suite.timestamp.as_str()),
            ("hostname", "localhost"),
        ]),
    )))
    .map_err(io)?;
    let classname = format!("fluxloop.{}", name);
    let mut n = 0usize;
    records(&mut |r: TraceRecord| {
        n += 1;
        case(&mut w, n, &classname, &r).map_err(io)
    })?;
    for label in &suite.skipped {
        n += 1;
        skipped_case(&mut w, n, &classname, label).map_err(io)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))
        .map_err(io)?;
    w.write_event(Event::End(BytesEnd::new("testsuites")))
        .map_err(io)?;
    let mut inner = w.into_inner();
    inner
        .write_all(b"\n")
        .and_then(|_| inner.flush())
        .map_err(io)
}

/// One `<testcase>`: its failure, the failed attempts of a flaky pass,
/// and the agent's output.
fn case<W: Write>(
    w: &mut Writer<W>,
    n: usize,
    classname: &str,
    r: &TraceRecord,
) -> std::io::Result<()> {
    let case_name = format!("#{n} {}", r.label());
    let case_name = xml_safe(&case_name);
    let time = seconds(r.duration_ms);
    let start = BytesStart::new("testcase").with_attributes([
        ("name", case_name.as_ref()),
        ("classname", classname),
        ("time", time.as_str()),
    ]);
    w.write_event(Event::Start(start))?;
    if let Some(message) = r.error_message() {
        failure(w, r, message)?;
    }
    if r.success {
        for a in &r.failed_attempts {
            flaky_failure(w, a)?;
        }
    }
    if !r.output.is_empty() {
        let out = cap(&r.output, 16 * 1024);
        let out = xml_safe(&out);
        w.write_event(Event::Start(BytesStart::new("system-out")))?;
        w.write_event(Event::Text(BytesText::new(&out)))?;
        w.write_event(Event::End(BytesEnd::new("system-out")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

/// The `<failure>` of a failed run: the error, the input, and its stderr.
fn failure<W: Write>(w: &mut Writer<W>, r: &TraceRecord, message: &str) -> std::io::Result<()> {
    let message = xml_safe(message);
    let short = excerpt(&message, 200);
    let mut body = format!("run {}\ninput: {}\nerror: {}", r.run_id, r.input, message);
    if let Some(stderr) = r.error.as_ref().and_then(|e| e.stderr.as_deref()) {
        body.push_str("\nstderr:\n");
        body.push_str(stderr);
    }
    let body = cap(&body, 16 * 1024);
    let body = xml_safe(&body);
    w.write_event(Event::Start(BytesStart::new("failure").with_attributes([
        ("message", short.as_str()),
        ("type", "AgentRunFailed"),
    ])))?;
    w.write_event(Event::Text(BytesText::new(&body)))?;
    w.write_event(Event::End(BytesEnd::new("failure")))
}

/// A run never started (`--max-failures`), as a `<skipped/>` case.
fn skipped_case<W: Write>(
    w: &mut Writer<W>,
    n: usize,
    classname: &str,
    label: &str,
) -> std::io::Result<()> {
    let case_name = format!("#{n} {label}");
    let case_name = xml_safe(&case_name);
    w.write_event(Event::Start(BytesStart::new("testcase").with_attributes([
        ("name", case_name.as_ref()),
        ("classname", classname),
        ("time", "0.000"),
    ])))?;
    w.write_event(Event::Empty(BytesStart::new("skipped").with_attributes([
        ("message", "not run: --max-failures was reached"),
    ])))?;
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

/// A failed attempt of a run that then passed, the way Maven Surefire
/// writes it (Jenkins and GitLab read it): `<flakyFailure message type>`
/// with `<stackTrace>`, `<system-out>`, `<system-err>` inside.
fn flaky_failure<W: Write>(w: &mut Writer<W>, a: &AttemptRecord) -> std::io::Result<()> {
    let message = xml_safe(&a.message);
    let short = excerpt(&message, 200);
    w.write_event(Event::Start(
        BytesStart::new("flakyFailure")
            .with_attributes([("message", short.as_str()), ("type", "AgentRunFailed")]),
    ))?;
    for (tag, text) in [
        ("stackTrace", a.message.as_str()),
        ("system-out", a.output.as_str()),
        ("system-err", a.stderr.as_str()),
    ] {
        if text.is_empty() {
            continue;
        }
        let text = cap(text, 16 * 1024);
        let text = xml_safe(&text);
        w.write_event(Event::Start(BytesStart::new(tag)))?;
        w.write_event(Event::Text(BytesText::new(&text)))?;
        w.write_event(Event::End(BytesEnd::new(tag)))?;
    }
    w.write_event(Event::End(BytesEnd::new("flakyFailure")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::TraceError;

    #[test]
    fn renders_escaped_and_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("junit.xml");
        let records = vec![
            TraceRecord {
                run_id: "r1".into(),
                input: "Where is <my> order & \"why\"?".into(),
                input_item_id: Some("i1".into()),
                output: "ok ]]> \u{1b}[31mred\u{0}".into(),
                success: true,
                duration_ms: 1500,
                ..Default::default()
            },
            TraceRecord {
                run_id: "r2".into(),
                input: "second".into(),
                success: false,
                duration_ms: 20,
                error: Some(TraceError {
                    message: "the agent exited with code 3; stderr: <boom>".into(),
                    stderr: Some("Traceback\n<boom>".into()),
                }),
                ..Default::default()
            },
        ];
        let suite = Suite {
            name: "support-bot",
            tests: 2,
            failures: 1,
            time_ms: 1520,
            timestamp: "2024-01-02T03:04:05".into(),
            skipped: Vec::new(),
        };
        write(&path, &suite, |each| {
            for r in records {
                each(r)?;
            }
            Ok(())
        })
        .unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{xml}"
        );
        assert!(xml.contains(r#"<testsuite name="support-bot" tests="2" failures="1" errors="0" skipped="0" time="1.520" timestamp="2024-01-02T03:04:05" hostname="localhost">"#), "{xml}");
        assert!(
            xml.contains(
                "#1 Where is &lt;my&gt; order &amp; &quot;why&quot;? [input i1, iteration 0]"
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<failure message="the agent exited with code 3; stderr: &lt;boom&gt;" type="AgentRunFailed">"#), "{xml}");
        assert!(xml.contains("ok ]]&gt; \u{FFFD}[31mred\u{FFFD}"), "{xml}");
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}'));
        // Well-formed: quick-xml reads it back without error.
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0i32;
        loop {
            match reader.read_event().unwrap() {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn flaky_and_skipped_cases_the_surefire_way() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("junit.xml");
        let suite = Suite {
            name: "s",
            tests: 1,
            failures: 0,
            time_ms: 5,
            timestamp: "2024-01-02T03:04:05".into(),
            skipped: vec!["later [iteration 0]".into()],
        };
        write(&path, &suite, |each| {
            each(TraceRecord {
                run_id: "r1".into(),
                input: "hi".into(),
                success: true,
                duration_ms: 5,
                attempts: Some(2),
                failed_attempts: vec![AttemptRecord {
                    message: "flaked <once>".into(),
                    output: "partial".into(),
                    stderr: String::new(),
                }],
                ..Default::default()
            })
        })
        .unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        let body = &xml[xml.find("<testsuite ").unwrap()..];
        assert_eq!(
            body,
            r##"<testsuite name="s" tests="2" failures="0" errors="0" skipped="1" time="0.005" timestamp="2024-01-02T03:04:05" hostname="localhost">
    <testcase name="#1 hi [iteration 0]" classname="fluxloop.s" time="0.005">
      <flakyFailure message="flaked &lt;once&gt;" type="AgentRunFailed">
        <stackTrace>flaked &lt;once&gt;</stackTrace>
        <system-out>partial</system-out>
      </flakyFailure>
    </testcase>
    <testcase name="#2 later [iteration 0]" classname="fluxloop.s" time="0.000">
      <skipped message="not run: --max-failures was reached"/>
    </testcase>
  </testsuite>
</testsuites>
"##
        );
    }
}
