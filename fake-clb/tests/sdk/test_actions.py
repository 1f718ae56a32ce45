"""Every supported CLB action round-trips through the official SDK with the effect visible in Describe*."""

import re

import pytest

from sdkutil import (
    UUID4, A_GZ_LBS, CERT, LB_A_INTERNAL, LB_A_OPEN, LB_A_OPEN2, LB_A_SH, LB_B_OPEN, OTHER_REGION, call,
    create_listeners, describe_listeners, lb_ids, listener_by_id, mutate, raises_code, task_status, wait_task,
)

# -- load balancers -------------------------------------------------------------------------------------------

def test_describe_load_balancers_lists_own_region_only(clb):
    resp = call(clb, "DescribeLoadBalancers")
    ids = {lb["LoadBalancerId"] for lb in resp["LoadBalancerSet"]}
    assert ids == A_GZ_LBS
    assert resp["TotalCount"] == 3
    assert UUID4.match(resp["RequestId"]), resp["RequestId"]
    by_id = {lb["LoadBalancerId"]: lb for lb in resp["LoadBalancerSet"]}
    open_lb = by_id[LB_A_OPEN]
    assert open_lb["LoadBalancerName"] == "alpha-open"
    assert open_lb["LoadBalancerType"] == "OPEN"
    assert open_lb["LoadBalancerVips"] == ["1.1.1.1"]
    assert open_lb["Status"] == 1
    assert open_lb["Forward"] == 1
    assert by_id[LB_A_INTERNAL]["LoadBalancerType"] == "INTERNAL"


def test_describe_load_balancers_by_ids_skips_unknown_and_other_region(clb):
    ids, total = lb_ids(clb, LoadBalancerIds=[LB_A_OPEN, LB_A_SH, "lb-nothere1"])
    assert ids == [LB_A_OPEN]
    assert total == 1
    ids, total = lb_ids(clb, LoadBalancerIds=["lb-nothere1"])
    assert (ids, total) == ([], 0)


def test_describe_load_balancers_other_region(fake):
    sh = fake.client(region=OTHER_REGION)
    ids, total = lb_ids(sh)
    assert (ids, total) == ([LB_A_SH], 1)


def test_describe_load_balancers_filters_by_type_and_name(clb):
    assert set(lb_ids(clb, LoadBalancerType="OPEN")[0]) == {LB_A_OPEN, LB_A_OPEN2}
    assert lb_ids(clb, LoadBalancerType="INTERNAL") == ([LB_A_INTERNAL], 1)
    assert set(lb_ids(clb, LoadBalancerName="alpha")[0]) == {LB_A_OPEN, LB_A_INTERNAL}
    assert lb_ids(clb, LoadBalancerName="beta-open") == ([LB_A_OPEN2], 1)
    assert lb_ids(clb, LoadBalancerName="alpha", LoadBalancerType="INTERNAL") == ([LB_A_INTERNAL], 1)
    assert lb_ids(clb, LoadBalancerName="no-such-name") == ([], 0)


def test_describe_load_balancers_paging(clb):
    first, total_first = lb_ids(clb, Limit=2, Offset=0)
    second, total_second = lb_ids(clb, Limit=2, Offset=2)
    beyond, total_beyond = lb_ids(clb, Limit=2, Offset=3)
    assert len(first) == 2 and len(second) == 1 and beyond == []
    assert total_first == total_second == total_beyond == 3, "TotalCount must not depend on Limit/Offset"
    assert set(first) | set(second) == A_GZ_LBS
    assert not set(first) & set(second)


