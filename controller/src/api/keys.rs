//! Annotation, label, finalizer, environment and status strings shared with bcs-ingress-controller.
//!
//! These are wire contracts: users' manifests and pods already carry them, so every string here must match
//! the original byte for byte.

// ---- Ingress annotations -------------------------------------------------------------------------------

/// Ingress annotation listing CLB ids, `"lb-a,ap-guangzhou:lb-b"`; takes precedence over [`ANNOTATION_LB_NAMES`].
pub const ANNOTATION_LB_IDS: &str = "networkextension.bkbcs.tencent.com/lbids";
/// Ingress annotation listing CLB names, `"name1,ap-xx:name2"`.
pub const ANNOTATION_LB_NAMES: &str = "networkextension.bkbcs.tencent.com/lbnames";

// ---- Pod / Node annotations (port pools) ---------------------------------------------------------------

/// Presence (any value) opts a Pod or Node in to port-pool injection.
pub const ANNOTATION_PORTPOOLS: &str = "portpools.networkextension.bkbcs.tencent.com";
/// The port request, e.g. `"pool1 TCP 8080"` (one entry per line or separated by `;`).
pub const ANNOTATION_PORTPOOL_PORTS: &str = "ports.portpools.networkextension.bkbcs.tencent.com";
/// Written by the webhook: JSON array of [`crate::api::PortBindingItem`].
pub const ANNOTATION_POOL_BINDINGS: &str =
    "poolbindings.portpool.networkextension.bkbcs.tencent.com";
/// Ours: the id of the port reservation the pod webhook made (see `pools::reservation`).
pub const ANNOTATION_PORTPOOL_RESERVATION: &str =
    "reservation.portpools.networkextension.bkbcs.tencent.com";
/// Written on the Pod: `NotReady` at admission, `Ready` once its PortBinding is Ready.
pub const ANNOTATION_PORTPOOL_STATUS: &str = "status.portpools.networkextension.bkbcs.tencent.com";
/// Presence makes the webhook add the [`READINESS_GATE_PORTBINDING_READY`] readiness gate.
pub const ANNOTATION_READINESS_GATE: &str =
    "readinessgate.portpools.networkextension.bkbcs.tencent.com";
/// Go duration (`"5m"`, `"2h45m"`) to keep a pod's ports after deletion; copied from Pod to PortBinding.
pub const ANNOTATION_KEEP_DURATION: &str = "keepduration.portbinding.bkbcs.tencent.com";
/// Start of the current NotReady period on a PortBinding or Node (feeds the bind-latency histogram).
pub const ANNOTATION_UNREADY_TIMESTAMP: &str =
    "unready_timestamp.networkextension.bkbcs.tencent.com";
/// Per-pod CLB backend weight (direct-connect mode only).
pub const ANNOTATION_CLB_WEIGHT: &str = "networkextension.bkbcs.tencent.com/clb-weight";
/// Set to `"true"` once [`ANNOTATION_CLB_WEIGHT`] was honoured.
pub const ANNOTATION_CLB_WEIGHT_READY: &str = "networkextension.bkbcs.tencent.com/clb-weight-ready";

/// Values of [`ANNOTATION_PORTPOOL_STATUS`].
pub const PORTPOOL_STATUS_READY: &str = "Ready";
/// See [`PORTPOOL_STATUS_READY`].
pub const PORTPOOL_STATUS_NOT_READY: &str = "NotReady";

// ---- Pod readiness -------------------------------------------------------------------------------------

/// Readiness gate / pod condition type set when all of a pod's ports are bound.
pub const READINESS_GATE_PORTBINDING_READY: &str =
    "networkextension.bkbcs.tencent.com/portbinding-ready";
/// Message of the pod condition when ready (typo kept: users may grep for it).
pub const CONDITION_MESSAGE_BOUND: &str = "ports ares binded for the pod";
/// Message of the pod condition when not ready.
pub const CONDITION_MESSAGE_NOT_BOUND: &str = "port are not bound to the pod";

/// Prefix of the env var injected into every container: `BCS_PORTPOOL_PORT_VIPLIST_<PROTOCOL>_<containerPort>`.
pub const ENV_VIPLIST_PREFIX: &str = "BCS_PORTPOOL_PORT_VIPLIST_";

// ---- Namespace labels ----------------------------------------------------------------------------------

/// Namespace label selected by the pod webhook's namespaceSelector (value `"true"`).
pub const LABEL_NAMESPACE_INJECT: &str = "bcs-ingress-controller-inject";
/// Namespace label opting in to the node-port-binding ConfigMap (value `"true"`).
pub const LABEL_NAMESPACE_NODE_PORT_BINDING_INJECT: &str =
    "bcs-ingress-controller-node-port-binding-configmap-inject";
/// Name of the ConfigMap written into opted-in namespaces.
pub const NODE_PORT_BINDING_CONFIGMAP: &str = "bcs-ingress-controller-node-port-binding";

// ---- Controller pod ------------------------------------------------------------------------------------

/// Label on controller pods, `"true"` on the leader, so the webhook Service selects only the leader.
pub const LABEL_LEADER: &str = "leader";

// ---- Listener labels -----------------------------------------------------------------------------------

