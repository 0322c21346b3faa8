"""Pure logic of the operations: PoolIDs, tags, allocation pools, Join answers."""

import ipaddress

import pytest

from kuryrnet import errors
from kuryrnet.binding.base import Vif
from kuryrnet.neutron import tags
from kuryrnet.operations.endpoints import _join_response
from kuryrnet.operations.networks import _allocation_pools
from kuryrnet.operations.pool_ids import PoolId
from kuryrnet.operations.rollback import Rollback

POOL_UUID = "5f0c6c1e-8a39-4a0e-9a53-4d8f0c2a9b11"


@pytest.mark.parametrize("text", [
    f"pool@{POOL_UUID}@10.0.0.0/24",
    f"pool@{POOL_UUID}@10.0.0.0/24@10.0.0.128/25",
    f"subnet@{POOL_UUID}@fd00::/64",
])
def test_pool_id_round_trip(text):
    assert str(PoolId.parse(text)) == text


@pytest.mark.parametrize("text", ["", "pool", f"vlan@{POOL_UUID}@10.0.0.0/24",
                                  "pool@not-a-uuid@10.0.0.0/24", f"pool@{POOL_UUID}@10.0.0.1/24",
                                  f"pool@{POOL_UUID}@10.0.0.0/24@x@y"])
def test_pool_id_invalid_names_value(text):
    with pytest.raises(errors.InvalidRequest) as caught:
        PoolId.parse(text)
    assert "invalid PoolID" in caught.value.message


def test_reservation_tag_round_trip():
    tag = tags.reservation(ipaddress.ip_network("fd00:1::/64"))
    assert "/" not in tag
    assert tags.reserved_cidr(tag) == "fd00:1::/64"


def test_ip_range_tag_found_for_its_cidr_only():
    cidr = ipaddress.ip_network("10.97.0.0/24")
    tag = tags.ip_range(cidr, ipaddress.ip_network("10.97.0.128/25"))
    assert tags.ip_range_of([tag], cidr) == "10.97.0.128/25"
    assert tags.ip_range_of([tag], ipaddress.ip_network("10.97.1.0/24")) is None


def test_port_pool_tag_round_trip():
    assert tags.parse_port_pool(tags.port_pool(False, 1, 3)) == (False, 1, 3)
    assert tags.parse_port_pool("kuryrnet.pool.maybe.1.2") is None
    assert tags.parse_port_pool(tags.OWNED) is None


def test_allocation_pools_skip_gateway_inside_range():
    pools = _allocation_pools(ipaddress.ip_network("10.97.0.128/25"),
                              ipaddress.ip_interface("10.97.0.200/24"))
    assert pools == [{"start": "10.97.0.129", "end": "10.97.0.199"},
                     {"start": "10.97.0.201", "end": "10.97.0.254"}]


def test_allocation_pools_gateway_outside_range():
    pools = _allocation_pools(ipaddress.ip_network("10.97.0.128/25"),
                              ipaddress.ip_interface("10.97.0.1/24"))
    assert pools == [{"start": "10.97.0.129", "end": "10.97.0.254"}]


def test_rollback_undoes_newest_first_and_reraises():
    done = []
    with pytest.raises(RuntimeError):
        with Rollback("test") as undo:
            undo.add("first", done.append, 1)
            undo.add("second", done.append, 2)
            raise RuntimeError("boom")
    assert done == [2, 1]


def test_rollback_keeps_going_after_failed_undo():
    done = []

    def fail():
        raise OSError("undo failed")

    with pytest.raises(ValueError):
        with Rollback("test") as undo:
            undo.add("first", done.append, 1)
            undo.add("broken", fail)
            raise ValueError("boom")
    assert done == [1]


def test_join_response_takes_gateways_and_routes_of_port_subnets():
    vif = Vif(port_id="p", network_id="n", endpoint_id="e" * 64, mac_address="fa:16:3e:00:00:01",
              mtu=1442, vif_type="ovs", container_ifname="t_cabc")
    port = {"fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.5"},
                          {"subnet_id": "s6", "ip_address": "fd00::5"}]}
    subnets = [
        {"id": "s4", "gateway_ip": "10.0.0.1",
         "host_routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]},
        {"id": "s6", "gateway_ip": "fd00::1", "host_routes": []},
        {"id": "other", "gateway_ip": "10.9.9.1", "host_routes": []},
    ]
    answer = _join_response(vif, port, subnets)
    assert answer.src_name == "t_cabc"
    assert str(answer.gateway) == "10.0.0.1"
    assert str(answer.gateway_ipv6) == "fd00::1"
    assert [str(r.destination) for r in answer.static_routes] == ["192.168.0.0/16"]
    assert answer.disable_gateway_service
