//! Scheduler properties measured through the real program: order,
//! proportions, least-loaded picks, Maglev disruption and agreement, source
//! stickiness.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::{Harness, packets::*, service_spec};
use lb_common::Action;
use lb_daemon::{
    balancer::model::{Protocol, RealKey, Scheduler},
    sched::lc::{LcCandidate, pick},
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn real_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8))
}

fn reals(weights: &[u32]) -> Vec<(IpAddr, u32)> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (real_addr(i), w))
        .collect()
}

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc000_0000 | i)
}

/// Opens a new connection (SYN, then the handshake's ACK, which makes it
/// established: counted active) from `src:sport`; returns the real index.
fn open(h: &mut Harness, src: Ipv4Addr, sport: u16) -> usize {
    let (action, out) = h.run(&tcp4(src, sport, VIP, 80, TCP_SYN));
    assert_eq!(action, Action::Tx);
    let real = Harness::real_of(&out);
    let (action, out) = h.run(&tcp4(src, sport, VIP, 80, TCP_ACK));
    assert_eq!(action, Action::Tx);
    assert_eq!(Harness::real_of(&out), real, "the ACK follows its SYN");
    real
}

fn close(h: &mut Harness, src: Ipv4Addr, sport: u16) {
    let (action, _) = h.run(&tcp4(src, sport, VIP, 80, TCP_FIN | TCP_ACK));
    assert_eq!(action, Action::Tx);
}

fn service(h: &mut Harness, scheduler: Scheduler, weights: &[u32]) {
    h.service(VIP.into(), 80, Protocol::Tcp, scheduler, &reals(weights));
}

#[test]
fn rr_visits_reals_in_order() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::RoundRobin, &[1, 1, 1, 1]);
    let picks: Vec<usize> = (0..12).map(|p| open(&mut h, client(1), 1000 + p)).collect();
    let start = picks[0];
    let expected: Vec<usize> = (0..12).map(|i| (start + i) % 4).collect();
    assert_eq!(picks, expected);
}

#[test]
fn wrr_proportions_match_weights() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::WeightedRoundRobin, &[5, 3, 2]);
    let mut counts = [0usize; 3];
    for p in 0..1000 {
        counts[open(&mut h, client(1), 1000 + p)] += 1;
    }
    assert_eq!(counts, [500, 300, 200], "one full cycle is exact");
}

#[test]
fn lc_picks_exactly_the_least_loaded() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::LeastConnection, &[1, 1, 1]);
    let svc = common::service_spec(
        VIP.into(),
        80,
        Protocol::Tcp,
        Scheduler::LeastConnection,
        &reals(&[1, 1, 1]),
    )
    .addr;
    let slots: Vec<u32> = (0..3)
        .map(|i| {
            h.lb.real_id(&RealKey::new(svc, SocketAddr::new(real_addr(i), 80)))
                .unwrap()
        })
        .collect();
    for (slot, count) in slots.iter().zip([5, 2, 7]) {
        h.lb.dataplane_mut()
            .set_real_connections(*slot, count)
            .unwrap();
    }
    // Real 1 has 2: it takes new flows until it reaches 5, then 0 and 1
    // alternate until both reach 7.
    let picks: Vec<usize> = (0..7).map(|p| open(&mut h, client(1), 1000 + p)).collect();
    assert_eq!(&picks[..3], &[1, 1, 1]);
    let mut rest = picks[3..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, vec![0, 0, 1, 1], "ties are shared");
    let counts: Vec<u64> = slots
        .iter()
        .map(|s| h.lb.dataplane().real_connections(*s).unwrap())
        .collect();
    assert_eq!(counts, vec![7, 7, 7]);
}