def test_create_load_balancer_then_listed_running(clb):
    resp = call(clb, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="created-by-sdk")
    new_ids = resp["LoadBalancerIds"]
    assert new_ids is not None and len(new_ids) == 1
    assert re.match(r"^lb-[a-z0-9]{8}$", new_ids[0]), new_ids
    assert UUID4.match(resp["RequestId"])
    final, seen = wait_task(clb, resp["RequestId"])
    assert final["Status"] == 0, (final, seen)
    assert final["LoadBalancerIds"] == new_ids
    listed = call(clb, "DescribeLoadBalancers", LoadBalancerIds=new_ids)["LoadBalancerSet"]
    assert len(listed) == 1
    assert listed[0]["LoadBalancerName"] == "created-by-sdk"
    assert listed[0]["LoadBalancerType"] == "OPEN"
    assert listed[0]["Status"] == 1
    assert listed[0]["LoadBalancerVips"], "a new OPEN LB needs a VIP"
    assert lb_ids(clb)[1] == 4


def test_create_and_delete_load_balancer(clb):
    resp = call(clb, "CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="short-lived")
    (new_id,) = resp["LoadBalancerIds"]
    assert wait_task(clb, resp["RequestId"])[0]["Status"] == 0
    mutate(clb, "DeleteLoadBalancer", LoadBalancerIds=[new_id])
    assert lb_ids(clb, LoadBalancerIds=[new_id]) == ([], 0)
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb, "DeleteLoadBalancer", LoadBalancerIds=[new_id])


def test_delete_preexisting_load_balancer_removes_listeners(clb):
    create_listeners(clb, LB_A_OPEN2, "TCP", [7001])
    mutate(clb, "DeleteLoadBalancer", LoadBalancerIds=[LB_A_OPEN2])
    assert set(lb_ids(clb)[0]) == A_GZ_LBS - {LB_A_OPEN2}
    with raises_code("InvalidParameter.LBIdNotFound"):
        call(clb, "DescribeListeners", LoadBalancerId=LB_A_OPEN2)


# -- quota ----------------------------------------------------------------------------------------------------

def test_describe_quota_reports_config_limits(clb):
    quotas = {q["QuotaId"]: q for q in call(clb, "DescribeQuota")["QuotaSet"]}
    assert quotas["TOTAL_LISTENER_QUOTA"]["QuotaLimit"] == 60
    assert quotas["TOTAL_LISTENER_RULE_QUOTA"]["QuotaLimit"] == 45
    assert quotas["TOTAL_TARGET_BIND_QUOTA"]["QuotaLimit"] == 120
    assert quotas["TOTAL_OPEN_CLB_QUOTA"]["QuotaLimit"] == 90
    assert quotas["TOTAL_INTERNAL_CLB_QUOTA"]["QuotaLimit"] == 90
    # account A has two OPEN and one INTERNAL LB in ap-guangzhou
    assert quotas["TOTAL_OPEN_CLB_QUOTA"]["QuotaCurrent"] == 2
    assert quotas["TOTAL_INTERNAL_CLB_QUOTA"]["QuotaCurrent"] == 1


def test_describe_quota_from_a_private_server_config(start_fake):
    server = start_fake(limits={"listenersPerLoadBalancer": 7, "rulesPerListener": 8, "targetsPerListener": 9,
                                "loadBalancersPerRegion": 11})
    quotas = {q["QuotaId"]: q["QuotaLimit"] for q in call(server.client(), "DescribeQuota")["QuotaSet"]}
    assert quotas["TOTAL_LISTENER_QUOTA"] == 7
    assert quotas["TOTAL_LISTENER_RULE_QUOTA"] == 8
    assert quotas["TOTAL_TARGET_BIND_QUOTA"] == 9
    assert quotas["TOTAL_OPEN_CLB_QUOTA"] == 11


def test_describe_quota_follows_patched_limits(fake, clb):
    fake.patch_limits({"listenersPerLoadBalancer": 5})
    quotas = {q["QuotaId"]: q["QuotaLimit"] for q in call(clb, "DescribeQuota")["QuotaSet"]}
    assert quotas["TOTAL_LISTENER_QUOTA"] == 5


# -- listeners ------------------------------------------------------------------------------------------------

