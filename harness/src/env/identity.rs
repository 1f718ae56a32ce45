//! Running the controller as a ServiceAccount instead of the cluster admin: the proof that an RBAC grant
//! (the Helm chart's, rendered with `helm template`) is enough for everything the scenarios make it do.
//!
//! The harness applies the given manifests with its admin client, mints a token for the ServiceAccount with
//! the TokenRequest API and writes a kubeconfig that holds only that token. The controller then sees exactly
//! what a pod with that ServiceAccount would see.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tracing::info;

use crate::error::{Error, Result};
use crate::kubeops;

/// Lifetime asked for the token; the API server may shorten it. A new token is minted at every
/// controller start, so only one controller run has to fit in it.
const TOKEN_SECONDS: i64 = 24 * 3600;

/// Who the controller runs as, and the manifests that grant it its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerIdentity {
    pub namespace: String,
    pub name: String,
    /// Applied (server-side, by the harness) before the token is minted, e.g. the chart's rendered RBAC.
    pub manifests: Vec<PathBuf>,
}

impl ControllerIdentity {
    /// Parses `NAMESPACE/NAME`.
    pub fn parse(value: &str, manifests: Vec<PathBuf>) -> Result<Self> {
        match value.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(ControllerIdentity {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    manifests,
                })
            }
            _ => Err(Error::InvalidOption(format!(
                "--controller-service-account {value:?}: expected NAMESPACE/NAME"
            ))),
        }
    }

    /// `system:serviceaccount:<ns>:<name>`, the user the API server sees.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Applies the identity's manifests (once per environment).
pub async fn apply_manifests(client: &kube::Client, identity: &ControllerIdentity) -> Result<()> {
    for path in &identity.manifests {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading RBAC manifests", path, e))?;
        let objects = kubeops::parse_documents(&text, &path.display().to_string())?;
        let applied = kubeops::apply_all(client, &objects, &identity.namespace).await?;
        info!(
            "applied {} object(s) from {}: {}",
            applied.len(),
            path.display(),
            applied.join(", ")
        );
    }
    Ok(())
}

/// Mints a token for the ServiceAccount and writes a kubeconfig for it at `out` (mode 0600), pointing at
/// the cluster of `admin_kubeconfig`.
pub async fn write_kubeconfig(
    client: &kube::Client,
    admin_kubeconfig: &Path,
    identity: &ControllerIdentity,
    out: &Path,
) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &identity.namespace);
    if accounts.get_opt(&identity.name).await?.is_none() {
        return Err(Error::Environment(format!(
            "ServiceAccount {}/{} does not exist (the manifests given with --controller-rbac must create it)",
            identity.namespace, identity.name
        )));
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_SECONDS),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(&identity.name, &PostParams::default(), &request)
        .await?
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::Environment(format!(
                "the API server returned no token for {}",
                identity.username()
            ))
        })?;
    let admin = std::fs::read_to_string(admin_kubeconfig)
        .map_err(|e| Error::io("reading kubeconfig", admin_kubeconfig, e))?;
    let text = service_account_kubeconfig(&admin, identity, &token)?;
    super::write_private(out, &text)?;
    info!(
        "controller runs as {} (kubeconfig {})",
        identity.username(),
        out.display()
    );
    Ok(())
}

/// Pure: a kubeconfig with the current context's cluster of `admin` and a user holding only `token`.
pub fn service_account_kubeconfig(
    admin: &str,
    identity: &ControllerIdentity,
    token: &str,
) -> Result<String> {
    let config: Value =
        serde_yaml::from_str(admin).map_err(|e| Error::Kubeconfig(format!("parsing: {e}")))?;
    let current = config
        .get("current-context")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Kubeconfig("no current-context".into()))?;
    let named = |list: &str, name: &str| {
        config
            .get(list)
            .and_then(Value::as_array)
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
            })
            .cloned()
            .ok_or_else(|| Error::Kubeconfig(format!("{list}: no entry named {name:?}")))
    };
    let context = named("contexts", current)?;
    let cluster_name = context
        .pointer("/context/cluster")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Kubeconfig(format!("context {current:?} names no cluster")))?;
    let cluster = named("clusters", cluster_name)?;
    let user = identity.username();
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{
            "name": user,
            "context": {"cluster": cluster_name, "user": user, "namespace": identity.namespace},
        }],
        "current-context": user,
    });
    serde_yaml::to_string(&kubeconfig).map_err(|e| Error::Serialize {
        what: "kubeconfig",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://10.0.0.1:6443"}
- name: local
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Q0E=}
users:
- name: admin
  user: {client-certificate-data: Y2VydA==, client-key-data: a2V5}
contexts:
- name: admin@local
  context: {cluster: local, user: admin}
current-context: admin@local
"#;

    fn identity() -> ControllerIdentity {
        ControllerIdentity::parse("clb-system/clb-controller", Vec::new()).unwrap()
    }

    #[test]
    fn parses_namespace_and_name() {
        let id = identity();
        assert_eq!(
            (id.namespace.as_str(), id.name.as_str()),
            ("clb-system", "clb-controller")
        );
        assert_eq!(
            id.username(),
            "system:serviceaccount:clb-system:clb-controller"
        );
        for bad in ["clb-controller", "/x", "x/", "a/b/c", ""] {
            assert!(
                ControllerIdentity::parse(bad, Vec::new()).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn kubeconfig_keeps_the_current_cluster_and_only_the_token() {
        let text = service_account_kubeconfig(ADMIN, &identity(), "tok3n").unwrap();
        let config: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            config["clusters"],
            json!([{"name": "local", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="}}])
        );
        let user = "system:serviceaccount:clb-system:clb-controller";
        assert_eq!(
            config["users"],
            json!([{"name": user, "user": {"token": "tok3n"}}])
        );
        assert_eq!(config["current-context"], user);
        assert_eq!(config["contexts"][0]["context"]["namespace"], "clb-system");
        assert!(
            !text.contains("client-key-data"),
            "admin credentials leaked:\n{text}"
        );
    }

    #[test]
    fn kubeconfig_without_the_current_context_is_an_error() {
        let broken = ADMIN.replace("current-context: admin@local", "current-context: gone");
        let err = service_account_kubeconfig(&broken, &identity(), "t").unwrap_err();
        assert!(err.to_string().contains("no entry named \"gone\""), "{err}");
    }
}