#[test]
fn lc_weighs_half_open_flows_one_in_256() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::LeastConnection, &[1, 1]);
    let svc = common::service_spec(
        VIP.into(),
        80,
        Protocol::Tcp,
        Scheduler::LeastConnection,
        &reals(&[1, 1]),
    )
    .addr;
    let slots: Vec<u32> = (0..2)
        .map(|i| {
            h.lb.real_id(&RealKey::new(svc, SocketAddr::new(real_addr(i), 80)))
                .unwrap()
        })
        .collect();
    // Real 0 has one established connection (load 256), real 1 none: SYNs
    // that never complete (a flood) go to real 1 until it has 256 of them.
    h.lb.dataplane_mut()
        .set_real_connections(slots[0], 1)
        .unwrap();
    for p in 0..256u16 {
        let (action, out) = h.run(&tcp4(client(5), 5000 + p, VIP, 80, TCP_SYN));
        assert_eq!(action, Action::Tx);
        assert_eq!(Harness::real_of(&out), 1, "half-open flow {p}");
    }
    let dp = h.lb.dataplane();
    assert_eq!(dp.real_inactive(slots[1]).unwrap(), 256);
    assert_eq!(dp.real_connections(slots[1]).unwrap(), 0);
    assert_eq!(dp.real_load(slots[1]).unwrap(), 256);
    // Now 256 against 256: a tie, shared.
    let next: Vec<usize> = (0..2).map(|p| open(&mut h, client(6), 6000 + p)).collect();
    assert!(next.contains(&0), "{next:?}");
}

#[test]
fn lc_avoids_a_real_whose_flows_never_close() {
    // Real 0 is "paused": its connections never finish. The others close
    // theirs at once. Least-connection must stop sending to real 0 after its
    // first flow.
    let mut h = Harness::new();
    service(&mut h, Scheduler::LeastConnection, &[1, 1, 1]);
    let mut to_paused = 0;
    for p in 0..300 {
        let real = open(&mut h, client(2), 2000 + p);
        if real == 0 {
            to_paused += 1;
        } else {
            close(&mut h, client(2), 2000 + p);
        }
    }
    assert_eq!(to_paused, 1, "only the first flow went to the stalled real");
}

#[test]
fn rr_keeps_feeding_a_stalled_real() {
    // The contrast to the test above (the seed's GC-pause story).
    let mut h = Harness::new();
    service(&mut h, Scheduler::RoundRobin, &[1, 1, 1]);
    let to_paused = (0..300)
        .filter(|p| open(&mut h, client(2), 2000 + p) == 0)
        .count();
    assert_eq!(to_paused, 100);
}

#[test]
fn wlc_balances_active_per_weight() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::WeightedLeastConnection, &[1, 3]);
    let mut counts = [0usize; 2];
    for p in 0..400 {
        counts[open(&mut h, client(3), 3000 + p)] += 1;
    }
    assert_eq!(counts, [100, 300]);
}

#[test]
fn lc_over_256_reals_matches_the_reference_pick() {
    let mut h = Harness::new();
    let weights = vec![1u32; 256];
    service(&mut h, Scheduler::LeastConnection, &weights);
    let svc = service_spec(
        VIP.into(),
        80,
        Protocol::Tcp,
        Scheduler::LeastConnection,
        &reals(&weights),
    )
    .addr;
    let slots: Vec<u32> = (0..256)
        .map(|i| {
            h.lb.real_id(&RealKey::new(svc, SocketAddr::new(real_addr(i), 80)))
                .unwrap()
        })
        .collect();
    let mut state = 0x9e37_79b9u32;
    for round in 0..20u16 {
        let mut candidates = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // Unique counts so the reference pick does not depend on where
            // the data path's rotating scan starts.
            let active = u64::from(state % 1000) * 256 + i as u64;
            h.lb.dataplane_mut()
                .set_real_connections(*slot, active)
                .unwrap();
            candidates.push(LcCandidate {
                id: *slot,
                weight: 1,
                active,
                inactive: 0,
            });
        }
        // Userspace wrote the counts: it recomputes the groups' hints (as
        // an ageing pass does after repairing counts).
        h.lb.refresh_lc_hints().unwrap();
        let expected = pick(&candidates, 0, false).unwrap();
        assert_eq!(
            open(&mut h, client(4), 4000 + round),
            expected,
            "round {round}"
        );
    }
}

/// The slots of the first `n` reals of the test service.
fn slots(h: &Harness, scheduler: Scheduler, weights: &[u32]) -> Vec<u32> {
    let svc = service_spec(VIP.into(), 80, Protocol::Tcp, scheduler, &reals(weights)).addr;
    (0..weights.len())
        .map(|i| {
            h.lb.real_id(&RealKey::new(svc, SocketAddr::new(real_addr(i), 80)))
                .unwrap()
        })
        .collect()
}