/// Value of the `<ingressName>` label on listeners generated from an Ingress.
pub const LABEL_VALUE_INGRESS_NAME: &str = "ingress-name";
/// `"true"` on segment (port-range) listeners, `"false"` otherwise.
pub const LABEL_SEGMENT_LISTENER: &str = "segmentlistener.bkbcs.tencent.com";
/// CLB id of the listener.
pub const LABEL_LB_ID: &str = "ingress.bkbcs.tencent.com/lbid";
/// Region of the listener's CLB (the per-LB worker needs it).
pub const LABEL_LB_REGION: &str = "ingress.bkbcs.tencent.com/lbregion";
/// `Ingress` or `PortPool`.
pub const LABEL_OWNER_KIND: &str = "owner-kind";
/// Name of the owning Ingress or PortPool.
pub const LABEL_OWNER_NAME: &str = "owner-name";
/// `"true"` on listeners pre-created by a port pool.
pub const LABEL_PORTPOOL_LISTENER: &str = "portpool.bkbcs.tencent.com";
/// Value of the `<poolName>/<md5(itemName)>` label on pool listeners.
pub const LABEL_VALUE_PORTPOOL_ITEM_NAME: &str = "portpool-item-name";
/// `"true"` on listeners subject to uptime checks.
pub const LABEL_UPTIME_CHECK: &str = "uptime_check.bkbcs.tencent.com";
/// Namespace of the PortBinding currently bound to a pool listener.
pub const LABEL_SOURCE_NAMESPACE: &str = "source_namespace.bkbcs.tencent.com";
/// Name of the PortBinding currently bound to a pool listener.
pub const LABEL_SOURCE_NAME: &str = "source_name.bkbcs.tencent.com";
/// `"true"`.
pub const LABEL_VALUE_TRUE: &str = "true";
/// `"false"`.
pub const LABEL_VALUE_FALSE: &str = "false";

// ---- PortBinding labels --------------------------------------------------------------------------------

/// `Pod` or `Node`.
pub const LABEL_PORTBINDING_TYPE: &str = "type.portbinding.bkbcs.tencent.com";

/// Label key on a PortBinding naming the pool it binds from: `portpool.<poolName>.<poolNamespace>`; the value is
/// the item name (shortened by the caller when longer than 63 characters).
pub fn portbinding_pool_label_key(pool_name: &str, pool_namespace: &str) -> String {
    format!("portpool.{pool_name}.{pool_namespace}")
}

// ---- Finalizers ----------------------------------------------------------------------------------------

/// Finalizer the controller adds to Ingress, Listener, PortPool and PortBinding.
pub const FINALIZER_CONTROLLER: &str = "ingresscontroller.bkbcs.tencent.com";
/// Finalizer added when uptime checks are on.
pub const FINALIZER_UPTIME_CHECK: &str = "uptimecheck.bkbcs.tencent.com";

// ---- Status values -------------------------------------------------------------------------------------

/// Listener `status.status` once the cloud matches the spec.
pub const LISTENER_STATUS_SYNCED: &str = "Synced";
/// Listener `status.status` while a change is pending or failed.
pub const LISTENER_STATUS_NOT_SYNCED: &str = "NotSynced";

/// PortPool and pool item status: every listener has an id.
pub const POOL_STATUS_READY: &str = "Ready";
/// PortPool and pool item status: some listener is missing.
pub const POOL_STATUS_NOT_READY: &str = "NotReady";
/// Pool item status after it was removed from the spec, until its bindings and listeners are gone.
pub const POOL_ITEM_STATUS_DELETING: &str = "Deleting";

/// PortBinding `status.status`.
pub const PORTBINDING_STATUS_NOT_READY: &str = "NotReady";
/// PortBinding `status.status`.
pub const PORTBINDING_STATUS_READY: &str = "Ready";
/// PortBinding `status.status` while its listeners are being emptied.
pub const PORTBINDING_STATUS_CLEANING: &str = "Cleaning";
/// PortBinding `status.status` once emptied (kept until the keep duration expires).
pub const PORTBINDING_STATUS_CLEANED: &str = "Cleaned";

/// PortBinding item status before the first check; the misspelling is the original's and is user-visible.
pub const PORTBINDING_ITEM_STATUS_INITIALIZING: &str = "Initializeing";
/// PortBinding item status.
pub const PORTBINDING_ITEM_STATUS_NOT_READY: &str = "NotReady";
/// PortBinding item status.
pub const PORTBINDING_ITEM_STATUS_READY: &str = "Ready";
/// PortBinding item status.
pub const PORTBINDING_ITEM_STATUS_DELETING: &str = "Deleting";
/// PortBinding item status.
pub const PORTBINDING_ITEM_STATUS_CLEANED: &str = "Cleaned";

/// `status.portBindingType` of a pod's PortBinding.
pub const PORTBINDING_TYPE_POD: &str = "Pod";
/// `status.portBindingType` of a node's PortBinding.
pub const PORTBINDING_TYPE_NODE: &str = "Node";

// ---- Port pool allocation policies ---------------------------------------------------------------------

/// Items in spec order (also what an empty `allocatePolicy` means).
pub const ALLOCATE_POLICY_DEFAULT: &str = "default";
/// Item with the most free ports first.
pub const ALLOCATE_POLICY_AVERAGE: &str = "average";

// ---- Default values ------------------------------------------------------------------------------------

/// Backend weight when a route or subset does not set one.
pub const DEFAULT_WEIGHT: i32 = 10;
