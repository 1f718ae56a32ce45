use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn key() -> PoolKey {
    PoolKey::new("test", "pool1")
}

fn spec(name: &str, start: u16, end: u16, seg: u16, tcp: bool, udp: bool) -> ItemSpec {
    ItemSpec {
        name: name.to_string(),
        start_port: start,
        end_port: end,
        segment_length: seg,
        tcp,
        udp,
        status: ItemStatus::Ready,
    }
}

fn allocator_with(policy: AllocatePolicy, items: &[ItemSpec]) -> Allocator {
    let mut a = Allocator::new();
    a.sync_pool(&key(), policy, items).unwrap();
    a
}

#[test]
fn allocates_lowest_port_first_and_reuses_released_ports() {
    let mut a = allocator_with(
        AllocatePolicy::Default,
        &[spec("item1", 31000, 31100, 0, true, false)],
    );
    let first = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!(
        (&*first.item, first.start_port, first.binding_end_port()),
        ("item1", 31000, 0)
    );
    let second = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!(second.start_port, 31001);
    assert!(
        a.release(&key(), "item1", RequestProtocol::Tcp, 31000)
            .unwrap()
    );
    assert!(
        !a.release(&key(), "item1", RequestProtocol::Tcp, 31000)
            .unwrap()
    );
    let third = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!(third.start_port, 31000);
}

#[test]
fn segments_are_whole_and_end_is_exclusive() {
    // Guide example: 31000-31099 in segments of 5 gives the pod 31000..=31004 (endPort 31004).
    let mut a = allocator_with(
        AllocatePolicy::Default,
        &[spec("item1", 31000, 31012, 5, true, false)],
    );
    let s1 = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!(
        (s1.start_port, s1.last_port, s1.binding_end_port()),
        (31000, 31004, 31004)
    );
    let s2 = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!((s2.start_port, s2.last_port), (31005, 31009));
    // 31010..31011 is a partial segment and never handed out.
    let err = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port pool test/pool1 has no free TCP port (1 of 1 items are Ready and serve TCP)"
    );
    let err = a
        .allocate_specific(&key(), "item1", RequestProtocol::Tcp, 31010)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "port 31010 is not a segment start of item \"item1\" of port pool test/pool1 (ports [31000, 31012), segments of 5)"
    );
}

#[test]
fn tcp_udp_holds_the_same_port_in_both_protocols() {
    let mut a = allocator_with(
        AllocatePolicy::Default,
        &[spec("item1", 30000, 30010, 0, true, true)],
    );
    a.allocate_specific(&key(), "item1", RequestProtocol::Tcp, 30000)
        .unwrap();
    a.allocate_specific(&key(), "item1", RequestProtocol::Udp, 30001)
        .unwrap();
    let both = a.allocate(&key(), RequestProtocol::TcpUdp, None).unwrap();
    assert_eq!(both.start_port, 30002);
    assert!(
        !a.is_free(&key(), "item1", RequestProtocol::Tcp, 30002)
            .unwrap()
    );
    assert!(
        !a.is_free(&key(), "item1", RequestProtocol::Udp, 30002)
            .unwrap()
    );
    // Releasing only UDP does not make the pair free again.
    a.release(&key(), "item1", RequestProtocol::Udp, 30002)
        .unwrap();
    assert!(
        !a.is_free(&key(), "item1", RequestProtocol::TcpUdp, 30002)
            .unwrap()
    );
    a.release(&key(), "item1", RequestProtocol::Tcp, 30002)
        .unwrap();
    assert!(
        a.is_free(&key(), "item1", RequestProtocol::TcpUdp, 30002)
            .unwrap()
    );
    let err = a
        .allocate_specific(&key(), "item1", RequestProtocol::TcpUdp, 30001)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "UDP port 30001 of item \"item1\" of port pool test/pool1 is already in use"
    );
}

