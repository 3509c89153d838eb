//! Event types and entity kinds, spelled as PPM Express spells them (`Project:Created`),
//! parsed once at the edge so the rest of Herald matches on enums, never on strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of entity a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A project (Projectrak/PPM).
    Project,
    /// A Tracker story.
    Story,
    /// A comment on a story.
    Comment,
    /// A PPM task.
    Task,
    /// A PPM idea.
    Idea,
    /// A PPM key date.
    KeyDate,
    /// A PPM portfolio (owns key dates).
    Portfolio,
    /// A PPM program (owns key dates).
    Program,
    /// Not an entity: the synthetic subject of `Webhook:Ping`.
    Webhook,
}

impl EntityKind {
    /// PPM's spelling (`KeyDate`), used in event types and `ParentEntityType`.
    pub fn pascal(self) -> &'static str {
        match self {
            Self::Project => "Project",
            Self::Story => "Story",
            Self::Comment => "Comment",
            Self::Task => "Task",
            Self::Idea => "Idea",
            Self::KeyDate => "KeyDate",
            Self::Portfolio => "Portfolio",
            Self::Program => "Program",
            Self::Webhook => "Webhook",
        }
    }

    /// snake_case spelling used in the store and the `standard` format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Story => "story",
            Self::Comment => "comment",
            Self::Task => "task",
            Self::Idea => "idea",
            Self::KeyDate => "key_date",
            Self::Portfolio => "portfolio",
            Self::Program => "program",
            Self::Webhook => "webhook",
        }
    }

    /// Parses the snake_case spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Every kind.
    pub const ALL: [EntityKind; 9] = [
        Self::Project,
        Self::Story,
        Self::Comment,
        Self::Task,
        Self::Idea,
        Self::KeyDate,
        Self::Portfolio,
        Self::Program,
        Self::Webhook,
    ];
}

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `:Created`
    Created,
    /// `:Updated`
    Updated,
    /// `:Deleted`
    Deleted,
    /// `:Ping` (only for `Webhook:Ping`)
    Ping,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::Deleted => "Deleted",
            Self::Ping => "Ping",
        }
    }
}

/// An event type such as `Project:Updated`. Only the combinations in [`EventType::ALL`]
/// exist; construction goes through [`FromStr`] or the constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    kind: EntityKind,
    action: Action,
}

macro_rules! event_types {
    ($($name:ident = $kind:ident : $action:ident),* $(,)?) => {
        impl EventType {
            $(
                #[doc = concat!("`", stringify!($kind), ":", stringify!($action), "`")]
                pub const $name: EventType = EventType { kind: EntityKind::$kind, action: Action::$action };
            )*
            /// Every event type Herald knows, in documentation order.
            pub const ALL: &'static [EventType] = &[$(Self::$name),*];
        }
    };
}

event_types! {
    PROJECT_CREATED = Project:Created, PROJECT_UPDATED = Project:Updated, PROJECT_DELETED = Project:Deleted,
    IDEA_CREATED = Idea:Created, IDEA_UPDATED = Idea:Updated, IDEA_DELETED = Idea:Deleted,
    TASK_CREATED = Task:Created, TASK_UPDATED = Task:Updated, TASK_DELETED = Task:Deleted,
    KEY_DATE_CREATED = KeyDate:Created, KEY_DATE_UPDATED = KeyDate:Updated, KEY_DATE_DELETED = KeyDate:Deleted,
    STORY_CREATED = Story:Created, STORY_UPDATED = Story:Updated, STORY_DELETED = Story:Deleted,
    COMMENT_CREATED = Comment:Created, COMMENT_UPDATED = Comment:Updated, COMMENT_DELETED = Comment:Deleted,
    WEBHOOK_PING = Webhook:Ping,
}

impl EventType {
    /// Builds the event type for a kind and action, if that combination exists.
    pub fn new(kind: EntityKind, action: Action) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.kind == kind && t.action == action)
    }
    /// The entity kind part.
    pub fn kind(self) -> EntityKind {
        self.kind
    }
    /// The action part.
    pub fn action(self) -> Action {
        self.action
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.pascal(), self.action.as_str())
    }
}

/// The input was not one of [`EventType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_spelling() {
        for t in EventType::ALL {
            assert_eq!(t.to_string().parse::<EventType>().unwrap(), *t);
        }
        assert_eq!(EventType::KEY_DATE_UPDATED.to_string(), "KeyDate:Updated");
        assert!("Project:Update".parse::<EventType>().is_err());
    }
}