def test_create_listener_many_ports_returns_ids_in_port_order(clb):
    ports = [7003, 7001, 7002, 7010]
    names = ["p7003", "p7001", "p7002", "p7010"]
    ids = create_listeners(clb, LB_A_OPEN, "TCP", ports, ListenerNames=names)
    assert len(set(ids)) == 4
    assert all(re.match(r"^lbl-[a-z0-9]{8}$", lid) for lid in ids), ids
    for lid, port, name in zip(ids, ports, names):
        listener = listener_by_id(clb, LB_A_OPEN, lid)
        assert (listener["Port"], listener["Protocol"], listener["ListenerName"]) == (port, "TCP", name)
        assert listener["EndPort"] in (0, None)


@pytest.mark.parametrize("protocol,port", [
    ("TCP", 7100), ("UDP", 7101), ("TCP_SSL", 7102), ("QUIC", 7103), ("HTTP", 7104), ("HTTPS", 7105),
])
def test_create_listener_each_protocol(clb, protocol, port):
    (lid,) = create_listeners(clb, LB_A_OPEN, protocol, [port])
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert listener["Protocol"] == protocol
    assert listener["Port"] == port
    if protocol in ("TCP_SSL", "HTTPS"):
        assert listener["Certificate"] is not None and listener["Certificate"]["CertId"] == CERT["CertId"]
    if protocol in ("HTTP", "HTTPS"):
        assert listener["Rules"] in ([], None)


def test_create_listener_protocol_is_case_insensitive(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "tcp", [7110])
    assert listener_by_id(clb, LB_A_OPEN, lid)["Protocol"] == "TCP"


def test_create_listener_port_range(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [8000], EndPort=8010)
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert (listener["Port"], listener["EndPort"]) == (8000, 8010)


def test_describe_listeners_filters(clb):
    tcp_ids = create_listeners(clb, LB_A_OPEN, "TCP", [7201, 7202])
    (udp_id,) = create_listeners(clb, LB_A_OPEN, "UDP", [7201])
    (http_id,) = create_listeners(clb, LB_A_OPEN, "HTTP", [7280])
    everything = call(clb, "DescribeListeners", LoadBalancerId=LB_A_OPEN)
    assert {item["ListenerId"] for item in everything["Listeners"]} == set(tcp_ids) | {udp_id, http_id}
    assert everything["TotalCount"] == 4

    def ids(**filters):
        resp = call(clb, "DescribeListeners", LoadBalancerId=LB_A_OPEN, **filters)
        assert resp["TotalCount"] == len(resp["Listeners"])
        return {item["ListenerId"] for item in resp["Listeners"]}

    assert ids(Protocol="TCP") == set(tcp_ids)
    assert ids(Port=7201) == {tcp_ids[0], udp_id}
    assert ids(Protocol="UDP", Port=7201) == {udp_id}
    assert ids(ListenerIds=[http_id, tcp_ids[1]]) == {http_id, tcp_ids[1]}
    assert ids(ListenerIds=[http_id], Protocol="TCP") == set()
    assert ids(ListenerIds=["lbl-nothere1"]) == set()
    # another LB of the same account is unaffected
    assert describe_listeners(clb, LB_A_OPEN2) == []


def test_delete_listener(clb):
    keep, gone = create_listeners(clb, LB_A_OPEN, "TCP", [7301, 7302])
    mutate(clb, "DeleteListener", LoadBalancerId=LB_A_OPEN, ListenerId=gone)
    assert [item["ListenerId"] for item in describe_listeners(clb, LB_A_OPEN)] == [keep]
    with raises_code("InvalidParameter.ListenerIdNotFound") as err:
        call(clb, "DeleteListener", LoadBalancerId=LB_A_OPEN, ListenerId=gone)
    assert gone in err.value.message


def test_delete_load_balancer_listeners_by_ids(clb):
    ids = create_listeners(clb, LB_A_OPEN, "TCP", [7401, 7402, 7403, 7404])
    mutate(clb, "DeleteLoadBalancerListeners", LoadBalancerId=LB_A_OPEN, ListenerIds=[ids[0], ids[2]])
    assert {item["ListenerId"] for item in describe_listeners(clb, LB_A_OPEN)} == {ids[1], ids[3]}


