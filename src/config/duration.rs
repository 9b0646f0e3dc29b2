//! Durations in files: strings with a unit, parsed by `humantime`, whose errors name the field.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Reads a duration string with a unit for `field`, naming the field in every error.
#[allow(dead_code)] // used by the layers' configs, whichever features are on
pub(crate) fn deserialize_duration<'de, D>(field: &'static str, d: D) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_str(DurationVisitor { field })
}

/// Writes a duration as `humantime` formats it (`"1m 30s"`, `"500ms"`), which reads back.
#[allow(dead_code)] // used by the layers' configs, whichever features are on
pub(crate) fn serialize_duration<S>(duration: &Duration, s: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
{
    s.collect_str(&humantime::format_duration(*duration))
}

#[allow(dead_code)] // used by the layers' configs, whichever features are on
struct DurationVisitor {
    field: &'static str,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a duration with a unit for `{}`, such as \"500ms\", \"30s\" or \"1m30s\"",
            self.field
        )
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        humantime::parse_duration(value).map_err(|e| {
            E::custom(format_args!(
                "invalid duration {value:?} for `{}`: {e} (a duration is a string with a unit, \
                 such as \"500ms\", \"30s\" or \"1m30s\")",
                self.field
            ))
        })
    }
}

/// Defines `mod $module` with `serialize` and `deserialize` for a `Duration` field, for
/// `#[serde(with = "...")]`, whose errors name the field `$field` as written in the file.
#[allow(unused_macros)] // used by the layers' configs, whichever features are on
macro_rules! duration_field {
    ($module:ident, $field:literal) => {
        pub(crate) mod $module {
            use std::time::Duration;

            pub(crate) fn deserialize<'de, D>(d: D) -> Result<Duration, D::Error>
            where
                D: serde::Deserializer<'de>,
            {
                $crate::config::deserialize_duration($field, d)
            }

            pub(crate) fn serialize<S>(duration: &Duration, s: S) -> Result<S::Ok, S::Error>
            where
                S: serde::Serializer,
            {
                $crate::config::serialize_duration(duration, s)
            }
        }
    };
}

/// As [`duration_field!`], for an `Option<Duration>` field (with `#[serde(default)]` and
/// `skip_serializing_if = "Option::is_none"`: absent is `None`).
#[allow(unused_macros)] // used by the layers' configs, whichever features are on
macro_rules! optional_duration_field {
    ($module:ident, $field:literal) => {
        pub(crate) mod $module {
            use std::time::Duration;

            pub(crate) fn deserialize<'de, D>(d: D) -> Result<Option<Duration>, D::Error>
            where
                D: serde::Deserializer<'de>,
            {
                $crate::config::deserialize_duration($field, d).map(Some)
            }

            pub(crate) fn serialize<S>(duration: &Option<Duration>, s: S) -> Result<S::Ok, S::Error>
            where
                S: serde::Serializer,
            {
                match duration {
                    Some(duration) => $crate::config::serialize_duration(duration, s),
                    None => s.serialize_none(),
                }
            }
        }
    };
}

pub(crate) use {duration_field, optional_duration_field};
