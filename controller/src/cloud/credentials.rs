//! API key credentials. The secret key can only leave this type through the signer: `Debug` and `Display` redact it.

use std::fmt;
use std::path::Path;

use clb_api::sign::Tc3Signer;

use super::error::CloudError;

/// Environment variables holding the SecretId, in lookup order (ours, then the bcs-ingress-controller names).
pub const SECRET_ID_ENV: &[&str] = &["TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_ACCESS_KEY_ID"];
/// Environment variables holding the SecretKey, in lookup order (`TENCENTCLOUD_ACESS_KEY` is bcs' spelling, sic).
pub const SECRET_KEY_ENV: &[&str] = &[
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_ACCESS_KEY",
    "TENCENTCLOUD_ACESS_KEY",
];
/// File names accepted in a mounted Secret directory for the SecretId (first match wins).
const SECRET_ID_FILES: &[&str] = &[
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_ACCESS_KEY_ID",
    "secretId",
    "secret-id",
];
/// File names accepted in a mounted Secret directory for the SecretKey (first match wins).
const SECRET_KEY_FILES: &[&str] = &[
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_ACCESS_KEY",
    "TENCENTCLOUD_ACESS_KEY",
    "secretKey",
    "secret-key",
];

/// A Tencent Cloud API key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    secret_id: String,
    secret_key: String,
}

impl Credentials {
    /// Both parts must be non-empty (after trimming whitespace, which mounted files often end with).
    pub fn new(
        secret_id: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<Self, CloudError> {
        let secret_id = secret_id.into().trim().to_string();
        let secret_key = secret_key.into().trim().to_string();
        if secret_id.is_empty() {
            return Err(CloudError::Credentials("SecretId is empty".into()));
        }
        if secret_key.is_empty() {
            return Err(CloudError::Credentials("SecretKey is empty".into()));
        }
        Ok(Credentials {
            secret_id,
            secret_key,
        })
    }

    /// From the process environment (see [`SECRET_ID_ENV`] and [`SECRET_KEY_ENV`]).
    pub fn from_env() -> Result<Self, CloudError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From any name → value lookup; the first non-empty variable of each list wins.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CloudError> {
        let first = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        let id = first(SECRET_ID_ENV).ok_or_else(|| {
            CloudError::Credentials(format!("none of {} is set", SECRET_ID_ENV.join(", ")))
        })?;
        let key = first(SECRET_KEY_ENV).ok_or_else(|| {
            CloudError::Credentials(format!("none of {} is set", SECRET_KEY_ENV.join(", ")))
        })?;
        Self::new(id, key)
    }

    /// From a mounted Kubernetes Secret: a directory with one file per key (`TENCENTCLOUD_SECRET_ID` /
    /// `TENCENTCLOUD_SECRET_KEY`, the bcs names, or `secretId` / `secretKey`).
    pub fn from_secret_dir(dir: &Path) -> Result<Self, CloudError> {
        let read = |names: &[&str]| -> Result<String, CloudError> {
            for name in names {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => return Ok(v),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(CloudError::Credentials(format!(
                            "reading {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
            Err(CloudError::Credentials(format!(
                "{} holds none of {}",
                dir.display(),
                names.join(", ")
            )))
        };
        Self::new(read(SECRET_ID_FILES)?, read(SECRET_KEY_FILES)?)
    }

    /// Resolution order for the controller: explicit flags, then a mounted Secret directory, then the environment.
    pub fn resolve(
        flag_id: Option<&str>,
        flag_key: Option<&str>,
        secret_dir: Option<&Path>,
    ) -> Result<Self, CloudError> {
        match (flag_id, flag_key, secret_dir) {
            (Some(id), Some(key), _) => Self::new(id, key),
            (Some(_), None, _) | (None, Some(_), _) => Err(CloudError::Credentials(
                "give both the SecretId and the SecretKey flags, or neither".into(),
            )),
            (None, None, Some(dir)) => Self::from_secret_dir(dir),
            (None, None, None) => Self::from_env(),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The TC3 signer for the `clb` service.
    pub fn signer(&self) -> Tc3Signer {
        Tc3Signer::new(self.secret_id.clone(), self.secret_key.clone())
    }

    /// The SecretId with its middle hidden, for logs.
    fn masked_id(&self) -> String {
        let chars: Vec<char> = self.secret_id.chars().collect();
        if chars.len() <= 8 {
            return "****".into();
        }
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}****{tail}")
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.masked_id())
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretId {}", self.masked_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";

    #[test]
    fn debug_and_display_never_show_the_key() {
        let c = Credentials::new(ID, KEY).unwrap();
        for text in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{c}"),
            format!("{:?}", c.signer()),
        ] {
            assert!(!text.contains(KEY), "key leaked: {text}");
            assert!(!text.contains("Gu5t9x"), "key prefix leaked: {text}");
        }
        assert!(format!("{c:?}").contains("AKID****MPLE"));
        assert_eq!(c.secret_id(), ID);
    }

    #[test]
    fn env_lookup_prefers_our_names_then_bcs_names() {
        let env: HashMap<&str, &str> = [
            ("TENCENTCLOUD_ACCESS_KEY_ID", "AKIDbcs"),
            ("TENCENTCLOUD_ACESS_KEY", "bcs-key"),
        ]
        .into();
        let c = Credentials::from_lookup(|n| env.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(c.secret_id(), "AKIDbcs");

        let env2: HashMap<&str, &str> = [
            ("TENCENTCLOUD_SECRET_ID", "AKIDours"),
            ("TENCENTCLOUD_ACCESS_KEY_ID", "AKIDbcs"),
            ("TENCENTCLOUD_SECRET_KEY", "k"),
        ]
        .into();
        let c2 = Credentials::from_lookup(|n| env2.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(c2.secret_id(), "AKIDours");

        let missing = Credentials::from_lookup(|_| None).unwrap_err();
        assert!(missing.to_string().contains("TENCENTCLOUD_SECRET_ID"));
    }

    #[test]
    fn secret_dir_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secretId"), "AKIDfile\n").unwrap();
        std::fs::write(dir.path().join("TENCENTCLOUD_SECRET_KEY"), "file-key\n").unwrap();
        let c = Credentials::from_secret_dir(dir.path()).unwrap();
        assert_eq!(c, Credentials::new("AKIDfile", "file-key").unwrap());

        let empty = tempfile::tempdir().unwrap();
        let err = Credentials::from_secret_dir(empty.path()).unwrap_err();
        assert!(err.to_string().contains("secretId"), "{err}");
    }

    #[test]
    fn flags_win_and_must_come_in_pairs() {
        let c = Credentials::resolve(Some("AKIDflag"), Some("k"), None).unwrap();
        assert_eq!(c.secret_id(), "AKIDflag");
        assert!(Credentials::resolve(Some("AKIDflag"), None, None).is_err());
        assert!(Credentials::new(" ", "k").is_err());
    }
}
