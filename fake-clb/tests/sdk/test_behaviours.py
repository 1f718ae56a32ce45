"""Behaviours of the real service that clients depend on, observed through the official SDK: throttling, busy
load balancers, quotas, port conflicts, batch limits, injected faults, account and region isolation."""

import re
import time

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from sdkutil import (
    ACCOUNT_B, LB_A_OPEN, LB_A_OPEN2, LB_A_SH, LB_B_OPEN, CERT, OTHER_REGION, call, create_listeners,
    describe_listeners, lb_ids, listener_by_id, mutate, poll_until, raises_code, task_status, wait_task,
)

BUSY_MESSAGE = ("Loadbalancer({lb}) is not in normal desState, maybe some tasks are being processed, "
                "please try later.")


def listener_ports(client, lb):
    return sorted((item["Protocol"], item["Port"]) for item in describe_listeners(client, lb))


def l4_targets(client, lb, lid):
    entries = call(client, "DescribeTargets", LoadBalancerId=lb, ListenerIds=[lid])["Listeners"]
    (entry,) = [e for e in entries if e["ListenerId"] == lid]
    return sorted((b["PrivateIpAddresses"][0], b["Port"]) for b in entry["Targets"] or [])


# -- throttling -----------------------------------------------------------------------------------------------

def test_throttling_per_action_and_account(fake, clb, clb_b):
    fake.patch_limits({"actionQps": 5})
    accepted, throttled = 0, None
    for _ in range(40):  # bounded burst
        try:
            call(clb, "DescribeLoadBalancers")
            accepted += 1
        except TencentCloudSDKException as err:
            if err.code != "RequestLimitExceeded":
                raise
            throttled = err
            break
    assert throttled is not None, "40 back-to-back calls were never throttled at actionQps=5"
    assert accepted >= 5, "the first 5 calls of a second must pass (got %d)" % accepted
    match = re.fullmatch(r"Your current request times equals to `(\d+)` in a second, which exceeds the frequency "
                         r"limit `5` for a second\. Please reduce the frequency of calls\.", throttled.message)
    assert match, throttled.message
    assert int(match.group(1)) > 5

    # another action of the same account and the same action of another account are unaffected
    assert call(clb, "DescribeQuota")["QuotaSet"]
    assert lb_ids(clb_b) == ([LB_B_OPEN], 1)

    # the limit is per second: the action recovers (poll below the limit so polling cannot keep it throttled)
    def recovered():
        try:
            return call(clb, "DescribeLoadBalancers")["TotalCount"] == 3
        except TencentCloudSDKException as err:
            if err.code != "RequestLimitExceeded":
                raise
            return False

    poll_until(recovered, deadline_s=5, interval_s=0.25, what="recovery from RequestLimitExceeded")


def test_throttling_disabled_with_zero(fake, clb):
    fake.patch_limits({"actionQps": 0})
    for _ in range(30):
        call(clb, "DescribeQuota")


# -- one task per load balancer -------------------------------------------------------------------------------