#[test]
fn not_ready_and_deleting_items_never_hand_out_ports() {
    let mut items = vec![
        spec("item1", 30000, 30010, 0, true, false),
        spec("item2", 31000, 31010, 0, true, false),
    ];
    items[0].status = ItemStatus::NotReady;
    items[1].status = ItemStatus::Deleting;
    let mut a = allocator_with(AllocatePolicy::Default, &items);
    let err = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "port pool test/pool1 has no free TCP port (0 of 2 items are Ready and serve TCP)"
    );
    let err = a
        .allocate(&key(), RequestProtocol::Tcp, Some("item1"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "item \"item1\" of port pool test/pool1 is NotReady; ports are only allocated from Ready items"
    );
    // Rebuild from existing bindings still records holdings on such items.
    a.allocate_specific(&key(), "item2", RequestProtocol::Tcp, 31003)
        .unwrap();
    a.set_item_status(&key(), "item1", ItemStatus::Ready)
        .unwrap();
    let got = a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    assert_eq!((&*got.item, got.start_port), ("item1", 30000));
}

#[test]
fn pinning_and_errors_name_the_problem() {
    let mut a = allocator_with(
        AllocatePolicy::Default,
        &[
            spec("item1", 30000, 30002, 0, true, false),
            spec("item2", 31000, 31002, 0, false, true),
        ],
    );
    let got = a.allocate(&key(), RequestProtocol::Udp, None).unwrap();
    assert_eq!(&*got.item, "item2");
    let got = a
        .allocate(&key(), RequestProtocol::Tcp, Some("item1"))
        .unwrap();
    assert_eq!(&*got.item, "item1");
    let cases = [
        (
            a.allocate(&PoolKey::new("test", "nope"), RequestProtocol::Tcp, None),
            "port pool test/nope not found",
        ),
        (
            a.allocate(&key(), RequestProtocol::Tcp, Some("item9")),
            "item \"item9\" not found in port pool test/pool1",
        ),
        (
            a.allocate(&key(), RequestProtocol::TcpUdp, Some("item2")),
            "item \"item2\" of port pool test/pool1 serves UDP, not TCP_UDP",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
    a.allocate(&key(), RequestProtocol::Tcp, Some("item1"))
        .unwrap();
    assert_eq!(
        a.allocate(&key(), RequestProtocol::Tcp, Some("item1"))
            .unwrap_err()
            .to_string(),
        "item \"item1\" of port pool test/pool1 has no free TCP port left"
    );
}

#[test]
fn average_policy_picks_the_item_with_most_free_ports() {
    let mut a = allocator_with(
        AllocatePolicy::Average,
        &[
            spec("item1", 30000, 30003, 0, true, false),
            spec("item2", 31000, 31003, 0, true, false),
        ],
    );
    let picks: Vec<String> = (0..6)
        .map(|_| {
            a.allocate(&key(), RequestProtocol::Tcp, None)
                .unwrap()
                .item
                .to_string()
        })
        .collect();
    assert_eq!(
        picks,
        ["item1", "item2", "item1", "item2", "item1", "item2"]
    );
}

#[test]
fn end_port_growth_keeps_holdings_and_other_changes_are_refused() {
    let mut a = allocator_with(
        AllocatePolicy::Default,
        &[spec("item1", 30000, 30002, 0, true, false)],
    );
    a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    a.allocate(&key(), RequestProtocol::Tcp, None).unwrap();
    a.sync_pool(
        &key(),
        AllocatePolicy::Default,
        &[spec("item1", 30000, 30004, 0, true, true)],
    )
    .unwrap();
    assert!(
        !a.is_free(&key(), "item1", RequestProtocol::Tcp, 30001)
            .unwrap()
    );
    assert!(
        !a.is_free(&key(), "item1", RequestProtocol::TcpUdp, 30000)
            .unwrap()
    );
    assert_eq!(
        a.allocate(&key(), RequestProtocol::Tcp, None)
            .unwrap()
            .start_port,
        30002
    );
    assert_eq!(
        a.allocate(&key(), RequestProtocol::Udp, None)
            .unwrap()
            .start_port,
        30000
    );
    assert_eq!(
        a.allocate(&key(), RequestProtocol::TcpUdp, None)
            .unwrap()
            .start_port,
        30003
    );
    let err = a
        .sync_pool(
            &key(),
            AllocatePolicy::Default,
            &[spec("item1", 30000, 30003, 0, true, true)],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid item \"item1\" of port pool test/pool1: endPort may only grow (from 30004 to 30003 requested)"
    );
    let err = a
        .sync_pool(
            &key(),
            AllocatePolicy::Default,
            &[spec("item1", 30000, 30010, 0, true, false)],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid item \"item1\" of port pool test/pool1: protocol UDP cannot be removed while 2 of its ports are held"
    );
    let usage = a.usage(&key()).unwrap();
    assert_eq!(
        usage
            .iter()
            .map(|u| (u.protocol, u.capacity, u.used))
            .collect::<Vec<_>>(),
        [(Protocol::Tcp, 4, 4), (Protocol::Udp, 4, 2)]
    );
}

#[test]
fn policy_parses_webhook_values() {
    assert_eq!("".parse::<AllocatePolicy>(), Ok(AllocatePolicy::Default));
    assert_eq!(
        "average".parse::<AllocatePolicy>(),
        Ok(AllocatePolicy::Average)
    );
    assert_eq!(
        "random".parse::<AllocatePolicy>().unwrap_err().to_string(),
        "unknown allocatePolicy \"random\" (expected \"default\" or \"average\")"
    );
}

// ---- model-based property test ----

/// Reference model: per item, its spec and the set of held (protocol, slot start port).
#[derive(Debug, Clone)]
struct ModelItem {
    spec: ItemSpec,
    held: BTreeSet<(Protocol, u16)>,
}

impl ModelItem {
    fn seg(&self) -> u16 {
        self.spec.segment_length.max(1)
    }
    fn slot_starts(&self) -> Vec<u16> {
        let seg = u32::from(self.seg());
        let count = (u32::from(self.spec.end_port) - u32::from(self.spec.start_port)) / seg;
        (0..count)
            .map(|k| (u32::from(self.spec.start_port) + k * seg) as u16)
            .collect()
    }
    fn serves(&self, p: RequestProtocol) -> bool {
        p.protocols().iter().all(|q| match q {
            Protocol::Tcp => self.spec.tcp,
            Protocol::Udp => self.spec.udp,
        })
    }
    fn free(&self, p: RequestProtocol, port: u16) -> bool {
        self.serves(p)
            && p.protocols()
                .iter()
                .all(|q| !self.held.contains(&(*q, port)))
    }
    fn free_list(&self, p: RequestProtocol) -> Vec<u16> {
        self.slot_starts()
            .into_iter()
            .filter(|port| self.free(p, *port))
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(RequestProtocol, Option<usize>),
    Specific(usize, RequestProtocol, u16),
    Release(usize, RequestProtocol, u16),
    Grow(usize, u16),
    Status(usize, ItemStatus),
}

fn request_protocol() -> impl Strategy<Value = RequestProtocol> {
    prop_oneof![
        Just(RequestProtocol::Tcp),
        Just(RequestProtocol::Udp),
        Just(RequestProtocol::TcpUdp)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (request_protocol(), proptest::option::of(0usize..3)).prop_map(|(p, i)| Op::Allocate(p, i)),
        2 => (0usize..3, request_protocol(), 0u16..80).prop_map(|(i, p, o)| Op::Specific(i, p, o)),
        4 => (0usize..3, request_protocol(), 0u16..80).prop_map(|(i, p, o)| Op::Release(i, p, o)),
        1 => (0usize..3, 0u16..20).prop_map(|(i, d)| Op::Grow(i, d)),
        1 => (0usize..3, prop_oneof![Just(ItemStatus::Ready), Just(ItemStatus::NotReady), Just(ItemStatus::Deleting)])
            .prop_map(|(i, s)| Op::Status(i, s)),
    ]
}

fn item_spec(i: usize) -> impl Strategy<Value = ItemSpec> {
    (1u16..40, 0u16..4, 0u8..3).prop_map(move |(len, seg, protos)| ItemSpec {
        name: format!("item{i}"),
        start_port: 30000 + (i as u16) * 1000,
        end_port: 30000 + (i as u16) * 1000 + len,
        segment_length: seg,
        tcp: protos != 1,
        udp: protos != 0,
        status: ItemStatus::Ready,
    })
}

fn expected_pick(model: &[ModelItem], policy: AllocatePolicy, p: RequestProtocol) -> Option<usize> {
    let eligible = model
        .iter()
        .enumerate()
        .filter(|(_, m)| m.spec.status == ItemStatus::Ready && !m.free_list(p).is_empty());
    match policy {
        AllocatePolicy::Default => eligible.map(|(i, _)| i).next(),
        AllocatePolicy::Average => {
            let mut best: Option<(usize, usize)> = None;
            for (i, m) in eligible {
                let free = m.free_list(p).len();
                if best.is_none_or(|(_, f)| free > f) {
                    best = Some((i, free));
                }
            }
            best.map(|(i, _)| i)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocator_matches_model(
        specs in (item_spec(0), item_spec(1), item_spec(2)),
        average in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let policy = if average { AllocatePolicy::Average } else { AllocatePolicy::Default };
        let specs = vec![specs.0, specs.1, specs.2];
        let mut a = Allocator::new();
        a.sync_pool(&key(), policy, &specs).unwrap();
        let mut model: Vec<ModelItem> =
            specs.into_iter().map(|spec| ModelItem { spec, held: BTreeSet::new() }).collect();

        for op in ops {
            match op {
                Op::Allocate(p, pinned) => {
                    let got = a.allocate(&key(), p, pinned.map(|i| model[i].spec.name.as_str()));
                    let expected_item = match pinned {
                        Some(i) => {
                            let m = &model[i];
                            (m.spec.status == ItemStatus::Ready && !m.free_list(p).is_empty()).then_some(i)
                        }
                        None => expected_pick(&model, policy, p),
                    };
                    match (got, expected_item) {
                        (Ok(alloc), Some(i)) => {
                            let m = &mut model[i];
                            prop_assert_eq!(&*alloc.item, m.spec.name.as_str());
                            // Lowest free port of the chosen item.
                            prop_assert_eq!(alloc.start_port, m.free_list(p)[0]);
                            prop_assert_eq!(alloc.last_port, alloc.start_port + m.seg() - 1);
                            for q in p.protocols() {
                                // Never held twice.
                                prop_assert!(m.held.insert((*q, alloc.start_port)));
                            }
                        }
                        (Err(_), None) => {}
                        (got, expected) => prop_assert!(false, "got {:?}, expected item {:?}", got, expected),
                    }
                }
                Op::Specific(i, p, offset) => {
                    let port = model[i].spec.start_port + offset;
                    let got = a.allocate_specific(&key(), &model[i].spec.name, p, port);
                    let m = &mut model[i];
                    let ok = m.slot_starts().contains(&port) && m.free(p, port);
                    prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
                    if ok {
                        for q in p.protocols() {
                            m.held.insert((*q, port));
                        }
                    }
                }
                Op::Release(i, p, offset) => {
                    let port = model[i].spec.start_port + offset;
                    let got = a.release(&key(), &model[i].spec.name, p, port);
                    let m = &mut model[i];
                    if m.slot_starts().contains(&port) {
                        let mut was_held = false;
                        for q in p.protocols() {
                            let served = match q { Protocol::Tcp => m.spec.tcp, Protocol::Udp => m.spec.udp };
                            if served {
                                was_held |= m.held.remove(&(*q, port));
                            }
                        }
                        prop_assert_eq!(got, Ok(was_held));
                        // Release makes the port allocatable again.
                        if m.serves(p) {
                            prop_assert!(a.is_free(&key(), &m.spec.name, p, port).unwrap());
                        }
                    } else {
                        prop_assert!(got.is_err());
                    }
                }
                Op::Grow(i, delta) => {
                    model[i].spec.end_port += delta;
                    let specs: Vec<ItemSpec> = model.iter().map(|m| m.spec.clone()).collect();
                    a.sync_pool(&key(), policy, &specs).unwrap();
                }
                Op::Status(i, status) => {
                    model[i].spec.status = status;
                    a.set_item_status(&key(), &model[i].spec.name, status).unwrap();
                }
            }
            // Holdings and counts agree with the model after every step (growth keeps holdings).
            for m in &model {
                for (q, port) in &m.held {
                    prop_assert!(!a.is_free(&key(), &m.spec.name, (*q).into(), *port).unwrap());
                }
            }
            let usage = a.usage(&key()).unwrap();
            for u in usage {
                let m = model.iter().find(|m| m.spec.name == u.item).unwrap();
                prop_assert_eq!(u.capacity as usize, m.slot_starts().len());
                prop_assert_eq!(u.used as usize, m.held.iter().filter(|(q, _)| *q == u.protocol).count());
            }
        }
    }
}
