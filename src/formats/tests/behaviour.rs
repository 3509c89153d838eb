//! Behaviour rules of each format that the golden files and docs do not pin down: which
//! event types render, headers, when nothing is sent, and how Tracker words its messages.

use serde_json::{json, Value};

use crate::domain::event::Event;
use crate::domain::event_type::EventType;
use crate::formats::{render, samples, Format};

fn body(format: Format, event: &Event) -> Option<Value> {
    render(format, event, &samples::context()).map(|r| serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn each_format_renders_exactly_its_event_types_and_the_ping() {
    let ctx = samples::context();
    for format in Format::ALL {
        for t in EventType::ALL {
            let rendered = render(format, &samples::event(*t), &ctx);
            let expected = format.supports(*t) || *t == EventType::WEBHOOK_PING;
            assert_eq!(rendered.is_some(), expected, "{format:?} {t}");
            if let Some(r) = rendered {
                assert_eq!(
                    r.headers,
                    vec![
                        ("Herald-Event-Type", t.to_string()),
                        ("Herald-Format", format.as_str().to_owned())
                    ]
                );
            }
        }
    }
}

#[test]
fn projectrak_sends_nothing_when_only_formula_fields_changed() {
    let mut e = samples::event(EventType::PROJECT_UPDATED);
    // Make every non-formula field equal before and after; the formula field still differs.
    let after_fields = e.after.as_ref().unwrap()["fields"].clone();
    let mut before_fields = after_fields.clone();
    before_fields[3]["value"] = json!(1);
    e.before.as_mut().unwrap()["fields"] = before_fields;
    e.changed = vec!["fields.12347".into()];
    assert_eq!(body(Format::Projectrak, &e), None);
    // A field first set reports `previous: null`; a no-op re-encoding is not a change.
    e.before.as_mut().unwrap()["fields"][1]["value"] = Value::Null;
    e.before.as_mut().unwrap()["fields"][0]["value"] = json!(23000);
    let b = body(Format::Projectrak, &e).unwrap();
    let fields = b["data"]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0]["value"], json!({"current": "Done", "previous": null}));
}

#[test]
fn projectrak_encodes_users_projects_durations_and_multi_values_as_strings() {
    let mut e = samples::event(EventType::PROJECT_UPDATED);
    let user =
        json!({"id": 1, "uuid": "u", "account_id": "acc-1", "name": "A", "initials": "A", "email": ""});
    let project = json!({"id": 77, "uuid": "p", "key": "P", "name": "P"});
    let fields = json!([
        {"id": 1, "name": "Owner", "type": "user", "value": user},
        {"id": 2, "name": "Related", "type": "multiproject", "value": [project]},
        {"id": 3, "name": "Estimate", "type": "duration", "value": 28_800_000},
        {"id": 4, "name": "Tags", "type": "multilist", "value": ["a", "b"]},
        {"id": 5, "name": "Ratio", "type": "number", "value": 23.5},
    ]);
    e.after.as_mut().unwrap()["fields"] = fields;
    e.before.as_mut().unwrap()["fields"] =
        json!([{"id": 4, "name": "Tags", "type": "multilist", "value": []}]);
    let b = body(Format::Projectrak, &e).unwrap();
    let values: Vec<&Value> = b["data"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["value"])
        .collect();
    assert_eq!(values[0], &json!({"current": "acc-1", "previous": null}));
    assert_eq!(values[1], &json!({"current": ["77"], "previous": null}));
    assert_eq!(values[2], &json!({"current": "28800000", "previous": null}));
    assert_eq!(values[3], &json!({"current": ["a", "b"], "previous": []}));
    assert_eq!(values[4], &json!({"current": "23.5", "previous": null}));
}

#[test]
fn ppm_deleted_sends_the_last_snapshot_and_updated_sends_before_attributes() {
    let deleted = body(Format::Ppm, &samples::event(EventType::TASK_DELETED)).unwrap();
    assert_eq!(deleted["Data"]["Attributes"]["Progress"], 50);
    assert!(deleted["Data"].get("BeforeAttributes").is_none());
    assert_eq!(deleted["Data"]["ParentEntityType"], "Project");
    let updated = body(Format::Ppm, &samples::event(EventType::TASK_UPDATED)).unwrap();
    assert_eq!(updated["Data"]["BeforeAttributes"]["Progress"], 0);
    let created = body(Format::Ppm, &samples::event(EventType::PROJECT_CREATED)).unwrap();
    assert!(created["Data"].get("ParentEntityId").is_none());
    let portfolio = body(Format::Ppm, &samples::event(EventType::KEY_DATE_CREATED)).unwrap();
    assert_eq!(portfolio["Data"]["ParentEntityType"], "Portfolio");
    let ping = body(Format::Ppm, &samples::event(EventType::WEBHOOK_PING)).unwrap();
    assert_eq!(ping["Data"]["Id"], samples::context().webhook_id.to_string());
    assert_eq!(ping["Data"]["Attributes"], json!({"Ping": true}));
}

#[test]
fn ppm_skips_updates_that_touched_only_projectrak_fields_and_custom_labels_do_not_override() {
    let mut e = samples::event(EventType::PROJECT_UPDATED);
    e.changed.retain(|c| c.starts_with("fields."));
    assert_eq!(body(Format::Ppm, &e), None);
    e.after.as_mut().unwrap()["custom"] = json!({"Name": "spoof", "Impact": 5, "Idea’s sponsor": 1});
    e.changed.push("custom".into());
    let b = body(Format::Ppm, &e).unwrap();
    let attrs = &b["Data"]["Attributes"];
    assert_eq!(attrs["Name"], "Demo project");
    assert_eq!(attrs["Impact"], 5);
    assert_eq!(attrs["Idea’s sponsor"], 1);
}

