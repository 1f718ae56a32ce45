//! Writing the Listener CRs an owner (Ingress or PortPool) generates: apply the desired ones, delete the stale
//! ones, and on the owner's deletion delete them all and report when none is left.

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use crate::api::{Listener, keys};
use crate::runtime::{ReconcileError, api_call};

/// Server-side applies `apply` as `field_manager` (forcing: these fields are ours) and deletes the CRs named
/// in `delete` (already gone is fine).
pub async fn write(
    api: &Api<Listener>,
    field_manager: &str,
    apply: &[&Listener],
    delete: &[String],
) -> Result<(), ReconcileError> {
    let params = PatchParams::apply(field_manager).force();
    for listener in apply {
        let name = listener.name_any();
        api_call(
            "applying a listener",
            api.patch(&name, &params, &Patch::Apply(*listener)),
        )
        .await?;
        tracing::debug!(listener = %name, "listener applied");
    }
    for name in delete {
        delete_one(api, name).await?;
        tracing::debug!(listener = %name, "stale listener deleted");
    }
    Ok(())
}

/// Deletes every Listener CR labelled as owned by `owner_kind`/`owner_name`; true once none is left. Reads the
/// API, not a cache: a CR created just now must not be missed (each CR's own finalizer holds it until its cloud
/// listener is gone, so "none left" means the cloud is clean).
pub async fn delete_all(
    api: &Api<Listener>,
    owner_kind: &str,
    owner_name: &str,
) -> Result<bool, ReconcileError> {
    let selector = format!(
        "{}={owner_kind},{}={owner_name}",
        keys::LABEL_OWNER_KIND,
        keys::LABEL_OWNER_NAME,
    );
    let owned = api_call(
        "listing owned listeners",
        api.list(&ListParams::default().labels(&selector)),
    )
    .await?;
    if owned.items.is_empty() {
        return Ok(true);
    }
    for listener in owned
        .items
        .iter()
        .filter(|l| l.metadata.deletion_timestamp.is_none())
    {
        delete_one(api, &listener.name_any()).await?;
    }
    Ok(false)
}

async fn delete_one(api: &Api<Listener>, name: &str) -> Result<(), ReconcileError> {
    match api_call(
        "deleting a listener",
        api.delete(name, &DeleteParams::default()),
    )
    .await
    {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}