def test_busy_load_balancer_rejects_mutations(fake, clb):
    fake.patch_limits({"taskDuration": "2s"})
    first = call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6101])
    (lid,) = first["ListenerIds"]

    mutations = [
        ("CreateListener", {"Protocol": "TCP", "Ports": [6102]}),
        ("RegisterTargets", {"ListenerId": lid, "Targets": [{"EniIp": "10.1.0.1", "Port": 80}]}),
        ("ModifyListener", {"ListenerId": lid, "ListenerName": "renamed"}),
        ("DeleteListener", {"ListenerId": lid}),
        ("DeleteLoadBalancerListeners", {"ListenerIds": [lid]}),
        ("BatchRegisterTargets", {"Targets": [{"ListenerId": lid, "EniIp": "10.1.0.1", "Port": 80}]}),
    ]
    for action, params in mutations:
        with raises_code("FailedOperation.ResourceInOperating") as err:
            call(clb, action, dict(params, LoadBalancerId=LB_A_OPEN))
        assert err.value.message == BUSY_MESSAGE.format(lb=LB_A_OPEN), (action, err.value.message)
    with raises_code("FailedOperation.ResourceInOperating"):
        call(clb, "DeleteLoadBalancer", LoadBalancerIds=[LB_A_OPEN])

    # reads are never blocked; the accepted listener is already visible
    assert task_status(clb, first["RequestId"])["Status"] == 2
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert listener["Port"] == 6101 and listener["ListenerName"] != "renamed"
    assert LB_A_OPEN in lb_ids(clb)[0]
    assert call(clb, "DescribeTargets", LoadBalancerId=LB_A_OPEN)["Listeners"]

    # other load balancers run their own tasks in parallel
    other = call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN2, Protocol="TCP", Ports=[6101])
    assert other["ListenerIds"]

    assert wait_task(clb, first["RequestId"])[0]["Status"] == 0
    fake.patch_limits({"taskDuration": "100ms"})
    create_listeners(clb, LB_A_OPEN, "TCP", [6102])
    assert listener_ports(clb, LB_A_OPEN) == [("TCP", 6101), ("TCP", 6102)]


def test_batch_busy_tail(fake, clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6150])
    fake.patch_limits({"batchBusyTail": "1s"})
    resp = call(clb, "BatchRegisterTargets", LoadBalancerId=LB_A_OPEN,
                Targets=[{"ListenerId": lid, "EniIp": "10.1.1.1", "Port": 80}])
    assert resp["FailListenerIdSet"] in ([], None)
    with raises_code("FailedOperation.ResourceInOperating"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
             Targets=[{"EniIp": "10.1.1.2", "Port": 80}])

    def accepted():
        try:
            return call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
                        Targets=[{"EniIp": "10.1.1.2", "Port": 80}])
        except TencentCloudSDKException as err:
            if err.code != "FailedOperation.ResourceInOperating":
                raise
            return None

    resp = poll_until(accepted, deadline_s=10, interval_s=0.1, what="end of the batch busy tail")
    assert wait_task(clb, resp["RequestId"])[0]["Status"] == 0
    assert l4_targets(clb, LB_A_OPEN, lid) == [("10.1.1.1", 80), ("10.1.1.2", 80)]


# -- quotas ---------------------------------------------------------------------------------------------------

def test_listener_quota(fake, clb):
    fake.patch_limits({"listenersPerLoadBalancer": 3})
    create_listeners(clb, LB_A_OPEN, "TCP", [6201, 6202])
    with raises_code("LimitExceeded"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="UDP", Ports=[6203, 6204])
    assert listener_ports(clb, LB_A_OPEN) == [("TCP", 6201), ("TCP", 6202)], "a rejected call creates nothing"
    create_listeners(clb, LB_A_OPEN, "UDP", [6203])
    with raises_code("LimitExceeded"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="UDP", Ports=[6204])
    # the quota is per load balancer
    create_listeners(clb, LB_A_OPEN2, "TCP", [6201, 6202, 6203])


def test_rule_quota(fake, clb):
    fake.patch_limits({"rulesPerListener": 2})
    (lid,) = create_listeners(clb, LB_A_OPEN, "HTTP", [6280])
    with raises_code("LimitExceeded"):
        call(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Rules=[
            {"Domain": "q.example.com", "Url": "/1"}, {"Domain": "q.example.com", "Url": "/2"},
            {"Domain": "q.example.com", "Url": "/3"}])
    mutate(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Rules=[
        {"Domain": "q.example.com", "Url": "/1"}, {"Domain": "q.example.com", "Url": "/2"}])


def test_target_quota(fake, clb):
    fake.patch_limits({"targetsPerListener": 3})
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6290])
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
           Targets=[{"EniIp": "10.2.0.%d" % i, "Port": 80} for i in range(1, 4)])
    with raises_code("LimitExceeded"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
             Targets=[{"EniIp": "10.2.0.9", "Port": 80}])
    assert len(l4_targets(clb, LB_A_OPEN, lid)) == 3


