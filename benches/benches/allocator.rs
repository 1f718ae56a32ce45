//! Allocate-lowest + release on one 64k-port item: our bitset allocator vs the linear
//! first-free scan of bcs-ingress-controller (the baseline exists only in this file).
//!
//! Scenarios (seeded RNG, so every run sees the same layout):
//! - `random50`: every port held with probability 1/2. The first free port is near the start,
//!   so a linear scan is cheap here; it shows our constant cost.
//! - `dense_prefix`: the lower half fully held (what lowest-first allocation leaves behind),
//!   the upper half held with probability 1/2: the scan walks ~32k ports.
//! - `tcp_udp_dense_prefix`: same for a TCP_UDP request on an item serving both protocols
//!   (the UDP layout is an independent draw of the same shape).
//! - `churn50`: starts from `random50` and keeps occupancy at 50%: every iteration allocates the
//!   lowest free port and releases a randomly chosen held port (pods come and go in any order).
//!   This is the steady state of a busy pool, and the case the performance bar is about.

use std::hint::black_box;
use std::time::Duration;

use clb_controller::allocator::{
    AllocatePolicy, Allocator, ItemSpec, ItemStatus, PoolKey, RequestProtocol,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const START: u16 = 1;
const END: u16 = 65535;
const SLOTS: usize = (END - START) as usize;

/// bcs-style item: one flag per port, first free found by scanning from the start.
struct LinearScan {
    tcp: Vec<bool>,
    udp: Vec<bool>,
}

impl LinearScan {
    fn allocate(&mut self) -> Option<u16> {
        let i = self.tcp.iter().position(|used| !used)?;
        self.tcp[i] = true;
        Some(START + i as u16)
    }

    fn allocate_both(&mut self) -> Option<u16> {
        let i = (0..self.tcp.len()).find(|&i| !self.tcp[i] && !self.udp[i])?;
        self.tcp[i] = true;
        self.udp[i] = true;
        Some(START + i as u16)
    }

    fn release(&mut self, port: u16) {
        self.tcp[usize::from(port - START)] = false;
    }

    fn release_both(&mut self, port: u16) {
        self.tcp[usize::from(port - START)] = false;
        self.udp[usize::from(port - START)] = false;
    }
}

/// Held flags for one protocol: `dense_prefix` holds the lower half entirely.
fn layout(rng: &mut StdRng, dense_prefix: bool) -> Vec<bool> {
    (0..SLOTS)
        .map(|i| (dense_prefix && i < SLOTS / 2) || rng.random_bool(0.5))
        .collect()
}

fn build(tcp: &[bool], udp: &[bool]) -> (Allocator, LinearScan) {
    let key = pool_key();
    let mut ours = Allocator::new();
    let spec = ItemSpec {
        name: "item1".to_string(),
        start_port: START,
        end_port: END,
        segment_length: 1,
        tcp: true,
        udp: true,
        status: ItemStatus::Ready,
    };
    ours.sync_pool(&key, AllocatePolicy::Default, &[spec])
        .expect("valid item");
    for (i, (&t, &u)) in tcp.iter().zip(udp).enumerate() {
        let port = START + i as u16;
        if t {
            ours.allocate_specific(&key, "item1", RequestProtocol::Tcp, port)
                .expect("free port");
        }
        if u {
            ours.allocate_specific(&key, "item1", RequestProtocol::Udp, port)
                .expect("free port");
        }
    }
    let baseline = LinearScan {
        tcp: tcp.to_vec(),
        udp: udp.to_vec(),
    };
    (ours, baseline)
}

fn pool_key() -> PoolKey {
    PoolKey::new("bench", "pool")
}

fn bench_allocator(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let key = pool_key();

    for (scenario, dense, both) in [
        ("random50", false, false),
        ("dense_prefix", true, false),
        ("tcp_udp_dense_prefix", true, true),
    ] {
        let mut rng = StdRng::seed_from_u64(0x00c1_b0a1);
        let tcp = layout(&mut rng, dense);
        let udp = layout(&mut rng, dense);
        let (mut ours, mut baseline) = build(&tcp, &udp);
        let protocol = if both {
            RequestProtocol::TcpUdp
        } else {
            RequestProtocol::Tcp
        };

        group.bench_function(BenchmarkId::new("ours", scenario), |b| {
            b.iter(|| {
                let got = ours
                    .allocate(black_box(&key), protocol, None)
                    .expect("free port");
                ours.release(&key, &got.item, protocol, got.start_port)
                    .expect("held port");
                black_box(got.start_port)
            })
        });
        group.bench_function(BenchmarkId::new("linear_scan", scenario), |b| {
            b.iter(|| {
                if both {
                    let port = baseline.allocate_both().expect("free port");
                    baseline.release_both(port);
                    black_box(port)
                } else {
                    let port = baseline.allocate().expect("free port");
                    baseline.release(port);
                    black_box(port)
                }
            })
        });
    }
    group.finish();
}

/// Small deterministic generator so both allocators see the same release sequence at equal cost.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn bench_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let key = pool_key();
    let mut rng = StdRng::seed_from_u64(0x00c1_b0a1);
    let tcp = layout(&mut rng, false);
    let udp = vec![false; SLOTS];
    let held: Vec<u16> = tcp
        .iter()
        .enumerate()
        .filter(|(_, used)| **used)
        .map(|(i, _)| START + i as u16)
        .collect();
    let (mut ours, mut baseline) = build(&tcp, &udp);

    let mut ours_held = held.clone();
    let mut pick = XorShift(0x9e37_79b9_7f4a_7c15);
    group.bench_function(BenchmarkId::new("ours", "churn50"), |b| {
        b.iter(|| {
            let got = ours
                .allocate(black_box(&key), RequestProtocol::Tcp, None)
                .expect("free port");
            ours_held.push(got.start_port);
            let victim = ours_held.swap_remove(pick.below(ours_held.len()));
            ours.release(&key, &got.item, RequestProtocol::Tcp, victim)
                .expect("held port");
            black_box(got.start_port)
        })
    });

    let mut baseline_held = held;
    let mut pick = XorShift(0x9e37_79b9_7f4a_7c15);
    group.bench_function(BenchmarkId::new("linear_scan", "churn50"), |b| {
        b.iter(|| {
            let port = baseline.allocate().expect("free port");
            baseline_held.push(port);
            let victim = baseline_held.swap_remove(pick.below(baseline_held.len()));
            baseline.release(victim);
            black_box(port)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_allocator, bench_churn);
criterion_main!(benches);
