//! `docs/formats.md` is checked against the code: its examples section is generated from
//! the samples, and this test fails when the file and the renderers disagree. Run
//! `HERALD_BLESS=1 cargo test --lib formats` to rewrite the section after changing a format.

use super::{bless, pretty, repo_path};
use crate::domain::event_type::EventType;
use crate::formats::{build, render, samples, Format};

const BEGIN: &str = "<!-- BEGIN GENERATED EXAMPLES (HERALD_BLESS=1 cargo test --lib formats) -->";
const END: &str = "<!-- END GENERATED EXAMPLES -->";

/// Every example the docs must show: one per (format, event type the format carries), plus
/// the ping, as `(format, type, headers line, pretty body)`.
fn examples() -> Vec<(Format, EventType, String, String)> {
    let ctx = samples::context();
    let mut out = Vec::new();
    for format in Format::ALL {
        for t in format.event_types().chain([EventType::WEBHOOK_PING]) {
            let event = samples::event(t);
            let body = build(format, &event, &ctx).unwrap_or_else(|| panic!("{format:?} renders sample {t}"));
            let rendered = render(format, &event, &ctx).expect("renders");
            assert_eq!(
                rendered.body,
                serde_json::to_vec(&body).unwrap(),
                "render = compact build"
            );
            let headers = rendered
                .headers
                .iter()
                .map(|(k, v)| format!("`{k}: {v}`"))
                .collect::<Vec<_>>()
                .join(", ");
            out.push((format, t, headers, pretty(&body)));
        }
    }
    out
}

fn title(format: Format) -> &'static str {
    match format {
        Format::Ppm => "PPM Express (`ppm`)",
        Format::Projectrak => "Projectrak (`projectrak`)",
        Format::TrackerV5 => "Pivotal Tracker v5 (`tracker-v5`)",
        Format::Standard => "Standard (`standard`)",
    }
}

fn generated_section(examples: &[(Format, EventType, String, String)]) -> String {
    let mut s =
        format!("{BEGIN}\n## Examples\n\nGenerated from the sample events in `src/formats/samples/`.\n");
    let mut current = None;
    for (format, t, headers, body) in examples {
        if current != Some(*format) {
            s.push_str(&format!("\n### {}\n", title(*format)));
            current = Some(*format);
        }
        s.push_str(&format!(
            "\n#### `{t}`\n\nHeaders: {headers}\n\n```json\n{body}```\n"
        ));
    }
    s.push('\n');
    s.push_str(END);
    s
}

fn replace_section(doc: &str, section: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &doc[..b], &doc[e + END.len()..]),
        _ => format!("{}\n{section}\n", doc.trim_end()),
    }
}

#[test]
fn docs_show_every_example_exactly_as_rendered() {
    let path = repo_path("docs/formats.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let examples = examples();
    let section = generated_section(&examples);
    if bless() {
        std::fs::write(&path, replace_section(&doc, &section)).expect("write docs/formats.md");
        return;
    }
    let missing: Vec<String> = examples
        .iter()
        .filter(|(_, _, _, body)| !doc.contains(body.as_str()))
        .map(|(f, t, _, _)| format!("{} {t}", f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/formats.md lacks examples for {missing:?}; run HERALD_BLESS=1"
    );
    assert_eq!(
        replace_section(&doc, &section),
        doc,
        "docs/formats.md examples are stale; run HERALD_BLESS=1"
    );
}

#[test]
fn replacing_the_section_keeps_the_prose() {
    let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
    assert_eq!(replace_section(&doc, "NEW"), "intro\nNEW\noutro\n");
    assert_eq!(replace_section("intro\n", "NEW"), "intro\nNEW\n");
}
