"""Helpers shared by the SDK tests: accounts, SDK client construction, calls, task polling.

Every API call goes through the official Tencent Cloud Python SDK (`ClbClient`); this module only wraps the
SDK so that tests read as a list of behaviours.
"""

import contextlib
import json
import re
import time
import warnings

import pytest
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

REGION = "ap-guangzhou"
OTHER_REGION = "ap-shanghai"


class Account:
    def __init__(self, secret_id, secret_key, app_id):
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.app_id = app_id


ACCOUNT_A = Account("AKIDfakeAccountAlpha0001", "alpha-secret-key", 1250000001)
ACCOUNT_B = Account("AKIDfakeAccountBravo0002", "bravo-secret-key", 1250000002)

# Pre-existing load balancers of the shared server (see conftest.base_config).
LB_A_OPEN = "lb-aaaa0001"  # account A, ap-guangzhou, OPEN, "alpha-open"
LB_A_INTERNAL = "lb-aaaa0002"  # account A, ap-guangzhou, INTERNAL, "alpha-internal"
LB_A_OPEN2 = "lb-aaaa0003"  # account A, ap-guangzhou, OPEN, "beta-open"
LB_A_SH = "lb-aaaa0004"  # account A, ap-shanghai, OPEN, "sh-open"
LB_B_OPEN = "lb-bbbb0001"  # account B, ap-guangzhou, OPEN, "bravo-open"
A_GZ_LBS = {LB_A_OPEN, LB_A_INTERNAL, LB_A_OPEN2}

MISSING_LB = "lb-zzzz9999"
MISSING_LISTENER = "lbl-zzzz9999"

SIGN_TC3 = "TC3-HMAC-SHA256"

# A certificate input accepted for TCP_SSL / HTTPS / QUIC listeners.
CERT = {"SSLMode": "UNIDIRECTIONAL", "CertId": "cert-fake0001"}

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

TASK_DEADLINE_S = 15.0
TASK_POLL_INTERVAL_S = 0.02


def new_client(port, account=ACCOUNT_A, region=REGION, method="POST", sign_method=SIGN_TC3, secret_key=None,
               language="zh-CN"):
    """An official `ClbClient` pointed at the fake (http, 127.0.0.1:PORT)."""
    http_profile = HttpProfile(endpoint="127.0.0.1:%d" % port, protocol="http", reqMethod=method, reqTimeout=20)
    profile = ClientProfile(signMethod=sign_method, httpProfile=http_profile, language=language)
    cred = credential.Credential(account.secret_id, secret_key if secret_key is not None else account.secret_key)
    return clb_client.ClbClient(cred, region, profile)


def capture_responses(client):
    """Record every HTTP response the SDK client receives (status, headers), via a requests hook."""
    seen = []

    def hook(resp, *args, **kwargs):
        seen.append(resp)
        return resp

    client.request.conn._session.hooks["response"].append(hook)
    return seen


def call(client, action, params=None, **kwargs):
    """Call `action` through the SDK's typed method and return the response model as a dict."""
    body = dict(params or {})
    body.update(kwargs)
    request = getattr(models, action + "Request")()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request.from_json_string(json.dumps(body))
    useless = [str(w.message) for w in caught if "useless" in str(w.message)]
    assert not useless, "test bug: the %s model dropped fields: %s" % (action, useless)
    response = getattr(client, action)(request)
    return json.loads(response.to_json_string())


def call_json(client, action, params):
    """The SDK's generic call (AbstractClient.call_json): sends `params` verbatim, no model filtering."""
    return client.call_json(action, params)["Response"]


@contextlib.contextmanager
def raises_code(*codes):
    """Expect a TencentCloudSDKException whose code is exactly one of `codes`."""
    with pytest.raises(TencentCloudSDKException) as info:
        yield info
    err = info.value
    assert err.code in codes, "expected code %s, got %s (message %r, requestId %s)" % (
        " or ".join(codes), err.code, err.message, err.requestId)
    assert err.requestId and UUID4.match(err.requestId), "error RequestId is not a lower-case UUID v4: %s" % err


def task_status(client, task_id):
    return call(client, "DescribeTaskStatus", TaskId=task_id)


def wait_task(client, task_id, deadline_s=TASK_DEADLINE_S):
    """Poll DescribeTaskStatus until Status leaves 2; return (final response, statuses seen in order)."""
    seen = []
    end = time.monotonic() + deadline_s
    while True:
        resp = task_status(client, task_id)
        seen.append(resp["Status"])
        if resp["Status"] != 2:
            return resp, seen
        if time.monotonic() > end:
            pytest.fail("task %s still in progress after %.1fs (statuses %s)" % (task_id, deadline_s, seen))
        time.sleep(TASK_POLL_INTERVAL_S)


def mutate(client, action, params=None, **kwargs):
    """Run an async action and wait until its task succeeded (Status 0)."""
    resp = call(client, action, params, **kwargs)
    final, seen = wait_task(client, resp["RequestId"])
    assert final["Status"] == 0, "%s task %s ended with %s: %r (statuses %s)" % (
        action, resp["RequestId"], final["Status"], final.get("Message"), seen)
    return resp


def create_listeners(client, lb, protocol, ports, **extra):
    """CreateListener and wait for its task; return the new listener ids."""
    params = {"LoadBalancerId": lb, "Protocol": protocol, "Ports": list(ports)}
    if protocol.upper() in ("TCP_SSL", "HTTPS", "QUIC") and "Certificate" not in extra:
        params["Certificate"] = CERT
    params.update(extra)
    resp = mutate(client, "CreateListener", params)
    ids = resp["ListenerIds"]
    assert ids is not None and len(ids) == len(ports), resp
    return ids


def describe_listeners(client, lb, **filters):
    return call(client, "DescribeListeners", LoadBalancerId=lb, **filters)["Listeners"] or []


def listener_by_id(client, lb, listener_id):
    found = [item for item in describe_listeners(client, lb) if item["ListenerId"] == listener_id]
    assert len(found) == 1, "listener %s not listed exactly once on %s: %s" % (listener_id, lb, found)
    return found[0]


def lb_ids(client, **params):
    resp = call(client, "DescribeLoadBalancers", params)
    return [lb["LoadBalancerId"] for lb in resp["LoadBalancerSet"] or []], resp["TotalCount"]


def poll_until(predicate, deadline_s, interval_s=0.05, what="condition"):
    """Evaluate `predicate` until it returns a truthy value or the deadline passes; return that value."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() <= end:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail("%s not reached within %.1fs (last value %r)" % (what, deadline_s, last))