def test_delete_load_balancer_listeners_empty_list_deletes_all(clb):
    create_listeners(clb, LB_A_OPEN, "TCP", [7411, 7412])
    create_listeners(clb, LB_A_OPEN, "HTTP", [7480])
    mutate(clb, "DeleteLoadBalancerListeners", LoadBalancerId=LB_A_OPEN, ListenerIds=[])
    assert describe_listeners(clb, LB_A_OPEN) == []


def test_delete_load_balancer_listeners_omitted_ids_deletes_all(clb):
    create_listeners(clb, LB_A_OPEN, "UDP", [7421, 7422])
    mutate(clb, "DeleteLoadBalancerListeners", LoadBalancerId=LB_A_OPEN)
    assert describe_listeners(clb, LB_A_OPEN) == []


def test_delete_load_balancer_listeners_unknown_id_deletes_nothing(clb):
    ids = create_listeners(clb, LB_A_OPEN, "TCP", [7431, 7432])
    with raises_code("InvalidParameter") as err:
        call(clb, "DeleteLoadBalancerListeners", LoadBalancerId=LB_A_OPEN,
             ListenerIds=[ids[0], "lbl-nothere1", "lbl-nothere2"])
    message = err.value.message
    assert "some ListenerId" in message and "not found" in message, message
    assert "lbl-nothere1" in message and "lbl-nothere2" in message, message
    assert {item["ListenerId"] for item in describe_listeners(clb, LB_A_OPEN)} == set(ids)


def test_modify_listener_name_health_check_scheduler(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [7501], ListenerNames=["before"])
    mutate(clb, "ModifyListener", LoadBalancerId=LB_A_OPEN, ListenerId=lid, ListenerName="after",
           Scheduler="LEAST_CONN", SessionExpireTime=60,
           HealthCheck={"HealthSwitch": 1, "TimeOut": 3, "IntervalTime": 10, "HealthNum": 4, "UnHealthNum": 5})
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert listener["ListenerName"] == "after"
    assert listener["Scheduler"] == "LEAST_CONN"
    assert listener["SessionExpireTime"] == 60
    health = listener["HealthCheck"]
    assert (health["HealthSwitch"], health["TimeOut"], health["IntervalTime"], health["HealthNum"],
            health["UnHealthNum"]) == (1, 3, 10, 4, 5)
    assert (listener["Port"], listener["Protocol"]) == (7501, "TCP")

    mutate(clb, "ModifyListener", LoadBalancerId=LB_A_OPEN, ListenerId=lid, HealthCheck={"HealthSwitch": 0})
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert listener["HealthCheck"]["HealthSwitch"] == 0
    assert listener["ListenerName"] == "after", "fields not in the request stay unchanged"


def test_new_tcp_listener_defaults(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [7502])
    listener = listener_by_id(clb, LB_A_OPEN, lid)
    assert listener["Scheduler"] == "WRR"
    assert listener["HealthCheck"]["HealthSwitch"] == 1


# -- rules ----------------------------------------------------------------------------------------------------

def rules_of(clb, lb, lid):
    return {rule["LocationId"]: rule for rule in listener_by_id(clb, lb, lid)["Rules"] or []}