/// Opens and closes connections over a big lc/wlc set, the data path alone
/// changing the loads (picks, completed handshakes, closes, in every
/// group), and checks before every pick that the real it gives the new
/// flow is one of the least loaded (per weight for wlc): the group hints
/// never make it pick a busier real.
fn check_every_pick_is_least_loaded(scheduler: Scheduler, weights: &[u32], rounds: u16) {
    let weighted = scheduler == Scheduler::WeightedLeastConnection;
    let mut h = Harness::new();
    service(&mut h, scheduler, weights);
    let slots = slots(&h, scheduler, weights);
    let mut open_flows: Vec<(u16, usize)> = Vec::new();
    let mut state = 0x2545_f491u32;
    for round in 0..rounds {
        let loads: Vec<u64> = slots
            .iter()
            .map(|s| h.lb.dataplane().real_load(*s).unwrap())
            .collect();
        let real = open(&mut h, client(7), 10_000 + round);
        let per_weight = |i: usize| (u128::from(loads[i]), u128::from(weights[i]));
        let (load, weight) = per_weight(real);
        for other in 0..weights.len() {
            let (l, w) = per_weight(other);
            let less = if weighted {
                l * weight < load * w
            } else {
                l < load
            };
            assert!(
                !less,
                "round {round}: picked real {real} (load {load}, weight {weight}) but real {other} has load {l}, weight {w}"
            );
        }
        open_flows.push((10_000 + round, real));
        // Close about one flow in three, chosen at random, so loads drop in
        // groups other than the one just picked from.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        if state.is_multiple_of(3) {
            let (port, _) = open_flows.swap_remove(state as usize % open_flows.len());
            close(&mut h, client(7), port);
        }
    }
}

#[test]
fn lc_over_256_reals_picks_a_least_loaded_real_while_loads_change() {
    check_every_pick_is_least_loaded(Scheduler::LeastConnection, &[1; 256], 1500);
}

#[test]
fn wlc_over_100_reals_picks_a_least_loaded_real_per_weight_while_loads_change() {
    let weights: Vec<u32> = (0..100).map(|i| 1 + i % 7).collect();
    check_every_pick_is_least_loaded(Scheduler::WeightedLeastConnection, &weights, 1500);
}

/// Where each of `flows` new flows goes, by real address.
fn maglev_assignment(order: &[usize], n_flows: u32) -> Vec<IpAddr> {
    let mut h = Harness::new();
    let list: Vec<(IpAddr, u32)> = order.iter().map(|&i| (real_addr(i), 1)).collect();
    h.service(VIP.into(), 80, Protocol::Tcp, Scheduler::Maglev, &list);
    (0..n_flows)
        .map(|f| {
            let index = open(&mut h, client(f), (f % 50_000) as u16 + 1024);
            list[index].0
        })
        .collect()
}

#[test]
fn maglev_tables_built_independently_agree() {
    let forward: Vec<usize> = (0..10).collect();
    let backward: Vec<usize> = (0..10).rev().collect();
    assert_eq!(
        maglev_assignment(&forward, 2000),
        maglev_assignment(&backward, 2000)
    );
}

#[test]
fn maglev_moves_about_one_nth_when_a_real_goes() {
    let n = 10;
    let all: Vec<usize> = (0..n).collect();
    let without: Vec<usize> = (0..n).filter(|&i| i != 3).collect();
    let flows = 5000;
    let before = maglev_assignment(&all, flows);
    let after = maglev_assignment(&without, flows);
    let removed = real_addr(3);
    let mut moved_elsewhere = 0;
    for (b, a) in before.iter().zip(&after) {
        if *b == removed {
            assert_ne!(*a, removed);
        } else if b != a {
            moved_elsewhere += 1;
        }
    }
    let on_removed = before.iter().filter(|r| **r == removed).count();
    let moved = on_removed + moved_elsewhere;
    let limit = flows as usize / n + flows as usize * 3 / 100;
    assert!(
        moved <= limit,
        "{moved} of {flows} flows moved (limit {limit}); {moved_elsewhere} of them were not on the removed real"
    );
}

#[test]
fn sh_is_stable_per_source_and_spreads_sources() {
    let mut h = Harness::new();
    service(&mut h, Scheduler::SourceHash, &[1, 1, 1, 1]);
    let mut seen = [0usize; 4];
    for c in 0..200 {
        let first = open(&mut h, client(c), 1000);
        for port in 1001..1005 {
            assert_eq!(
                open(&mut h, client(c), port),
                first,
                "client {c} sticks to one real"
            );
        }
        seen[first] += 1;
    }
    assert!(
        seen.iter().all(|&n| n >= 30),
        "sources spread over all reals: {seen:?}"
    );
}
