"""Requests the fake must reject, each with the exact error code the real API gateway / CLB returns."""

import http.client
import json
import time
import uuid

import pytest
from tencentcloud.common import abstract_client

from sdkutil import (
    ACCOUNT_A, Account, LB_A_OPEN, MISSING_LB, MISSING_LISTENER, SIGN_TC3, call, call_json, capture_responses,
    create_listeners, describe_listeners, raises_code,
)


class SkewedTime:
    """Stands in for the `time` module inside the SDK's abstract_client, shifting the signing clock."""

    def __init__(self, offset_s):
        self.offset_s = offset_s

    def time(self):
        return time.time() + self.offset_s


# -- authentication -------------------------------------------------------------------------------------------

def test_wrong_secret_key(fake):
    client = fake.client(secret_key="not-the-key")
    with raises_code("AuthFailure.SignatureFailure"):
        call(client, "DescribeLoadBalancers")


@pytest.mark.parametrize("sign_method", [SIGN_TC3, "HmacSHA256"])
def test_unknown_secret_id(fake, sign_method):
    client = fake.client(account=Account("AKIDnobodyKnowsThisOne", "whatever", 0), sign_method=sign_method)
    with raises_code("AuthFailure.SecretIdNotFound"):
        call(client, "DescribeLoadBalancers")


@pytest.mark.parametrize("sign_method", [SIGN_TC3, "HmacSHA1"])
@pytest.mark.parametrize("offset_s", [-600, 600])
def test_timestamp_skew_over_five_minutes(fake, monkeypatch, sign_method, offset_s):
    client = fake.client(sign_method=sign_method)
    monkeypatch.setattr(abstract_client, "time", SkewedTime(offset_s))
    with raises_code("AuthFailure.SignatureExpire"):
        call(client, "DescribeLoadBalancers")


def test_timestamp_skew_within_five_minutes_is_accepted(fake, monkeypatch):
    client = fake.client()
    monkeypatch.setattr(abstract_client, "time", SkewedTime(-120))
    assert call(client, "DescribeLoadBalancers", LoadBalancerIds=[LB_A_OPEN])["TotalCount"] == 1


# -- envelope -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sign_method", [SIGN_TC3, "HmacSHA256"])
def test_missing_region(fake, sign_method):
    client = fake.client(region="", sign_method=sign_method)
    with raises_code("MissingParameter") as err:
        call(client, "DescribeLoadBalancers")
    assert "`Region`" in err.value.message, err.value.message


def test_unknown_region(fake):
    client = fake.client(region="xx-nowhere-1")
    with raises_code("UnsupportedRegion", "InvalidParameter.RegionNotFound"):
        call(client, "DescribeLoadBalancers")


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_unknown_action(fake, method):
    client = fake.client(method=method)
    with raises_code("InvalidAction"):
        client.call_json("DescribeNonexistentThings", {})


def test_wrong_version(fake):
    client = fake.client()
    client._apiVersion = "2017-03-12"  # the version the SDK sends (and signs) in X-TC-Version
    with raises_code("NoSuchVersion"):
        call(client, "DescribeLoadBalancers")


def test_wrong_version_v1(fake):
    client = fake.client(sign_method="HmacSHA256")
    client._apiVersion = "2017-03-12"
    with raises_code("NoSuchVersion"):
        call(client, "DescribeLoadBalancers")


def test_content_type_is_exactly_application_json(fake):
    client = fake.client()
    responses = capture_responses(client)
    call(client, "DescribeLoadBalancers")
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(client, "DescribeListeners", LoadBalancerId=MISSING_LB)
    assert len(responses) == 2
    for resp in responses:
        assert resp.status_code == 200, "errors are HTTP 200 too"
        assert resp.headers["Content-Type"] == "application/json"


