//! Which replica keeps a function: with several gateway replicas, each function's keep-alive
//! rounds are sent by one of them, its keeper (`gateway::keepers` agrees on the replicas
//! through Redis; the simulator replays them). Rendezvous hashing: every replica reads the
//! same keeper off the same set of replicas, and a replica that joins or leaves moves only
//! its share of the functions.

use sha2::{Digest, Sha256};

/// How often a replica sharing its attempts publishes them (`gateway::exchange`); the
/// simulator's replicas hear each other's so. Replayed with two replicas (500-function
/// sample, through the gateway), hearing at once gave 135 cold starts, every 20 ms 167,
/// every 100 ms 192: a late end is a request sent cold that one gateway would have held for
/// the environment, and a round planned on a pool that misses a call's environment.
pub const SHARE_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// The keeper of `function` among `replicas`: the one of highest rendezvous weight (ties,
/// which SHA-256 makes unlikely, to the lower id). `None` with no replica.
pub fn keeper_of<'a, S: AsRef<str>>(function: &str, replicas: &'a [S]) -> Option<&'a str> {
    replicas
        .iter()
        .map(|replica| {
            let replica = replica.as_ref();
            (weight(replica, function), std::cmp::Reverse(replica))
        })
        .max()
        .map(|(_, std::cmp::Reverse(replica))| replica)
}

/// Which of the other replicas an environment freed by `sender`'s attempt `attempt` goes
/// to, when the sender held no request for it: one of them, the same on every replica, so
/// that one freed environment releases at most one request held elsewhere.
pub fn taker_of<'a>(
    sender: &str,
    attempt: u64,
    replicas: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let name = format!("{sender}#{attempt}");
    replicas
        .into_iter()
        .filter(|replica| *replica != sender)
        .map(|replica| (weight(replica, &name), std::cmp::Reverse(replica)))
        .max()
        .map(|(_, std::cmp::Reverse(replica))| replica)
}

/// A replica's weight for a function: the first 8 bytes of SHA-256(replica, 0, function).
/// The same on every replica and every build, unlike the standard library's hasher.
fn weight(replica: &str, function: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(replica.as_bytes());
    hash.update([0]);
    hash.update(function.as_bytes());
    let digest = hash.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    #[test]
    fn the_functions_spread_over_the_replicas_whatever_order_they_are_heard_in() {
        let replicas = ids(3);
        let mut reversed = replicas.clone();
        reversed.reverse();
        let mut kept = [0usize; 3];
        for i in 0..300 {
            let f = format!("fn-{i}");
            let keeper = keeper_of(&f, &replicas).unwrap();
            assert_eq!(keeper_of(&f, &reversed), Some(keeper));
            kept[replicas.iter().position(|r| r == keeper).unwrap()] += 1;
        }
        for (r, n) in kept.iter().enumerate() {
            assert!((60..=140).contains(n), "replica {r} keeps {n} of 300");
        }
        assert_eq!(keeper_of::<String>("f", &[]), None);
    }

    #[test]
    fn a_freed_environment_goes_to_one_other_replica_and_never_back() {
        let replicas = ids(3);
        let mut taken = [0usize; 3];
        for attempt in 0..300 {
            let taker =
                taker_of("replica-0", attempt, replicas.iter().map(String::as_str)).unwrap();
            assert_ne!(taker, "replica-0");
            taken[replicas.iter().position(|r| r == taker).unwrap()] += 1;
        }
        assert!(taken[1] > 100 && taken[2] > 100, "{taken:?}");
        assert_eq!(taker_of("replica-0", 7, ["replica-0"]), None);
    }

    proptest! {
        #[test]
        fn a_replica_leaving_moves_only_its_own_functions(n in 2usize..8, gone in 0usize..8, f in "[a-z]{1,12}") {
            let replicas = ids(n);
            let gone = gone % n;
            let before = keeper_of(&f, &replicas).unwrap().to_string();
            let rest: Vec<String> = replicas.iter().filter(|r| **r != replicas[gone]).cloned().collect();
            let after = keeper_of(&f, &rest).unwrap();
            if before != replicas[gone] {
                prop_assert_eq!(after, before.as_str());
            }
        }
    }
}