def test_load_balancer_quota(fake, clb):
    fake.patch_limits({"loadBalancersPerRegion": 3})  # account A already has 2 OPEN LBs in ap-guangzhou
    resp = call(clb, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="third-open")
    assert wait_task(clb, resp["RequestId"])[0]["Status"] == 0
    with raises_code("LimitExceeded"):
        call(clb, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="fourth-open")
    assert lb_ids(clb, LoadBalancerType="OPEN")[1] == 3


# -- port conflicts -------------------------------------------------------------------------------------------

@pytest.fixture
def occupied_ports(clb):
    """TCP 6300, UDP 6310, and a TCP range 6320-6330 on LB_A_OPEN."""
    create_listeners(clb, LB_A_OPEN, "TCP", [6300])
    create_listeners(clb, LB_A_OPEN, "UDP", [6310])
    create_listeners(clb, LB_A_OPEN, "TCP", [6320], EndPort=6330)
    return listener_ports(clb, LB_A_OPEN)


@pytest.mark.parametrize("protocol,port,end_port,conflicts", [
    ("TCP", 6300, None, True),
    ("HTTP", 6300, None, True),
    ("HTTPS", 6300, None, True),
    ("TCP_SSL", 6300, None, True),
    ("UDP", 6300, None, False),
    ("UDP", 6310, None, True),
    ("QUIC", 6310, None, True),
    ("TCP", 6310, None, False),
    ("TCP", 6320, None, True),
    ("TCP", 6325, None, True),
    ("HTTP", 6330, None, True),
    ("UDP", 6325, None, False),
    ("TCP", 6331, None, False),
    ("TCP", 6315, 6320, True),
    ("TCP", 6331, 6340, False),
])
def test_port_conflicts(clb, occupied_ports, protocol, port, end_port, conflicts):
    params = {"LoadBalancerId": LB_A_OPEN, "Protocol": protocol, "Ports": [port]}
    if protocol in ("HTTPS", "TCP_SSL", "QUIC"):
        params["Certificate"] = CERT
    if end_port is not None:
        params["EndPort"] = end_port
    if conflicts:
        with raises_code("InvalidParameter.PortCheckFailed"):
            call(clb, "CreateListener", params)
        assert listener_ports(clb, LB_A_OPEN) == occupied_ports
    else:
        mutate(clb, "CreateListener", params)
        assert len(listener_ports(clb, LB_A_OPEN)) == len(occupied_ports) + 1


def test_duplicate_ports_in_one_request(clb):
    with raises_code("InvalidParameter.PortCheckFailed"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6400, 6401, 6400])
    assert describe_listeners(clb, LB_A_OPEN) == []


def test_one_conflicting_port_rejects_the_whole_request(clb):
    create_listeners(clb, LB_A_OPEN, "TCP", [6410])
    with raises_code("InvalidParameter.PortCheckFailed"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6411, 6410, 6412])
    assert listener_ports(clb, LB_A_OPEN) == [("TCP", 6410)]


def test_ports_are_per_load_balancer(clb):
    create_listeners(clb, LB_A_OPEN, "TCP", [6420])
    create_listeners(clb, LB_A_OPEN2, "TCP", [6420])


# -- batch limits ---------------------------------------------------------------------------------------------

def test_create_listener_port_count_limit(fake, clb):
    with raises_code("InvalidParameterValue.Length"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=list(range(10000, 10050)))
    assert describe_listeners(clb, LB_A_OPEN) == []
    ids = create_listeners(clb, LB_A_OPEN, "TCP", list(range(10000, 10049)))
    assert len(set(ids)) == 49
    fake.patch_limits({"createListenerMaxPorts": 3})
    with raises_code("InvalidParameterValue.Length"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN2, Protocol="TCP", Ports=[1, 2, 3, 4])
    create_listeners(clb, LB_A_OPEN2, "TCP", [1, 2, 3])


