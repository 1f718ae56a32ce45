"""The same calls over every transport the official SDK can produce: POST/GET x TC3/v1 (HmacSHA256, HmacSHA1)."""

import pytest

from sdkutil import (
    ACCOUNT_A, LB_A_INTERNAL, LB_A_OPEN, SIGN_TC3, call, capture_responses, describe_listeners, listener_by_id,
    poll_until, raises_code, wait_task,
)

VARIANTS = [
    pytest.param("POST", SIGN_TC3, id="post-tc3"),
    pytest.param("GET", SIGN_TC3, id="get-tc3"),
    pytest.param("POST", "HmacSHA256", id="post-v1-sha256"),
    pytest.param("POST", "HmacSHA1", id="post-v1-sha1"),
    pytest.param("GET", "HmacSHA256", id="get-v1-sha256"),
    pytest.param("GET", "HmacSHA1", id="get-v1-sha1"),
]


@pytest.mark.parametrize("method,sign_method", VARIANTS)
def test_round_trip(fake, method, sign_method):
    client = fake.client(method=method, sign_method=sign_method)
    responses = capture_responses(client)

    # arrays are flattened for GET and v1 (LoadBalancerIds.0=...)
    resp = call(client, "DescribeLoadBalancers", LoadBalancerIds=[LB_A_OPEN, LB_A_INTERNAL])
    assert {lb["LoadBalancerId"] for lb in resp["LoadBalancerSet"]} == {LB_A_OPEN, LB_A_INTERNAL}
    assert resp["TotalCount"] == 2

    # nested objects, a name with a space (form-encoded as '+'), a boolean (Python sends True/False in forms)
    resp = call(client, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[9001, 9002],
                ListenerNames=["a b", "c&d=e"], DeregisterTargetRst=True,
                HealthCheck={"HealthSwitch": 1, "TimeOut": 4, "IntervalTime": 9})
    first, second = resp["ListenerIds"]
    final, seen = wait_task(client, resp["RequestId"])
    assert final["Status"] == 0, (final, seen)

    listener = listener_by_id(client, LB_A_OPEN, first)
    assert (listener["Port"], listener["ListenerName"]) == (9001, "a b")
    assert listener["DeregisterTargetRst"] is True
    assert (listener["HealthCheck"]["TimeOut"], listener["HealthCheck"]["IntervalTime"]) == (4, 9)
    assert listener_by_id(client, LB_A_OPEN, second)["ListenerName"] == "c&d=e"

    # integer filters coerced from strings on GET
    assert [item["ListenerId"] for item in describe_listeners(client, LB_A_OPEN, Port=9002)] == [second]

    assert responses, "the response hook saw nothing"
    for http_resp in responses:
        assert http_resp.status_code == 200
        assert http_resp.headers.get("Content-Type") == "application/json"


@pytest.mark.parametrize("method,sign_method", VARIANTS)
def test_wrong_secret_key_is_rejected(fake, method, sign_method):
    client = fake.client(method=method, sign_method=sign_method, secret_key=ACCOUNT_A.secret_key + "x")
    with raises_code("AuthFailure.SignatureFailure"):
        call(client, "DescribeLoadBalancers")


@pytest.mark.parametrize("method,sign_method", VARIANTS)
def test_english_language_header_accepted(fake, method, sign_method):
    client = fake.client(method=method, sign_method=sign_method, language="en-US")
    assert call(client, "DescribeLoadBalancers", LoadBalancerIds=[LB_A_OPEN])["TotalCount"] == 1


def test_startup_line_names_both_ports(start_fake):
    server = start_fake()
    expected = "fake-clb listening api=127.0.0.1:%d admin=127.0.0.1:%d" % (server.api_port, server.admin_port)
    poll_until(lambda: expected in server.stdout_text(), deadline_s=5, what="startup line on stdout")
    assert call(server.client(), "DescribeLoadBalancers")["TotalCount"] == 3
