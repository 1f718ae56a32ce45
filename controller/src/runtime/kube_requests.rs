//! Counts the controller's own Kubernetes API requests by verb and resource
//! (`clb_controller_kube_requests_total`), so its writes per pod can be told apart from the kubelet's, the
//! scheduler's and the other controllers' in the API server's totals.

use http::{Method, Request, header::CONTENT_TYPE};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tower::util::MapRequestLayer;

/// Labels of the request counter, named as kube-apiserver's `apiserver_request_total` names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeRequestLabels {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY` (server-side apply), `DELETE`.
    pub verb: String,
    /// The resource, with its subresource after a slash: `pods`, `pods/status`, `portbindings`.
    pub resource: String,
}

/// Requests by verb and resource.
pub type KubeRequests = Family<KubeRequestLabels, Counter>;

/// A client layer that counts every request into `requests` and passes it on unchanged.
pub fn counting_layer<B>(
    requests: KubeRequests,
) -> MapRequestLayer<impl Fn(Request<B>) -> Request<B> + Clone> {
    MapRequestLayer::new(move |request: Request<B>| {
        requests.get_or_create(&labels_of(&request)).inc();
        request
    })
}

/// The verb and resource of one request (`resource` is empty for paths outside a resource, e.g. `/version`).
pub fn labels_of<B>(request: &Request<B>) -> KubeRequestLabels {
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or_default();
    let (resource, named) = resource_of(path);
    let apply = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    let verb = match *request.method() {
        Method::GET
            if query
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1") =>
        {
            "WATCH"
        }
        Method::GET if !named => "LIST",
        Method::PATCH if apply => "APPLY",
        ref other => other.as_str(),
    };
    KubeRequestLabels {
        verb: verb.to_owned(),
        resource,
    }
}

/// `resource[/subresource]` of an API path, and whether the path names one object.
fn resource_of(path: &str) -> (String, bool) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Skip `api/<version>` or `apis/<group>/<version>`.
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return (String::new(), false),
    };
    let rest = match rest {
        ["namespaces", _, resource, tail @ ..] => [&[*resource][..], tail].concat(),
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [] => (String::new(), false),
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, uri: &str, content_type: Option<&str>) -> (String, String) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        let request = builder.body(()).expect("a valid request");
        let l = labels_of(&request);
        (l.verb, l.resource)
    }

    fn pair(verb: &str, resource: &str) -> (String, String) {
        (verb.to_owned(), resource.to_owned())
    }

    #[test]
    fn writes_are_named_as_the_api_server_names_them() {
        assert_eq!(
            labels(
                Method::PATCH,
                "/api/v1/namespaces/a/pods/p1/status",
                Some("application/strategic-merge-patch+json")
            ),
            pair("PATCH", "pods/status")
        );
        assert_eq!(
            labels(
                Method::PATCH,
                "/apis/networkextension.bkbcs.tencent.com/v1/namespaces/a/listeners/l1?fieldManager=x&force=true",
                Some("application/apply-patch+yaml")
            ),
            pair("APPLY", "listeners")
        );
        assert_eq!(
            labels(
                Method::POST,
                "/apis/networkextension.bkbcs.tencent.com/v1/namespaces/a/portbindings",
                None
            ),
            pair("POST", "portbindings")
        );
        assert_eq!(
            labels(Method::DELETE, "/api/v1/namespaces/a", None),
            pair("DELETE", "namespaces")
        );
    }

    #[test]
    fn reads_are_told_apart_as_get_list_and_watch() {
        assert_eq!(
            labels(Method::GET, "/api/v1/pods?limit=500", None),
            pair("LIST", "pods")
        );
        assert_eq!(
            labels(
                Method::GET,
                "/api/v1/pods?watch=true&resourceVersion=5",
                None
            ),
            pair("WATCH", "pods")
        );
        assert_eq!(
            labels(
                Method::GET,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
                None
            ),
            pair("GET", "leases")
        );
        assert_eq!(labels(Method::GET, "/version", None), pair("LIST", ""));
    }
}
