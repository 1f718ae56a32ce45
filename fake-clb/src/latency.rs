//! Realistic call timing: a per-action latency range, drawn uniformly from a seeded RNG so runs repeat.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The key of [`CallLatency`] that applies to actions without their own entry.
pub const DEFAULT_KEY: &str = "default";

/// Per action name (or `default`) the latency range added before answering a call. Empty: no added latency.
pub type CallLatency = BTreeMap<String, LatencyRange>;

/// An inclusive range of durations written `40ms-120ms` (or one duration, `50ms`, for a fixed delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

impl LatencyRange {
    /// Parses `MIN-MAX` or `FIXED` in humantime notation; MIN must not exceed MAX.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parse = |t: &str| {
            humantime::parse_duration(t.trim()).map_err(|e| format!("invalid duration {t:?}: {e}"))
        };
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let d = parse(text)?;
                (d, d)
            }
        };
        if min > max {
            return Err(format!(
                "latency range {text:?} has its minimum above its maximum"
            ));
        }
        Ok(LatencyRange { min, max })
    }

    /// A uniform draw within the range.
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        let (lo, hi) = (self.min.as_micros() as u64, self.max.as_micros() as u64);
        Duration::from_micros(rng.random_range(lo..=hi))
    }
}

/// The range for `action`: its own entry, else `default`, else none.
pub fn for_action<'a>(latency: &'a CallLatency, action: &str) -> Option<&'a LatencyRange> {
    latency.get(action).or_else(|| latency.get(DEFAULT_KEY))
}

impl fmt::Display for LatencyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let min = humantime::format_duration(self.min);
        if self.min == self.max {
            write!(f, "{min}")
        } else {
            write!(f, "{min}-{}", humantime::format_duration(self.max))
        }
    }
}

impl Serialize for LatencyRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LatencyRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LatencyRange::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for LatencyRange {
    fn schema_name() -> Cow<'static, str> {
        "LatencyRange".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A latency range such as 40ms-120ms, or one duration such as 50ms."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ranges_parse_draw_within_bounds_and_repeat_with_the_seed() {
        let r = LatencyRange::parse("40ms-120ms").unwrap();
        assert_eq!(r.min, Duration::from_millis(40));
        assert_eq!(r.to_string(), "40ms-120ms");
        assert_eq!(
            LatencyRange::parse("50ms").unwrap().max,
            Duration::from_millis(50)
        );
        assert!(LatencyRange::parse("2s-1s").is_err() && LatencyRange::parse("x").is_err());
        let draws = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..32).map(|_| r.draw(&mut rng)).collect::<Vec<_>>()
        };
        let a = draws(7);
        assert_eq!(a, draws(7));
        assert!(a.iter().all(|d| (r.min..=r.max).contains(d)));
        assert!(a.iter().any(|d| *d != a[0]), "uniform, not fixed");
        let map: CallLatency =
            serde_yaml::from_str("DescribeTargets: 40ms-120ms\ndefault: 30ms-90ms\n").unwrap();
        assert_eq!(for_action(&map, "DescribeTargets"), Some(&r));
        assert_eq!(
            for_action(&map, "CreateListener").unwrap().min,
            Duration::from_millis(30)
        );
        assert!(for_action(&CallLatency::new(), "X").is_none());
    }
}