def test_content_type_raw_request(fake):
    """One raw request: even an unauthenticated error comes back as 200 + exactly application/json."""
    now = int(time.time())
    date = time.strftime("%Y-%m-%d", time.gmtime(now))
    conn = http.client.HTTPConnection("127.0.0.1", fake.api_port, timeout=10)
    try:
        conn.request("POST", "/", body=b"{}", headers={
            "Content-Type": "application/json", "X-TC-Action": "DescribeLoadBalancers",
            "X-TC-Version": "2018-03-17", "X-TC-Region": "ap-guangzhou", "X-TC-Timestamp": str(now),
            "Authorization": "TC3-HMAC-SHA256 Credential=%s/%s/clb/tc3_request, "
                             "SignedHeaders=content-type;host, Signature=%s" % (ACCOUNT_A.secret_id, date, "0" * 64)})
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert body["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
    uuid.UUID(body["Response"]["RequestId"], version=4)


# -- parameters -----------------------------------------------------------------------------------------------

def test_missing_required_parameter(clb):
    with raises_code("MissingParameter") as err:
        call(clb, "DescribeListeners")
    assert "LoadBalancerId" in err.value.message
    with raises_code("MissingParameter"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP")  # no Ports
    with raises_code("MissingParameter"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=MISSING_LISTENER,
             Targets=[{"EniIp": "10.0.0.1"}])  # Target.Port is required


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_unknown_parameter(fake, method):
    client = fake.client(method=method)
    with raises_code("UnknownParameter") as err:
        call_json(client, "DescribeLoadBalancers", {"LoadBalancerIds": [LB_A_OPEN], "NoSuchField": 1})
    assert "NoSuchField" in err.value.message


def test_wrong_type(clb):
    with raises_code("InvalidParameter", "InvalidParameter.FormatError"):
        call_json(clb, "CreateListener", {"LoadBalancerId": LB_A_OPEN, "Protocol": "TCP", "Ports": "8080"})
    with raises_code("InvalidParameter", "InvalidParameter.FormatError"):
        call_json(clb, "DescribeLoadBalancers", {"Limit": "ten"})
    with raises_code("InvalidParameter", "InvalidParameter.FormatError"):
        call_json(clb, "DescribeListeners", {"LoadBalancerId": LB_A_OPEN, "Port": [80]})
    assert describe_listeners(clb, LB_A_OPEN) == []


def test_wrong_type_over_get(fake):
    client = fake.client(method="GET")
    with raises_code("InvalidParameter", "InvalidParameter.FormatError"):
        call_json(client, "DescribeLoadBalancers", {"Limit": "ten"})


def test_out_of_range_values(clb):
    with raises_code("InvalidParameterValue.Range"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[70000])
    with raises_code("InvalidParameterValue.Range"):
        call(clb, "DescribeLoadBalancers", Limit=101)
    assert describe_listeners(clb, LB_A_OPEN) == []


def test_invalid_scheduler_value(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6001])
    with raises_code("InvalidParameterValue"):
        call(clb, "ModifyListener", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Scheduler="RANDOM")


def test_create_rule_on_l4_listener(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6002])
    with raises_code("InvalidParameterValue") as err:
        call(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
             Rules=[{"Domain": "x.example.com", "Url": "/"}])
    assert "HTTP/HTTPS" in err.value.message


def test_duplicate_target_in_request(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6003])
    with raises_code("InvalidParameterValue.Duplicate"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
             Targets=[{"EniIp": "10.0.9.1", "Port": 80}, {"EniIp": "10.0.9.1", "Port": 80}])


# -- size limits ----------------------------------------------------------------------------------------------

def test_oversize_tc3_body(fake, clb):
    fake.patch_limits({"maxBodyBytes": 65536})
    with raises_code("RequestSizeLimitExceeded"):
        call_json(clb, "DescribeLoadBalancers", {"LoadBalancerName": "x" * 70000})
    # just under the limit is fine (and the server still answers)
    assert call_json(clb, "DescribeLoadBalancers", {"LoadBalancerName": "x" * 60000})["TotalCount"] == 0


def test_oversize_get_query(fake):
    client = fake.client(method="GET")
    with raises_code("RequestSizeLimitExceeded"):
        call_json(client, "DescribeLoadBalancers", {"LoadBalancerName": "y" * 40000})


def test_oversize_v1_form_body(fake):
    client = fake.client(sign_method="HmacSHA256")
    with raises_code("RequestSizeLimitExceeded"):
        call_json(client, "DescribeLoadBalancers", {"LoadBalancerName": "z" * (1024 * 1024 + 1024)})