def test_register_targets_count_limit(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6500])
    targets = [{"EniIp": "10.3.0.%d" % i, "Port": 80} for i in range(1, 22)]
    with raises_code("InvalidParameterValue.Length"):
        call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Targets=targets)
    assert l4_targets(clb, LB_A_OPEN, lid) == []
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Targets=targets[:20])
    assert len(l4_targets(clb, LB_A_OPEN, lid)) == 20


def test_batch_register_targets_count_limit(clb):
    lids = create_listeners(clb, LB_A_OPEN, "TCP", [6601, 6602, 6603, 6604, 6605, 6606])
    targets = [{"ListenerId": lids[i // 100], "EniIp": "10.4.%d.%d" % (i // 100, i % 100 + 1), "Port": 80}
               for i in range(501)]
    with raises_code("InvalidParameterValue.Length"):
        call(clb, "BatchRegisterTargets", LoadBalancerId=LB_A_OPEN, Targets=targets)
    assert l4_targets(clb, LB_A_OPEN, lids[0]) == []
    resp = call(clb, "BatchRegisterTargets", LoadBalancerId=LB_A_OPEN, Targets=targets[:500])
    assert resp["FailListenerIdSet"] in ([], None), resp
    assert [len(l4_targets(clb, LB_A_OPEN, lid)) for lid in lids] == [100, 100, 100, 100, 100, 0]


# -- injected faults ------------------------------------------------------------------------------------------

def test_fail_task_rolls_back_create_listener(fake, clb):
    fake.set_faults([{"id": "fail-create", "action": "CreateListener", "loadBalancerId": LB_A_OPEN, "count": 1,
                      "effect": {"type": "failTask", "message": "injected task failure"}}])
    resp = call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6701])
    assert resp["ListenerIds"] and len(resp["ListenerIds"]) == 1, "a failTask call is accepted"
    final, seen = wait_task(clb, resp["RequestId"])
    assert final["Status"] == 1, (final, seen)
    assert final["Message"] == "injected task failure"
    assert describe_listeners(clb, LB_A_OPEN) == [], "the failed task's listener must be rolled back"
    (rule,) = fake.faults()
    assert (rule["fired"], rule["remaining"]) == (1, 0)
    # the rule is exhausted: the same call now succeeds
    create_listeners(clb, LB_A_OPEN, "TCP", [6701])


def test_fail_task_rolls_back_delete_and_register(fake, clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6710])
    fake.set_faults([{"action": "DeleteListener", "effect": {"type": "failTask", "message": "delete failed"}},
                     {"action": "RegisterTargets", "effect": {"type": "failTask", "message": "bind failed"}}])
    resp = call(clb, "DeleteListener", LoadBalancerId=LB_A_OPEN, ListenerId=lid)
    final, _ = wait_task(clb, resp["RequestId"])
    assert (final["Status"], final["Message"]) == (1, "delete failed")
    assert listener_by_id(clb, LB_A_OPEN, lid)["Port"] == 6710

    resp = call(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
                Targets=[{"EniIp": "10.5.0.1", "Port": 80}])
    final, _ = wait_task(clb, resp["RequestId"])
    assert (final["Status"], final["Message"]) == (1, "bind failed")
    assert l4_targets(clb, LB_A_OPEN, lid) == []


def test_error_fault_surfaces_code_and_message(fake, clb):
    fake.set_faults([{"action": "DescribeListeners", "count": 2,
                      "effect": {"type": "error", "code": "InternalError", "message": "boom"}}])
    for _ in range(2):
        with raises_code("InternalError") as err:
            call(clb, "DescribeListeners", LoadBalancerId=LB_A_OPEN)
        assert err.value.message == "boom"
    assert describe_listeners(clb, LB_A_OPEN) == []
    (rule,) = fake.faults()
    assert (rule["fired"], rule["remaining"]) == (2, 0)


