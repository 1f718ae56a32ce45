//! A duration written the humantime way (`500ms`, `30s`, `2m`) in scenario files.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration a scenario may give: a run is bounded, and adding a larger one to the
/// clock could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parsed at load time, so a bad duration is reported with the file and line of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. 500ms, 30s or 2m"
            ))
        })?;
        if duration > MAX_DURATION {
            return Err(serde::de::Error::custom(format!(
                "duration {text:?} is longer than {}",
                humantime::format_duration(MAX_DURATION)
            )));
        }
        Ok(HumanDuration(duration))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 500ms, 30s, 2m or 1h 30m.",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*[a-zµ]+(\\s*[0-9]+(\\.[0-9]+)?\\s*[a-zµ]+)*\\s*$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humantime_and_rejects_garbage() {
        let d: HumanDuration = serde_yaml::from_str("1m 30s").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        let e = serde_yaml::from_str::<HumanDuration>("ten seconds").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let d: HumanDuration = serde_yaml::from_str("24h").unwrap();
        assert_eq!(d.get(), MAX_DURATION);
        let e = serde_yaml::from_str::<HumanDuration>("24h 1s").unwrap_err();
        assert!(e.to_string().contains("longer than 1day"), "{e}");
    }
}