# -- unknown objects ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action,params", [
    ("DescribeListeners", {}),
    ("CreateListener", {"Protocol": "TCP", "Ports": [6010]}),
    ("DeleteListener", {"ListenerId": MISSING_LISTENER}),
    ("ModifyListener", {"ListenerId": MISSING_LISTENER, "ListenerName": "x"}),
    ("RegisterTargets", {"ListenerId": MISSING_LISTENER, "Targets": [{"EniIp": "10.0.0.1", "Port": 80}]}),
    ("BatchRegisterTargets", {"Targets": [{"ListenerId": MISSING_LISTENER, "EniIp": "10.0.0.1", "Port": 80}]}),
    ("DescribeTargets", {}),
])
def test_unknown_load_balancer(clb, action, params):
    with raises_code("InvalidParameter.LBIdNotFound") as err:
        call(clb, action, dict(params, LoadBalancerId=MISSING_LB))
    assert "LoadBalancer not exist" in err.value.message and MISSING_LB in err.value.message, err.value.message


def test_unknown_load_balancer_delete_and_health(clb):
    with raises_code("InvalidParameter.LBIdNotFound") as err:
        call(clb, "DeleteLoadBalancer", LoadBalancerIds=[MISSING_LB])
    assert MISSING_LB in err.value.message
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb, "DescribeTargetHealth", LoadBalancerIds=[MISSING_LB])


@pytest.mark.parametrize("action,params", [
    ("DeleteListener", {}),
    ("ModifyListener", {"ListenerName": "x"}),
    ("RegisterTargets", {"Targets": [{"EniIp": "10.0.0.1", "Port": 80}]}),
    ("CreateRule", {"Rules": [{"Domain": "a.example.com", "Url": "/"}]}),
])
def test_unknown_listener(clb, action, params):
    with raises_code("InvalidParameter.ListenerIdNotFound") as err:
        call(clb, action, dict(params, LoadBalancerId=LB_A_OPEN, ListenerId=MISSING_LISTENER))
    assert MISSING_LISTENER in err.value.message, err.value.message


def test_unknown_listener_in_batch_register(clb):
    with raises_code("InvalidParameter.ListenerIdNotFound") as err:
        call(clb, "BatchRegisterTargets", LoadBalancerId=LB_A_OPEN,
             Targets=[{"ListenerId": MISSING_LISTENER, "EniIp": "10.0.0.1", "Port": 80}])
    assert MISSING_LISTENER in err.value.message


def test_unknown_task_id(clb):
    with raises_code("InvalidParameter"):
        call(clb, "DescribeTaskStatus", TaskId=str(uuid.uuid4()))


# -- parameter values the real API refuses ---------------------------------------------------------------------

@pytest.mark.parametrize("params, code", [
    ({"SessionExpireTime": 5}, "InvalidParameterValue.Range"),
    ({"SessionExpireTime": 99999}, "InvalidParameterValue.Range"),
    ({"IdleConnectTimeout": 1}, "InvalidParameterValue.Range"),
    ({"TargetType": "FOO"}, "InvalidParameterValue"),
    ({"SessionType": "FOO"}, "InvalidParameterValue"),
    ({"DataCompressMode": "FOO"}, "InvalidParameterValue"),
    ({"HealthCheck": {"CheckType": "FOO"}}, "InvalidParameterValue"),
    ({"HealthCheck": {"TimeOut": 10, "IntervalTime": 5}}, "InvalidParameterValue"),
])
def test_create_listener_refuses_values_out_of_the_real_domain(clb, params, code):
    with raises_code(code):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Ports=[18080], Protocol="TCP", **params)
    assert all(item["Port"] != 18080 for item in describe_listeners(clb, LB_A_OPEN))


@pytest.mark.parametrize("eni_ip", ["10.0.0.256", "not-an-ip", "::1"])
def test_register_targets_refuses_a_non_ipv4_eni_ip(clb, eni_ip):
    lid = create_listeners(clb, LB_A_OPEN, "TCP", [18081])[0]
    with raises_code("InvalidParameterValue"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
             Targets=[{"EniIp": eni_ip, "Port": 8080}])
