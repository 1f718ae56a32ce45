//! Scripted faults: ordered rules matched on action / LB / account, fired with a seeded probability
//! and a count, each with one effect.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use crate::admin_api::{Effect, FaultRule};

/// The installed rules and the seeded RNG for probabilities.
pub struct FaultEngine {
    rules: Vec<FaultRule>,
    rng: StdRng,
}

impl FaultEngine {
    pub fn new(seed: u64) -> Self {
        FaultEngine {
            rules: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn list(&self) -> &[FaultRule] {
        &self.rules
    }

    fn prepare(mut rule: FaultRule) -> Result<FaultRule, String> {
        if let Some(p) = rule.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability {p} is not within [0, 1]"));
        }
        rule.fired = 0;
        rule.remaining = rule.count;
        Ok(rule)
    }

    pub fn replace(&mut self, rules: Vec<FaultRule>) -> Result<(), String> {
        self.rules = rules
            .into_iter()
            .map(Self::prepare)
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    pub fn append(&mut self, rules: Vec<FaultRule>) -> Result<(), String> {
        let new: Vec<FaultRule> = rules
            .into_iter()
            .map(Self::prepare)
            .collect::<Result<_, _>>()?;
        self.rules.extend(new);
        Ok(())
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Resets rules and reseeds, so a run after reset draws the same sequence.
    pub fn reset(&mut self, seed: u64) {
        self.rules.clear();
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// The effect of the first rule that matches and fires (its probability draw succeeds), if any.
    pub fn pick(
        &mut self,
        action: &str,
        load_balancer_id: Option<&str>,
        secret_id: &str,
    ) -> Option<Effect> {
        for rule in self.rules.iter_mut() {
            if rule.remaining == Some(0)
                || rule.action.as_deref().is_some_and(|a| a != action)
                || rule.secret_id.as_deref().is_some_and(|s| s != secret_id)
                || rule
                    .load_balancer_id
                    .as_deref()
                    .is_some_and(|l| Some(l) != load_balancer_id)
            {
                continue;
            }
            if let Some(p) = rule.probability
                && p < 1.0
                && self.rng.random::<f64>() >= p
            {
                continue;
            }
            rule.fired += 1;
            if let Some(r) = rule.remaining.as_mut() {
                *r -= 1;
            }
            return Some(rule.effect.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_counts_down() {
        let mut f = FaultEngine::new(1);
        f.replace(vec![
            rule(r#"{"action":"CreateListener","count":2,"effect":{"type":"throttle"}}"#),
            rule(r#"{"effect":{"type":"error","code":"InternalError"}}"#),
        ])
        .unwrap();
        assert_eq!(f.pick("CreateListener", None, "a"), Some(Effect::Throttle));
        assert_eq!(f.pick("CreateListener", None, "a"), Some(Effect::Throttle));
        assert!(matches!(
            f.pick("CreateListener", None, "a"),
            Some(Effect::Error { .. })
        ));
        assert_eq!(f.list()[0].fired, 2);
        assert_eq!(f.list()[0].remaining, Some(0));
    }

    #[test]
    fn probability_is_reproducible_with_a_seed() {
        let draw = |seed| {
            let mut f = FaultEngine::new(seed);
            f.replace(vec![rule(
                r#"{"probability":0.5,"effect":{"type":"drop"}}"#,
            )])
            .unwrap();
            (0..64)
                .map(|_| f.pick("X", None, "a").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let fired = draw(7).iter().filter(|b| **b).count();
        assert!(fired > 0 && fired < 64);
    }

    #[test]
    fn rejects_bad_rules() {
        assert!(serde_json::from_str::<FaultRule>(r#"{"effect":{"type":"explode"}}"#).is_err());
        assert!(
            serde_json::from_str::<FaultRule>(r#"{"bogus":1,"effect":{"type":"drop"}}"#).is_err()
        );
        let mut f = FaultEngine::new(1);
        assert!(
            f.replace(vec![rule(
                r#"{"probability":1.5,"effect":{"type":"drop"}}"#
            )])
            .is_err()
        );
    }
}
