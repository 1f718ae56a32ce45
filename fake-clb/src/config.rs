//! YAML configuration (camelCase keys; unknown keys are rejected with their name).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::admin_api::{AccountConfig, Limits, LoadBalancerConfig};
use crate::error::FakeError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub load_balancers: Vec<LoadBalancerConfig>,
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9001))
}

/// Real region names; requests for any other region are refused.
pub fn default_regions() -> Vec<String> {
    [
        "ap-guangzhou",
        "ap-shanghai",
        "ap-nanjing",
        "ap-beijing",
        "ap-chengdu",
        "ap-chongqing",
        "ap-hongkong",
        "ap-singapore",
        "ap-jakarta",
        "ap-seoul",
        "ap-tokyo",
        "ap-bangkok",
        "ap-mumbai",
        "na-siliconvalley",
        "na-ashburn",
        "eu-frankfurt",
        "sa-saopaulo",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            state_file: None,
            seed: None,
            accounts: Vec::new(),
            load_balancers: Vec::new(),
            regions: default_regions(),
            limits: Limits::default(),
        }
    }
}

impl Config {
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, FakeError> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| FakeError::ConfigInvalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, FakeError> {
        let text = std::fs::read_to_string(path).map_err(|source| FakeError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Cross-field checks: every pre-existing LB belongs to a configured account and region.
    pub fn check(&self) -> Result<(), FakeError> {
        for lb in &self.load_balancers {
            if !self.accounts.iter().any(|a| a.secret_id == lb.secret_id) {
                return Err(FakeError::Config(format!(
                    "loadBalancers: {} names secretId {} which is not in accounts",
                    lb.id, lb.secret_id
                )));
            }
            if !self.regions.contains(&lb.region) {
                return Err(FakeError::Config(format!(
                    "loadBalancers: {} is in region {} which is not in regions",
                    lb.id, lb.region
                )));
            }
            if !matches!(lb.lb_type.as_str(), "OPEN" | "INTERNAL") {
                return Err(FakeError::Config(format!(
                    "loadBalancers: {} has type {} (OPEN or INTERNAL)",
                    lb.id, lb.lb_type
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_the_contract_example_and_rejects_unknown_keys() {
        let yaml = "listen: 127.0.0.1:9000\nadminListen: 127.0.0.1:9001\nseed: 42\naccounts:\n  - secretId: AKIDfakeexample\n    secretKey: fakesecret\n    appId: 1250000001\nloadBalancers:\n  - id: lb-00000001\n    secretId: AKIDfakeexample\n    region: ap-guangzhou\n    name: test-lb\n    type: OPEN\n    vips: [1.1.1.1]\nlimits:\n  actionQps: 20\n  taskDuration: 200ms\n  timestampSkew: 300s\n";
        let c = Config::from_yaml(yaml, Path::new("x.yaml")).unwrap();
        assert_eq!(c.limits.task_duration, Duration::from_millis(200));
        assert_eq!(c.limits.listeners_per_load_balancer, 50);
        assert_eq!(c.load_balancers[0].vips, vec!["1.1.1.1"]);
        let err = Config::from_yaml("bogusKey: 1\n", Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogusKey"), "{err}");
        let err = Config::from_yaml("limits:\n  taskDurations: 1s\n", Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("taskDurations"), "{err}");
    }
}
