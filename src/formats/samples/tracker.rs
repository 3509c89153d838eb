//! Sample story and comment events, from the Pivotal Tracker v5 examples (seed 002 and the
//! fixtures quoted in formats.md §2.5).

use serde_json::{json, Value};
use uuid::{uuid, Uuid};

use super::{base, merged, user, user_json};
use crate::domain::event::{Event, ParentRef, ProjectRef, UserRef};
use crate::domain::event_type::{Action, EntityKind, EventType};

fn leo() -> UserRef {
    user(
        981_905,
        uuid!("8f14e45f-ceea-467a-9a5b-2e1d4f0c6b01"),
        "DUMMY-ACCOUNT-ID-7a1e-4d2c-9b8f-leofranchi",
        "Leo Franchi",
        "LF",
        "leo@example.com",
    )
}

fn hard_code() -> ProjectRef {
    ProjectRef {
        id: 807_213,
        uuid: uuid!("c81e728d-9d4c-4f63-af06-7f89cc14862c"),
        key: "HC".to_owned(),
        name: "Hard Code".to_owned(),
    }
}

fn story_event(t: EventType, actor: UserRef, p: ProjectRef, id: i64, version: i64, at: i64) -> Event {
    Event {
        entity_id: id,
        entity_uuid: Uuid::from_u128(0x5_7000 + id as u128),
        parent: Some(ParentRef {
            kind: EntityKind::Project,
            id: p.id,
            uuid: p.uuid,
        }),
        project: Some(p),
        project_version: Some(version),
        ..base(t, actor, at)
    }
}

/// "Story that I created", the `story_create_activity` fixture.
fn new_bug() -> Value {
    json!({
        "id": 63_495_662, "uuid": Uuid::from_u128(0x5_7000 + 63_495_662),
        "created_at": 1_389_218_525_000_i64, "updated_at": 1_389_218_525_000_i64,
        "project_id": 807_213, "name": "Story that I created", "description": "What a description",
        "story_type": "bug", "current_state": "unscheduled", "estimate": null, "accepted_at": null,
        "deadline": null, "requested_by": user_json(&leo()), "owners": [], "labels": [],
        "before_id": 48_420_109, "after_id": 63_486_316,
    })
}

/// Leo Franchi adds a bug, the `story_create_activity` fixture.
pub fn story_created() -> Event {
    Event {
        after: Some(new_bug()),
        ..story_event(
            EventType::STORY_CREATED,
            leo(),
            hard_code(),
            63_495_662,
            62,
            1_389_218_525_000,
        )
    }
}

/// The same bug, deleted.
pub fn story_deleted() -> Event {
    Event {
        before: Some(new_bug()),
        ..story_event(
            EventType::STORY_DELETED,
            leo(),
            hard_code(),
            63_495_662,
            66,
            1_389_218_800_000,
        )
    }
}

/// Darth Vader accepts a story, the docs example (with `accepted_at` equal to the time of
/// the change, which the vendor example gets wrong by a second).
pub fn story_updated() -> Event {
    let vader = user(
        101,
        uuid!("a87ff679-a2f3-471d-8181-4b2c3a1f0e9d"),
        "DUMMY-ACCOUNT-ID-0101-darth-vader",
        "Darth Vader",
        "DV",
        "vader@deathstar.example",
    );
    let death_star = ProjectRef {
        id: 99,
        uuid: uuid!("eccbc87e-4b5c-4e2a-8d4f-3b9c1a2d7e55"),
        key: "DS".to_owned(),
        name: "Death Star".to_owned(),
    };
    let before = json!({
        "id": 563, "uuid": Uuid::from_u128(0x5_7000 + 563),
        "created_at": 1_382_000_000_000_i64, "updated_at": 1_382_568_825_000_i64,
        "project_id": 99, "name": "Reactor leak reported in Detention Block AA-23",
        "description": null, "story_type": "feature", "current_state": "delivered",
        "estimate": 2.0, "accepted_at": null, "deadline": null,
        "requested_by": user_json(&vader), "owners": [user_json(&vader)], "labels": ["reactor"],
        "before_id": 6643, "after_id": 565,
    });
    let after = merged(
        &before,
        json!({
            "current_state": "accepted", "accepted_at": 1_382_568_826_000_i64,
            "before_id": 6024, "after_id": 559, "updated_at": 1_382_568_826_000_i64,
        }),
    );
    let changed = ["current_state", "accepted_at", "before_id", "after_id"];
    Event {
        before: Some(before),
        after: Some(after),
        changed: changed.map(str::to_owned).to_vec(),
        ..story_event(
            EventType::STORY_UPDATED,
            vader,
            death_star,
            563,
            1037,
            1_382_568_826_000,
        )
    }
}

/// "Story of the Year", the story the sample comments are on, at `updated_at`.
fn story_of_the_year(updated_at: i64) -> Value {
    json!({
        "id": 63_486_316, "uuid": Uuid::from_u128(0x5_7000 + 63_486_316),
        "created_at": 1_389_000_000_000_i64, "updated_at": updated_at,
        "project_id": 807_213, "name": "Story of the Year", "description": null,
        "story_type": "feature", "current_state": "started", "estimate": 1.0,
        "accepted_at": null, "deadline": null, "requested_by": user_json(&leo()),
        "owners": [user_json(&leo())], "labels": [], "before_id": null, "after_id": 48_420_109,
    })
}

/// The `comment_create_activity` fixture; update and delete continue its story.
pub fn comment(t: EventType) -> Event {
    let (version, story_before, at) = match t.action() {
        Action::Created => (61, 1_389_218_398_000, 1_389_218_474_000),
        Action::Updated => (64, 1_389_218_525_000, 1_389_218_600_000),
        _ => (65, 1_389_218_600_000, 1_389_218_700_000),
    };
    let comment = json!({
        "id": 59_124_096, "uuid": Uuid::from_u128(0xC_7000 + 59_124_096),
        "created_at": 1_389_218_474_000_i64, "updated_at": 1_389_218_474_000_i64,
        "story_id": 63_486_316, "text": "A comment on the story", "person": user_json(&leo()),
    });
    let edited = merged(
        &comment,
        json!({"text": "A comment on the story, reworded", "updated_at": 1_389_218_600_000_i64}),
    );
    let p = hard_code();
    let e = Event {
        entity_id: 59_124_096,
        entity_uuid: Uuid::from_u128(0xC_7000 + 59_124_096),
        parent: Some(ParentRef {
            kind: EntityKind::Story,
            id: 63_486_316,
            uuid: Uuid::from_u128(0x5_7000 + 63_486_316),
        }),
        project: Some(p),
        project_version: Some(version),
        parent_before: Some(story_of_the_year(story_before)),
        parent_after: Some(story_of_the_year(at)),
        ..base(t, leo(), at)
    };
    match t.action() {
        Action::Created => Event {
            after: Some(comment),
            ..e
        },
        Action::Updated => Event {
            before: Some(comment),
            after: Some(edited),
            changed: vec!["text".to_owned()],
            ..e
        },
        _ => Event {
            before: Some(edited),
            ..e
        },
    }
}