def test_error_fault_on_mutation_changes_nothing(fake, clb):
    fake.set_faults([{"action": "CreateListener", "loadBalancerId": LB_A_OPEN,
                      "effect": {"type": "error", "code": "ResourceInsufficient", "message": "sold out"}}])
    with raises_code("ResourceInsufficient"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6720])
    assert describe_listeners(clb, LB_A_OPEN) == []
    create_listeners(clb, LB_A_OPEN2, "TCP", [6720])  # the rule matches one LB only


def test_error_fault_scoped_to_one_account(fake, clb, clb_b):
    fake.set_faults([{"action": "DescribeLoadBalancers", "secretId": ACCOUNT_B.secret_id,
                      "effect": {"type": "error", "code": "InternalError", "message": "only B"}}])
    with raises_code("InternalError"):
        call(clb_b, "DescribeLoadBalancers")
    assert lb_ids(clb)[1] == 3


def test_throttle_fault(fake, clb):
    fake.set_faults([{"action": "DescribeQuota", "count": 1, "effect": {"type": "throttle"}}])
    with raises_code("RequestLimitExceeded") as err:
        call(clb, "DescribeQuota")
    assert "frequency limit" in err.value.message
    assert call(clb, "DescribeQuota")["QuotaSet"]


def test_commit_then_fail_fault(fake, clb):
    fake.set_faults([{"action": "CreateListener", "count": 1,
                      "effect": {"type": "commitThenFail", "code": "InternalError", "message": "lost reply"}}])
    with raises_code("InternalError"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6730])
    assert listener_ports(clb, LB_A_OPEN) == [("TCP", 6730)], "the change is applied despite the error"


def test_hang_task_fault_keeps_load_balancer_busy_until_cleared(fake, clb):
    fake.set_faults([{"action": "CreateListener", "count": 1, "effect": {"type": "hangTask"}}])
    fake.patch_limits({"taskDuration": "50ms"})
    resp = call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6740])
    # observed for ten times taskDuration, the task stays in progress and the LB busy
    watch_until = time.monotonic() + 0.5
    while time.monotonic() < watch_until:
        assert task_status(clb, resp["RequestId"])["Status"] == 2
        time.sleep(0.05)
    with raises_code("FailedOperation.ResourceInOperating"):
        call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6741])
    fake.clear_faults()
    assert wait_task(clb, resp["RequestId"])[0]["Status"] == 0
    create_listeners(clb, LB_A_OPEN, "TCP", [6741])


# -- isolation ------------------------------------------------------------------------------------------------

def test_account_isolation(clb, clb_b):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [6801])
    assert lb_ids(clb_b) == ([LB_B_OPEN], 1)
    assert lb_ids(clb_b, LoadBalancerIds=[LB_A_OPEN]) == ([], 0)
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb_b, "DescribeListeners", LoadBalancerId=LB_A_OPEN)
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb_b, "DeleteLoadBalancer", LoadBalancerIds=[LB_A_OPEN])
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb_b, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[6802])
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb_b, "DeleteListener", LoadBalancerId=LB_A_OPEN, ListenerId=lid)
    # account A still sees its LB and listener unchanged; B's LB is invisible to A
    assert listener_ports(clb, LB_A_OPEN) == [("TCP", 6801)]
    assert LB_B_OPEN not in lb_ids(clb)[0]
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb, "DescribeListeners", LoadBalancerId=LB_B_OPEN)


def test_new_load_balancer_invisible_to_other_account(clb, clb_b):
    resp = call(clb_b, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="bravo-new")
    (new_id,) = resp["LoadBalancerIds"]
    assert wait_task(clb_b, resp["RequestId"])[0]["Status"] == 0
    assert lb_ids(clb, LoadBalancerIds=[new_id]) == ([], 0)
    assert lb_ids(clb_b, LoadBalancerIds=[new_id]) == ([new_id], 1)


def test_region_isolation(fake, clb):
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb, "DescribeListeners", LoadBalancerId=LB_A_SH)
    sh = fake.client(region=OTHER_REGION)
    create_listeners(sh, LB_A_SH, "TCP", [6901])
    assert [item["Port"] for item in describe_listeners(sh, LB_A_SH)] == [6901]