@pytest.mark.parametrize("protocol,port", [("HTTP", 7600), ("HTTPS", 7643)])
def test_rule_lifecycle(clb, protocol, port):
    (lid,) = create_listeners(clb, LB_A_OPEN, protocol, [port])
    resp = mutate(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Rules=[
        {"Domain": "a.example.com", "Url": "/api"},
        {"Domain": "a.example.com", "Url": "/web"},
        {"Domain": "c.example.com", "Url": "/"},
    ])
    api, web, other = resp["LocationIds"]
    assert all(re.match(r"^loc-[a-z0-9]{8}$", loc) for loc in (api, web, other)), resp
    rules = rules_of(clb, LB_A_OPEN, lid)
    assert {loc: (r["Domain"], r["Url"]) for loc, r in rules.items()} == {
        api: ("a.example.com", "/api"), web: ("a.example.com", "/web"), other: ("c.example.com", "/")}

    mutate(clb, "ModifyRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationId=api, Url="/api/v2",
           Scheduler="LEAST_CONN")
    rules = rules_of(clb, LB_A_OPEN, lid)
    assert rules[api]["Url"] == "/api/v2"
    assert rules[api]["Scheduler"] == "LEAST_CONN"
    assert rules[web]["Url"] == "/web"

    mutate(clb, "ModifyDomainAttributes", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Domain="a.example.com",
           NewDomain="b.example.com")
    rules = rules_of(clb, LB_A_OPEN, lid)
    assert (rules[api]["Domain"], rules[web]["Domain"], rules[other]["Domain"]) == (
        "b.example.com", "b.example.com", "c.example.com")

    mutate(clb, "DeleteRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationIds=[web])
    assert set(rules_of(clb, LB_A_OPEN, lid)) == {api, other}

    mutate(clb, "DeleteRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Domain="c.example.com", Url="/")
    assert set(rules_of(clb, LB_A_OPEN, lid)) == {api}

    with raises_code("InvalidParameter.LocationNotFound"):
        call(clb, "ModifyRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationId=web, Url="/again")


# -- targets --------------------------------------------------------------------------------------------------

def backends_l4(clb, lb, lid):
    (entry,) = [e for e in call(clb, "DescribeTargets", LoadBalancerId=lb, ListenerIds=[lid])["Listeners"]
                if e["ListenerId"] == lid]
    return entry


def target_key(backend):
    if backend.get("InstanceId"):
        return backend["InstanceId"], backend["Port"]
    return backend["PrivateIpAddresses"][0], backend["Port"]


def test_register_modify_deregister_targets_l4(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "TCP", [7701])
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Targets=[
        {"InstanceId": "ins-aaaa1111", "Port": 80, "Weight": 30},
        {"EniIp": "10.0.0.5", "Port": 8080},
    ])
    entry = backends_l4(clb, LB_A_OPEN, lid)
    assert (entry["Protocol"], entry["Port"]) == ("TCP", 7701)
    weights = {target_key(b): b["Weight"] for b in entry["Targets"]}
    assert weights == {("ins-aaaa1111", 80): 30, ("10.0.0.5", 8080): 10}

    mutate(clb, "ModifyTargetWeight", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
           Targets=[{"EniIp": "10.0.0.5", "Port": 8080}], Weight=55)
    weights = {target_key(b): b["Weight"] for b in backends_l4(clb, LB_A_OPEN, lid)["Targets"]}
    assert weights == {("ins-aaaa1111", 80): 30, ("10.0.0.5", 8080): 55}

    # a per-target Weight wins over the request-level Weight
    mutate(clb, "ModifyTargetWeight", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Weight=60, Targets=[
        {"InstanceId": "ins-aaaa1111", "Port": 80, "Weight": 5}, {"EniIp": "10.0.0.5", "Port": 8080}])
    weights = {target_key(b): b["Weight"] for b in backends_l4(clb, LB_A_OPEN, lid)["Targets"]}
    assert weights == {("ins-aaaa1111", 80): 5, ("10.0.0.5", 8080): 60}

    mutate(clb, "DeregisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid,
           Targets=[{"InstanceId": "ins-aaaa1111", "Port": 80}])
    remaining = [target_key(b) for b in backends_l4(clb, LB_A_OPEN, lid)["Targets"] or []]
    assert remaining == [("10.0.0.5", 8080)]


def test_register_modify_deregister_targets_l7(clb):
    (lid,) = create_listeners(clb, LB_A_OPEN, "HTTP", [7780])
    api, web = mutate(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=lid, Rules=[
        {"Domain": "t.example.com", "Url": "/api"}, {"Domain": "t.example.com", "Url": "/web"}])["LocationIds"]
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationId=api,
           Targets=[{"EniIp": "10.0.1.1", "Port": 80}, {"EniIp": "10.0.1.2", "Port": 80, "Weight": 20}])

    def rule_targets():
        entry = backends_l4(clb, LB_A_OPEN, lid)
        assert entry["Protocol"] == "HTTP"
        return {r["LocationId"]: {target_key(b): b["Weight"] for b in r["Targets"] or []}
                for r in entry["Rules"]}

    assert rule_targets() == {api: {("10.0.1.1", 80): 10, ("10.0.1.2", 80): 20}, web: {}}

    mutate(clb, "ModifyTargetWeight", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationId=api,
           Targets=[{"EniIp": "10.0.1.1", "Port": 80, "Weight": 70}])
    assert rule_targets()[api] == {("10.0.1.1", 80): 70, ("10.0.1.2", 80): 20}

    mutate(clb, "DeregisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=lid, LocationId=api,
           Targets=[{"EniIp": "10.0.1.2", "Port": 80}])
    assert rule_targets() == {api: {("10.0.1.1", 80): 70}, web: {}}


def test_batch_register_modify_deregister(clb):
    l1, l2 = create_listeners(clb, LB_A_OPEN, "TCP", [7801, 7802])
    (h,) = create_listeners(clb, LB_A_OPEN, "HTTP", [7880])
    (loc,) = mutate(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=h,
                    Rules=[{"Domain": "b.example.com", "Url": "/"}])["LocationIds"]
    resp = call(clb, "BatchRegisterTargets", LoadBalancerId=LB_A_OPEN, Targets=[
        {"ListenerId": l1, "Port": 80, "EniIp": "10.0.2.1"},
        {"ListenerId": l2, "Port": 81, "EniIp": "10.0.2.2", "Weight": 20},
        {"ListenerId": h, "LocationId": loc, "Port": 82, "EniIp": "10.0.2.3"},
    ])
    assert resp["FailListenerIdSet"] in ([], None), resp
    # synchronous: visible at once, no task to wait for
    assert {target_key(b): b["Weight"] for b in backends_l4(clb, LB_A_OPEN, l1)["Targets"]} == {
        ("10.0.2.1", 80): 10}
    assert {target_key(b): b["Weight"] for b in backends_l4(clb, LB_A_OPEN, l2)["Targets"]} == {
        ("10.0.2.2", 81): 20}
    (rule,) = backends_l4(clb, LB_A_OPEN, h)["Rules"]
    assert [target_key(b) for b in rule["Targets"]] == [("10.0.2.3", 82)]

    mutate(clb, "BatchModifyTargetWeight", LoadBalancerId=LB_A_OPEN, ModifyList=[
        {"ListenerId": l1, "Targets": [{"EniIp": "10.0.2.1", "Port": 80}], "Weight": 33},
        {"ListenerId": h, "LocationId": loc, "Targets": [{"EniIp": "10.0.2.3", "Port": 82, "Weight": 44}]},
    ])
    assert backends_l4(clb, LB_A_OPEN, l1)["Targets"][0]["Weight"] == 33
    assert backends_l4(clb, LB_A_OPEN, l2)["Targets"][0]["Weight"] == 20
    assert backends_l4(clb, LB_A_OPEN, h)["Rules"][0]["Targets"][0]["Weight"] == 44

    resp = call(clb, "BatchDeregisterTargets", LoadBalancerId=LB_A_OPEN, Targets=[
        {"ListenerId": l1, "Port": 80, "EniIp": "10.0.2.1"},
        {"ListenerId": h, "LocationId": loc, "Port": 82, "EniIp": "10.0.2.3"},
    ])
    assert resp["FailListenerIdSet"] in ([], None), resp
    assert not backends_l4(clb, LB_A_OPEN, l1)["Targets"]
    assert not backends_l4(clb, LB_A_OPEN, h)["Rules"][0]["Targets"]
    assert [target_key(b) for b in backends_l4(clb, LB_A_OPEN, l2)["Targets"]] == [("10.0.2.2", 81)]


def test_describe_targets_filters_by_listener_ids(clb):
    l1, l2 = create_listeners(clb, LB_A_OPEN, "UDP", [7901, 7902])
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=l1,
           Targets=[{"EniIp": "10.0.3.1", "Port": 53}])
    listed = call(clb, "DescribeTargets", LoadBalancerId=LB_A_OPEN)["Listeners"]
    assert {e["ListenerId"] for e in listed} == {l1, l2}
    only = call(clb, "DescribeTargets", LoadBalancerId=LB_A_OPEN, ListenerIds=[l2])["Listeners"]
    assert [e["ListenerId"] for e in only] == [l2]
    assert not only[0]["Targets"]