fn tracker_words(changed: &[&str], patch: Value) -> (String, String) {
    let mut e = samples::event(EventType::STORY_UPDATED);
    if let (Some(Value::Object(after)), Value::Object(p)) = (e.after.as_mut(), patch) {
        after.extend(p);
    }
    e.changed = changed.iter().map(|s| s.to_string()).collect();
    let b = body(Format::TrackerV5, &e).unwrap();
    (
        b["highlight"].as_str().unwrap().to_owned(),
        b["message"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn tracker_highlight_follows_what_changed() {
    let w = |h: &str, m: &str| (h.to_owned(), m.to_owned());
    assert_eq!(
        tracker_words(&["estimate"], json!({"estimate": 3.0})),
        w("estimated", "Darth Vader estimated this feature as 3 points")
    );
    assert_eq!(
        tracker_words(&["estimate"], json!({"estimate": 1})),
        w("estimated", "Darth Vader estimated this feature as 1 point")
    );
    assert_eq!(
        tracker_words(&["before_id", "after_id"], json!({})),
        w("moved", "Darth Vader moved this story")
    );
    assert_eq!(
        tracker_words(&["name", "estimate"], json!({})),
        w("edited", "Darth Vader edited this feature")
    );
    assert_eq!(
        tracker_words(&["current_state"], json!({"current_state": "unstarted"})),
        w("unstarted", "Darth Vader unstarted this feature")
    );
    assert_eq!(
        tracker_words(&["uuid"], json!({})),
        w("edited", "Darth Vader edited this feature")
    );
}

#[test]
fn tracker_update_maps_snapshot_keys_to_tracker_fields() {
    let mut e = samples::event(EventType::STORY_UPDATED);
    e.changed = vec!["owners".into(), "requested_by".into(), "labels".into()];
    e.after.as_mut().unwrap()["owners"] = json!([]);
    let b = body(Format::TrackerV5, &e).unwrap();
    let change = &b["changes"][0];
    assert_eq!(change["original_values"]["owner_ids"], json!([101]));
    assert_eq!(change["new_values"]["owner_ids"], json!([]));
    assert_eq!(change["new_values"]["requested_by_id"], 101);
    assert_eq!(change["new_values"]["labels"], json!(["reactor"]));
    assert_eq!(change["new_values"]["updated_at"], b["occurred_at"]);
}

#[test]
fn tracker_create_lists_deadline_for_releases_and_accepted_at_when_set() {
    let mut e = samples::event(EventType::STORY_CREATED);
    let after = e.after.as_mut().unwrap();
    after["story_type"] = json!("release");
    after["deadline"] = json!(1_390_000_000_000_i64);
    after["accepted_at"] = json!(1_389_218_525_000_i64);
    let b = body(Format::TrackerV5, &e).unwrap();
    let values = &b["changes"][0]["new_values"];
    assert_eq!(values["deadline"], 1_390_000_000_000_i64);
    assert_eq!(values["accepted_at"], 1_389_218_525_000_i64);
    assert_eq!(b["message"], "Leo Franchi added this release");
    let plain = body(Format::TrackerV5, &samples::event(EventType::STORY_CREATED)).unwrap();
    assert!(plain["changes"][0]["new_values"].get("deadline").is_none());
    assert!(plain["changes"][0]["new_values"].get("accepted_at").is_none());
}

#[test]
fn no_body_shows_seq_unless_body_shows_seq_says_so() {
    // SQLite renders bodies before the event's insert assigns its `seq` when
    // `body_shows_seq` is false: the bodies must then not depend on it.
    for event in samples::all() {
        let mut other = event.clone();
        other.seq = event.seq + 1000;
        let differs = Format::ALL
            .into_iter()
            .any(|f| body(f, &event) != body(f, &other));
        assert!(
            !differs || crate::formats::body_shows_seq(&event),
            "{}: a body shows seq though body_shows_seq is false",
            event.event_type
        );
    }
    // And the one case it is true for does show it (Tracker's version fallback).
    let mut unversioned = samples::event(EventType::STORY_UPDATED);
    unversioned.project_version = None;
    let mut other = unversioned.clone();
    other.seq += 1000;
    assert!(crate::formats::body_shows_seq(&unversioned));
    assert_ne!(
        body(Format::TrackerV5, &unversioned),
        body(Format::TrackerV5, &other)
    );
}

#[test]
fn a_template_gives_each_webhook_exactly_the_body_render_gives() {
    use crate::formats::template::Template;
    let ctx = samples::context();
    for event in samples::all() {
        for format in Format::ALL {
            let direct = render(format, &event, &ctx);
            let template = Template::new(format, &event, ctx.public_base_url);
            assert_eq!(
                direct.is_some(),
                template.is_some(),
                "{format:?} {}",
                event.event_type
            );
            let Some(template) = template else { continue };
            // Twice, with other ids in between: instantiating must not leave traces.
            for (w, d) in [
                (ctx.webhook_id, ctx.delivery_id),
                (uuid::Uuid::now_v7(), uuid::Uuid::now_v7()),
                (ctx.webhook_id, ctx.delivery_id),
            ] {
                let direct = render(
                    format,
                    &event,
                    &crate::formats::RenderContext {
                        webhook_id: w,
                        delivery_id: d,
                        public_base_url: ctx.public_base_url,
                    },
                )
                .unwrap();
                assert_eq!(
                    template.shared().fill(w, d),
                    direct.body,
                    "stored: {format:?} {}",
                    event.event_type
                );
                assert_eq!(
                    template.instantiate(w, d),
                    direct,
                    "{format:?} {}",
                    event.event_type
                );
            }
        }
    }
}