def test_describe_target_health(clb):
    (tcp,) = create_listeners(clb, LB_A_OPEN, "TCP", [7951])
    (http,) = create_listeners(clb, LB_A_OPEN, "HTTP", [7980])
    (loc,) = mutate(clb, "CreateRule", LoadBalancerId=LB_A_OPEN, ListenerId=http,
                    Rules=[{"Domain": "h.example.com", "Url": "/"}])["LocationIds"]
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=tcp,
           Targets=[{"EniIp": "10.0.4.1", "Port": 80}])
    mutate(clb, "RegisterTargets", LoadBalancerId=LB_A_OPEN, ListenerId=http, LocationId=loc,
           Targets=[{"EniIp": "10.0.4.2", "Port": 8080}])
    resp = call(clb, "DescribeTargetHealth", LoadBalancerIds=[LB_A_OPEN])
    (lb,) = resp["LoadBalancers"]
    assert lb["LoadBalancerId"] == LB_A_OPEN
    listeners = {item["ListenerId"]: item for item in lb["Listeners"]}
    assert set(listeners) == {tcp, http}
    assert (listeners[tcp]["Protocol"], listeners[tcp]["Port"]) == ("TCP", 7951)
    (l4_rule,) = listeners[tcp]["Rules"]
    assert [(t["IP"], t["Port"]) for t in l4_rule["Targets"]] == [("10.0.4.1", 80)]
    (l7_rule,) = listeners[http]["Rules"]
    assert (l7_rule["LocationId"], l7_rule["Domain"], l7_rule["Url"]) == (loc, "h.example.com", "/")
    assert [(t["IP"], t["Port"]) for t in l7_rule["Targets"]] == [("10.0.4.2", 8080)]
    for target in l4_rule["Targets"] + l7_rule["Targets"]:
        assert isinstance(target["HealthStatus"], bool)
        assert target["HealthStatusDetail"] in ("Alive", "Dead", "Unknown", "Close")

    only_tcp = call(clb, "DescribeTargetHealth", LoadBalancerIds=[LB_A_OPEN], ListenerIds=[tcp])
    assert [item["ListenerId"] for item in only_tcp["LoadBalancers"][0]["Listeners"]] == [tcp]


# -- tasks ----------------------------------------------------------------------------------------------------

def test_describe_task_status_in_progress_then_succeeded(fake, clb):
    fake.patch_limits({"taskDuration": "1s"})
    resp = call(clb, "CreateListener", LoadBalancerId=LB_A_OPEN, Protocol="TCP", Ports=[7990])
    first = task_status(clb, resp["RequestId"])
    assert first["Status"] == 2
    final, seen = wait_task(clb, resp["RequestId"])
    assert final["Status"] == 0
    assert seen[-1] == 0 and set(seen) <= {0, 2}
    assert final["Message"] in (None, "")
    # the finished task stays queryable
    assert task_status(clb, resp["RequestId"])["Status"] == 0


def test_other_account_lb_untouched_by_listener_ops(clb, clb_b):
    create_listeners(clb, LB_A_OPEN, "TCP", [7995])
    assert describe_listeners(clb_b, LB_B_OPEN) == []
